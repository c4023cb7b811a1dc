import { MaterializeError } from './errors.js';
import { Availability, type MaterializeStatus } from './internal/availability.js';
import { StatementTimeoutError, toMaterializeError } from './internal/error-map.js';
import { Lease } from './internal/lease.js';
import { createInstruments, NO_INSTRUMENTS } from './internal/metrics.js';
import { resolveOptions } from './internal/options.js';
import { openPools, settlesWithin } from './internal/pools.js';
import { checkTimestamp, subscribeQuery } from './internal/sql.js';
import {
  Subscription,
  type LiveSubscription,
  type SubscriptionHost,
  type SubscriptionSettings,
} from './internal/subscription.js';
import type { MaterializeOptions } from './options.js';

export type { MaterializeStatus } from './internal/availability.js';

/** What {@link Materialize.health} reports when Materialize answers. */
export interface MaterializeHealth {
  /** Always `'up'`: a failed check throws instead. */
  readonly status: 'up';
  /** Round trip of `SELECT 1`, checking a connection out (and connecting) included. */
  readonly latencyMs: number;
}

/** Column = value conditions, ANDed, applied inside Materialize. */
export type SubscribeFilter = Readonly<Record<string, string | number | bigint | boolean>>;

/** Options of {@link Materialize.subscribe}. */
export interface SubscribeOptions {
  /** Ends the subscription: the iterator throws CANCELLED with the signal's reason as `cause`. */
  readonly signal?: AbortSignal;
  /**
   * Start with the view's whole contents at the start time (one batch of
   * updates at that timestamp), then the changes. Off, only changes after
   * the start time arrive. @default false
   */
  readonly snapshot?: boolean;
  /**
   * Also yield `{ kind: 'progress', mzTimestamp: P }`: every update at a time
   * below P has been yielded. Store P to resume later with `resumeFrom`.
   * @default false
   */
  readonly progress?: boolean;
  /**
   * `AS OF`: the start time, inclusive (Materialize semantics: the snapshot
   * is taken at it; without snapshot, changes after it arrive). The view must
   * still have history back to it, else HISTORY_UNAVAILABLE.
   * @default the latest time Materialize has complete
   */
  readonly asOf?: bigint;
  /**
   * A progress frontier P the caller already has everything before (a stored
   * progress item, an SSE Last-Event-ID): subscribes `AS OF P-1` without
   * snapshot and drops any update at a time below P, so nothing is yielded
   * twice. Excludes `snapshot: true` and `asOf`.
   */
  readonly resumeFrom?: bigint;
  /**
   * Column = value conditions, ANDed, inside the SUBSCRIBE (never applied in
   * the app). Names are plain identifiers; values strings (no NUL), finite
   * numbers, bigints or booleans. `{}` filters nothing.
   */
  readonly filter?: SubscribeFilter;
  /** The columns to select, as named in the view. @default all (`*`) */
  readonly columns?: readonly string[];
  /**
   * Resubscribe after a lost connection (with `reconnect` backoff), exactly
   * where it stopped. Off, a lost connection throws CONNECTION_LOST.
   * @default true
   */
  readonly resume?: boolean;
  /**
   * Told of the connection while the subscription resumes (to show "reconnecting" to
   * whoever watches): `'lost'` once per outage, as soon as the client notices it and
   * starts reconnecting — a closed or reset socket (or Materialize ending the session:
   * 25P03, 53200) at once, a hung server when a FETCH goes unanswered for
   * `fetchTimeoutMs + connectTimeoutMs`; then `'resumed'` when the resumed SUBSCRIBE
   * answers its first FETCH. Never for the first connection (its failure is thrown),
   * nor with `resume: false`. Called synchronously; a throw is logged and ignored.
   */
  readonly onConnection?: (event: 'lost' | 'resumed') => void;
}

/**
 * One change of the view: `row` was added (`mzDiff` > 0) or removed
 * (`mzDiff` < 0), `|mzDiff|` times, at `mzTimestamp`. Values are as
 * node-postgres parses Materialize's text: numeric and int8 (bigint) columns
 * arrive as strings, int4 and float8 as numbers, booleans, jsonb parsed,
 * timestamptz as Date.
 */
