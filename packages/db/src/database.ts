import { mkdir } from 'node:fs/promises';
import {
  isAbortedTransactionError,
  Kysely,
  PGliteDialect,
  PostgresDialect,
  sql,
  type AccessMode,
  type Dialect,
  type IsolationLevel,
  type PGlite,
  type PostgresPool,
  type Transaction,
} from 'kysely';
import pg from 'pg';
import type { Logger, Metrics } from '@flowforge/observability';
import { DatabaseError } from './errors.js';
import { withQueryDeadline } from './internal/deadline.js';
import { ScopedDialect, transactionScope, type TransactionScope } from './internal/driver.js';
import { createDatabaseMetrics, type DatabaseMetrics, type PoolStats } from './internal/metrics.js';
import { assertNumericOptions } from './internal/options.js';
import { PoolSockets } from './internal/sockets.js';
import { toDatabaseError } from './internal/sqlstate.js';
import { assertRoleName, assertTenantId, DEFAULT_APP_ROLE } from './tenant.js';

/**
 * Options of {@link createDatabase}. `settings.database` from @flowforge/config
 * spreads straight in; add `logger` and `metrics`.
 */
export interface DatabaseOptions {
  /** A `postgres://` URL (DATABASE_URL). Wins over `embedded`. */
  readonly url?: string | null;
  /**
   * An already-built node-postgres `Pool` to share instead of `url`. The handle
   * never ends it: its owner does.
   */
  readonly pool?: PostgresPool;
  /**
   * Use embedded PGlite when there is neither `url` nor `pool`: `true` opens
   * `embeddedDir` (needs the optional peer `@electric-sql/pglite`), or pass an
   * open PGlite instance to share (the handle never closes it).
   * @default false
   */
  readonly embedded?: boolean | PGlite;
  /** Where `embedded: true` keeps its data; `memory://` keeps none. @default '.data/pglite' */
  readonly embeddedDir?: string;
  /** Maximum pooled connections: a whole number from 1 to 1000. @default 10 */
  readonly poolSize?: number;
  /**
   * Server-side `statement_timeout` of every pooled connection, in milliseconds:
   * a whole number from 0 (none) to 3600000. @default 30000
   */
  readonly statementTimeoutMs?: number;
  /**
   * How long to wait for a new connection or a free pooled one, in milliseconds:
   * a whole number from 1 to 600000 (never 0: node-postgres's 0 waits forever).
   * Also how long `close()` waits for connections still in use and for the
   * server's goodbye before it cuts them.
   * @default 5000
   */
  readonly connectTimeoutMs?: number;
  /**
   * Client-side deadline of every query on PostgreSQL, in milliseconds: a whole
   * number from 1 to 3600000. A query with no answer by then (a frozen server, a
   * black-holed network: `statement_timeout` cannot fire for a query the server
   * never sees) rejects with QUERY_TIMEOUT and its connection is discarded.
   * Keep it above `statementTimeoutMs`, so that a merely slow query is
   * cancelled by the server first (TIMEOUT, connection kept) and this deadline
   * only catches a server that does not answer at all; a handle whose deadline
   * is not above it logs a warning. A request thus waits at most
   * `connectTimeoutMs` for a connection, then `queryTimeoutMs` per query.
   * Embedded PGlite runs in process and has no deadline.
   * Decision record: docs/decisions/013-client-side-query-deadline.md.
   * @default 35000
   */
  readonly queryTimeoutMs?: number;
  /**
   * How long an idle pooled connection is kept, in milliseconds: a whole number
   * from 0 (kept until `close()`) to 3600000. @default 10000
   */
  readonly idleTimeoutMs?: number;
  /** TLS: `require` encrypts, `verify-full` also checks the certificate and host. @default 'disable' */
  readonly ssl?: 'disable' | 'require' | 'verify-full';
  /** `application_name`, shown in pg_stat_activity. @default 'flowforge' */
  readonly applicationName?: string;
  /**
   * The role `withTenant` transactions switch to (`SET LOCAL ROLE`, in the same
   * round trip as BEGIN), so row-level security applies even to a login role
   * that would bypass it. `null` keeps the login role: only for a login role
   * that is itself neither superuser nor table owner.
   * @default 'flowforge_app'
   */
  readonly appRole?: string | null;
  /** The `database` label of the pool gauges, when several handles share a registry. @default 'main' */
  readonly name?: string;
  /** Gets pool errors (warn) and failed queries (debug). */
  readonly logger?: Logger;
  /** Gets the pool gauges, the query duration histogram and the error counter. */
  readonly metrics?: Metrics;
}

