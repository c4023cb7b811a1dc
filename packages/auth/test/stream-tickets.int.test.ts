// Stream tickets against the real Redis of scripts/services, through @flowforge/redis's owned
// keyspace as the app passes it: tickets issued by one instance redeemed by another, exactly
// one winner when two instances redeem one ticket at once, expiry done by Redis, a store dump
// that opens nothing, and Redis cut by a TCP proxy (STORE_UNAVAILABLE, then back).
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createLogger } from '@flowforge/observability';
import { createRedis, type OwnedKeyspace, type Redis } from '@flowforge/redis';
import {
  AuthError,
  createStreamTickets,
  STREAM_TICKET_PREFIX,
  type Principal,
  type StreamTickets,
} from '../src/index.js';
import { startTcpProxy } from './support/real-keycloak.js';

/** The real Redis of scripts/services. */
const REDIS_PORT = 6379;
const TENANT = randomUUID();
const WIDGET_A = randomUUID();
const WIDGET_B = randomUUID();

/** A keyspace of this run's own, under the prefix the app would own. */
const prefix = (): string => `${STREAM_TICKET_PREFIX}test-${randomBytes(4).toString('hex')}:`;
const handles: Redis[] = [];
/** A Redis handle of its own: each is one instance of the service. */
function redisOn(port = REDIS_PORT): Redis {
  const { redis: settings } = loadSettings({
    APP_ENV: 'test',
    REDIS_URL: `redis://127.0.0.1:${port}`,
    // An outage is noticed in a fraction of a second, not after the 2 s default.
    REDIS_COMMAND_TIMEOUT_MS: '300',
  });
  const redis = createRedis(settings);
  handles.push(redis);
  return redis;
}
/** What the app passes: @flowforge/redis's owned keyspace. */
const store = (keyspace: string, port?: number): OwnedKeyspace =>
  redisOn(port).ownedKeyspace(keyspace);

// The keys expire with their tickets; only the connections need closing.
afterAll(async () => {
  for (const redis of handles.splice(0)) await redis.close();
});

const jwtPrincipal: Principal = {
  userId: 'service-account-1',
  tenantId: TENANT,
  roles: ['viewer'],
  claims: { sub: 'service-account-1', exp: 2_000_000_000, tenant_id: TENANT, typ: 'Bearer' },
  method: 'jwt',
};
const apiKeyPrincipal: Principal = {
  userId: randomUUID(),
  tenantId: TENANT,
  roles: [],
  claims: {},
  method: 'api_key',
  widgetIds: [WIDGET_A, WIDGET_B],
  apiKeyId: randomUUID(),
  expiresAt: new Date('2031-01-01T00:00:00.000Z'),
};

/** A debug-level logger whose lines the test reads. */
function logLines(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: {
      write: (chunk: string) => {
        for (const line of chunk.split('\n').filter(Boolean)) {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        }
      },
    },
  });
  return { logger, lines };
}

async function refusal(promise: Promise<unknown>): Promise<AuthError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (rejection: unknown) => rejection,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

/** Every key under `keyspace`, as a dump of Redis would show them. */
async function keysUnder(redis: Redis, keyspace: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of redis.data.scan({ match: `${keyspace}*` })) keys.push(key);
  return keys;
}

