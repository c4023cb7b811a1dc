// Exactly-once per closed timestamp: buffer the one open timestamp, release it
// when Materialize says it is complete, resume AS OF P-1 and drop < P.
// Decision record: docs/decisions/006-exactly-once-subscribe.md
import { MaterializeError } from '../errors.js';

/** An update the subscription yields. */
export interface Update<Row> {
  readonly kind: 'update';
  readonly mzTimestamp: bigint;
  readonly mzDiff: number;
  readonly row: Row;
}

/** A progress item: every update at a time below `mzTimestamp` has been yielded. */
export interface Progress {
  readonly kind: 'progress';
  readonly mzTimestamp: bigint;
}

/** One decoded row of a SUBSCRIBE … WITH (PROGRESS) cursor. */
export type SubscribeRow<Row> =
  | { readonly progressed: true; readonly timestamp: bigint }
  | { readonly progressed: false; readonly update: Update<Row> };

/** Where a (re)subscription starts. */
export interface StartPoint {
  readonly snapshot: boolean;
  readonly asOf: bigint | undefined;
}

/**
 * The state that makes delivery exact, kept across reconnects: the updates of
 * the one timestamp still open, the frontier (every update at a time below it
 * has been released, or was before the start), and whether a requested
 * snapshot is still unreleased. Pure: no I/O, no timers.
 */
export class UpdateBuffer<Row> {
  readonly #progress: boolean;
  readonly #original: StartPoint;
  /** Every update at a time below this has been released (or precedes the start). */
  #frontier: bigint | undefined;
  /** A frontier advance not yet reported as a progress item. */
  #unreported: bigint | undefined;
  #openTimestamp: bigint | undefined;
  #open: Update<Row>[] = [];
  /** The time of a requested snapshot, once known; undefined again once it is released. */
  #snapshotAt: bigint | undefined;
  #snapshotPending: boolean;
  /** `resumeFrom` with progress: report it once the server's first progress row confirms the start. */
  #announce: boolean;
  /**
   * The next progress row is a (re)subscription's first: its AS OF, which it
   * always sends first. With a snapshot, the snapshot's time; without one, no
   * update at that time is ever sent (a read AS OF T includes T: it is the
   * snapshot's), so everything up to T is done.
   */
  #awaitingStart = true;

  constructor(options: {
    readonly progress: boolean;
    readonly start: StartPoint;
    /** A frontier the consumer already has everything below (`resumeFrom`). */
    readonly frontier?: bigint | undefined;
  }) {
    this.#progress = options.progress;
    this.#original = options.start;
    this.#frontier = options.frontier;
    this.#snapshotPending = options.start.snapshot;
    this.#snapshotAt = options.start.snapshot ? options.start.asOf : undefined;
    this.#announce = options.progress && options.frontier !== undefined;
  }

  /** Every update at a time below this has been released; undefined before the first progress. */
  get frontier(): bigint | undefined {
    return this.#frontier;
  }

  /** Updates held back because their timestamp is still open. */
  get buffered(): number {
    return this.#open.length;
  }

  /**
   * Takes one row; pushes what became releasable (closed updates, progress
   * items when asked for) onto `out`, in order.
   * @throws {MaterializeError} QUERY_FAILED for rows out of timestamp order
   */
  push(row: SubscribeRow<Row>, out: (Update<Row> | Progress)[]): void {
    if (row.progressed) {
      const time = row.timestamp;
      if (this.#awaitingStart) {
        this.#awaitingStart = false;
        // A snapshot's frontier is only known, and reported, once it is released.
        if (this.#snapshotPending) this.#snapshotAt ??= time;
        else this.#advance(time + 1n);
        if (this.#announce && this.#unreported === undefined && this.#frontier !== undefined) {
          this.#unreported = this.#frontier;
        }
        this.#announce = false;
        return;
      }
      if (this.#openTimestamp !== undefined && this.#openTimestamp < time) this.#release(out);
      this.#advance(time);
      return;
    }
    const { update } = row;
    const time = update.mzTimestamp;
    // Already released before a reconnect (resumption re-reads from P-1), or before resumeFrom.
    if (this.#frontier !== undefined && time < this.#frontier) return;
    if (this.#openTimestamp === undefined) {
      if (this.#snapshotPending && this.#snapshotAt === undefined) this.#snapshotAt = time;
      this.#openTimestamp = time;
    } else if (time > this.#openTimestamp) {
      this.#release(out);
      // Rows come in timestamp order: one at `time` means every earlier time is complete.
      this.#advance(time);
      this.#openTimestamp = time;
    } else if (time < this.#openTimestamp) {
      throw new MaterializeError(
        'QUERY_FAILED',
        `the subscription sent an update at ${time} after one at ${this.#openTimestamp}: rows out of timestamp order`,
      );
    }
    this.#open.push(update);
  }

  /** Reports a frontier advance not yet reported (call after each batch). */
  flush(out: (Update<Row> | Progress)[]): void {
    if (this.#unreported === undefined) return;
    out.push({ kind: 'progress', mzTimestamp: this.#unreported });
    this.#unreported = undefined;
  }

  /** The connection was lost: the open timestamp's updates will be read again, after a new start. */
  discardOpen(): void {
    this.#open = [];
    this.#openTimestamp = undefined;
    this.#awaitingStart = true;
  }

  /**
   * Where to subscribe again after a lost connection: the snapshot again AS OF
   * the same time while it is unreleased; else `AS OF P-1` without snapshot
   * once a frontier P is known; else the original statement (nothing was
   * released yet).
   */
  resumePoint(): StartPoint {
    if (this.#snapshotPending) {
      return { snapshot: true, asOf: this.#snapshotAt ?? this.#original.asOf };
    }
    if (this.#frontier !== undefined && this.#frontier > 0n) {
      return { snapshot: false, asOf: this.#frontier - 1n };
    }
    return this.#original;
  }

  #release(out: (Update<Row> | Progress)[]): void {
    const time = this.#openTimestamp as bigint;
    // The frontier reached so far precedes these updates.
    this.flush(out);
    for (const update of this.#open) out.push(update);
    this.#open = [];
    this.#openTimestamp = undefined;
    this.#advance(time + 1n);
  }

  #advance(time: bigint): void {
    if (this.#frontier !== undefined && time <= this.#frontier) return;
    this.#frontier = time;
    if (this.#snapshotPending && this.#snapshotAt !== undefined && time > this.#snapshotAt) {
      this.#snapshotPending = false;
    }
    if (this.#progress) this.#unreported = time;
  }
}
