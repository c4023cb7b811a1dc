import { NamedHandles } from '@flowforge/kernel';
import type { Metrics, MetricSample } from '@flowforge/observability';
import { MaterializeError, type MaterializeErrorCode } from '../errors.js';

/** The pool's counts, read at scrape time. */
export interface PoolCounts {
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
}

/** Everything one named handle reports. It outlives the handle: counters stay monotonic. */
interface ClientState {
  live: boolean;
  subscriptions: number;
  rows: number;
  reconnects: number;
  readonly errors: Map<MaterializeErrorCode, number>;
  pool: () => PoolCounts;
}

function declare(metrics: Metrics, clients: ReadonlyMap<string, ClientState>): void {
  const live = (): [string, ClientState][] => [...clients].filter(([, state]) => state.live);
  const perClient = (
    name: string,
    help: string,
    value: (state: ClientState) => number,
    onlyLive: boolean,
    type: 'gauge' | 'counter',
  ): void => {
    metrics.collected({
      name,
      help,
      type,
      collect: (): MetricSample[] =>
        (onlyLive ? live() : [...clients]).map(([client, state]) => ({
          labels: { client },
          value: value(state),
        })),
    });
  };
  perClient(
    'materialize_subscriptions_active',
    'Subscriptions iterating now (started and not ended), reconnecting ones included.',
    (state) => state.subscriptions,
    true,
    'gauge',
  );
  perClient(
    'materialize_rows_streamed_total',
    'Updates yielded to consumers by subscriptions (progress items not counted).',
    (state) => state.rows,
    false,
    'counter',
  );
  perClient(
    'materialize_reconnects_total',
    'Reconnect attempts of subscriptions after a lost connection.',
    (state) => state.reconnects,
    false,
    'counter',
  );
  metrics.collected({
    name: 'materialize_errors_total',
    help: 'Errors thrown to callers, by handle and MaterializeError code (UNAVAILABLE, CONNECTION_LOST, CANCELLED, …).',
    type: 'counter',
    collect: () =>
      [...clients].flatMap(([client, state]) =>
        [...state.errors].map(([code, value]) => ({ labels: { client, code }, value })),
      ),
  });
  perClient(
    'materialize_pool_connections',
    'Connections of the pool, idle and checked out (subscriptions hold one each).',
    (state) => state.pool().total,
    true,
    'gauge',
  );
  perClient(
    'materialize_pool_idle_connections',
    'Connections of the pool not checked out.',
    (state) => state.pool().idle,
    true,
    'gauge',
  );
  perClient(
    'materialize_pool_waiting_requests',
    'Checkouts waiting for a pooled connection (the pool is at poolSize).',
    (state) => state.pool().waiting,
    true,
    'gauge',
  );
}

/** What the handle records; every method is a plain increment. */
export interface MaterializeInstruments {
  subscriptionStarted(): void;
  subscriptionEnded(): void;
  rows(count: number): void;
  reconnect(): void;
  error(code: MaterializeErrorCode): void;
  /** Stops reporting the gauges of this handle and frees its name. */
  release(): void;
}

/** Instruments that record nothing (no `metrics` option). */
export const NO_INSTRUMENTS: MaterializeInstruments = {
  subscriptionStarted() {},
  subscriptionEnded() {},
  rows() {},
  reconnect() {},
  error() {},
  release() {},
};

/** Which handle reports under which name, per registry: one live handle per name. */
const handles = new NamedHandles<Metrics, ClientState>({
  declare,
  refuse: (message) => new MaterializeError('INVALID_OPTIONS', message),
});

/**
 * Declares the metrics on `metrics` (once per registry) and returns the
 * instruments of the handle named `client`.
 * @throws {MaterializeError} INVALID_OPTIONS when a live handle already reports under that name.
 */
export function createInstruments(
  metrics: Metrics,
  client: string,
  pool: () => PoolCounts,
): MaterializeInstruments {
  const own = handles.claim(metrics, client, () => ({
    live: false,
    subscriptions: 0,
    rows: 0,
    reconnects: 0,
    errors: new Map(),
    pool,
  }));
  // A reused name continues its counters; its gauges are this handle's.
  own.subscriptions = 0;
  own.pool = pool;
  return {
    subscriptionStarted() {
      own.subscriptions += 1;
    },
    subscriptionEnded() {
      own.subscriptions -= 1;
    },
    rows(count) {
      own.rows += count;
    },
    reconnect() {
      own.reconnects += 1;
    },
    error(code) {
      own.errors.set(code, (own.errors.get(code) ?? 0) + 1);
    },
    release() {
      handles.release(own);
    },
  };
}
