/**
 * What a handle does when PostgreSQL misbehaves underneath it: backends killed
 * (idle and checked out), a restart while the app is idle, a server that never
 * answers, statement_timeout, and a closed handle. Runs against the real server
 * of `scripts/services`; the server itself is never stopped (other test files
 * share it): "down" is simulated with a loopback TCP proxy this file owns, and
 * kills are `pg_terminate_backend` limited to this file's database and to the
 * application_name of the one handle a test is about.
 */
import net, { type AddressInfo } from 'node:net';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, createMetrics, type Metrics } from '@flowforge/observability';
import {
  createDatabase,
  DatabaseError,
  type Database,
  type DatabaseOptions,
} from '../src/index.js';
import {
  APP_LOGIN,
  createTestDatabase,
  openMigrated,
  TENANT_A,
  type TestDatabase,
  type TestDB,
} from './support/postgres.js';
import { rejectionOf } from './support/assert.js';
import { TcpProxy } from './support/tcp-proxy.js';

const PG_HOSTNAME = '127.0.0.1';
const PG_PORT = 5432;
const SUPERUSER_URL = `postgres://postgres@${PG_HOSTNAME}:${PG_PORT}/postgres`;

let testDb: TestDatabase;
/** The superuser connection that kills backends (never through a handle under test). */
let admin: pg.Client;
/** Every handle a test opens, closed in afterAll even when the test failed half-way. */
const handles: Database<TestDB>[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase('resilience');
  // Migrates the schema; this handle is only used as a sanity check.
  handles.push(await openMigrated(testDb, { applicationName: 'ff_resilience_setup' }));
  admin = new pg.Client({ connectionString: SUPERUSER_URL });
  await admin.connect();
});

afterAll(async () => {
  for (const handle of handles) await handle.close();
  await admin?.end();
  await testDb?.drop();
});

/**
 * node-postgres emits 'error' on a client whose backend dies; with no listener
 * EventEmitter throws from a socket callback, i.e. an uncaughtException that
 * would take the process down. Recording them here makes "the process survives"
 * an assertion of each test, not only something vitest would report afterwards.
 */
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
  process.off('uncaughtException', recordProcessError);
  process.off('unhandledRejection', recordProcessError);
});

/** A handle as the app's login role on this file's database, registered for afterAll. */
function open(options: Partial<DatabaseOptions> & { applicationName: string }): Database<TestDB> {
  const handle = createDatabase<TestDB>({ url: testDb.appUrl, poolSize: 4, ...options });
  handles.push(handle);
  return handle;
}

function appUrlVia(port: number): string {
  return `postgres://${APP_LOGIN}:${APP_LOGIN}@${PG_HOSTNAME}:${port}/${testDb.name}`;
}

/** Terminates the backends of one handle (by application_name) in this file's database. */
async function terminateBackends(applicationName: string): Promise<number> {
  const { rows } = await admin.query<{ terminated: boolean }>(
    `select pg_terminate_backend(pid) as terminated
       from pg_stat_activity
      where datname = $1 and usename = $2 and application_name = $3`,
    [testDb.name, APP_LOGIN, applicationName],
  );
  return rows.filter((row) => row.terminated).length;
}

async function backendAlive(pid: number): Promise<boolean> {
  const { rows } = await admin.query('select 1 from pg_stat_activity where pid = $1', [pid]);
  return rows.length > 0;
}

async function waitFor(
  condition: () => Promise<boolean>,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Asserts `error` is a DatabaseError (not a raw driver error) and returns it typed. */
function asDatabaseError(error: unknown): DatabaseError {
  expect(error).toBeInstanceOf(DatabaseError);
  return error as DatabaseError;
}

/** The value of one sample in Prometheus text (labels must match exactly), or undefined. */
function sampleValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const wanted = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const got = [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map((label): [string, string] => [label[1] ?? '', label[2] ?? ''])
      .sort(([a], [b]) => a.localeCompare(b));
    if (JSON.stringify(got) === JSON.stringify(wanted)) return Number(match[3]);
  }
  return undefined;
}

async function poolConnections(metrics: Metrics, database: string): Promise<number | undefined> {
  return sampleValue(await metrics.render(), 'flowforge_db_pool_connections', { database });
}

