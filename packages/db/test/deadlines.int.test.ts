/**
 * Client-side deadlines against a PostgreSQL that accepts bytes and never
 * answers (a frozen primary, a black-holed network): every handle here reaches
 * the real server of `scripts/services` through a loopback proxy that this file
 * freezes (sockets kept open, nothing forwarded either way) and thaws. The
 * server-side statement_timeout cannot help there: the query never reaches
 * the server. Decision record: docs/decisions/013-client-side-query-deadline.md.
 */
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, createMetrics, type Metrics } from '@flowforge/observability';
import {
  createDatabase,
  DatabaseError,
  type Database,
  type DatabaseOptions,
} from '../src/index.js';
import { rejectionOf } from './support/assert.js';
import {
  APP_LOGIN,
  createTestDatabase,
  openMigrated,
  TENANT_A,
  type TestDatabase,
  type TestDB,
} from './support/postgres.js';
import { TcpProxy } from './support/tcp-proxy.js';

/** What a deadline may overshoot by on a busy machine: timers, the event loop, the proxy. */
const MARGIN_MS = 2_500;

let testDb: TestDatabase;
const proxy = new TcpProxy();
/** Every handle a test opens, closed in afterAll even when the test failed half-way. */
const handles: Database<TestDB>[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase('deadlines');
  await (await openMigrated(testDb, { applicationName: 'ff_deadlines_setup' })).close();
  await proxy.start(0);
});

afterAll(async () => {
  proxy.thaw();
  for (const handle of handles) await handle.close();
  await proxy.stop();
  await testDb?.drop();
});

/** The process survives: a driver error nobody listens to would surface here. */
const processErrors: unknown[] = [];
const recordProcessError = (error: unknown): void => {
  processErrors.push(error);
};
beforeEach(() => {
  processErrors.length = 0;
  process.on('uncaughtException', recordProcessError);
  process.on('unhandledRejection', recordProcessError);
});
afterEach(() => {
  // A failed test must not leave the next one a frozen server.
  proxy.thaw();
  process.off('uncaughtException', recordProcessError);
  process.off('unhandledRejection', recordProcessError);
});

/** A handle as the app's login role, through the proxy, registered for afterAll. */
function open(options: Partial<DatabaseOptions> & { applicationName: string }): Database<TestDB> {
  const handle = createDatabase<TestDB>({
    url: `postgres://${APP_LOGIN}:${APP_LOGIN}@127.0.0.1:${proxy.port}/${testDb.name}`,
    statementTimeoutMs: 0,
    ...options,
  });
  handles.push(handle);
  return handle;
}

/** Opens `connections` pooled connections at once (overlapping queries), all left idle. */
async function warm(handle: Database<TestDB>, connections: number): Promise<void> {
  await Promise.all(
    Array.from({ length: connections }, () => sql`select pg_sleep(0.05)`.execute(handle.db)),
  );
}

async function backendPid(handle: Database<TestDB>): Promise<number> {
  const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(handle.db);
  return rows[0]!.pid;
}

/** Resolves to the error `promise` rejects with and how long that took from now. */
async function timedRejection(
  promise: Promise<unknown>,
): Promise<{ error: DatabaseError; ms: number }> {
  const started = performance.now();
  const error = await rejectionOf(promise);
  const ms = performance.now() - started;
  expect(error).toBeInstanceOf(DatabaseError);
  return { error: error as DatabaseError, ms };
}

