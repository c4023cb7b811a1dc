// One SUBSCRIBE per distinct (view, filter, columns), fanned out to every viewer,
// with exact resume from a window of recent items or a private catch-up.
// Decision record: docs/decisions/016-shared-subscriptions.md
import { OptionChecks } from '@flowforge/kernel';
import type { Logger } from '@flowforge/observability';
import { MaterializeError, isMaterializeError } from './errors.js';
import { checkTimestamp, subscribeQuery } from './internal/sql.js';
import { bigintsAsText } from './live-events.js';
import type {
  Materialize,
  SubscribeFilter,
  SubscribeProgress,
  SubscribeUpdate,
} from './materialize.js';

/** Tells a viewer to drop what it has applied: a fresh snapshot follows. */
export interface SubscribeReset {
  /** Tells a reset from updates and progress items. */
  readonly kind: 'reset';
}

/**
 * The state of the SUBSCRIBE a viewer reads, to show it (a "reconnecting"
 * banner); neither data nor a position. `lost`: its connection to Materialize
 * is gone and it is resuming: nothing new arrives meanwhile, and what the
 * viewer holds stays exact. `live`: the resumed SUBSCRIBE delivers again (its
 * first item since the loss); what follows continues exactly where it stopped
 * (or, when Materialize no longer had the history, with `reset` and a snapshot).
 */
export interface SubscribeStatus {
  /** Tells a status from updates, progress and reset items. */
  readonly kind: 'status';
  /** `lost` while the connection is gone and being resumed; `live` once it delivers again. */
  readonly upstream: 'lost' | 'live';
}

/**
 * What a viewer of a shared subscription gets. The same object goes to every
 * viewer of the subscription: encode it once (a `WeakMap` keyed by the item).
 */
export type LiveItem<Row = Record<string, unknown>> =
  SubscribeUpdate<Row> | SubscribeProgress | SubscribeReset | SubscribeStatus;

/** Options of {@link createSharedSubscriptions}. */
export interface SharedSubscriptionsOptions {
  /**
   * Distinct SUBSCRIBEs held at once, shared ones and private catch-ups
   * together (each holds one pooled connection: keep it below the handle's
   * `poolSize`); past it, SUBSCRIPTIONS_FULL (503). A lingering subscription
   * nobody watches gives its place up. @default 4
   */
  readonly maxSubscriptions?: number;
  /**
   * The share of `maxSubscriptions` one tenant (the `tenantId` of a watch) may
   * hold; past it, TOO_MANY_SUBSCRIPTIONS (429). @default half of `maxSubscriptions`, rounded up
   */
  readonly maxSubscriptionsPerTenant?: number;
  /** How long a shared subscription outlives its last viewer, so a reload does not restart it, in ms. @default 5_000 */
  readonly lingerMs?: number;
  /**
   * How often a progress item that closes no update (the frontier only moved)
   * reaches viewers, at most, in ms; one that closes updates always goes out
   * at once. Such an item only moves a viewer's resume point: thinning it
   * keeps exactly-once (a resume from an older point skips what the viewer
   * has) and saves a write per viewer per tick. 0: every one. @default 5_000
   */
  readonly idleProgressMs?: number;
  /**
   * Recent items (updates and progress) each shared subscription keeps, so a
   * viewer that reconnects with a position inside them resumes without a
   * SUBSCRIBE of its own. It is also every viewer's buffer: viewers read the
   * window where they are, and one that falls further behind than the window
   * reaches is cut off (its iterator throws LAGGED, retryable), so it never
   * slows the others nor grows the process. @default 10_000
   */
  readonly windowSize?: number;
  /** Gets subscription starts and ends (debug), viewers sent a reset for want of a catch-up slot (info), restarts after lost history (warn). */
  readonly logger?: Logger;
}

/** Options of {@link SharedSubscriptions.watch}. */
export interface WatchOptions {
  /** Column = value conditions inside the SUBSCRIBE (the tenant filter belongs here); part of what is shared. */
  readonly filter?: SubscribeFilter;
  /** The columns to select; part of what is shared. @default all */
  readonly columns?: readonly string[];
  /**
   * A progress frontier P the viewer already has everything before (an SSE
   * `Last-Event-ID`): it gets progress P, then every update at or after P.
   * Absent: a snapshot of the current rows, then the changes.
   */
  readonly resumeFrom?: bigint;
  /** Whose share of `maxSubscriptionsPerTenant` a new subscription counts against. */
  readonly tenantId?: string;
  /** Ends the watch: the iterator throws CANCELLED. */
  readonly signal?: AbortSignal;
}

/** Counts of a {@link SharedSubscriptions}, now. */
export interface SharedSubscriptionsStats {
  /** Shared SUBSCRIBEs held (lingering ones included). */
  readonly subscriptions: number;
  /** Private catch-up SUBSCRIBEs of viewers resuming from before a window. */
  readonly catchUps: number;
  /** Viewers attached, catching up or waiting for their subscription's first snapshot. */
  readonly viewers: number;
}

/**
 * Shared subscriptions over one {@link Materialize} handle: every viewer of
 * the same view, filter and columns reads one SUBSCRIBE.
 */
