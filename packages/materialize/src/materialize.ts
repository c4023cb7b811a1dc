import { Pool, type PoolClient } from 'pg';
import { MaterializeError } from './errors.js';
import { StatementTimeoutError, toMaterializeError } from './internal/error-map.js';
import { Lease } from './internal/lease.js';
import { createInstruments, NO_INSTRUMENTS } from './internal/metrics.js';
import { backoffDelay, resolveOptions } from './internal/options.js';
import { checkTimestamp, subscribeQuery } from './internal/sql.js';
import {
  Subscription,
  type LiveSubscription,
  type SubscriptionHost,
} from './internal/subscription.js';
import type { MaterializeOptions } from './options.js';

/** Where the handle stands: see {@link Materialize.status}. */
export type MaterializeStatus = 'idle' | 'ready' | 'unavailable' | 'closed';

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

/** Resolves true when `promise` settles within `ms`, false otherwise (never rejects). */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

function checkBoolean(value: unknown, name: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') {
    throw invalidArgument(`${name} must be a boolean`);
  }
  return value;
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
  const poolOf = (max: number): InstanceType<typeof Pool> =>
    new Pool({
      connectionString: resolved.url,
      max,
      connectionTimeoutMillis: connectTimeoutMs,
      idleTimeoutMillis: 10_000,
      // Idle connections do not keep the process alive.
      allowExitOnIdle: true,
      keepAlive: true,
      application_name: `flowforge-${name}`,
    });
  const pool = poolOf(resolved.poolSize);
  // start() and health() have a connection of their own: with every pooled one
  // held by a subscription, a busy handle must not look like a server that is down.
  const checkPool = poolOf(1);
  const instruments = options.metrics
    ? createInstruments(options.metrics, name, () => ({
        total: pool.totalCount,
        idle: pool.idleCount,
        waiting: pool.waitingCount,
      }))
    : NO_INSTRUMENTS;

  const clients = new Set<PoolClient>();
  for (const each of [pool, checkPool]) {
    each.on('connect', (client) => clients.add(client));
    each.on('remove', (client) => clients.delete(client));
    // An idle pooled connection that breaks: the pool drops it; without this listener the process would exit.
    each.on('error', (error) => {
      if (logger?.isLevelEnabled('debug')) {
        logger.debug(
          { materialize: name, err: mapError(error, 'idle connection') },
          'materialize: an idle pooled connection broke (dropped from the pool)',
        );
      }
    });
  }

  let status: MaterializeStatus = 'idle';
  let closing = false;
  let closed: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let unavailableSince: number | undefined;
  const live = new Set<LiveSubscription>();

  function mapError(error: unknown, action: string): MaterializeError {
    if (closing && !(error instanceof MaterializeError)) {
      return new MaterializeError('CLOSED', `${action}: the Materialize handle is closed`);
    }
    return toMaterializeError(error, {
      secret: resolved.password,
      action,
      connectTimeoutMs,
      lost: 'UNAVAILABLE',
    });
  }

  function closedError(action: string): MaterializeError {
    return new MaterializeError('CLOSED', `${action}: the Materialize handle is closed`);
  }

  async function acquire(): Promise<Lease> {
    if (closing) throw closedError('checkout');
    return new Lease(await pool.connect());
  }

  /** `SELECT 1` on a pooled connection, within connectTimeoutMs overall; resolves to the latency. */
  async function ping(action: string): Promise<number> {
    if (closing) throw closedError(action);
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
      if (error instanceof StatementTimeoutError && !closing) {
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

  function becameReady(): void {
    clearTimeout(retryTimer);
    retryTimer = undefined;
    if (closing) return;
    if (unavailableSince !== undefined) {
      logger?.info(
        {
          materialize: name,
          url: resolved.safeUrl,
          downtime_ms: Math.round(performance.now() - unavailableSince),
        },
        'materialize: available again',
      );
      unavailableSince = undefined;
    } else if (status !== 'ready') {
      logger?.info({ materialize: name, url: resolved.safeUrl }, 'materialize: connected');
    }
    status = 'ready';
  }

  function becameUnavailable(error: MaterializeError, message: string): void {
    if (closing) return;
    status = 'unavailable';
    if (unavailableSince === undefined) {
      unavailableSince = performance.now();
      logger?.warn(
        { materialize: name, url: resolved.safeUrl, code: error.code, err: error },
        message,
      );
    }
  }

  /** start()'s background retry of an optional handle. */
  function scheduleRetry(attempt: number): void {
    if (closing || retryTimer !== undefined) return;
    if (attempt > resolved.reconnect.maxAttempts) {
      logger?.error(
        { materialize: name, attempts: attempt - 1 },
        'materialize: still unavailable; background retries stopped (reconnect.maxAttempts)',
      );
      return;
    }
    const delay = backoffDelay(resolved.reconnect, attempt);
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      ping('background check').then(becameReady, (error: unknown) => {
        if (closing) return;
        if (logger?.isLevelEnabled('debug')) {
          logger.debug(
            { materialize: name, attempt, err: error },
            'materialize: background check failed; retrying',
          );
        }
        scheduleRetry(attempt + 1);
      });
    }, delay);
    retryTimer.unref();
  }

  const host: SubscriptionHost = {
    options: resolved,
    logger,
    instruments,
    get closed() {
      return closing;
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
      if (closing) throw closedError(`subscription to ${String(view)}`);
      if (typeof subscribeOptions !== 'object' || subscribeOptions === null) {
        throw invalidArgument('options must be an object');
      }
      const query = subscribeQuery(view, subscribeOptions.columns, subscribeOptions.filter);
      const snapshot = checkBoolean(subscribeOptions.snapshot, 'snapshot') ?? false;
      const progress = checkBoolean(subscribeOptions.progress, 'progress') ?? false;
      const resume = checkBoolean(subscribeOptions.resume, 'resume') ?? true;
      const { signal } = subscribeOptions;
      if (signal !== undefined && !(signal instanceof AbortSignal)) {
        throw invalidArgument('signal must be an AbortSignal');
      }
      const asOf =
        subscribeOptions.asOf === undefined
          ? undefined
          : checkTimestamp(subscribeOptions.asOf, 'asOf', 0n);
      const resumeFrom =
        subscribeOptions.resumeFrom === undefined
          ? undefined
          : checkTimestamp(subscribeOptions.resumeFrom, 'resumeFrom', 1n);
      if (resumeFrom !== undefined && (snapshot || asOf !== undefined)) {
        throw invalidArgument(
          'resumeFrom excludes snapshot: true and asOf (it subscribes AS OF resumeFrom - 1 without snapshot)',
        );
      }
      return new Subscription(host, {
        view,
        query,
        start:
          resumeFrom === undefined
            ? { snapshot, asOf }
            : { snapshot: false, asOf: resumeFrom - 1n },
        frontier: resumeFrom,
        progress,
        resume,
        signal,
      });
    } catch (error) {
      if (error instanceof MaterializeError) instruments.error(error.code);
      throw error;
    }
  }

  return {
    name,
    get status() {
      return status;
    },
    async start() {
      try {
        await ping('start');
      } catch (error) {
        const mapped =
          error instanceof MaterializeError && error.code === 'TIMEOUT'
            ? new MaterializeError(
                'UNAVAILABLE',
                error.message.replace(/^@flowforge\/materialize: /, ''),
                {
                  cause: error,
                },
              )
            : mapError(error, 'start');
        instruments.error(mapped.code);
        if (mapped.code === 'CLOSED') throw mapped;
        becameUnavailable(
          mapped,
          resolved.optional
            ? 'materialize: unavailable at start; retrying in the background'
            : 'materialize: unavailable at start',
        );
        if (!resolved.optional) throw mapped;
        scheduleRetry(1);
        return;
      }
      becameReady();
    },
    async health() {
      let latencyMs: number;
      try {
        latencyMs = await ping('health check');
      } catch (error) {
        const mapped = mapError(error, 'health check');
        instruments.error(mapped.code);
        if (mapped.code !== 'CLOSED') becameUnavailable(mapped, 'materialize: health check failed');
        throw mapped;
      }
      becameReady();
      return { status: 'up', latencyMs };
    },
    subscribe: subscribe as Materialize['subscribe'],
    close() {
      closed ??= (async () => {
        closing = true;
        status = 'closed';
        clearTimeout(retryTimer);
        retryTimer = undefined;
        const subscriptions = [...live];
        for (const subscription of subscriptions) subscription.close();
        const ended = Promise.all(subscriptions.map((subscription) => subscription.ended));
        if (!(await settlesWithin(ended, connectTimeoutMs))) {
          for (const subscription of subscriptions) subscription.destroy();
          await settlesWithin(ended, connectTimeoutMs);
        }
        const poolEnded = Promise.all([pool.end(), checkPool.end()]);
        if (!(await settlesWithin(poolEnded, connectTimeoutMs))) {
          // A statement that does not end (a hung server): drop the sockets.
          for (const client of clients) client.connection.stream.destroy();
          await settlesWithin(poolEnded, connectTimeoutMs);
        }
        instruments.release();
      })();
      return closed;
    },
  };
}