/** Options of one transaction. */
export interface TransactionOptions {
  /** Kysely's isolation level (`'serializable'`, …). @default the server's (PostgreSQL: read committed) */
  readonly isolationLevel?: IsolationLevel;
  /** `'read only'` or `'read write'`. @default the server's (read write) */
  readonly accessMode?: AccessMode;
}

/** What {@link Database.health} reports when the database answers. */
export interface DatabaseHealth {
  /** Always `up`: a database that does not answer makes `health()` throw instead. */
  readonly status: 'up';
  /** The round trip of `select 1`, in milliseconds. */
  readonly latencyMs: number;
}

/** A handle on one database. Nothing connects until the first query. */
export interface Database<DB> {
  /**
   * The query builder on the pool, outside any transaction. On PostgreSQL it runs
   * as the login role with no tenant set, so tenant-scoped tables show no rows
   * through it. Embedded PGlite runs as superuser, which bypasses row-level
   * security: there, only `withTenant` isolates tenants.
   */
  readonly db: Kysely<DB>;
  /** `postgres` over node-postgres, or `pglite` embedded. */
  readonly kind: 'postgres' | 'pglite';
  /**
   * Runs `fn` in a transaction: committed when `fn` resolves, rolled back (and
   * the error rethrown unchanged) when it throws. No tenant is set.
   * @throws {DatabaseError} NESTED_TRANSACTION inside another transaction of this handle (use `withSavepoint`).
   */
  withTransaction<T>(
    fn: (trx: Transaction<DB>) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T>;
  /**
   * Runs `fn` in a transaction scoped to `tenantId`: row-level security shows and
   * accepts only that tenant's rows, and inserts get its id by default. The
   * tenant and role are transaction-local, so nothing survives on the pooled
   * connection. Costs two round trips beyond `fn`'s queries (BEGIN with the
   * settings; COMMIT).
   * @throws {DatabaseError} TENANT_INVALID when `tenantId` is not a UUID; NESTED_TRANSACTION as above.
   * @example
   * const boards = await database.withTenant(principal.tenantId, (trx) =>
   *   trx.selectFrom('dashboards').selectAll().execute(),
   * );
   */
  withTenant<T>(
    tenantId: string,
    fn: (trx: Transaction<DB>) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T>;
  /** Round-trips `select 1`. @throws {DatabaseError} UNAVAILABLE, TIMEOUT, QUERY_TIMEOUT, CLOSED */
  health(): Promise<DatabaseHealth>;
  /**
   * Ends the pool (or closes the PGlite instance it opened). Idempotent. Waits
   * at most `connectTimeoutMs` for connections still in use and for the
   * server's goodbye; then it cuts the sockets left (their queries fail with
   * UNAVAILABLE) and resolves, so a frozen server cannot hold up a shutdown.
   */
  close(): Promise<void>;
}

/**
 * Creates a handle on PostgreSQL (`url` or `pool`) or on embedded PGlite.
 *
 * @throws {DatabaseError} NOT_CONFIGURED when there is nothing to connect to;
 *   INVALID_OPTIONS for an `appRole` that is not a lower-case identifier, or a
 *   numeric option out of its range (`poolSize: expected a positive whole number
 *   from 1 to 1000 (got -1)`; every such option is named). Both are thrown
 *   synchronously, before anything connects.
 * @example
 * const database = createDatabase<DB>({ ...settings.database, logger, metrics });
 */
export function createDatabase<DB>(options: DatabaseOptions): Database<DB> {
  const owner = Symbol('flowforge-db');
  assertNumericOptions(options);
  const appRole =
    options.appRole === null ? null : assertRoleName(options.appRole ?? DEFAULT_APP_ROLE);
  const name = options.name ?? 'main';
  const pooled = Boolean(options.pool || options.url);
  if (!pooled && !options.embedded) {
    throw new DatabaseError(
      'NOT_CONFIGURED',
      'no database configured: set DATABASE_URL (or pass `pool`, or `embedded` in development)',
    );
  }
  const { logger } = options;
  // Before the pool: a metrics name already taken throws with no listener left on a shared pool.
  const instruments = options.metrics
    ? createDatabaseMetrics(options.metrics, pooled ? name : undefined)
    : undefined;
  const { base, kind, unwatch } = baseDialect(
    options,
    instruments,
    (error) => {
      const mapped = toDatabaseError(error);
      instruments?.connectionError(mapped);
      logger?.warn(
        { err: mapped, code: mapped.code, sqlstate: mapped.sqlstate, database: name },
        'database connection lost while idle; the pool replaces it',
      );
    },
    (destroyed) => {
      logger?.warn(
        { connections: destroyed, database: name },
        'database connections still open when close() ran out of connectTimeoutMs were cut',
      );
    },
  );
  const statementTimeoutMs = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const queryTimeoutMs = options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  if (
    options.url &&
    !options.pool &&
    statementTimeoutMs > 0 &&
    queryTimeoutMs <= statementTimeoutMs
  ) {
    logger?.warn(
      { queryTimeoutMs, statementTimeoutMs, database: name },
      'queryTimeoutMs is not above statementTimeoutMs: a slow query is cut client-side (its connection discarded, the server left running it) before the server cancels it',
    );
  }

  const dialect = new ScopedDialect(base, {
    owner,
    kind,
    appRole,
    ...(instruments ? { observe: instruments.statement } : {}),
  });
  const db = new Kysely<DB>({
    dialect,
    ...(instruments || logger
      ? {
          log: (event) => {
            instruments?.log(event);
            if (event.level === 'error' && logger?.isLevelEnabled('debug')) {
              const mapped = toDatabaseError(event.error);
              logger.debug(
                {
                  code: mapped.code,
                  sqlstate: mapped.sqlstate,
                  duration_ms: event.queryDurationMillis,
                },
                'query failed',
              );
            }
          },
        }
      : {}),
  });

  let closed: Promise<void> | undefined;
  const assertOpen = (): void => {
    if (closed) throw new DatabaseError('CLOSED', 'the database handle is closed');
  };

  async function transact<T>(
    tenantId: string | null,
    fn: (trx: Transaction<DB>) => Promise<T>,
    transaction: TransactionOptions | undefined,
  ): Promise<T> {
    assertOpen();
    const current = transactionScope.getStore();
    if (current?.owner === owner && current.state !== 'done') {
      throw new DatabaseError(
        'NESTED_TRANSACTION',
        'a transaction of this handle is already open here: pass its `trx` on, or use withSavepoint(trx, fn)',
      );
    }
    let builder = db.transaction();
    if (transaction?.isolationLevel)
      builder = builder.setIsolationLevel(transaction.isolationLevel);
    if (transaction?.accessMode) builder = builder.setAccessMode(transaction.accessMode);
    const scope: TransactionScope = { owner, tenantId, state: 'pending' };
    try {
      return await transactionScope.run(scope, () => builder.execute(fn));
    } catch (error) {
      if (isAbortedTransactionError(error)) {
        throw new DatabaseError(
          'TRANSACTION_ABORTED',
          'the transaction was rolled back: a statement in it failed and the error was caught',
          { cause: error },
        );
      }
      throw error;
    } finally {
      scope.state = 'done';
    }
  }

  return {
    db,
    kind,
    withTransaction: (fn, transaction) => transact(null, fn, transaction),
    // async: a bad tenant id rejects like every other failure, it does not throw synchronously.
    withTenant: async (tenantId, fn, transaction) =>
      transact(assertTenantId(tenantId), fn, transaction),
    async health() {
      assertOpen();
      const started = performance.now();
      try {
        await sql`select 1`.execute(db);
      } catch (error) {
        throw toDatabaseError(error);
      }
      return { status: 'up', latencyMs: Math.round((performance.now() - started) * 100) / 100 };
    },
    close() {
      closed ??= (async () => {
        instruments?.release();
        unwatch();
        // Not db.destroy(): after it Kysely throws bare Errors; the dialect answers CLOSED.
        await dialect.close();
      })();
      return closed;
    },
  };
}

/**
 * The driver's dialect: node-postgres on `pool` or `url` (watched for idle
 * errors, its stats fed to the pool gauges), else PGlite. The caller has
 * checked that one of them is configured.
 */
function baseDialect(
  options: DatabaseOptions,
  instruments: DatabaseMetrics | undefined,
  onIdleError: (error: unknown) => void,
  onCut: (connections: number) => void,
): { base: Dialect; kind: 'postgres' | 'pglite'; unwatch: () => void } {
  if (options.pool || options.url) {
    // A shared pool's `end()` is its owner's: the handle's close leaves it alone.
    const owned = options.pool ? undefined : createPool(options.url!, options, onCut);
    const source = options.pool ?? owned!.pool;
    const pool = withQueryDeadline(source, {
      queryTimeoutMs: options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS,
      end: owned ? owned.end : () => Promise.resolve(),
    });
    instruments?.reportPool(() => readPoolStats(source));
    return {
      base: new PostgresDialect({ pool }),
      kind: 'postgres',
      unwatch: watchPool(source, onIdleError),
    };
  }
  const embedded = options.embedded as true | PGlite;
  return {
    base: new PGliteDialect({
      pglite:
        embedded === true
          ? () => openPGlite(options.embeddedDir ?? '.data/pglite')
          : unclosable(embedded),
    }),
    kind: 'pglite',
    unwatch: () => undefined,
  };
}

const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
const DEFAULT_QUERY_TIMEOUT_MS = 35_000;
/**
 * Silence after which TCP keepalive probes a pooled connection. Node (libuv
 * 1.52, measured) then probes every second, ten times: a peer that is gone
 * (a host that vanished, a network that drops everything) is noticed about
 * 20 s into the silence of a connection with nothing unacknowledged (idle, or
 * waiting for a slow answer). A frozen server whose kernel still answers the
 * probes, or a query never acknowledged, is the query deadline's job.
 */
const KEEPALIVE_DELAY_MS = 10_000;

/** A pool the handle owns, whose `end()` meets `connectTimeoutMs` even on a frozen server. */
function createPool(
  url: string,
  options: DatabaseOptions,
  onCut: (connections: number) => void,
): { pool: pg.Pool; end: () => Promise<void> } {
  const statementTimeout = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const sockets = new PoolSockets();
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    // pg-pool applies it to opening a connection and to waiting for a free one alike.
    connectionTimeoutMillis: connectTimeoutMs,
    idleTimeoutMillis: options.idleTimeoutMs ?? 10_000,
    application_name: options.applicationName ?? 'flowforge',
    ...(statementTimeout > 0 ? { statement_timeout: statementTimeout } : {}),
    ssl: sslOption(options.ssl ?? 'disable'),
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    // node-postgres's documented seam for the socket: ours are tracked, so close() can cut them.
    stream: () => sockets.open(),
  });
  return {
    pool,
    async end() {
      const cut = await sockets.closeWithin(pool.end(), connectTimeoutMs);
      if (cut > 0) onCut(cut);
    },
  };
}

