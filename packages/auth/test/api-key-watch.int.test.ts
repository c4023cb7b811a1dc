// The API-key watch against the real PostgreSQL of scripts/services: revokeApiKey seen by the
// first lookup after it, one lookup per key per interval however many streams wait, expired and
// deleted keys, waits that are aborted, and PostgreSQL cut by a TCP proxy in the middle of a wait.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDatabase, type Database } from '@flowforge/db';
import { createLogger } from '@flowforge/observability';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createApiKey,
  createApiKeyVerifier,
  createApiKeyWatch,
  revokeApiKey,
  type ApiKeyEnd,
  type ApiKeyWatchOptions,
  type AuthDB,
  type Principal,
} from '../src/index.js';
import {
  APP_LOGIN,
  createAuthTestDatabase,
  urlFor,
  type AuthTestDatabase,
} from './support/postgres.js';
import { startTcpProxy } from './support/real-keycloak.js';

const USER = randomUUID();
const PG_PORT = 5432;

let store: AuthTestDatabase;
let database: Database<AuthDB>;
/** The superuser without the role switch: bypasses row-level security, for fixtures only. */
let admin: Database<AuthDB>;

beforeAll(async () => {
  store = await createAuthTestDatabase();
  database = store.database;
  admin = createDatabase<AuthDB>({
    url: urlFor('postgres', store.name),
    poolSize: 1,
    appRole: null,
  });
});

afterAll(async () => {
  await admin?.close();
  await store?.close();
});

/** A new key in `tenant`, and the principal the verifier makes of it (what a stream holds). */
async function keyIn(
  tenant: string,
  expiresAt: Date | null = null,
): Promise<{ id: string; principal: Principal }> {
  const created = await createApiKey(database, tenant, {
    name: 'Wallboard',
    widgetIds: [randomUUID()],
    createdBy: USER,
    expiresAt,
  });
  return { id: created.id, principal: await createApiKeyVerifier(database).verify(created.key) };
}

/** `database`, counting the lookups per tenant (one key per tenant in these tests). */
function counting(target: Database<AuthDB>): {
  database: ApiKeyWatchOptions['database'];
  lookups: (tenant: string) => number;
} {
  const seen = new Map<string, number>();
  return {
    database: {
      withTenant: (tenantId, fn, options) => {
        seen.set(tenantId, (seen.get(tenantId) ?? 0) + 1);
        return target.withTenant(tenantId, fn, options);
      },
    },
    lookups: (tenant) => seen.get(tenant) ?? 0,
  };
}

/** A wait whose outcome the test can read without awaiting it. */
function watched(promise: Promise<ApiKeyEnd>): { outcome: () => unknown; done: Promise<unknown> } {
  let outcome: unknown = 'pending';
  const done = promise.then(
    (end) => (outcome = end),
    (error: unknown) => (outcome = { rejected: error }),
  );
  return { outcome: () => outcome, done };
}