export interface SharedSubscriptions {
  /**
   * Watches a view: a snapshot then the changes, or, with `resumeFrom: P`,
   * progress P then every update at or after P, exactly once across
   * reconnects (from the subscription's window while P is inside it, from a
   * private `AS OF` SUBSCRIBE while it is not; `reset` plus a snapshot when
   * Materialize no longer has the history, or when there is no slot for that
   * SUBSCRIBE or it cannot bring the viewer to the window). Updates come in
   * timestamp order; apply them when the progress item after them arrives.
   * Status items say when the SUBSCRIBE the viewer reads (the shared one, or
   * its catch-up) has lost its connection (`lost`, as soon as the client
   * notices: a closed or reset socket at once, a hung server after
   * `fetchTimeoutMs + connectTimeoutMs` of the handle) and when it delivers
   * again (`live`); a viewer that starts while it is lost gets `lost` first.
   * They are not positions: a viewer is told the state it has not heard
   * yet, never an old one again (a loss that ended before it read anything
   * is not reported). Nothing is subscribed before the first `next()`.
   * @throws {MaterializeError} INVALID_ARGUMENT at once; the iterator throws
   *   TOO_MANY_SUBSCRIPTIONS and SUBSCRIPTIONS_FULL (a new shared subscription
   *   only), LAGGED, CANCELLED, CLOSED
   *   and what `subscribe()` throws (UNKNOWN_VIEW, UNAVAILABLE, …)
   */
  watch<Row = Record<string, unknown>>(
    view: string,
    options?: WatchOptions,
  ): AsyncIterableIterator<LiveItem<Row>>;
  /** Counts now. */
  readonly stats: SharedSubscriptionsStats;
  /** Ends every subscription; every viewer's iterator throws CLOSED. Idempotent. */
  close(): Promise<void>;
}

type Item = LiveItem<unknown>;
type Update = SubscribeUpdate<unknown>;
type Progress = SubscribeProgress;

/**
 * A status item, new at each change and given to every viewer of its SUBSCRIBE
 * (a new object, not a constant: liveEventOf's cache of it goes when it does).
 */
function statusItem(upstream: SubscribeStatus['upstream']): SubscribeStatus {
  return Object.freeze({ kind: 'status', upstream });
}

/** A row as a map key: equal rows, equal keys (bigints as strings). */
function rowKey(row: unknown): string {
  return JSON.stringify(row, bigintsAsText);
}

/** The key of what is shared: view, filter (sorted), columns. */
function feedKey(view: string, options: WatchOptions): string {
  const filter = Object.entries(options.filter ?? {})
    .map(([column, value]) => [column, typeof value, String(value)])
    .sort((a, b) => (a[0] as string).localeCompare(b[0] as string));
  return JSON.stringify([view, filter, options.columns ?? null]);
}

// ---------------------------------------------------------------------------
// Viewer: one consumer's cursor into its feed, and its iterator
// ---------------------------------------------------------------------------

/** What a viewer needs from its registry. */
interface ViewerHost {
  /** The viewer's first next(): attach it (and start its feed). */
  start(viewer: Viewer): void;
  /** The viewer ended (returned, aborted, failed): detach it. */
  stop(viewer: Viewer): void;
}