/** Runs a tiny tenant transaction; resolves to the backend pid that served it. */
async function tenantPid(handle: Database<TestDB>): Promise<number> {
  const { rows } = await handle.withTenant(TENANT_A, (trx) =>
    sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx),
  );
  return rows[0]!.pid;
}

describe('a backend killed under the pool', () => {
  it('under an idle pooled connection: the process survives, the loss is counted and logged, and the next withTenant runs on a new connection', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const logLines: string[] = [];
    const logger = createLogger({
      level: 'debug',
      destination: { write: (line) => logLines.push(line) },
    });
    const applicationName = 'ff_res_idle_kill';
    const handle = open({ applicationName, name: 'idle', metrics, logger });

    // Two overlapping transactions make the pool open exactly two connections.
    await Promise.all(
      [1, 2].map(() =>
        handle.withTenant(TENANT_A, (trx) => sql`select pg_sleep(0.1)`.execute(trx)),
      ),
    );
    const warm = await metrics.render();
    expect(sampleValue(warm, 'flowforge_db_pool_connections', { database: 'idle' })).toBe(2);
    expect(sampleValue(warm, 'flowforge_db_pool_idle_connections', { database: 'idle' })).toBe(2);
    const pidsBefore = (
      await admin.query<{ pid: number }>(
        'select pid from pg_stat_activity where datname = $1 and application_name = $2',
        [testDb.name, applicationName],
      )
    ).rows.map((row) => row.pid);

    expect(await terminateBackends(applicationName)).toBe(2);
    // The pool's 'error' listener removes each dead idle client.
    await waitFor(
      async () => (await poolConnections(metrics, 'idle')) === 0,
      'the pool to drop the dead clients',
    );

    // The server's FATAL 57P01 (admin_shutdown) reaches the idle client before the
    // socket closes, so the idle error is counted under class 57, once per
    // connection; the "Connection terminated unexpectedly" that follows on the
    // same client is swallowed (not counted as "connection").
    const afterKill = await metrics.render();
    expect(sampleValue(afterKill, 'flowforge_db_errors_total', { sqlstate_class: '57' })).toBe(2);
    expect(
      sampleValue(afterKill, 'flowforge_db_errors_total', { sqlstate_class: 'connection' }),
    ).toBeUndefined();
    const warnings = logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.level === 'warn');
    expect(warnings).toHaveLength(2);
    for (const warning of warnings) {
      expect(warning).toMatchObject({ code: 'UNAVAILABLE', sqlstate: '57P01', database: 'idle' });
    }

    // Same handle, fresh connection.
    await handle.withTenant(TENANT_A, (trx) =>
      trx.insertInto('notes').values({ title: 'after idle kill' }).execute(),
    );
    const titles = await handle.withTenant(TENANT_A, (trx) =>
      trx.selectFrom('notes').select('title').where('title', '=', 'after idle kill').execute(),
    );
    expect(titles).toEqual([{ title: 'after idle kill' }]);
    expect(pidsBefore).not.toContain(await tenantPid(handle));
    expect(await poolConnections(metrics, 'idle')).toBe(1);
    expect(processErrors).toEqual([]);
  });

  it('under a checked-out client mid-transaction: the next query rejects with a typed UNAVAILABLE, the process survives, and the handle recovers', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const applicationName = 'ff_res_busy_kill';
    const handle = open({ applicationName, name: 'busy', metrics });

    let killedPid = 0;
    const error = asDatabaseError(
      await rejectionOf(
        handle.withTransaction(async (trx) => {
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
          killedPid = rows[0]!.pid;
          await admin.query('select pg_terminate_backend($1)', [killedPid]);
          await waitFor(async () => !(await backendAlive(killedPid)), 'the backend to exit');
          // Let the client read the FATAL that the backend sent before exiting, so
          // the next query meets a client already marked broken (deterministic).
          await new Promise((resolve) => setTimeout(resolve, 50));
          await sql`select 1`.execute(trx);
        }),
      ),
    );
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.retryable).toBe(true);
    // No server answered the failing statement: node-postgres refuses to send it
    // on a client whose connection failed, so there is no SQLSTATE.
    expect(error.sqlstate).toBeUndefined();
    expect(error.message).toMatch(/not queryable/);

    // Counted as connection-class errors: the failed statement, then the ROLLBACK
    // that could not be sent either (observed, not thrown).
    const text = await metrics.render();
    expect(sampleValue(text, 'flowforge_db_errors_total', { sqlstate_class: 'connection' })).toBe(
      2,
    );

    // The broken client was discarded, not returned to the pool: every later
    // request gets a working connection on the same handle.
    for (let i = 0; i < 3; i += 1) {
      expect(await tenantPid(handle)).not.toBe(killedPid);
    }
    await expect(handle.health()).resolves.toMatchObject({ status: 'up' });
    expect(processErrors).toEqual([]);
  });
});