function sslOption(mode: 'disable' | 'require' | 'verify-full'): pg.PoolConfig['ssl'] {
  if (mode === 'disable') return false;
  // `require` is libpq's: encrypted, certificate not checked.
  return { rejectUnauthorized: mode === 'verify-full' };
}

interface EventSource {
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'connect', listener: (client: EventSource) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'connect', listener: (client: EventSource) => void): unknown;
}

function hasEvents(value: unknown): value is EventSource {
  const candidate = value as { on?: unknown; off?: unknown };
  return typeof candidate.on === 'function' && typeof candidate.off === 'function';
}

/**
 * node-postgres kills the process when a backend dies under a client nobody
 * listens to: the pool listens for idle clients ('error'), and each client gets
 * its own listener for the time it is checked out (the query in flight rejects
 * on its own, so that listener only has to exist).
 */
function watchPool(pool: unknown, onIdleError: (error: unknown) => void): () => void {
  if (!hasEvents(pool)) return () => undefined;
  const onConnect = (client: EventSource): void => {
    client.on('error', ignore);
  };
  pool.on('error', onIdleError);
  pool.on('connect', onConnect);
  // A shared pool outlives the handle: take our listeners back on close.
  return () => {
    pool.off('error', onIdleError);
    pool.off('connect', onConnect);
  };
}

function ignore(): void {}

function readPoolStats(pool: unknown): PoolStats {
  const stats = pool as Partial<Record<'totalCount' | 'idleCount' | 'waitingCount', number>>;
  return {
    total: stats.totalCount ?? 0,
    idle: stats.idleCount ?? 0,
    waiting: stats.waitingCount ?? 0,
  };
}

/** A view of a shared PGlite instance that the handle cannot close. */
function unclosable(instance: PGlite): PGlite {
  return new Proxy(instance, {
    get(target, property) {
      if (property === 'close') return () => Promise.resolve();
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function'
        ? (value as (...args: unknown[]) => unknown).bind(target)
        : value;
    },
  });
}

async function openPGlite(dataDir: string): Promise<PGlite> {
  let module: { PGlite: { create(dataDir?: string): Promise<PGlite> } };
  try {
    module = await import('@electric-sql/pglite');
  } catch (error) {
    throw new DatabaseError(
      'NOT_CONFIGURED',
      'embedded mode needs the package @electric-sql/pglite (an optional peer dependency)',
      { cause: error },
    );
  }
  if (!dataDir.includes('://')) await mkdir(dataDir, { recursive: true });
  return module.PGlite.create(dataDir);
}