describe('stream tickets over Redis keys the app owns', () => {
  it('one instance issues, another redeems, once; Redis holds the grant under the hash, never the ticket', async () => {
    const keyspace = prefix();
    const issuer = createStreamTickets({ store: store(keyspace) });
    const redeemer = createStreamTickets({ store: store(keyspace) });
    expect(issuer.backend).toBe('store');
    const { ticket, expiresAt } = await issuer.issue(apiKeyPrincipal, {
      widgetIds: [WIDGET_B, WIDGET_A],
      resume: { [WIDGET_B]: '18446744073709551615' },
    });

    // What a dump of Redis shows: one key, the SHA-256 of the ticket; nothing that opens a stream.
    const reader = redisOn();
    const keys = await keysUnder(reader, keyspace);
    const hash = createHash('sha256').update(ticket).digest('base64url');
    expect(keys).toEqual([`${keyspace}${hash}`]);
    const stored = await reader.data.get(keys[0]!);
    expect(stored).not.toContain(ticket.slice(4));
    expect(JSON.parse(stored!)).toMatchObject({
      widgetIds: [WIDGET_B, WIDGET_A],
      principal: { method: 'api_key', tenantId: TENANT },
    });
    const ttl = await reader.data.pttl(keys[0]!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(30_000);
    expect(expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(30_000);

    expect(await redeemer.redeem(ticket)).toEqual({
      principal: apiKeyPrincipal,
      widgetIds: [WIDGET_B, WIDGET_A],
      resume: { [WIDGET_B]: '18446744073709551615' },
      credentialExpiresAt: apiKeyPrincipal.expiresAt,
    });
    expect(await keysUnder(reader, keyspace)).toEqual([]);
    // Used up on every instance.
    for (const instance of [issuer, redeemer]) {
      expect((await refusal(instance.redeem(ticket))).code).toBe('TICKET_INVALID');
    }
  });

  it('two instances redeeming the same tickets at once: exactly one redemption of each succeeds', async () => {
    const keyspace = prefix();
    const { logger, lines } = logLines();
    const instances: StreamTickets[] = [0, 1, 2, 3].map(() =>
      createStreamTickets({ store: store(keyspace), logger }),
    );
    const issued = await Promise.all(
      Array.from({ length: 25 }, () =>
        instances[0]!.issue(jwtPrincipal, { widgetIds: [WIDGET_A] }),
      ),
    );
    // Every instance (its own Redis connection) redeems every ticket, twice, all at once.
    const results = await Promise.all(
      issued.map(({ ticket }) =>
        Promise.allSettled([...instances, ...instances].map((instance) => instance.redeem(ticket))),
      ),
    );
    for (const outcomes of results) {
      const won = outcomes.filter((outcome) => outcome.status === 'fulfilled');
      expect(won).toHaveLength(1);
      expect(won[0]!.value.principal).toEqual(jwtPrincipal);
      for (const lost of outcomes.filter((outcome) => outcome.status === 'rejected')) {
        expect(lost.reason).toMatchObject({ code: 'TICKET_INVALID', status: 401 });
      }
    }
    // Losers read the grant too (every GET goes out before any DEL): the DEL decided, not the GET.
    expect(
      lines.filter(
        (line) =>
          line.msg ===
          'a stream ticket was redeemed twice at once; only one of them got the stream',
      ),
    ).not.toHaveLength(0);
  });

  it('Redis expires a ticket nobody redeemed', async () => {
    const keyspace = prefix();
    const tickets = createStreamTickets({ store: store(keyspace), ttlMs: 1_000 });
    const { ticket } = await tickets.issue(jwtPrincipal, { widgetIds: [WIDGET_A] });
    const reader = redisOn();
    await vi.waitFor(async () => expect(await keysUnder(reader, keyspace)).toEqual([]), {
      timeout: 5_000,
      interval: 100,
    });
    expect((await refusal(tickets.redeem(ticket))).code).toBe('TICKET_INVALID');
  });

  it('Redis down: STORE_UNAVAILABLE (503, retryable), one warning, no ticket anywhere; back: tickets work again', async () => {
    const proxy = await startTcpProxy(REDIS_PORT);
    const keyspace = prefix();
    const { logger, lines } = logLines();
    const tickets = createStreamTickets({ store: store(keyspace, proxy.port), logger });
    const { ticket } = await tickets.issue(jwtPrincipal, { widgetIds: [WIDGET_A] }); // connected
    const errors: AuthError[] = [];
    try {
      await proxy.stop();
      errors.push(await refusal(tickets.redeem(ticket)));
      errors.push(await refusal(tickets.issue(jwtPrincipal, { widgetIds: [WIDGET_A] })));
      errors.push(await refusal(tickets.redeem(ticket)));
      for (const error of errors) {
        expect(error).toMatchObject({ code: 'STORE_UNAVAILABLE', status: 503, retryable: true });
      }
      expect(lines.filter((line) => String(line.msg).includes('the store failed'))).toEqual([
        expect.objectContaining({ level: 'warn' }),
      ]);
    } finally {
      await proxy.start();
    }
    // Not redeemed while Redis was away: it still opens its stream once the handle reconnects.
    const redeemed = await vi.waitFor(() => tickets.redeem(ticket), {
      timeout: 10_000,
      interval: 200,
    });
    expect(redeemed.widgetIds).toEqual([WIDGET_A]);
    expect(lines.at(-1)?.msg).toBe('stream tickets: the store is back');
    const secret = ticket.slice(4);
    expect(JSON.stringify(lines)).not.toContain(secret);
    for (const error of errors) {
      expect(
        `${error.message} ${String((error.cause as Error | undefined)?.message)}`,
      ).not.toContain(secret);
    }
  });
});