describe('PostgreSQL restarted while the app is idle', () => {
  const proxy = new TcpProxy();
  afterAll(() => proxy.stop());

  it('rejects with UNAVAILABLE quickly while it is down, and the same handle works again once it is back', async () => {
    await proxy.start(0);
    const metrics = createMetrics({ defaultMetrics: false });
    const applicationName = 'ff_res_restart';
    const connectTimeoutMs = 2_000;
    const handle = open({
      url: appUrlVia(proxy.port),
      applicationName,
      name: 'restart',
      metrics,
      connectTimeoutMs,
    });

    // Warm the pool through the proxy.
    await Promise.all(
      [1, 2].map(() =>
        handle.withTenant(TENANT_A, (trx) => sql`select pg_sleep(0.05)`.execute(trx)),
      ),
    );
    expect(await poolConnections(metrics, 'restart')).toBe(2);

    // "Restart": the server ends every session (FATAL 57P01 through the proxy)…
    expect(await terminateBackends(applicationName)).toBe(2);
    await waitFor(
      async () => (await poolConnections(metrics, 'restart')) === 0,
      'the pool to drop the dead clients',
    );
    // …and stays unreachable: connections to its port are refused.
    const port = proxy.port;
    await proxy.stop();

    let started = performance.now();
    const down = asDatabaseError(
      await rejectionOf(
        handle.withTenant(TENANT_A, (trx) => trx.selectFrom('notes').selectAll().execute()),
      ),
    );
    const withTenantMs = performance.now() - started;
    expect(down.code).toBe('UNAVAILABLE');
    expect(down.retryable).toBe(true);
    expect((down.cause as { code?: unknown } | undefined)?.code).toBe('ECONNREFUSED');
    expect(withTenantMs).toBeLessThan(connectTimeoutMs + 1_000);

    started = performance.now();
    const healthDown = asDatabaseError(await rejectionOf(handle.health()));
    const healthMs = performance.now() - started;
    expect(healthDown.code).toBe('UNAVAILABLE');
    expect(healthMs).toBeLessThan(connectTimeoutMs + 1_000);
    expect(await poolConnections(metrics, 'restart')).toBe(0);

    // Back on the same port: the very next request succeeds, same handle.
    await proxy.start(port);
    await expect(handle.health()).resolves.toMatchObject({ status: 'up' });
    const rows = await handle.withTenant(TENANT_A, (trx) =>
      trx.selectFrom('notes').select('title').execute(),
    );
    expect(Array.isArray(rows)).toBe(true);
    expect(processErrors).toEqual([]);
    console.info(
      `[resilience] while down: withTenant rejected after ${withTenantMs.toFixed(1)} ms, health after ${healthMs.toFixed(1)} ms: ${down.message}`,
    );
  });
});

