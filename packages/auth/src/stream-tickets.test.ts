import { randomUUID } from 'node:crypto';
import { createLogger, createMetrics } from '@flowforge/observability';
import { describe, expect, it } from 'vitest';
import { AuthError } from './errors.js';
import type { Principal } from './principal.js';
import { createStreamTickets, STREAM_TICKET_MAX_WIDGETS } from './stream-tickets.js';

const TENANT = randomUUID();
const WIDGET_A = randomUUID();
const WIDGET_B = randomUUID();
const WIDGET_C = randomUUID();
/** A token's exp, in seconds, as the JWT verifier leaves it in the claims. */
const EXP = 2_000_000_000;

const jwtPrincipal: Principal = Object.freeze({
  userId: 'user-1',
  tenantId: TENANT,
  roles: Object.freeze(['viewer']),
  claims: Object.freeze({ sub: 'user-1', exp: EXP, tenant_id: TENANT, nested: { a: [1, 2] } }),
  method: 'jwt',
});
const keyExpiry = new Date('2031-05-06T07:08:09.000Z');
const apiKeyPrincipal: Principal = Object.freeze({
  userId: randomUUID(),
  tenantId: TENANT,
  roles: Object.freeze([]),
  claims: Object.freeze({}),
  method: 'api_key',
  widgetIds: Object.freeze([WIDGET_A, WIDGET_B]),
  apiKeyId: randomUUID(),
  expiresAt: keyExpiry,
});
const devPrincipal: Principal = Object.freeze({
  userId: randomUUID(),
  tenantId: TENANT,
  roles: Object.freeze(['viewer', 'editor', 'admin']),
  claims: Object.freeze({}),
  method: 'dev',
});

/** A clock the test moves. */
function clock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let at = start;
  return { now: () => at, advance: (ms) => (at += ms) };
}

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

