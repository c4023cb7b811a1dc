import { backoffDelay } from '@flowforge/kernel';
import type { Logger } from '@flowforge/observability';
import { MaterializeError } from '../errors.js';
import { UpdateBuffer, type Progress, type StartPoint, type Update } from './buffer.js';
import { sendCancel } from './cancel.js';
import { errorKind, toMaterializeError } from './error-map.js';
import type { Lease } from './lease.js';
import type { MaterializeInstruments } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import { RowDecoder } from './rows.js';
import {
  declareStatement,
  drainFetchStatement,
  waitFetchStatement,
  type SubscribeQuery,
} from './sql.js';

/** What a subscription needs from its handle. */
export interface SubscriptionHost {
  readonly options: ResolvedOptions;
  readonly logger: Logger | undefined;
  readonly instruments: MaterializeInstruments;
  /** True once close() was called. */
  readonly closed: boolean;
  /** Checks a client out of the pool (bounded by connectTimeoutMs). */
  acquire(): Promise<Lease>;
  /** A subscription started iterating: close() stops it. */
  track(subscription: LiveSubscription): void;
  untrack(subscription: LiveSubscription): void;
}

/** What close() does to a live subscription. */
export interface LiveSubscription {
  /** Ends it with CLOSED: cancels a blocked FETCH, rolls back, releases. */
  close(): void;
  /** Resolves once its connection is released (or destroyed). */
  readonly ended: Promise<void>;
  /** Destroys its connection now (close() took too long). */
  destroy(): void;
}

/** A subscription's settings, checked. */
export interface SubscriptionSettings {
  /** The view as the caller named it (log lines). */
  readonly view: string;
  readonly query: SubscribeQuery;
  readonly start: StartPoint;
  /** `resumeFrom`: the consumer has every update below it. */
  readonly frontier: bigint | undefined;
  readonly progress: boolean;
  readonly resume: boolean;
  readonly signal: AbortSignal | undefined;
  /** `onConnection`: told of a loss it resumes from, and of the resumption. */
  readonly onConnection: ((event: 'lost' | 'resumed') => void) | undefined;
}

type Item<Row> = Update<Row> | Progress;
type StopKind = 'cancelled' | 'closed' | 'returned';

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

function noop(): void {}

/**
 * The async iterator of `subscribe()`: a SUBSCRIBE cursor on a dedicated
 * pooled connection, FETCHed only when the consumer pulls and nothing
 * releasable is left, every update yielded once its timestamp is closed,
 * resumed after a lost connection without gap or duplicate.
 */
