import type { LogEvent, RootOperationNode } from 'kysely';
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

/**
 * Pool gauges are scrape-time values. Several handles may share one registry, so
 * the gauges are declared once per registry and read every live handle's pool.
 */
const poolSources = new WeakMap<Metrics, Map<string, () => PoolStats>>();

function declarePoolGauges(metrics: Metrics, sources: Map<string, () => PoolStats>): void {
  const gauge = (name: string, help: string, pick: (stats: PoolStats) => number): void => {
    metrics.collected({
      name,
      help,
      type: 'gauge',
      collect: (): MetricSample[] =>
        [...sources].map(([database, read]) => ({ value: pick(read()), labels: { database } })),
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
  /** Stops reporting this handle's pool. */
  readonly release: () => void;
}

/**
 * Two live handles with one name on one registry would report one pool.
 * @throws {DatabaseError} INVALID_OPTIONS
 */
export function assertPoolNameFree(metrics: Metrics, database: string): void {
  if (poolSources.get(metrics)?.has(database)) {
    throw new DatabaseError(
      'INVALID_OPTIONS',
      `a handle named ${JSON.stringify(database)} already reports to this metrics registry: give each handle its own \`name\``,
    );
  }
}

export function createDatabaseMetrics(
  metrics: Metrics,
  database: string,
  pool: (() => PoolStats) | null,
): DatabaseMetrics {
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
  let sources = poolSources.get(metrics);
  if (pool) {
    if (!sources) {
      sources = new Map();
      poolSources.set(metrics, sources);
      declarePoolGauges(metrics, sources);
    }
    sources.set(database, pool);
  }
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
    release: () => {
      if (pool && sources?.get(database) === pool) sources.delete(database);
    },
  };
}