export interface SubscribeUpdate<Row = Record<string, unknown>> {
  /** Tells updates from progress items when `progress: true`. */
  readonly kind: 'update';
  /** `mz_timestamp`: the Materialize time of the change (never less than an earlier item's). */
  readonly mzTimestamp: bigint;
  /** `mz_diff`: copies of `row` inserted (positive) or deleted (negative). */
  readonly mzDiff: number;
  /** The view's columns, as node-postgres parses text (numeric and int8 arrive as strings). */
  readonly row: Row;
}

/** Every update at a time below `mzTimestamp` has been yielded (`progress: true` only). */
export interface SubscribeProgress {
  /** Tells progress items from updates. */
  readonly kind: 'progress';
  /**
   * The new frontier F: every update at a time before F has now been yielded.
   * Pass it back as `resumeFrom` to continue exactly here.
   */
  readonly mzTimestamp: bigint;
}

/** A handle on one Materialize region. Nothing connects until `start()`, `health()` or a subscription's first `next()`. */
export interface Materialize {
  /** The `name` option: the `client` label of the metrics. */
  readonly name: string;
  /**
   * `'idle'` before the first check, `'ready'` after a successful `start()` or
   * `health()`, `'unavailable'` after a failed one (an optional handle retries
   * in the background), `'closed'` after `close()`.
   */
  readonly status: MaterializeStatus;
  /**
   * Checks connectivity (`SELECT 1`). A required handle rejects with
   * UNAVAILABLE or AUTH_FAILED; an optional one never rejects for an
   * unreachable server: the status becomes `'unavailable'`, the failure is
   * logged once, and the check is retried in the background (unref'd timer,
   * `reconnect` backoff) until it succeeds or `close()`.
   * @throws {MaterializeError} UNAVAILABLE, AUTH_FAILED (required handles only), CLOSED
   */
  start(): Promise<void>;
  /**
   * `SELECT 1`, bounded by `connectTimeoutMs`; a success makes the status `'ready'`.
   * @throws {MaterializeError} UNAVAILABLE, TIMEOUT, AUTH_FAILED, CLOSED
   */
  health(): Promise<MaterializeHealth>;
  /**
   * The changes of a view as an async iterator, on a connection of its own.
   * Each update is yielded once its timestamp is complete, exactly once, in
   * timestamp order, also across lost connections (see the README's
   * guarantee). Nothing is sent before the first `next()`; the next FETCH
   * goes out only when you pull and nothing fetched is left. `break` ends it
   * quietly; the `signal` ends it with CANCELLED; `close()` with CLOSED.
   * @throws {MaterializeError} INVALID_ARGUMENT at once for names or values
   *   it refuses; the iterator throws UNAVAILABLE, TIMEOUT, AUTH_FAILED,
   *   UNKNOWN_VIEW, HISTORY_UNAVAILABLE, CANCELLED, CONNECTION_LOST, CLOSED, QUERY_FAILED
   * @example
   * for await (const change of mz.subscribe<{ total: string }>('widget_totals', {
   *   filter: { tenant_id: principal.tenantId },
   *   signal: request.signal,
   * })) {
   *   send(change.row.total, change.mzDiff);
   * }
   */
  subscribe<Row = Record<string, unknown>>(
    view: string,
    options: SubscribeOptions & { readonly progress: true },
  ): AsyncIterableIterator<SubscribeUpdate<Row> | SubscribeProgress>;
  /** Without `progress: true`: updates only (see the first signature). */
  subscribe<Row = Record<string, unknown>>(
    view: string,
    options?: SubscribeOptions & { readonly progress?: false },
  ): AsyncIterableIterator<SubscribeUpdate<Row>>;
  /** With `progress` not known statically: updates and progress items (see the first signature). */
  subscribe<Row = Record<string, unknown>>(
    view: string,
    options?: SubscribeOptions,
  ): AsyncIterableIterator<SubscribeUpdate<Row> | SubscribeProgress>;
  /**
   * Ends every subscription (their iterators throw CLOSED), cancelling
   * blocked FETCHes, then closes the pool. Bounded: what has not let go after
   * `connectTimeoutMs` is destroyed. Idempotent.
   */
  close(): Promise<void>;
}