/** The value of one sample in Prometheus text (its labels exactly `labels`), or undefined. */
async function sample(
  metrics: Metrics,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  const wanted = Object.entries(labels)
    .map(([key, value]) => `${key}="${value}"`)
    .join(',');
  const line = (await metrics.render())
    .split('\n')
    .find((candidate) => candidate.startsWith(`${name}{${wanted}} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = performance.now() + 5_000;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('a frozen server', () => {
  it('a query on a warm pooled connection rejects with QUERY_TIMEOUT within queryTimeoutMs, and that connection is discarded', async () => {
    const queryTimeoutMs = 800;
    const connectTimeoutMs = 600;
    const metrics = createMetrics({ defaultMetrics: false });
    const handle = open({
      applicationName: 'ff_dl_query',
      name: 'query',
      poolSize: 1,
      queryTimeoutMs,
      connectTimeoutMs,
      metrics,
    });
    await warm(handle, 1);

    proxy.freeze();
    const { error, ms } = await timedRejection(sql`select 1`.execute(handle.db));
    expect(error.code).toBe('QUERY_TIMEOUT');
    expect(error.status).toBe(503);
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/no answer from PostgreSQL within 800 ms/);
    expect(ms).toBeGreaterThanOrEqual(queryTimeoutMs - 50);
    expect(ms).toBeLessThan(queryTimeoutMs + MARGIN_MS);
    // Discarded, not pooled: the pool holds no connection any more.
    await waitFor(
      async () =>
        (await sample(metrics, 'flowforge_db_pool_connections', { database: 'query' })) === 0,
      'the pool to drop the timed-out connection',
    );
    expect(
      await sample(metrics, 'flowforge_db_errors_total', { sqlstate_class: 'deadline' }),
    ).toBeGreaterThanOrEqual(1);

    // Still frozen: the next query needs a new connection, and that is bounded by connectTimeoutMs.
    const next = await timedRejection(sql`select 1`.execute(handle.db));
    expect(next.error.code).toBe('UNAVAILABLE');
    expect(next.ms).toBeLessThan(connectTimeoutMs + MARGIN_MS);
    // health() (readiness) is bounded the same way.
    const health = await timedRejection(handle.health());
    expect(health.error.code).toBe('UNAVAILABLE');
    expect(health.ms).toBeLessThan(connectTimeoutMs + MARGIN_MS);
    expect(processErrors).toEqual([]);
    console.info(
      `[deadlines] frozen: query rejected after ${ms.toFixed(0)} ms, a new connection after ${next.ms.toFixed(0)} ms`,
    );
  });

  it('a withTenant transaction frozen half-way rejects with QUERY_TIMEOUT within queryTimeoutMs, and nothing of it is committed', async () => {
    const queryTimeoutMs = 800;
    const handle = open({ applicationName: 'ff_dl_tenant', poolSize: 2, queryTimeoutMs });
    await warm(handle, 2);
    const title = 'written before the freeze';

    let frozenAt = 0;
    const error = await rejectionOf(
      handle.withTenant(TENANT_A, async (trx) => {
        await trx.insertInto('notes').values({ title }).execute();
        proxy.freeze();
        frozenAt = performance.now();
        await trx.selectFrom('notes').selectAll().execute();
      }),
    );
    const ms = performance.now() - frozenAt;
    expect(error).toBeInstanceOf(DatabaseError);
    // The statement's timeout, not the ROLLBACK's: that one is refused at once on the
    // discarded connection rather than waiting out a second deadline.
    expect((error as DatabaseError).code).toBe('QUERY_TIMEOUT');
    expect(ms).toBeLessThan(queryTimeoutMs + MARGIN_MS);

    // A transaction that begins while frozen: its BEGIN gets the same deadline.
    const begin = await timedRejection(
      handle.withTenant(TENANT_A, (trx) => trx.selectFrom('notes').selectAll().execute()),
    );
    expect(begin.error.code).toBe('QUERY_TIMEOUT');
    expect(begin.ms).toBeLessThan(queryTimeoutMs + MARGIN_MS);

    proxy.thaw();
    // The server saw the insert, never a COMMIT: when the discarded session ends, it rolls back.
    await waitFor(
      async () =>
        (
          await handle.withTenant(TENANT_A, (trx) =>
            trx.selectFrom('notes').select('title').where('title', '=', title).execute(),
          )
        ).length === 0,
      'the abandoned transaction to be rolled back',
    );
    expect(processErrors).toEqual([]);
  });

  it('with the pool exhausted by hung queries, acquiring fails with UNAVAILABLE within connectTimeoutMs, and the hung queries end at their deadline', async () => {
    const queryTimeoutMs = 3_000;
    const connectTimeoutMs = 500;
    const handle = open({
      applicationName: 'ff_dl_acquire',
      poolSize: 2,
      queryTimeoutMs,
      connectTimeoutMs,
    });
    await warm(handle, 2);

    proxy.freeze();
    const hungAt = performance.now();
    const hung = [1, 2].map((n) =>
      rejectionOf(sql`select ${n}::int as n`.execute(handle.db)).then((error) => ({
        error: error as DatabaseError,
        ms: performance.now() - hungAt,
      })),
    );
    // Both connections are checked out by now: the next caller waits for one.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const acquire = await timedRejection(sql`select 3`.execute(handle.db));
    expect(acquire.error.code).toBe('UNAVAILABLE');
    expect(acquire.error.message).toMatch(/timeout exceeded when trying to connect/);
    expect(acquire.ms).toBeGreaterThanOrEqual(connectTimeoutMs - 50);
    expect(acquire.ms).toBeLessThan(connectTimeoutMs + MARGIN_MS);

    for (const { error, ms } of await Promise.all(hung)) {
      expect(error).toBeInstanceOf(DatabaseError);
      expect(error.code).toBe('QUERY_TIMEOUT');
      expect(ms).toBeLessThan(queryTimeoutMs + MARGIN_MS);
    }
    expect(processErrors).toEqual([]);
  });

  it('after a thaw the same handle works again on new connections, and every query gets its own answer (none of the lost ones)', async () => {
    const queryTimeoutMs = 800;
    const lines: string[] = [];
    const handle = open({
      applicationName: 'ff_dl_heal',
      poolSize: 1,
      queryTimeoutMs,
      logger: createLogger({ level: 'warn', destination: { write: (line) => lines.push(line) } }),
    });
    const frozenPid = await backendPid(handle);

    proxy.freeze();
    const lost = await timedRejection(sql`select 'lost' as tag`.execute(handle.db));
    expect(lost.error.code).toBe('QUERY_TIMEOUT');
    proxy.thaw();

    // The server now answers the lost query late; that answer must reach no one.
    for (let n = 0; n < 5; n += 1) {
      const { rows } = await sql<{
        n: number;
        tag: string;
      }>`select ${n}::int as n, 'own' as tag`.execute(handle.db);
      expect(rows).toEqual([{ n, tag: 'own' }]);
    }
    const tenantRows = await handle.withTenant(TENANT_A, (trx) =>
      sql<{ tenant: string }>`select current_setting('app.tenant_id') as tenant`.execute(trx),
    );
    expect(tenantRows.rows).toEqual([{ tenant: TENANT_A }]);
    await expect(handle.health()).resolves.toMatchObject({ status: 'up' });
    // A new backend: the connection that lost its answer was not handed out again.
    expect(await backendPid(handle)).not.toBe(frozenPid);

    // With the server answering, close() has nothing to cut: it ends at once, and quietly.
    const closing = performance.now();
    await handle.close();
    expect(performance.now() - closing).toBeLessThan(MARGIN_MS);
    expect(lines).toEqual([]);
    expect(processErrors).toEqual([]);
  });
});

describe('close() on a frozen server', () => {
  it('resolves within connectTimeoutMs even with a query in flight, cutting the connections left (and says so)', async () => {
    const connectTimeoutMs = 500;
    const lines: string[] = [];
    const handle = open({
      applicationName: 'ff_dl_close',
      poolSize: 2,
      // Far beyond the bound asserted: close() must not wait for it.
      queryTimeoutMs: 60_000,
      connectTimeoutMs,
      logger: createLogger({ level: 'warn', destination: { write: (line) => lines.push(line) } }),
    });
    await warm(handle, 2);

    proxy.freeze();
    const inFlight = rejectionOf(sql`select 1`.execute(handle.db));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    await handle.close();
    const ms = performance.now() - started;
    expect(ms).toBeGreaterThanOrEqual(connectTimeoutMs - 50);
    expect(ms).toBeLessThan(connectTimeoutMs + MARGIN_MS);

    // The query in flight fails once its socket is cut, instead of waiting a minute.
    const error = (await inFlight) as DatabaseError;
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error.code).toBe('UNAVAILABLE');
    expect(performance.now() - started).toBeLessThan(connectTimeoutMs + MARGIN_MS);
    // Both: the busy one, and the idle one whose goodbye the server never acknowledged.
    expect(lines.map((line) => JSON.parse(line) as unknown)).toContainEqual(
      expect.objectContaining({ level: 'warn', connections: 2, database: 'main' }),
    );
    expect((await rejectionOf(handle.health())) as DatabaseError).toMatchObject({
      code: 'CLOSED',
    });
    expect(processErrors).toEqual([]);
  });
});
