import type { Metrics, MetricSample } from '@flowforge/observability';
import type { ClickHouseErrorCode } from '../errors.js';

const QUERY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What one finished query adds to the counters. */
interface QueryTally {
  /** Rows handed to the caller (counted by the row reader, not per row here). */
  readonly resultRows: number;
  /** `read_rows` / `read_bytes` of the X-ClickHouse-Summary header, when the server sent one. */
  readonly readRows: number | undefined;
  readonly readBytes: number | undefined;
}

export interface ClickHouseMetrics {
  /** One observation per query, when it ends (last row, error, or the caller stopped reading). */
  readonly finished: (outcome: 'ok' | 'error', seconds: number, tally: QueryTally) => void;
  readonly failed: (code: ClickHouseErrorCode) => void;
}

interface Tallies {
  resultRows: number;
  readRows: number;
  readBytes: number;
}

/**
 * The row and byte counters are tallies read at scrape time (no prom-client call
 * on the query path); every handle on one registry adds to the same tallies.
 */
const talliesByRegistry = new WeakMap<Metrics, Tallies>();

function talliesOf(metrics: Metrics): Tallies {
  let tallies = talliesByRegistry.get(metrics);
  if (tallies) return tallies;
  const created: Tallies = { resultRows: 0, readRows: 0, readBytes: 0 };
  const counter = (name: string, help: string, pick: (t: Tallies) => number): void => {
    metrics.collected({
      name,
      help,
      type: 'counter',
      collect: (): MetricSample[] => [{ value: pick(created) }],
    });
  };
  counter(
    'clickhouse_rows_read_total',
    'Rows the server read for our queries (X-ClickHouse-Summary read_rows; 18.16 and chdb streams send none).',
    (t) => t.readRows,
  );
  counter(
    'clickhouse_bytes_read_total',
    'Bytes the server read for our queries (X-ClickHouse-Summary read_bytes; 18.16 and chdb streams send none).',
    (t) => t.readBytes,
  );
  counter(
    'clickhouse_result_rows_total',
    'Rows returned to callers by query and stream.',
    (t) => t.resultRows,
  );
  talliesByRegistry.set(metrics, created);
  tallies = created;
  return tallies;
}

export function createClickHouseMetrics(metrics: Metrics): ClickHouseMetrics {
  const duration = metrics.histogram<'outcome'>({
    name: 'clickhouse_query_duration_seconds',
    help: 'Time from starting a query to its last row (or its error), by outcome (ok, error).',
    labelNames: ['outcome'],
    buckets: QUERY_BUCKETS,
  });
  const errors = metrics.counter<'code'>({
    name: 'clickhouse_errors_total',
    help: 'Failed queries by ClickHouseError code (SYNTAX_ERROR, READONLY, TIMEOUT, UNAVAILABLE, …).',
    labelNames: ['code'],
  });
  const tallies = talliesOf(metrics);
  return {
    finished: (outcome, seconds, tally) => {
      duration.observe({ outcome }, seconds);
      tallies.resultRows += tally.resultRows;
      if (tally.readRows !== undefined) tallies.readRows += tally.readRows;
      if (tally.readBytes !== undefined) tallies.readBytes += tally.readBytes;
    },
    failed: (code) => errors.inc({ code }),
  };
}