function invalidArgument(message: string): MaterializeError {
  return new MaterializeError('INVALID_ARGUMENT', message);
}

function closedError(action: string): MaterializeError {
  return new MaterializeError('CLOSED', `${action}: the Materialize handle is closed`);
}

function checkBoolean(value: unknown, name: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') {
    throw invalidArgument(`${name} must be a boolean`);
  }
  return value;
}

/**
 * What `subscribe(view, options)` asks for, checked before anything is sent.
 * @throws {MaterializeError} INVALID_ARGUMENT
 */
function subscriptionSettings(view: string, options: SubscribeOptions): SubscriptionSettings {
  if (typeof options !== 'object' || options === null) {
    throw invalidArgument('options must be an object');
  }
  const query = subscribeQuery(view, options.columns, options.filter);
  const snapshot = checkBoolean(options.snapshot, 'snapshot') ?? false;
  const progress = checkBoolean(options.progress, 'progress') ?? false;
  const resume = checkBoolean(options.resume, 'resume') ?? true;
  const { signal, onConnection } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalidArgument('signal must be an AbortSignal');
  }
  if (onConnection !== undefined && typeof onConnection !== 'function') {
    throw invalidArgument('onConnection must be a function');
  }
  const asOf = options.asOf === undefined ? undefined : checkTimestamp(options.asOf, 'asOf', 0n);
  const resumeFrom =
    options.resumeFrom === undefined
      ? undefined
      : checkTimestamp(options.resumeFrom, 'resumeFrom', 1n);
  if (resumeFrom !== undefined && (snapshot || asOf !== undefined)) {
    throw invalidArgument(
      'resumeFrom excludes snapshot: true and asOf (it subscribes AS OF resumeFrom - 1 without snapshot)',
    );
  }
  return {
    view,
    query,
    start:
      resumeFrom === undefined ? { snapshot, asOf } : { snapshot: false, asOf: resumeFrom - 1n },
    frontier: resumeFrom,
    progress,
    resume,
    signal,
    onConnection,
  };
}

/**
 * Ends every live subscription (their iterators throw CLOSED), destroying the
 * connections of those that have not let go after `timeoutMs`.
 */
async function endSubscriptions(
  live: ReadonlySet<LiveSubscription>,
  timeoutMs: number,
): Promise<void> {
  const subscriptions = [...live];
  for (const subscription of subscriptions) subscription.close();
  const ended = Promise.all(subscriptions.map((subscription) => subscription.ended));
  if (!(await settlesWithin(ended, timeoutMs))) {
    for (const subscription of subscriptions) subscription.destroy();
    await settlesWithin(ended, timeoutMs);
  }
}

/**
 * Creates a handle on Materialize: a node-postgres pool (nothing connects
 * here) and the subscriptions it serves.
 *
 * @throws {MaterializeError} NOT_CONFIGURED when `url` is null (MATERIALIZE_URL
 *   unset: the app answers 503); INVALID_OPTIONS for an option out of range or
 *   a `name` already reporting to the same `metrics`.
 * @example
 * const mz = createMaterialize({ ...settings.materialize, logger, metrics, optional: true });
 * await mz.start();
 */