describe('createStreamTickets in memory', () => {
  it('issues an fft_ ticket that redeems once to the principal, its widgets, resume points and the token’s exp', async () => {
    const time = clock();
    const tickets = createStreamTickets({ now: time.now });
    expect(tickets).toMatchObject({ ttlMs: 30_000, backend: 'memory' });
    const issued = await tickets.issue(jwtPrincipal, {
      widgetIds: [WIDGET_A.toUpperCase(), WIDGET_B],
      resume: { [WIDGET_A.toUpperCase()]: '1700000000123' },
    });
    expect(issued.ticket).toMatch(/^fft_[A-Za-z0-9_-]{43}$/);
    expect(issued.expiresAt.getTime()).toBe(time.now() + 30_000);

    const redeemed = await tickets.redeem(issued.ticket);
    expect(redeemed).toEqual({
      principal: jwtPrincipal,
      widgetIds: [WIDGET_A, WIDGET_B],
      resume: { [WIDGET_A]: '1700000000123' },
      credentialExpiresAt: new Date(EXP * 1000),
    });
    // Frozen as the verifiers freeze theirs: the principal is shared by the whole stream.
    expect(Object.isFrozen(redeemed.principal)).toBe(true);
    expect(Object.isFrozen(redeemed.principal.claims.nested)).toBe(true);

    // Single use: the second redemption is refused like an unknown ticket.
    const again = await refusal(tickets.redeem(issued.ticket));
    expect(again).toMatchObject({ code: 'TICKET_INVALID', status: 401, retryable: false });
    expect(again.challenge('flowforge')).toBe(
      'Bearer realm="flowforge", error="invalid_token", error_description="invalid stream ticket"',
    );
  });

  it('twenty redemptions of one ticket at once: exactly one gets the grant', async () => {
    const tickets = createStreamTickets();
    const { ticket } = await tickets.issue(devPrincipal, { widgetIds: [WIDGET_A] });
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => tickets.redeem(ticket)),
    );
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
  });

  it('every ticket is new: two issues for the same request give two tickets', async () => {
    const tickets = createStreamTickets();
    const request = { widgetIds: [WIDGET_A] };
    const [one, two] = await Promise.all([
      tickets.issue(devPrincipal, request),
      tickets.issue(devPrincipal, request),
    ]);
    expect(one.ticket).not.toBe(two.ticket);
    expect((await tickets.redeem(two.ticket)).widgetIds).toEqual([WIDGET_A]);
    expect((await tickets.redeem(one.ticket)).widgetIds).toEqual([WIDGET_A]);
  });

  it('an API key: only widgets in its scope; the key’s expiry is the credential’s; the principal comes back whole', async () => {
    const tickets = createStreamTickets();
    const outside = await refusal(
      tickets.issue(apiKeyPrincipal, { widgetIds: [WIDGET_A, WIDGET_C] }),
    );
    expect(outside).toMatchObject({ code: 'INSUFFICIENT_SCOPE', status: 403 });
    const { ticket } = await tickets.issue(apiKeyPrincipal, {
      widgetIds: [WIDGET_B, WIDGET_A.toUpperCase()],
    });
    const redeemed = await tickets.redeem(ticket);
    expect(redeemed.principal).toEqual(apiKeyPrincipal);
    expect(redeemed.principal.expiresAt).toBeInstanceOf(Date);
    expect(redeemed.widgetIds).toEqual([WIDGET_B, WIDGET_A]);
    expect(redeemed.resume).toEqual({});
    expect(redeemed.credentialExpiresAt).toEqual(keyExpiry);

    const forever = { ...apiKeyPrincipal, expiresAt: null };
    const redeemedForever = await tickets.redeem(
      (await tickets.issue(forever, { widgetIds: [WIDGET_A] })).ticket,
    );
    expect(redeemedForever.credentialExpiresAt).toBeNull();
    expect(redeemedForever.principal.expiresAt).toBeNull();
  });

  it('the dev principal: no credential expiry', async () => {
    const tickets = createStreamTickets();
    const redeemed = await tickets.redeem(
      (await tickets.issue(devPrincipal, { widgetIds: [WIDGET_A] })).ticket,
    );
    expect(redeemed.credentialExpiresAt).toBeNull();
    expect(redeemed.principal).toEqual(devPrincipal);
  });

  it('refuses a ticket past its ttl, an unknown one, a malformed one and a non-string alike', async () => {
    const time = clock();
    const tickets = createStreamTickets({ ttlMs: 1_000, now: time.now });
    const { ticket } = await tickets.issue(devPrincipal, { widgetIds: [WIDGET_A] });
    time.advance(1_000);
    const unknown = `fft_${Buffer.alloc(32, 7).toString('base64url')}`;
    const refusals = await Promise.all(
      [ticket, unknown, `${ticket}x`, ticket.slice(0, -1), 'fft_', '', ['a'], undefined, 42].map(
        (value) => refusal(tickets.redeem(value)),
      ),
    );
    for (const error of refusals) {
      expect(error).toMatchObject({ code: 'TICKET_INVALID', reason: 'invalid stream ticket' });
    }
  });

  it('refuses bad requests with INPUT_INVALID (400, no challenge), echoing nothing', async () => {
    const tickets = createStreamTickets();
    const tooMany = Array.from({ length: STREAM_TICKET_MAX_WIDGETS + 1 }, () => randomUUID());
    const cases: [request: unknown, reason: RegExp][] = [
      [{ widgetIds: [] }, /at least one/],
      [{}, /at least one/],
      [{ widgetIds: 'x' }, /at least one/],
      [{ widgetIds: tooMany }, /at most 16/],
      [{ widgetIds: ['not-a-uuid<script>'] }, /must be UUIDs/],
      [{ widgetIds: [WIDGET_A, WIDGET_A.toUpperCase()] }, /once/],
      [{ widgetIds: [WIDGET_A], resume: { [WIDGET_A]: '12a' } }, /1 to 20 digits/],
      [{ widgetIds: [WIDGET_A], resume: { [WIDGET_A]: '1'.repeat(21) } }, /1 to 20 digits/],
      [{ widgetIds: [WIDGET_A], resume: { [WIDGET_A]: 12 } }, /1 to 20 digits/],
      [{ widgetIds: [WIDGET_A], resume: { [WIDGET_A]: '' } }, /1 to 20 digits/],
      [{ widgetIds: [WIDGET_A], resume: { [WIDGET_B]: '1' } }, /not among the widget ids/],
      [
        { widgetIds: [WIDGET_A], resume: { [WIDGET_A]: '1', [WIDGET_A.toUpperCase()]: '2' } },
        /twice/,
      ],
      [{ widgetIds: [WIDGET_A], resume: ['1'] }, /map widget ids/],
      [null, /needs widget ids/],
    ];
    for (const [request, reason] of cases) {
      const error = await refusal(tickets.issue(devPrincipal, request as never));
      expect([error.code, error.status]).toEqual(['INPUT_INVALID', 400]);
      expect(error.reason).toMatch(reason);
      expect(error.message).not.toContain('script');
      expect(error.challenge('r')).toBeUndefined();
    }
    // Exactly 16, and a full 20-digit frontier, are fine.
    const sixteen = tooMany.slice(0, STREAM_TICKET_MAX_WIDGETS);
    const { ticket } = await tickets.issue(devPrincipal, {
      widgetIds: sixteen,
      resume: { [sixteen[15]!]: '9'.repeat(20) },
    });
    expect((await tickets.redeem(ticket)).resume).toEqual({ [sixteen[15]!]: '9'.repeat(20) });
  });

  it('refuses something that is not a principal with NO_PRINCIPAL (a bug of the caller)', async () => {
    const tickets = createStreamTickets();
    for (const principal of [
      null,
      {},
      { ...devPrincipal, tenantId: 'x' },
      { ...devPrincipal, method: 'basic' },
    ]) {
      const error = await refusal(tickets.issue(principal as never, { widgetIds: [WIDGET_A] }));
      expect(error.code).toBe('NO_PRINCIPAL');
    }
  });

  it('holds at most maxTickets live tickets: past it TICKETS_FULL (503, Retry-After until the oldest expires); expired ones make room', async () => {
    const time = clock();
    const { logger, lines } = logLines();
    const tickets = createStreamTickets({ maxTickets: 2, ttlMs: 10_000, now: time.now, logger });
    const first = await tickets.issue(devPrincipal, { widgetIds: [WIDGET_A] });
    time.advance(4_000);
    await tickets.issue(devPrincipal, { widgetIds: [WIDGET_A] });
    const full = await refusal(tickets.issue(devPrincipal, { widgetIds: [WIDGET_A] }));
    expect(full).toMatchObject({
      code: 'TICKETS_FULL',
      status: 503,
      retryable: true,
      retryAfterSeconds: 6,
    });
    expect(lines.some((line) => line.level === 'warn' && line.max_tickets === 2)).toBe(true);
    // A redeemed ticket frees its place at once.
    await tickets.redeem(first.ticket);
    const third = await tickets.issue(devPrincipal, { widgetIds: [WIDGET_A] });
    expect(await refusal(tickets.issue(devPrincipal, { widgetIds: [WIDGET_A] }))).toMatchObject({
      code: 'TICKETS_FULL',
      retryAfterSeconds: 10,
    });
    // And expired ones once their time is up.
    time.advance(10_000);
    await tickets.issue(devPrincipal, { widgetIds: [WIDGET_A] });
    await tickets.issue(devPrincipal, { widgetIds: [WIDGET_A] });
    expect((await refusal(tickets.redeem(third.ticket))).code).toBe('TICKET_INVALID');
  });

  it('never logs a ticket, and counts refused redemptions', async () => {
    const { logger, lines } = logLines();
    const metrics = createMetrics({ defaultMetrics: false });
    const tickets = createStreamTickets({ logger, metrics });
    const { ticket } = await tickets.issue(jwtPrincipal, { widgetIds: [WIDGET_A] });
    await tickets.redeem(ticket);
    await refusal(tickets.redeem(ticket));
    await refusal(tickets.redeem('nonsense'));
    expect(lines.map((line) => line.msg)).toEqual([
      'stream ticket issued',
      'stream ticket refused',
      'stream ticket refused',
    ]);
    expect(lines[0]).toMatchObject({ tenant_id: TENANT, auth_method: 'jwt', widgets: 1 });
    expect(JSON.stringify(lines)).not.toContain(ticket.slice(4));
    expect(await metrics.render()).toContain(
      'flowforge_auth_failures_total{reason="ticket_invalid"} 2',
    );
  });

  it('checks its options, naming every problem', () => {
    const refused = (options: Parameters<typeof createStreamTickets>[0]): AuthError => {
      try {
        createStreamTickets(options);
      } catch (error) {
        expect(error).toBeInstanceOf(AuthError);
        return error as AuthError;
      }
      throw new Error('expected INVALID_OPTIONS');
    };
    const error = refused({
      ttlMs: 999,
      maxTickets: 0,
      store: { prefix: 'p:', get: () => Promise.resolve(null) } as never,
    });
    expect(error.code).toBe('INVALID_OPTIONS');
    expect(error.reason).toMatch(/^ttlMs: .*from 1000 to 600000 \(got 999\)/);
    expect(error.reason).toContain('maxTickets');
    expect(error.reason).toContain('store: expected a KeyspaceStore (prefix, get, set, del)');
    expect(refused({ ttlMs: 600_001 }).reason).toContain('ttlMs');
    expect(createStreamTickets({ ttlMs: 600_000 }).ttlMs).toBe(600_000);
  });
});