export class Subscription<Row> implements AsyncIterableIterator<Item<Row>>, LiveSubscription {
  readonly #host: SubscriptionHost;
  readonly #settings: SubscriptionSettings;
  readonly #buffer: UpdateBuffer<Row>;
  readonly #decoder = new RowDecoder<Row>();
  /** `FETCH 1 … WITH (timeout = fetchTimeoutMs)`: returns as soon as a row exists. */
  readonly #waitSql: string;
  /** `FETCH fetchBatchSize … WITH (timeout = '0s')`: what is ready now. */
  readonly #drainSql: string;
  /** The last FETCH returned rows and the next takes what is ready (else it waits for one). */
  #draining = false;
  /** Releasable items not yet yielded (from `#head` on). */
  #queue: Item<Row>[] = [];
  #head = 0;
  #lease: Lease | undefined;
  #started = false;
  /** The iterator has ended: every later next() is DONE. */
  #done = false;
  #stop: StopKind | undefined;
  #stopCause: unknown;
  /** A terminal error, thrown once the releasable items are drained. */
  #failure: MaterializeError | undefined;
  /** next() calls queued or running. */
  #pending = 0;
  #chain: Promise<unknown> = Promise.resolve();
  /** A statement is on the wire (its rejection reports a lost connection). */
  #inStatement = false;
  #fetching = false;
  #cancelling: Promise<void> | undefined;
  /** Interrupts a backoff sleep or a wait for a pooled connection. */
  #wake: (() => void) | undefined;
  /** DECLARE succeeded once: later losses are resumed, not reported as UNAVAILABLE. */
  #declaredOnce = false;
  /** Reconnect attempts since the last loss (0 while streaming). */
  #attempts = 0;
  #lostAt = 0;
  /** `onConnection` was told 'lost' and not yet 'resumed'. */
  #toldLost = false;
  #lastLoss: unknown;
  #teardown: Promise<void> | undefined;
  readonly ended: Promise<void>;
  #markEnded: () => void = noop;
  readonly #onAbort = (): void => {
    this.#halt('cancelled', this.#settings.signal?.reason);
  };

  constructor(host: SubscriptionHost, settings: SubscriptionSettings) {
    this.#host = host;
    this.#settings = settings;
    this.#buffer = new UpdateBuffer<Row>({
      progress: settings.progress,
      start: settings.start,
      frontier: settings.frontier,
    });
    this.#waitSql = waitFetchStatement(host.options.fetchTimeoutMs);
    this.#drainSql = drainFetchStatement(host.options.fetchBatchSize);
    this.ended = new Promise<void>((resolve) => {
      this.#markEnded = resolve;
    });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Item<Row>> {
    return this;
  }

  next(): Promise<IteratorResult<Item<Row>>> {
    // A released item costs one resolved promise.
    if (this.#pending === 0 && this.#stop === undefined && this.#head < this.#queue.length) {
      return Promise.resolve({ done: false, value: this.#take() });
    }
    this.#pending += 1;
    // Counted down before the caller sees the result: a halt right after must
    // know that nobody is pulling (and release the connection itself).
    const result = this.#chain
      .then(() => this.#pull())
      .finally(() => {
        this.#pending -= 1;
        if (this.#pending === 0 && this.#stop !== undefined && this.#started) {
          void this.#release();
        }
      });
    this.#chain = result.then(noop, noop);
    return result;
  }

  async return(): Promise<IteratorResult<Item<Row>>> {
    if (this.#done && this.#teardown === undefined) return DONE;
    if (!this.#started) {
      // Nothing was sent.
      this.#done = true;
      this.#markEnded();
      return DONE;
    }
    this.#halt('returned', undefined);
    await this.ended;
    return DONE;
  }

  close(): void {
    this.#halt('closed', undefined);
  }

  destroy(): void {
    this.#lease?.release(true);
  }

  // ------------------------------------------------------------ the pull loop

  async #pull(): Promise<IteratorResult<Item<Row>>> {
    if (this.#done) return DONE;
    if (!this.#started) this.#begin();
    for (;;) {
      if (this.#stop !== undefined) return this.#end();
      if (this.#head < this.#queue.length) return { done: false, value: this.#take() };
      if (this.#failure !== undefined) {
        await this.#release();
        this.#done = true;
        this.#host.instruments.error(this.#failure.code);
        throw this.#failure;
      }
      try {
        if (this.#lease === undefined) await this.#open();
        else await this.#fetch();
      } catch (error) {
        await this.#handle(error);
      }
    }
  }

  #begin(): void {
    this.#started = true;
    this.#host.track(this);
    this.#host.instruments.subscriptionStarted();
    const { signal } = this.#settings;
    if (this.#host.closed) this.#halt('closed', undefined);
    else if (signal?.aborted) this.#halt('cancelled', signal.reason);
    else signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  #take(): Item<Row> {
    const item = this.#queue[this.#head] as Item<Row>;
    this.#head += 1;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
    if (item.kind === 'update') this.#host.instruments.rows(1);
    return item;
  }

  /** Connects (after a backoff when resuming), then BEGIN and DECLARE. */
  async #open(): Promise<void> {
    const { options, instruments } = this.#host;
    if (this.#declaredOnce) {
      this.#attempts += 1;
      if (this.#attempts > options.reconnect.maxAttempts) {
        this.#failure = this.#connectionLost(
          `gave up after ${options.reconnect.maxAttempts} reconnect attempts`,
        );
        return;
      }
      instruments.reconnect();
      const delay = backoffDelay(this.#attempts, options.reconnect);
      this.#log('debug', { attempt: this.#attempts, delay_ms: delay }, 'reconnect scheduled');
      await this.#sleep(delay);
      if (this.#stop !== undefined) return;
    }
    const lease = await this.#interruptible(this.#host.acquire(), (late) => late.release(false));
    if (lease === undefined) return;
    this.#lease = lease;
    lease.onLost = (error) => {
      if (!this.#inStatement && this.#lease === lease) this.#lost(error);
    };
    const point = this.#declaredOnce ? this.#buffer.resumePoint() : this.#settings.start;
    await this.#statement(lease, 'BEGIN', options.connectTimeoutMs);
    await this.#statement(
      lease,
      declareStatement(this.#settings.query, point.snapshot, point.asOf),
      options.connectTimeoutMs,
    );
    this.#declaredOnce = true;
    this.#draining = false;
  }

  /**
   * One FETCH, two phases (docs/decisions/015-materialize-server-behaviour.md):
   * Materialize holds `FETCH n … WITH (timeout)` until n rows or the timeout, so
   * a wait FETCH asks for one row (it returns as soon as there is one, bounded
   * by fetchTimeoutMs), then drain FETCHes take what is ready, fetchBatchSize at
   * a time, while they come back full.
   */
  async #fetch(): Promise<void> {
    const lease = this.#lease as Lease;
    const { options } = this.#host;
    const draining = this.#draining;
    this.#fetching = true;
    let result;
    try {
      result = draining
        ? await this.#statement(lease, this.#drainSql, options.connectTimeoutMs)
        : await this.#statement(
            lease,
            this.#waitSql,
            options.fetchTimeoutMs + options.connectTimeoutMs,
          );
    } finally {
      this.#fetching = false;
    }
    if (this.#stop !== undefined) return;
    const { fields, rows } = result;
    this.#draining = draining ? rows.length >= options.fetchBatchSize : rows.length > 0;
    const queue = this.#queue;
    for (const values of rows) this.#buffer.push(this.#decoder.decode(fields, values), queue);
    this.#buffer.flush(queue);
    if (this.#attempts > 0) {
      this.#log(
        'info',
        {
          attempts: this.#attempts,
          downtime_ms: Math.round(performance.now() - this.#lostAt),
          frontier: this.#buffer.frontier?.toString(),
        },
        'subscription resumed',
      );
      this.#attempts = 0;
    }
    if (this.#toldLost) {
      this.#toldLost = false;
      this.#tell('resumed');
    }
  }

  async #statement(lease: Lease, text: string, timeoutMs: number): ReturnType<Lease['query']> {
    this.#inStatement = true;
    try {
      return await lease.query(text, timeoutMs);
    } finally {
      this.#inStatement = false;
    }
  }

  /** An error of connecting or of a statement: resume, or a terminal failure. */
  async #handle(error: unknown): Promise<void> {
    // Our own cancel (or what followed a halt): the loop ends the subscription.
    if (this.#stop !== undefined) return;
    const kind = errorKind(error);
    const transient = kind === 'lost' || kind === 'connect' || kind === 'pool';
    if (transient && this.#declaredOnce) {
      this.#lost(error);
      return;
    }
    this.#failure = toMaterializeError(error, {
      secret: this.#host.options.password,
      action: `subscription to ${this.#settings.view}`,
      connectTimeoutMs: this.#host.options.connectTimeoutMs,
      lost: 'UNAVAILABLE',
    });
    await this.#release();
  }

  /** The connection is gone: drop it and the open timestamp; the loop resumes (or fails). */
  #lost(error: unknown): void {
    const lease = this.#lease;
    this.#lease = undefined;
    lease?.release(true);
    this.#buffer.discardOpen();
    this.#lastLoss = error;
    if (!this.#settings.resume) {
      this.#failure = this.#connectionLost('the connection was lost and resume is off');
      return;
    }
    // Before the first DECLARE nothing is resumed (the statement is simply sent again).
    if (this.#declaredOnce && !this.#toldLost) {
      this.#toldLost = true;
      this.#tell('lost');
    }
    if (this.#attempts === 0) {
      this.#lostAt = performance.now();
      const mapped = toMaterializeError(error, {
        secret: this.#host.options.password,
        action: 'subscription',
        connectTimeoutMs: this.#host.options.connectTimeoutMs,
        lost: 'CONNECTION_LOST',
      });
      this.#log(
        'warn',
        { err: mapped, frontier: this.#buffer.frontier?.toString() },
        'subscription lost its connection; resuming',
      );
    } else {
      const mapped = toMaterializeError(error, {
        secret: this.#host.options.password,
        action: 'reconnect',
        connectTimeoutMs: this.#host.options.connectTimeoutMs,
        lost: 'CONNECTION_LOST',
      });
      this.#log('debug', { attempt: this.#attempts, err: mapped }, 'reconnect failed');
    }
  }

  /** Calls `onConnection`; its throw must not break the resumption. */
  #tell(event: 'lost' | 'resumed'): void {
    const listener = this.#settings.onConnection;
    if (listener === undefined) return;
    try {
      listener(event);
    } catch (error) {
      this.#log('warn', { err: error, event }, 'onConnection threw (ignored)');
    }
  }

  #connectionLost(reason: string): MaterializeError {
    const cause = this.#lastLoss;
    const mapped =
      cause === undefined
        ? undefined
        : toMaterializeError(cause, {
            secret: this.#host.options.password,
            action: 'subscription',
            connectTimeoutMs: this.#host.options.connectTimeoutMs,
            lost: 'CONNECTION_LOST',
          });
    return new MaterializeError(
      'CONNECTION_LOST',
      `subscription to ${this.#settings.view}: ${reason}${mapped ? ` (${mapped.reason})` : ''}`,
      mapped === undefined ? {} : { cause: mapped },
    );
  }

  // ------------------------------------------------------------ ending

  #halt(kind: StopKind, cause: unknown): void {
    if (this.#stop !== undefined || this.#done) return;
    this.#stop = kind;
    this.#stopCause = cause;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
    const lease = this.#lease;
    if (this.#fetching && lease !== undefined) {
      const target = lease.cancelTarget;
      if (target !== undefined) {
        this.#cancelling = sendCancel(target, this.#host.options.connectTimeoutMs);
      }
    }
    // Nobody is pulling: give the connection back now, not at the next pull.
    if (this.#pending === 0 && this.#started) void this.#release();
  }

  async #end(): Promise<IteratorResult<Item<Row>>> {
    await this.#release();
    this.#done = true;
    if (this.#stop === 'returned') return DONE;
    const error =
      this.#stop === 'cancelled'
        ? new MaterializeError('CANCELLED', `subscription to ${this.#settings.view} was aborted`, {
            cause: this.#stopCause,
          })
        : new MaterializeError(
            'CLOSED',
            `subscription to ${this.#settings.view} ended: the Materialize handle was closed`,
          );
    this.#host.instruments.error(error.code);
    throw error;
  }

  /** Rolls back and releases the connection (destroyed when that fails or is late). Once. */
  #release(): Promise<void> {
    this.#teardown ??= this.#releaseOnce().finally(() => this.#markEnded());
    return this.#teardown;
  }

  async #releaseOnce(): Promise<void> {
    this.#settings.signal?.removeEventListener('abort', this.#onAbort);
    if (this.#started) {
      this.#host.untrack(this);
      this.#host.instruments.subscriptionEnded();
    }
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease === undefined || lease.released) return;
    if (lease.dead) {
      lease.release(true);
      return;
    }
    try {
      // The server closes the cancel connection once it has acted on it: a
      // ROLLBACK sent before could be the statement it cancels.
      if (this.#cancelling !== undefined) await this.#cancelling;
      await this.#statement(lease, 'ROLLBACK', this.#host.options.connectTimeoutMs);
      lease.release(false);
    } catch {
      lease.release(true);
    }
  }

  // ------------------------------------------------------------ waiting

  #sleep(ms: number): Promise<void> {
    if (this.#stop !== undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(finish, ms);
      this.#wake = finish;
    });
  }

  /** `promise`, or undefined as soon as the subscription is halted (a late value goes to `discard`). */
  #interruptible<T>(promise: Promise<T>, discard: (late: T) => void): Promise<T | undefined> {
    if (this.#stop !== undefined) {
      promise.then(discard, noop);
      return Promise.resolve(undefined);
    }
    return new Promise<T | undefined>((resolve, reject) => {
      let settled = false;
      this.#wake = () => {
        if (settled) return;
        settled = true;
        this.#wake = undefined;
        resolve(undefined);
      };
      promise.then(
        (value) => {
          if (settled) {
            discard(value);
            return;
          }
          settled = true;
          this.#wake = undefined;
          resolve(value);
        },
        (error: unknown) => {
          if (settled) return;
          settled = true;
          this.#wake = undefined;
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  #log(level: 'debug' | 'info' | 'warn', fields: Record<string, unknown>, message: string): void {
    const { logger, options } = this.#host;
    if (logger === undefined) return;
    if (level === 'debug' && !logger.isLevelEnabled('debug')) return;
    logger[level](
      { materialize: options.name, view: this.#settings.view, ...fields },
      `materialize: ${message}`,
    );
  }
}
