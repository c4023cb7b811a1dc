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

const registries = new WeakMap<Metrics, Map<string, ClientState>>();

function declare(metrics: Metrics, clients: Map<string, ClientState>): void {
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
  let clients = registries.get(metrics);
  if (!clients) {
    clients = new Map();
    registries.set(metrics, clients);
    declare(metrics, clients);
  }
  let state = clients.get(client);
  if (state?.live) {
    throw new MaterializeError(
      'INVALID_OPTIONS',
      `a handle named ${JSON.stringify(client)} already reports to this metrics registry: give each handle its own \`name\``,
    );
  }
  if (!state) {
    state = { live: true, subscriptions: 0, rows: 0, reconnects: 0, errors: new Map(), pool };
    clients.set(client, state);
  }
  state.live = true;
  state.subscriptions = 0;
  state.pool = pool;
  const own = state;
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
      own.live = false;
    },
  };
}