export function createMaterialize(options: MaterializeOptions): Materialize {
  const resolved = resolveOptions(options);
  const { logger } = options;
  const { name, connectTimeoutMs } = resolved;
  // Lazy: the pools open nothing, so a name conflict below leaks nothing.
  const pools = openPools(resolved, (error) => {
    if (logger?.isLevelEnabled('debug')) {
      logger.debug(
        { materialize: name, err: mapError(error, 'idle connection') },
        'materialize: an idle pooled connection broke (dropped from the pool)',
      );
    }
  });
  const { pool, checkPool } = pools;
  const instruments = options.metrics
    ? createInstruments(options.metrics, name, () => ({
        total: pool.totalCount,
        idle: pool.idleCount,
        waiting: pool.waitingCount,
      }))
    : NO_INSTRUMENTS;
  const availability = new Availability(resolved, logger, () => ping('background check'));
  let closed: Promise<void> | undefined;
  const live = new Set<LiveSubscription>();

  function mapError(error: unknown, action: string): MaterializeError {
    if (availability.closing && !(error instanceof MaterializeError)) return closedError(action);
    return toMaterializeError(error, {
      secret: resolved.password,
      action,
      connectTimeoutMs,
      lost: 'UNAVAILABLE',
    });
  }

  async function acquire(): Promise<Lease> {
    if (availability.closing) throw closedError('checkout');
    return new Lease(await pool.connect());
  }

  /** `SELECT 1` on a pooled connection, within connectTimeoutMs overall; resolves to the latency. */
  async function ping(action: string): Promise<number> {
    if (availability.closing) throw closedError(action);
    const started = performance.now();
    let lease: Lease;
    try {
      lease = new Lease(await checkPool.connect());
    } catch (error) {
      throw mapError(error, action);
    }
    const left = Math.max(1, Math.round(connectTimeoutMs - (performance.now() - started)));
    try {
      await lease.query('SELECT 1', left);
      lease.release(false);
    } catch (error) {
      lease.release(true);
      if (error instanceof StatementTimeoutError && !availability.closing) {
        throw new MaterializeError(
          'TIMEOUT',
          `${action}: no answer to SELECT 1 within connectTimeoutMs (${connectTimeoutMs} ms)`,
          { cause: error },
        );
      }
      throw mapError(error, action);
    }
    return Math.round((performance.now() - started) * 100) / 100;
  }

  const host: SubscriptionHost = {
    options: resolved,
    logger,
    instruments,
    get closed() {
      return availability.closing;
    },
    acquire,
    track: (subscription) => live.add(subscription),
    untrack: (subscription) => live.delete(subscription),
  };

  function subscribe(
    view: string,
    subscribeOptions: SubscribeOptions = {},
  ): Subscription<Record<string, unknown>> {
    try {
      if (availability.closing) throw closedError(`subscription to ${String(view)}`);
      return new Subscription(host, subscriptionSettings(view, subscribeOptions));
    } catch (error) {
      if (error instanceof MaterializeError) instruments.error(error.code);
      throw error;
    }
  }

  return {
    name,
    get status() {
      return availability.status;
    },
    async start() {
      try {
        await ping('start');
      } catch (error) {
        const mapped =
          error instanceof MaterializeError && error.code === 'TIMEOUT'
            ? new MaterializeError('UNAVAILABLE', error.reason, { cause: error })
            : mapError(error, 'start');
        instruments.error(mapped.code);
        if (mapped.code === 'CLOSED') throw mapped;
        availability.unavailable(
          mapped,
          resolved.optional
            ? 'materialize: unavailable at start; retrying in the background'
            : 'materialize: unavailable at start',
        );
        if (!resolved.optional) throw mapped;
        availability.retry(1);
        return;
      }
      availability.ready();
    },
    async health() {
      let latencyMs: number;
      try {
        latencyMs = await ping('health check');
      } catch (error) {
        const mapped = mapError(error, 'health check');
        instruments.error(mapped.code);
        if (mapped.code !== 'CLOSED') {
          availability.unavailable(mapped, 'materialize: health check failed');
        }
        throw mapped;
      }
      availability.ready();
      return { status: 'up', latencyMs };
    },
    subscribe: subscribe as Materialize['subscribe'],
    close() {
      closed ??= (async () => {
        availability.close();
        await endSubscriptions(live, connectTimeoutMs);
        await pools.end(connectTimeoutMs);
        instruments.release();
      })();
      return closed;
    },
  };
}