type Waiting = {
  readonly resolve: (result: IteratorResult<Item>) => void;
  readonly reject: (error: unknown) => void;
};

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * One consumer. It owns no copy of the live items: it reads its feed's log at
 * `position`, so a viewer costs the same whatever the rate. What is its own (a
 * reset, a snapshot shared with every viewer that started at the same
 * frontier, the progress it resumes at, a catch-up's items) waits in
 * `#segments`.
 */
class Viewer implements AsyncIterableIterator<Item> {
  readonly view: string;
  readonly options: WatchOptions;
  readonly #host: ViewerHost;
  /** Items of its own, read before the log: arrays read from `#index` of the first on. */
  #segments: (readonly Item[])[] = [];
  #index = 0;
  /** The next item to read in its feed's log (absolute), once attached. */
  position: number | undefined;
  /** The frontier it has: progress at or below it, and updates below it, are skipped. */
  #floor = -1n;
  #started = false;
  /** What it was last told of its upstream: a viewer starts taking it as live. */
  #told: SubscribeStatus['upstream'] = 'live';
  /** The host counted it (start ran): stop must run once it ends. */
  #hosted = false;
  #ended = false;
  #failure: MaterializeError | undefined;
  #waiting: Waiting | undefined;
  /** Resolves a catch-up waiting for the viewer to read what it was given. */
  #onDrained: (() => void) | undefined;
  /** The feed it reads, once started. */
  feed: Feed | undefined;
  /** Its private SUBSCRIBE while it catches up. */
  catchUp: CatchUp | undefined;
  readonly #onAbort = (): void => {
    this.fail(
      new MaterializeError('CANCELLED', `watch of ${this.view} was aborted`, {
        cause: this.options.signal?.reason,
      }),
    );
  };

  constructor(host: ViewerHost, view: string, options: WatchOptions) {
    this.#host = host;
    this.view = view;
    this.options = options;
  }

  get ended(): boolean {
    return this.#ended;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Item> {
    return this;
  }

  next(): Promise<IteratorResult<Item>> {
    if (!this.#started && !this.#ended) {
      this.#started = true;
      const { signal } = this.options;
      if (signal?.aborted === true) this.#onAbort();
      else {
        signal?.addEventListener('abort', this.#onAbort, { once: true });
        this.#hosted = true;
        this.#host.start(this);
      }
    }
    const item = this.#read();
    if (item !== undefined) return Promise.resolve({ done: false, value: item });
    if (this.#failure !== undefined) {
      const failure = this.#failure;
      this.#failure = undefined;
      return Promise.reject(failure);
    }
    if (this.#ended) return Promise.resolve(DONE);
    if (this.#waiting !== undefined) {
      return Promise.reject(
        new MaterializeError('INVALID_ARGUMENT', 'next() called while a next() is pending'),
      );
    }
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      this.feed?.waitFor(this);
    });
  }

  return(): Promise<IteratorResult<Item>> {
    this.#failure = undefined;
    this.#finish();
    return Promise.resolve(DONE);
  }

  /** Items of its own, read before the log (the array is not copied: never change it). */
  give(items: readonly Item[]): void {
    if (this.#ended || items.length === 0) return;
    this.#segments.push(items);
    this.wake();
  }

  /** Forgets its own items and its place (a reset follows). */
  detach(): void {
    this.#segments = [];
    this.#index = 0;
    this.position = undefined;
    this.#floor = -1n;
  }

  /** Answers a pending next() if something is readable now (or the viewer failed meanwhile). */
  wake(): void {
    const waiting = this.#waiting;
    if (waiting === undefined) return;
    const item = this.#read();
    if (item !== undefined) {
      this.#waiting = undefined;
      waiting.resolve({ done: false, value: item });
    } else if (this.#failure !== undefined) {
      this.#waiting = undefined;
      const failure = this.#failure;
      this.#failure = undefined;
      waiting.reject(failure);
    } else if (this.#ended) {
      this.#waiting = undefined;
      waiting.resolve(DONE);
    } else {
      this.feed?.waitFor(this);
    }
  }

  /** Resolves once it has read every item of its own (or ended). */
  drained(): Promise<void> {
    if (this.#segments.length === 0 || this.#ended) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onDrained = resolve;
    });
  }

  /** Ends the iterator with `error` once (a cut-off viewer resumes from its progress). */
  fail(error: MaterializeError): void {
    if (this.#ended) return;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    this.#finish();
    if (waiting !== undefined) waiting.reject(error);
    else this.#failure = error;
  }

  /** The next item for it, or undefined; a viewer too far behind its feed fails LAGGED. */
  #read(): Item | undefined {
    if (this.#ended) return undefined;
    // A change of its upstream goes out before anything else: it is news of now, not data.
    const status = this.#upstream();
    if (status !== undefined && status.upstream !== this.#told) {
      this.#told = status.upstream;
      return status;
    }
    while (this.#segments.length > 0) {
      const segment = this.#segments[0] as readonly Item[];
      const item = segment[this.#index] as Item;
      this.#index += 1;
      if (this.#index >= segment.length) {
        this.#segments.shift();
        this.#index = 0;
        if (this.#segments.length === 0) this.#drain();
      }
      if (item.kind === 'progress') this.#floor = item.mzTimestamp;
      return item;
    }
    const feed = this.feed;
    if (feed === undefined || this.position === undefined) return undefined;
    for (;;) {
      const position: number = this.position;
      if (position >= feed.end) return undefined;
      // The window dropped the item it was at: it fell more than windowSize items behind.
      if (position < feed.start) {
        this.fail(
          new MaterializeError(
            'LAGGED',
            `a viewer of ${this.view} fell behind the last ${feed.end - feed.start} items and was cut off; reconnect from its last progress`,
          ),
        );
        return undefined;
      }
      const item = feed.itemAt(position);
      this.position = position + 1;
      if (item.kind === 'progress') {
        if (item.mzTimestamp <= this.#floor) continue;
        this.#floor = item.mzTimestamp;
      } else if (item.mzTimestamp < this.#floor) {
        continue;
      }
      return item;
    }
  }

  /** Lost when its feed or its catch-up is: each is a SUBSCRIBE it waits for. */
  #upstream(): SubscribeStatus | undefined {
    const status = this.feed?.status;
    if (status?.upstream === 'lost') return status;
    return this.catchUp?.status ?? status;
  }

  #drain(): void {
    const onDrained = this.#onDrained;
    this.#onDrained = undefined;
    onDrained?.();
  }

  #finish(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#segments = [];
    this.options.signal?.removeEventListener('abort', this.#onAbort);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.resolve(DONE);
    this.#drain();
    if (this.#hosted) this.#host.stop(this);
  }
}

// ---------------------------------------------------------------------------
// Feed: one shared SUBSCRIBE, its state, its log, its viewers
// ---------------------------------------------------------------------------

/** What a feed needs from its registry. */
interface FeedHost {
  readonly materialize: Materialize;
  readonly windowSize: number;
  readonly lingerMs: number;
  readonly idleProgressMs: number;
  readonly logger: Logger | undefined;
  /** The feed failed for good or was closed: forget it. */
  feedEnded(feed: Feed): void;
  /** A viewer resumes from before the window: a catch-up SUBSCRIBE (throws a cap). */
  catchUp(feed: Feed, viewer: Viewer, from: bigint): void;
}

/** How a viewer waiting for the feed's snapshot starts once it is there. */
type Start =
  | { readonly kind: 'snapshot' }
  | { readonly kind: 'resume'; readonly from: bigint }
  | { readonly kind: 'reset' };

class Feed {
  readonly key: string;
  readonly view: string;
  readonly tenantId: string | undefined;
  readonly #host: FeedHost;
  readonly #filter: SubscribeFilter | undefined;
  readonly #columns: readonly string[] | undefined;
  /** Viewers reading the log. */
  readonly #attached = new Set<Viewer>();
  /** Viewers waiting for the first frontier, and how each starts. */
  readonly #pending = new Map<Viewer, Start>();
  /** Viewers catching up on a private SUBSCRIBE. */
  readonly #catchingUp = new Set<Viewer>();
  /** Attached viewers with a pending next(), woken by the next item. */
  #waiters = new Set<Viewer>();
  /** Rows as of `#frontier`: row key → the row and its count. */
  #state = new Map<string, { readonly row: unknown; count: number }>();
  /** Updates after the last progress (not in `#state` yet). */
  #open: Update[] = [];
  /** Every update below this is in `#state`; undefined until the first snapshot is released. */
  #frontier: bigint | undefined;
  /** The log: recent items in order; the window (from `#head`) starts at a progress item. */
  #log: (Update | Progress)[] = [];
  /** The absolute position of `#log[0]`. */
  #base = 0;
  #head = 0;
  /** Index in `#log` of its latest progress item. */
  #lastProgress = 0;
  /** When the last progress item went into the log (performance.now()). */
  #publishedAt = 0;
  /** Publishes a progress item withheld as idle, at the end of its interval. */
  #idleProgress: NodeJS.Timeout | undefined;
  /** The snapshot items of the current frontier, built once for every viewer that starts there. */
  #snapshot: { readonly frontier: bigint; readonly items: readonly Item[] } | undefined;
  /** Its connection's state, as viewers are told it (a new item at each change). */
  #status: SubscribeStatus = statusItem('live');
  /** Lost, and the SUBSCRIBE resumed (or started over): its next item makes it live. */
  #resumed = false;
  /** What a viewer that starts over gets first (one per feed: liveEventOf's cache goes with it). */
  readonly #reset: SubscribeReset = Object.freeze({ kind: 'reset' });
  readonly #controller = new AbortController();
  #closed = false;
  #linger: NodeJS.Timeout | undefined;
  /** Resolves once the SUBSCRIBE (and any restart of it) has ended and let its connection go. */
  done: Promise<void> = Promise.resolve();

  constructor(host: FeedHost, key: string, view: string, options: WatchOptions) {
    this.#host = host;
    this.key = key;
    this.view = view;
    this.tenantId = options.tenantId;
    this.#filter = options.filter;
    this.#columns = options.columns;
  }

  /** Starts the SUBSCRIBE (once the registry holds the feed: it may fail at once). */
  open(): void {
    this.done = this.#run();
  }

  /** Viewers of any kind (attached, waiting, catching up). */
  get viewerCount(): number {
    return this.#attached.size + this.#pending.size + this.#catchingUp.size;
  }

  get lingering(): boolean {
    return this.#linger !== undefined;
  }

  /** The state of its SUBSCRIBE's connection, as its viewers are told it. */
  get status(): SubscribeStatus {
    return this.#status;
  }

  /** The absolute position of the window's first item. */
  get start(): number {
    return this.#base + this.#head;
  }

  /** The absolute position after the log's newest item. */
  get end(): number {
    return this.#base + this.#log.length;
  }

  itemAt(position: number): Update | Progress {
    return this.#log[position - this.#base] as Update | Progress;
  }

  /** The oldest position the window can serve a resume from; undefined before the first frontier. */
  get windowFloor(): bigint | undefined {
    if (this.#frontier === undefined) return undefined;
    const first = this.#log[this.#head];
    return first === undefined ? this.#frontier : first.mzTimestamp;
  }

  /** A viewer with a pending next(): woken by the next item. */
  waitFor(viewer: Viewer): void {
    if (viewer.position !== undefined) this.#waiters.add(viewer);
  }

  /** A new viewer: a snapshot, or a resume from `from`. */
  add(viewer: Viewer, from: bigint | undefined): void {
    this.#stopLinger();
    viewer.feed = this;
    const start: Start = from === undefined ? { kind: 'snapshot' } : { kind: 'resume', from };
    if (this.#frontier === undefined) this.#pending.set(viewer, start);
    else this.#begin(viewer, start);
  }

  remove(viewer: Viewer): void {
    this.#attached.delete(viewer);
    this.#waiters.delete(viewer);
    this.#pending.delete(viewer);
    this.#catchingUp.delete(viewer);
    if (this.viewerCount === 0 && !this.#closed) this.#startLinger();
  }

  /** A catch-up reached `from` inside the window: the viewer reads the log from there. */
  join(viewer: Viewer, from: bigint): void {
    this.#catchingUp.delete(viewer);
    if (viewer.ended) return;
    // Restarting (no frontier yet): it starts from `from` once the new snapshot is there.
    if (this.#frontier === undefined) this.#pending.set(viewer, { kind: 'resume', from });
    else this.#attach(viewer, from);
  }

  /** A catch-up found the history gone: reset, then a snapshot. */
  rejoinWithReset(viewer: Viewer): void {
    this.#catchingUp.delete(viewer);
    if (viewer.ended) return;
    if (this.#frontier === undefined) this.#pending.set(viewer, { kind: 'reset' });
    else this.#begin(viewer, { kind: 'reset' });
  }

  /** Ends the SUBSCRIBE; viewers still here get `error`. */
  close(error: MaterializeError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopLinger();
    if (this.#idleProgress !== undefined) clearTimeout(this.#idleProgress);
    this.#controller.abort(error);
    const viewers = [...this.#attached, ...this.#pending.keys(), ...this.#catchingUp];
    this.#attached.clear();
    this.#pending.clear();
    this.#catchingUp.clear();
    this.#waiters.clear();
    for (const viewer of viewers) viewer.fail(error);
    this.#host.feedEnded(this);
  }

  #begin(viewer: Viewer, begin: Start): void {
    let start = begin;
    const frontier = this.#frontier as bigint;
    if (start.kind === 'resume') {
      if (start.from >= (this.windowFloor as bigint)) {
        this.#attach(viewer, start.from);
        return;
      }
      this.#catchingUp.add(viewer);
      try {
        this.#host.catchUp(this, viewer, start.from);
        return;
      } catch (error) {
        this.#catchingUp.delete(viewer);
        if (!isMaterializeError(error, 'SUBSCRIPTIONS_FULL', 'TOO_MANY_SUBSCRIPTIONS')) {
          viewer.fail(asMaterializeError(error, this.view));
          return;
        }
        // No slot to catch it up (a reconnect storm after a deploy): a fresh start beats a 503
        // that an EventSource would not retry.
        this.#host.logger?.info(
          { view: this.view, code: error.code },
          'materialize: no slot to catch a viewer up; it gets a reset and the snapshot',
        );
      }
      start = { kind: 'reset' };
    }
    if (start.kind === 'reset') {
      viewer.detach();
      viewer.give([this.#reset]);
    }
    viewer.give(this.#snapshotItems(frontier));
    this.#attach(viewer, frontier);
  }

  /** Progress `from`, then the log's items at or after `from`, then the live ones. */
  #attach(viewer: Viewer, from: bigint): void {
    const log = this.#log;
    let low = this.#head;
    let high = log.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((log[middle] as Update | Progress).mzTimestamp < from) low = middle + 1;
      else high = middle;
    }
    const exact = log[low];
    if (exact?.kind !== 'progress' || exact.mzTimestamp !== from) {
      viewer.give([{ kind: 'progress', mzTimestamp: from }]);
    }
    viewer.position = this.#base + low;
    this.#attached.add(viewer);
    viewer.wake();
  }

  #snapshotItems(frontier: bigint): readonly Item[] {
    if (this.#snapshot?.frontier !== frontier) {
      const at = frontier - 1n;
      const items: Item[] = [];
      for (const { row, count } of this.#state.values()) {
        items.push({ kind: 'update', mzTimestamp: at, mzDiff: count, row });
      }
      this.#snapshot = { frontier, items };
    }
    return this.#snapshot.items;
  }

  /** Pumps the SUBSCRIBE; starts it over (viewers reset) when its history is gone. */
  async #run(): Promise<void> {
    for (let restart = false; ; restart = true) {
      const lostHistory = await this.#pump(restart);
      if (!lostHistory) return;
      // The SUBSCRIBE could not resume exactly: every viewer starts over from a new snapshot.
      this.#host.logger?.warn(
        { view: this.view, frontier: this.#frontier?.toString() },
        'materialize: shared subscription lost its history; viewers get a reset and a new snapshot',
      );
      this.#restart();
    }
  }

  /** One SUBSCRIBE until it ends; true when it ended for lost history (the feed starts over). */
  async #pump(restart: boolean): Promise<boolean> {
    let source: AsyncIterableIterator<Update | Progress>;
    try {
      source = this.#host.materialize.subscribe(this.view, {
        ...(this.#filter === undefined ? {} : { filter: this.#filter }),
        ...(this.#columns === undefined ? {} : { columns: this.#columns }),
        snapshot: true,
        progress: true,
        signal: this.#controller.signal,
        onConnection: (event) => this.#onConnection(event),
      });
    } catch (error) {
      this.close(asMaterializeError(error, this.view));
      return false;
    }
    this.#host.logger?.debug(
      { view: this.view, restart },
      'materialize: shared subscription started',
    );
    try {
      for await (const item of source) {
        if (this.#closed) return false;
        // Its first item since it resumed (or started over): delivering again. Before the item,
        // so that viewers hear `live` before what follows (at a restart: before `reset`).
        if (this.#resumed) {
          this.#resumed = false;
          this.#setStatus('live');
        }
        if (item.kind === 'update') this.#onUpdate(item);
        else this.#onProgress(item);
      }
      this.close(new MaterializeError('CLOSED', `shared subscription to ${this.view} ended`));
    } catch (error) {
      if (this.#closed) return false;
      if (isMaterializeError(error, 'HISTORY_UNAVAILABLE') && this.#frontier !== undefined) {
        return true;
      }
      this.close(asMaterializeError(error, this.view));
    }
    return false;
  }

  #restart(): void {
    // The new SUBSCRIBE's first item is delivery again (it was lost: a resume found no history).
    this.#resumed = true;
    for (const viewer of this.#attached) {
      viewer.position = undefined;
      this.#pending.set(viewer, { kind: 'reset' });
    }
    this.#attached.clear();
    this.#waiters.clear();
    this.#state = new Map();
    this.#open = [];
    this.#frontier = undefined;
    this.#base += this.#log.length;
    this.#log = [];
    this.#head = 0;
    this.#lastProgress = 0;
    this.#snapshot = undefined;
    if (this.#idleProgress !== undefined) clearTimeout(this.#idleProgress);
    this.#idleProgress = undefined;
    this.#publishedAt = 0;
  }

  #onUpdate(update: Update): void {
    if (this.#frontier === undefined) {
      this.#apply(update); // the snapshot (or a restart's): state only
      return;
    }
    this.#open.push(update);
    this.#push(update);
  }

  /** The subscription lost its connection (viewers hear at once), or resumed it. */
  #onConnection(event: 'lost' | 'resumed'): void {
    if (this.#closed) return;
    if (event === 'lost') {
      this.#resumed = false;
      this.#setStatus('lost');
    } else if (this.#status.upstream === 'lost') {
      // Connected and answering; live once it delivers (a cluster still hydrating sends nothing).
      this.#resumed = true;
    }
  }

  /** A new state: every viewer waiting on next() gets it now, the others at their next read. */
  #setStatus(upstream: SubscribeStatus['upstream']): void {
    if (this.#status.upstream === upstream) return;
    this.#status = statusItem(upstream);
    for (const viewer of this.#attached) viewer.wake();
    for (const viewer of this.#pending.keys()) viewer.wake();
    for (const viewer of this.#catchingUp) viewer.wake();
  }

  #onProgress(progress: Progress): void {
    if (this.#frontier === undefined) {
      this.#frontier = progress.mzTimestamp;
      this.#push(progress);
      const pending = [...this.#pending];
      this.#pending.clear();
      for (const [viewer, start] of pending) this.#begin(viewer, start);
      return;
    }
    const closesUpdates = this.#open.length > 0;
    for (const update of this.#open) this.#apply(update);
    this.#open = [];
    this.#frontier = progress.mzTimestamp;
    // Only a resume point moved: viewers hear of it now and then, not at every tick, and
    // at the latest idleProgressMs later (the source may go quiet for long).
    const wait = this.#publishedAt + this.#host.idleProgressMs - performance.now();
    if (!closesUpdates && wait > 0) {
      if (this.#idleProgress === undefined) {
        this.#idleProgress = setTimeout(() => this.#publishIdleProgress(), wait);
        this.#idleProgress.unref();
      }
      return;
    }
    this.#publish(progress);
  }

  #publish(progress: Progress): void {
    if (this.#idleProgress !== undefined) clearTimeout(this.#idleProgress);
    this.#idleProgress = undefined;
    this.#publishedAt = performance.now();
    this.#push(progress);
  }

  /** The frontier moved quietly since the last progress viewers got: tell them now. */
  #publishIdleProgress(): void {
    this.#idleProgress = undefined;
    const last = this.#log[this.#lastProgress];
    const frontier = this.#frontier;
    if (this.#closed || frontier === undefined || this.#open.length > 0) return;
    if (last?.kind === 'progress' && last.mzTimestamp >= frontier) return;
    this.#publish({ kind: 'progress', mzTimestamp: frontier });
  }

  #apply(update: Update): void {
    const key = rowKey(update.row);
    const entry = this.#state.get(key);
    if (entry === undefined) {
      if (update.mzDiff !== 0) this.#state.set(key, { row: update.row, count: update.mzDiff });
    } else {
      entry.count += update.mzDiff;
      if (entry.count === 0) this.#state.delete(key);
    }
  }

  /** Appends to the log, trims the window to `windowSize`, wakes the viewers waiting. */
  #push(item: Update | Progress): void {
    const log = this.#log;
    log.push(item);
    if (item.kind === 'progress') this.#lastProgress = log.length - 1;
    const limit = this.#host.windowSize;
    if (log.length - this.#head > limit) {
      // Drop the oldest segments: the window starts at a progress item, at the latest one at
      // the latest (what came after the frontier is never dropped: a resume from it needs it).
      let head = this.#head + 1;
      while (
        head < this.#lastProgress &&
        (log.length - head > limit || log[head]?.kind !== 'progress')
      ) {
        head += 1;
      }
      if (head > this.#lastProgress) head = this.#lastProgress;
      if (head > this.#head) this.#head = head;
      if (this.#head >= 4096 && this.#head * 2 >= log.length) {
        this.#log = log.slice(this.#head);
        this.#base += this.#head;
        this.#lastProgress -= this.#head;
        this.#head = 0;
      }
    }
    if (this.#waiters.size === 0) return;
    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const viewer of waiters) viewer.wake();
  }

  #startLinger(): void {
    this.#linger = setTimeout(() => {
      this.#linger = undefined;
      if (this.viewerCount === 0) {
        this.#host.logger?.debug(
          { view: this.view },
          'materialize: shared subscription ended (no viewers)',
        );
        this.close(new MaterializeError('CLOSED', `shared subscription to ${this.view} ended`));
      }
    }, this.#host.lingerMs);
    this.#linger.unref();
  }

  #stopLinger(): void {
    if (this.#linger !== undefined) clearTimeout(this.#linger);
    this.#linger = undefined;
  }
}

function asMaterializeError(error: unknown, view: string): MaterializeError {
  return isMaterializeError(error)
    ? error
    : new MaterializeError('QUERY_FAILED', `shared subscription to ${view} failed`, {
        cause: error,
      });
}

// ---------------------------------------------------------------------------
// CatchUp: a viewer's private SUBSCRIBE from before the window
// ---------------------------------------------------------------------------

class CatchUp {
  readonly tenantId: string | undefined;
  readonly #controller = new AbortController();

  readonly feed: Feed;
  readonly viewer: Viewer;
  readonly #ended: (catchUp: CatchUp) => void;
  /** Items it may hand its viewer before reaching the window. */
  readonly #limit: number;
  /** Its connection's state once it was first lost (undefined before: its viewer goes by the feed's). */
  status: SubscribeStatus | undefined;
  /** Lost, and the SUBSCRIBE resumed: its next item makes it live. */
  #resumed = false;

  constructor(
    materialize: Materialize,
    feed: Feed,
    viewer: Viewer,
    from: bigint,
    limit: number,
    ended: (catchUp: CatchUp) => void,
  ) {
    this.tenantId = viewer.options.tenantId;
    this.#limit = limit;
    this.feed = feed;
    this.viewer = viewer;
    this.#ended = ended;
    const { filter, columns } = viewer.options;
    const source = materialize.subscribe(viewer.view, {
      ...(filter === undefined ? {} : { filter }),
      ...(columns === undefined ? {} : { columns }),
      progress: true,
      resumeFrom: from,
      signal: this.#controller.signal,
      onConnection: (event) => {
        if (event === 'resumed') {
          this.#resumed = this.status?.upstream === 'lost';
          return;
        }
        this.#resumed = false;
        if (this.status?.upstream === 'lost') return;
        this.status = statusItem('lost');
        viewer.wake();
      },
    });
    this.done = this.#run(source);
  }

  /** Resolves once the catch-up's SUBSCRIBE has ended. */
  readonly done: Promise<void>;

  stop(): void {
    this.#controller.abort();
  }

  async #run(source: AsyncIterableIterator<Update | Progress>): Promise<void> {
    const { feed, viewer } = this;
    let given = 0;
    try {
      for await (const item of source) {
        if (viewer.ended) return;
        if (this.#resumed) {
          this.#resumed = false;
          this.status = statusItem('live'); // its viewer reads it before this item
        }
        if (item.kind === 'progress') {
          const floor = feed.windowFloor;
          // Inside the shared window: switch to it, exactly at this frontier.
          if (floor !== undefined && item.mzTimestamp >= floor) {
            feed.join(viewer, item.mzTimestamp);
            return;
          }
        }
        // Paced by the viewer (never cut off for it): the next item once it has read the last.
        viewer.give([item]);
        await viewer.drained();
        // One that does not gain on the window would hold its slot for good: start it afresh.
        given += 1;
        if (given > this.#limit && !viewer.ended) {
          feed.rejoinWithReset(viewer);
          return;
        }
      }
      // Ended without a word (never, short of an abort): the viewer must not wait forever.
      if (!viewer.ended) {
        viewer.fail(new MaterializeError('CLOSED', `catch-up of ${viewer.view} ended`));
      }
    } catch (error) {
      if (viewer.ended) return;
      if (isMaterializeError(error, 'HISTORY_UNAVAILABLE')) {
        // Its own state ends with it: the viewer goes by the feed's again, told before the reset.
        this.status = undefined;
        feed.rejoinWithReset(viewer);
      } else
        viewer.fail(
          isMaterializeError(error)
            ? error
            : new MaterializeError('QUERY_FAILED', 'catch-up failed', { cause: error }),
        );
    } finally {
      this.#controller.abort();
      this.#ended(this);
    }
  }
}

// ---------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------

/**
 * Shares one SUBSCRIBE among every viewer of the same view, filter and
 * columns. Each shared subscription keeps the current rows (a new viewer's
 * snapshot, without a SUBSCRIBE of its own) and a window of recent items (a
 * reconnecting viewer's catch-up); a viewer that falls behind is cut off,
 * never waited for.
 *
 * @example
 * ```ts
 * const shared = createSharedSubscriptions(mz, { maxSubscriptions: 8, logger });
 * for await (const item of shared.watch('widget_totals', {
 *   filter: { tenant_id: principal.tenantId },
 *   tenantId: principal.tenantId,
 *   resumeFrom, // a Last-Event-ID, or undefined for a snapshot
 *   signal,
 * })) {
 *   if (item.kind === 'reset') dropState();
 *   else if (item.kind === 'update') stage(item);
 *   else if (item.kind === 'status') showReconnecting(item.upstream === 'lost');
 *   else applyStagedAndRemember(item.mzTimestamp);
 * }
 * ```
 */
export function createSharedSubscriptions(
  materialize: Materialize,
  options: SharedSubscriptionsOptions = {},
): SharedSubscriptions {
  const checks = new OptionChecks();
  const maxSubscriptions = checks.wholeNumber(
    'maxSubscriptions',
    options.maxSubscriptions,
    { min: 1, max: 10_000 },
    4,
  );
  const maxSubscriptionsPerTenant = checks.wholeNumber(
    'maxSubscriptionsPerTenant',
    options.maxSubscriptionsPerTenant,
    { min: 1, max: 10_000 },
    Math.ceil(maxSubscriptions / 2),
  );
  const lingerMs = checks.wholeNumber(
    'lingerMs',
    options.lingerMs,
    { min: 0, max: 3_600_000 },
    5_000,
  );
  const windowSize = checks.wholeNumber(
    'windowSize',
    options.windowSize,
    { min: 1, max: 10_000_000 },
    10_000,
  );
  const idleProgressMs = checks.wholeNumber(
    'idleProgressMs',
    options.idleProgressMs,
    { min: 0, max: 3_600_000 },
    5_000,
  );
  checks.throwIfAny((message) => new MaterializeError('INVALID_OPTIONS', message));
  const { logger } = options;
  const feeds = new Map<string, Feed>();
  const catchUps = new Set<CatchUp>();
  let viewers = 0;
  let closed = false;

  function heldByTenant(tenantId: string): number {
    let count = 0;
    for (const feed of feeds.values()) if (feed.tenantId === tenantId) count += 1;
    for (const catchUp of catchUps) if (catchUp.tenantId === tenantId) count += 1;
    return count;
  }

  /** Takes a subscription slot for `tenantId`, ending an idle lingering feed if that frees one. */
  function admit(tenantId: string | undefined): void {
    const full = (): boolean =>
      feeds.size + catchUps.size >= maxSubscriptions ||
      (tenantId !== undefined && heldByTenant(tenantId) >= maxSubscriptionsPerTenant);
    if (full()) {
      for (const feed of feeds.values()) {
        if (!feed.lingering) continue;
        if (
          tenantId !== undefined &&
          heldByTenant(tenantId) >= maxSubscriptionsPerTenant &&
          feed.tenantId !== tenantId
        ) {
          continue;
        }
        feed.close(new MaterializeError('CLOSED', `shared subscription to ${feed.view} ended`));
        if (!full()) break;
      }
    }
    if (tenantId !== undefined && heldByTenant(tenantId) >= maxSubscriptionsPerTenant) {
      throw new MaterializeError(
        'TOO_MANY_SUBSCRIPTIONS',
        `at most ${maxSubscriptionsPerTenant} distinct live subscriptions per tenant at once`,
      );
    }
    if (feeds.size + catchUps.size >= maxSubscriptions) {
      throw new MaterializeError(
        'SUBSCRIPTIONS_FULL',
        `every one of the ${maxSubscriptions} live subscription slots is taken; try again shortly`,
      );
    }
  }

  const feedHost: FeedHost = {
    materialize,
    windowSize,
    lingerMs,
    idleProgressMs,
    logger,
    feedEnded(feed) {
      if (feeds.get(feed.key) === feed) feeds.delete(feed.key);
    },
    catchUp(feed, viewer, from) {
      admit(viewer.options.tenantId);
      // Ten windows' worth (at least 100,000 items): a viewer that reads slower than the view
      // changes never gets there.
      const limit = Math.max(windowSize * 10, 100_000);
      const catchUp = new CatchUp(materialize, feed, viewer, from, limit, (ended) => {
        catchUps.delete(ended);
        if (viewer.catchUp === ended) viewer.catchUp = undefined;
      });
      viewer.catchUp = catchUp;
      catchUps.add(catchUp);
    },
  };

  const viewerHost: ViewerHost = {
    start(viewer) {
      viewers += 1;
      if (closed) {
        viewer.fail(
          new MaterializeError(
            'CLOSED',
            `watch of ${viewer.view}: shared subscriptions are closed`,
          ),
        );
        return;
      }
      const key = feedKey(viewer.view, viewer.options);
      let feed = feeds.get(key);
      if (feed === undefined) {
        try {
          admit(viewer.options.tenantId);
        } catch (error) {
          viewer.fail(error as MaterializeError);
          return;
        }
        feed = new Feed(feedHost, key, viewer.view, viewer.options);
        feeds.set(key, feed);
        feed.add(viewer, viewer.options.resumeFrom);
        feed.open();
        return;
      }
      feed.add(viewer, viewer.options.resumeFrom);
    },
    stop(viewer) {
      viewers -= 1;
      viewer.catchUp?.stop();
      viewer.feed?.remove(viewer);
    },
  };

  function watch<Row>(
    view: string,
    watchOptions: WatchOptions = {},
  ): AsyncIterableIterator<LiveItem<Row>> {
    if (closed)
      throw new MaterializeError(
        'CLOSED',
        `watch of ${String(view)}: shared subscriptions are closed`,
      );
    if (typeof watchOptions !== 'object' || watchOptions === null) {
      throw new MaterializeError('INVALID_ARGUMENT', 'options must be an object');
    }
    const { resumeFrom, signal } = watchOptions;
    if (resumeFrom !== undefined) checkTimestamp(resumeFrom, 'resumeFrom', 1n);
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new MaterializeError('INVALID_ARGUMENT', 'signal must be an AbortSignal');
    }
    // The same checks as subscribe(), before anything is shared or sent.
    subscribeQuery(view, watchOptions.columns, watchOptions.filter);
    return new Viewer(viewerHost, view, watchOptions) as AsyncIterableIterator<LiveItem<Row>>;
  }

  return {
    watch,
    get stats() {
      return { subscriptions: feeds.size, catchUps: catchUps.size, viewers };
    },
    async close() {
      closed = true;
      const running = [...feeds.values()].map((feed) => feed.done);
      for (const catchUp of catchUps) {
        catchUp.stop();
        running.push(catchUp.done);
      }
      for (const feed of [...feeds.values()]) {
        feed.close(
          new MaterializeError('CLOSED', `shared subscription to ${feed.view} ended: closed`),
        );
      }
      await Promise.all(running);
    },
  };
}
