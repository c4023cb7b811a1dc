import type { LogEvent, RootOperationNode } from 'kysely';
import { NamedHandles, type HandleState } from '@flowforge/kernel';
import type { Metrics, MetricSample } from '@flowforge/observability';
import { DatabaseError } from '../errors.js';
import { errorClass, toDatabaseError } from './sqlstate.js';

export interface PoolStats {
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
}

const QUERY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Keywords a raw statement may start with that make a useful, bounded label. */
const RAW_OPERATIONS = new Set([
  'select',
  'insert',
  'update',
  'delete',
  'with',
  'begin',
  'start',
  'commit',
  'rollback',
  'savepoint',
  'release',
  'set',
  'show',
  'create',
  'alter',
  'drop',
  'grant',
  'revoke',
  'do',
  'lock',
  'truncate',
  'values',
]);

const NODE_OPERATIONS: Partial<Record<RootOperationNode['kind'], string>> = {
  SelectQueryNode: 'select',
  InsertQueryNode: 'insert',
  UpdateQueryNode: 'update',
  DeleteQueryNode: 'delete',
  MergeQueryNode: 'merge',
};

/** `select`, `insert`, … from the query tree, never from user data; `ddl` or `other` otherwise. */
export function operationOf(node: RootOperationNode, sql: string): string {
  const known = NODE_OPERATIONS[node.kind];
  if (known) return known;
  if (node.kind === 'RawNode') {
    const word = /^\s*([a-z]+)/i.exec(sql)?.[1]?.toLowerCase();
    return word !== undefined && RAW_OPERATIONS.has(word) ? word : 'other';
  }
  return 'ddl';
}

/** What a handle's name holds on a registry: the pool the gauges read while it is live. */
interface PoolReport extends HandleState {
  /** Reads the live handle's pool (nothing until the pool exists). */
  read: () => PoolStats;
}

const NO_POOL = (): PoolStats => ({ total: 0, idle: 0, waiting: 0 });

function declarePoolGauges(metrics: Metrics, reports: ReadonlyMap<string, PoolReport>): void {
  const gauge = (name: string, help: string, pick: (stats: PoolStats) => number): void => {
    metrics.collected({
      name,
      help,
      type: 'gauge',
      collect: (): MetricSample[] =>
        [...reports]
          .filter(([, report]) => report.live)
          .map(([database, report]) => ({ value: pick(report.read()), labels: { database } })),
    });
  };
  gauge('db_pool_connections', 'Open connections in the pool (idle and in use).', (s) => s.total);
  gauge('db_pool_idle_connections', 'Pooled connections not checked out.', (s) => s.idle);
  gauge(
    'db_pool_waiting_requests',
    'Requests waiting for a pooled connection (the pool is exhausted while this is above 0).',
    (s) => s.waiting,
  );
}

/**
 * Pool gauges are scrape-time values. Several handles may share one registry, so
 * the gauges are declared once per registry and read every live handle's pool;
 * two live handles with one name would report one pool.
 */
const pools = new NamedHandles<Metrics, PoolReport>({
  declare: declarePoolGauges,
  refuse: (message) => new DatabaseError('INVALID_OPTIONS', message),
});

export interface DatabaseMetrics {
  /** Kysely's `log` hook: one observation per query, one count per failed one. */
  readonly log: (event: LogEvent) => void;
  /**
   * A statement the driver sent itself (begin, commit, rollback, …), or `connect`
   * for getting a connection (only its failures are counted: it is not a query).
   */
  readonly statement: (operation: string, durationMs: number, error?: DatabaseError) => void;
  /** Counts an error that reached no query (a connection lost while idle). */
  readonly connectionError: (error: unknown) => void;
  /** Gives the pool gauges this handle's pool to read (none for PGlite). */
  readonly reportPool: (read: () => PoolStats) => void;
  /** Stops reporting this handle's pool and frees its name. */
  readonly release: () => void;
}

/**
 * The instruments of one handle on `metrics`. A handle with a pool passes its
 * `pool` name (the gauges' `database` label), taken until `release()`.
 * @throws {DatabaseError} INVALID_OPTIONS while a live handle holds that name
 */
export function createDatabaseMetrics(metrics: Metrics, pool: string | undefined): DatabaseMetrics {
  const duration = metrics.histogram<'operation'>({
    name: 'db_query_duration_seconds',
    help: 'Time from sending a query to its last row, by operation (select, insert, …, begin, commit).',
    labelNames: ['operation'],
    buckets: QUERY_BUCKETS,
  });
  const errors = metrics.counter<'sqlstate_class'>({
    name: 'db_errors_total',
    help: 'Failed queries and lost connections by SQLSTATE class (23 = integrity, 57 = operator intervention, connection = no answer).',
    labelNames: ['sqlstate_class'],
  });
  // Claimed last: a failure above leaves the name free.
  const report =
    pool === undefined
      ? undefined
      : pools.claim(metrics, pool, () => ({ live: false, read: NO_POOL }));
  if (report) report.read = NO_POOL;
  const countError = (error: unknown): void => {
    const mapped = error instanceof DatabaseError ? error : toDatabaseError(error);
    errors.inc({ sqlstate_class: errorClass(mapped) });
  };
  return {
    log: (event) => {
      const operation = operationOf(event.query.query, event.query.sql);
      duration.observe({ operation }, event.queryDurationMillis / 1000);
      if (event.level === 'error') countError(event.error);
    },
    statement: (operation, durationMs, error) => {
      if (operation !== 'connect') duration.observe({ operation }, durationMs / 1000);
      if (error) countError(error);
    },
    connectionError: countError,
    reportPool: (read) => {
      if (report) report.read = read;
    },
    release: () => {
      if (report) pools.release(report);
    },
  };
}