describe('a server that accepts connections and never answers', () => {
  const held = new Set<net.Socket>();
  const silent = net.createServer((socket) => {
    held.add(socket);
    // Reads (and ignores) the startup message, so that a client hanging up is seen.
    socket.resume();
    socket.on('error', () => undefined);
    socket.on('close', () => held.delete(socket));
  });
  beforeAll(() => new Promise<void>((resolve) => silent.listen(0, PG_HOSTNAME, resolve)));
  afterAll(async () => {
    const closed = new Promise<void>((resolve) => silent.close(() => resolve()));
    for (const socket of held) socket.destroy();
    await closed;
  });

  it(
    'makes health() reject with UNAVAILABLE after connectTimeoutMs instead of hanging',
    { timeout: 5_000 },
    async () => {
      const connectTimeoutMs = 300;
      const handle = open({
        url: appUrlVia((silent.address() as AddressInfo).port),
        applicationName: 'ff_res_silent',
        connectTimeoutMs,
      });
      const started = performance.now();
      const error = asDatabaseError(await rejectionOf(handle.health()));
      const elapsedMs = performance.now() - started;
      expect(error.code).toBe('UNAVAILABLE');
      expect(error.message).toMatch(/connection timeout/);
      expect(elapsedMs).toBeGreaterThanOrEqual(connectTimeoutMs - 50);
      expect(elapsedMs).toBeLessThan(connectTimeoutMs + 1_000);
      // The pool gave up on the socket rather than keeping it.
      await waitFor(
        () => Promise.resolve(held.size === 0),
        'the pool to drop the silent socket',
        2_000,
      );
      console.info(
        `[resilience] silent server: health rejected after ${elapsedMs.toFixed(1)} ms: ${error.message}`,
      );
    },
  );
});

describe('statement_timeout', () => {
  it('rejects with TIMEOUT 57014, rolls the transaction back, and leaves the connection usable', async () => {
    // One connection, so "usable afterwards" is about that very connection.
    const handle = open({
      applicationName: 'ff_res_timeout',
      statementTimeoutMs: 200,
      poolSize: 1,
    });
    const title = 'written before the timeout';
    let pid = 0;
    const started = performance.now();
    const error = asDatabaseError(
      await rejectionOf(
        handle.withTenant(TENANT_A, async (trx) => {
          await trx.insertInto('notes').values({ title }).execute();
          pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]!
            .pid;
          await sql`select pg_sleep(2)`.execute(trx);
        }),
      ),
    );
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(error.code).toBe('TIMEOUT');
    expect(error.sqlstate).toBe('57014');

    // Same connection (poolSize 1, same backend pid), back to normal.
    expect(await tenantPid(handle)).toBe(pid);
    const notes = await handle.withTenant(TENANT_A, (trx) =>
      trx.selectFrom('notes').select('title').where('title', '=', title).execute(),
    );
    expect(notes).toEqual([]);
  });
});

describe('close()', () => {
  it('makes withTenant, withTransaction and health reject with CLOSED, and a second close() is fine', async () => {
    const handle = open({ applicationName: 'ff_res_close' });
    await tenantPid(handle);
    await handle.close();
    await expect(handle.close()).resolves.toBeUndefined();

    for (const attempt of [
      () => handle.withTenant(TENANT_A, (trx) => trx.selectFrom('notes').selectAll().execute()),
      () => handle.withTransaction(() => Promise.resolve(1)),
      () => handle.health(),
    ]) {
      const error = asDatabaseError(await rejectionOf(attempt()));
      expect(error.code).toBe('CLOSED');
      expect(error.retryable).toBe(false);
    }
  });
});

/** Regression tests for two bugs found in review (the callback's error replaced; a bare Error after close). */
describe('errors keep their meaning', () => {
  it('an error the callback throws is rethrown unchanged, even when the ROLLBACK after it fails on a dead connection', async () => {
    const handle = open({ applicationName: 'ff_res_bug_rollback' });
    const appError = new Error('the app gave up');
    const thrown = await rejectionOf(
      handle.withTransaction(async (trx) => {
        const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx))
          .rows[0]!.pid;
        await admin.query('select pg_terminate_backend($1)', [pid]);
        await waitFor(async () => !(await backendAlive(pid)), 'the backend to exit');
        await new Promise((resolve) => setTimeout(resolve, 50));
        throw appError;
      }),
    );
    expect(thrown).toBe(appError);
  });

  it('a query through `db` after close() rejects with DatabaseError CLOSED', async () => {
    const handle = open({ applicationName: 'ff_res_bug_closed_db' });
    await tenantPid(handle);
    await handle.close();
    const error = asDatabaseError(
      await rejectionOf(handle.db.selectFrom('notes').selectAll().execute()),
    );
    expect(error.code).toBe('CLOSED');
  });
});