describe('createApiKeyWatch against PostgreSQL', () => {
  it('revokeApiKey is seen by the first lookup after it; fifty streams on a key cost one lookup per interval', async () => {
    const intervalMs = 300;
    const tenantA = randomUUID();
    const tenantB = randomUUID();
    const a = await keyIn(tenantA);
    const b = await keyIn(tenantB);
    const counted = counting(database);
    const watch = createApiKeyWatch({ database: counted.database, intervalMs });
    const stopB = new AbortController();
    const started = Date.now();
    const waitsA = Array.from({ length: 50 }, () =>
      watched(watch.until(a.principal, new AbortController().signal)),
    );
    const waitsB = Array.from({ length: 50 }, () =>
      watched(watch.until(b.principal, stopB.signal)),
    );
    expect(watch.watching).toBe(2);

    // A few rounds of lookups, the keys live: nobody is told anything.
    await vi.waitFor(() => expect(counted.lookups(tenantA)).toBeGreaterThanOrEqual(3), {
      timeout: 10_000,
      interval: 50,
    });
    expect(waitsA.every((wait) => wait.outcome() === 'pending')).toBe(true);

    expect(await revokeApiKey(database, tenantA, a.id)).toBe(true);
    const lookupsAtRevocation = counted.lookups(tenantA);
    await Promise.all(waitsA.map((wait) => wait.done));
    expect(waitsA.map((wait) => wait.outcome())).toEqual(Array(50).fill('revoked'));
    // The first lookup that began after the revocation saw it (one in flight then may have
    // seen it too): so within one interval.
    expect(counted.lookups(tenantA) - lookupsAtRevocation).toBeLessThanOrEqual(1);

    // One lookup per key per interval, not one per stream: at most one per interval elapsed
    // (plus the first); fifty streams each looking would be fifty times that.
    const elapsed = Date.now() - started;
    const bound = Math.floor(elapsed / intervalMs) + 1;
    expect(counted.lookups(tenantA)).toBeLessThanOrEqual(bound);
    expect(counted.lookups(tenantB)).toBeLessThanOrEqual(bound);

    // The other key is still watched; its streams end by their signal, and its lookups stop.
    expect(watch.watching).toBe(1);
    expect(waitsB.every((wait) => wait.outcome() === 'pending')).toBe(true);
    const reason = new Error('the streams ended');
    stopB.abort(reason);
    await Promise.all(waitsB.map((wait) => wait.done));
    expect(waitsB.map((wait) => wait.outcome())).toEqual(Array(50).fill({ rejected: reason }));
    expect(watch.watching).toBe(0);
    const lookupsB = counted.lookups(tenantB);
    await sleep(intervalMs * 3);
    expect(counted.lookups(tenantB)).toBe(lookupsB);
    await watch.close();
  });

  it('a stream that ends leaves the others of its key waiting; the last one to go stops the lookups', async () => {
    const tenant = randomUUID();
    const key = await keyIn(tenant);
    const counted = counting(database);
    const watch = createApiKeyWatch({ database: counted.database, intervalMs: 200 });
    const first = new AbortController();
    const second = new AbortController();
    const one = watched(watch.until(key.principal, first.signal));
    const two = watched(watch.until(key.principal, second.signal));
    first.abort(new Error('first stream over'));
    await one.done;
    expect(watch.watching).toBe(1);
    await vi.waitFor(() => expect(counted.lookups(tenant)).toBeGreaterThanOrEqual(1), {
      timeout: 5_000,
      interval: 50,
    });
    await revokeApiKey(database, tenant, key.id);
    await two.done;
    expect(two.outcome()).toBe('revoked');
    expect(watch.watching).toBe(0);
    await watch.close();
  });

  it("an expired key: 'expired'; a deleted one, or one looked for in another tenant: 'revoked'", async () => {
    const tenant = randomUUID();
    const expiring = await keyIn(tenant, new Date(Date.now() + 3_600_000));
    const deleted = await keyIn(tenant);
    const live = await keyIn(tenant);
    // Two hours on: the key's expires_at is past (the clock the watch compares it with).
    const watch = createApiKeyWatch({
      database,
      intervalMs: 100,
      now: () => Date.now() + 7_200_000,
    });
    const signal = new AbortController().signal;
    await sql`delete from api_keys where id = ${deleted.id}`.execute(admin.db);
    const outcomes = await Promise.all([
      watch.until(expiring.principal, signal),
      watch.until(deleted.principal, signal),
      // Row-level security: the key does not exist in another tenant.
      watch.until({ tenantId: randomUUID(), apiKeyId: live.id }, signal),
    ]);
    expect(outcomes).toEqual(['expired', 'revoked', 'revoked']);
    await watch.close();
  });

  it('PostgreSQL down during a wait: no verdict, one warning; back: the revocation is seen', async () => {
    const proxy = await startTcpProxy(PG_PORT);
    const viaProxy = createDatabase<AuthDB>({
      url: `postgres://${APP_LOGIN}:${APP_LOGIN}@127.0.0.1:${proxy.port}/${store.name}`,
      poolSize: 1,
      connectTimeoutMs: 500,
      queryTimeoutMs: 1_000,
    });
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: 'info',
      destination: {
        write: (chunk: string) => {
          for (const line of chunk.split('\n').filter(Boolean)) {
            lines.push(JSON.parse(line) as Record<string, unknown>);
          }
        },
      },
    });
    const tenant = randomUUID();
    const key = await keyIn(tenant);
    const counted = counting(viaProxy);
    const watch = createApiKeyWatch({ database: counted.database, intervalMs: 200, logger });
    try {
      const wait = watched(watch.until(key.principal, new AbortController().signal));
      await vi.waitFor(() => expect(counted.lookups(tenant)).toBeGreaterThanOrEqual(1), {
        timeout: 5_000,
        interval: 50,
      });
      await proxy.stop();
      // Revoked while the watch cannot look: it cannot know yet, and it does not guess.
      await revokeApiKey(database, tenant, key.id);
      const before = counted.lookups(tenant);
      await vi.waitFor(() => expect(counted.lookups(tenant)).toBeGreaterThanOrEqual(before + 3), {
        timeout: 10_000,
        interval: 50,
      });
      // The lookup counted last may still be failing: wait until its warning is there.
      await vi.waitFor(
        () =>
          expect(lines.filter((line) => String(line.msg).includes('a lookup failed'))).toEqual([
            expect.objectContaining({ level: 'warn' }),
          ]),
        { timeout: 5_000, interval: 50 },
      );
      expect(wait.outcome()).toBe('pending');
      expect(watch.watching).toBe(1);

      await proxy.start();
      await vi.waitFor(() => expect(wait.outcome()).toBe('revoked'), {
        timeout: 10_000,
        interval: 50,
      });
      // One warning for the whole outage, however many lookups failed.
      expect(lines.map((line) => [line.level, line.msg])).toEqual([
        ['warn', 'API key watch: a lookup failed; streams go on and every interval looks again'],
        ['info', 'API key watch: lookups work again'],
      ]);
    } finally {
      await proxy.start();
      await watch.close();
      await viaProxy.close();
      await proxy.stop();
    }
  });

  it('close() stops every lookup; the waits then end by their signals only', async () => {
    const tenant = randomUUID();
    const key = await keyIn(tenant);
    const counted = counting(database);
    const watch = createApiKeyWatch({ database: counted.database, intervalMs: 100 });
    const controller = new AbortController();
    const wait = watched(watch.until(key.principal, controller.signal));
    await vi.waitFor(() => expect(counted.lookups(tenant)).toBeGreaterThanOrEqual(1), {
      timeout: 5_000,
      interval: 20,
    });
    await watch.close();
    await watch.close(); // idempotent
    expect(watch.watching).toBe(0);
    const lookups = counted.lookups(tenant);
    await revokeApiKey(database, tenant, key.id);
    // A wait begun after close looks nothing up either.
    const late = watched(watch.until(key.principal, controller.signal));
    await sleep(400);
    expect(counted.lookups(tenant)).toBe(lookups);
    expect([wait.outcome(), late.outcome()]).toEqual(['pending', 'pending']);
    const reason = new Error('shutdown');
    controller.abort(reason);
    await Promise.all([wait.done, late.done]);
    expect([wait.outcome(), late.outcome()]).toEqual([{ rejected: reason }, { rejected: reason }]);
  });
});
