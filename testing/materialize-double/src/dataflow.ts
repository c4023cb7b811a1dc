/**
 * Views, history and consolidation; subscriptions and their PROGRESS rows. The
 * time model: `upper` is the first open timestamp, every time below it is closed;
 * updates are staged at `upper`, closed by an advance, and subscribers only ever
 * see closed timestamps, consolidated.
 */
import type { DoubleColumn, DoubleDiff, DoubleRow } from './api.js';
import { encodeCell, type Cell } from './values.js';
import { writeCell, type WireWriter } from './wire.js';

/** One update as staged: the row's cells in column order and its diff. */
interface Update {
  readonly values: readonly Cell[];
  readonly diff: number;
}

/** A consolidated update (diff never 0), its diff pre-rendered for DataRow. */
interface OutputRow extends Update {
  readonly diffText: string;
}

/** The consolidated updates of one closed timestamp. */
interface Batch {
  readonly time: bigint;
  readonly rows: readonly OutputRow[];
  /** Their DataRows, encoded on first FETCH and shared by every subscription that reads them whole. */
  readonly encoded: EncodedRowsCache;
}

/** DataRows of consecutive updates in one buffer; row i ends at `ends[i]`. */
interface EncodedRows {
  readonly bytes: Buffer;
  readonly ends: Uint32Array;
}

/** Reused for encoding; each result is copied out at its exact size. */
let encodeScratch = Buffer.allocUnsafe(256 * 1024);

/** The DataRows of updates at one timestamp: mz_timestamp, [mz_progressed = f,] mz_diff, the cells. */
function encodeUpdateRows(
  timestamp: string,
  progress: boolean,
  rows: readonly OutputRow[],
): EncodedRows {
  let bound = 0;
  for (const row of rows) {
    bound +=
      1 + 4 + 2 + 12 + (timestamp.length + row.diffText.length + 1) * 3 + row.values.length * 4;
    for (const value of row.values) if (value !== null) bound += value.length * 3;
  }
  if (encodeScratch.length < bound)
    encodeScratch = Buffer.allocUnsafe(Math.max(bound, encodeScratch.length * 2));
  const scratch = encodeScratch;
  const ends = new Uint32Array(rows.length);
  let offset = 0;
  for (let index = 0; index < rows.length; index += 1) {
    const row = rows[index] as OutputRow;
    const start = offset;
    scratch[start] = 0x44; // 'D'
    scratch.writeInt16BE(row.values.length + (progress ? 3 : 2), start + 5);
    offset = writeCell(scratch, start + 7, timestamp);
    if (progress) offset = writeCell(scratch, offset, 'f');
    offset = writeCell(scratch, offset, row.diffText);
    for (const value of row.values) offset = writeCell(scratch, offset, value);
    scratch.writeInt32BE(offset - start - 1, start + 1);
    ends[index] = offset;
  }
  const bytes = Buffer.allocUnsafeSlow(offset);
  scratch.copy(bytes, 0, 0, offset);
  return { bytes, ends };
}

/** Encoded DataRows of one list of updates, with and without the mz_progressed column. */
class EncodedRowsCache {
  #withProgress: EncodedRows | null = null;
  #withoutProgress: EncodedRows | null = null;

  get(timestamp: string, progress: boolean, rows: readonly OutputRow[]): EncodedRows {
    if (progress) return (this.#withProgress ??= encodeUpdateRows(timestamp, true, rows));
    return (this.#withoutProgress ??= encodeUpdateRows(timestamp, false, rows));
  }
}

/** Sums the diffs of equal rows, drops zeros; order is first-seen order. */
function consolidate(updates: Iterable<Update>): OutputRow[] {
  const positions = new Map<string, number>();
  const values: (readonly Cell[])[] = [];
  const diffs: number[] = [];
  for (const update of updates) {
    const key = JSON.stringify(update.values);
    const at = positions.get(key);
    if (at === undefined) {
      positions.set(key, values.length);
      values.push(update.values);
      diffs.push(update.diff);
    } else {
      diffs[at] = (diffs[at] ?? 0) + update.diff;
    }
  }
  const rows: OutputRow[] = [];
  for (let index = 0; index < values.length; index += 1) {
    const diff = diffs[index] ?? 0;
    if (diff !== 0) rows.push({ values: values[index] ?? [], diff, diffText: String(diff) });
  }
  return rows;
}

/** What a subscription selects from a view: column positions (null = all) and equality filters. */
interface Shape {
  readonly columnIndexes: readonly number[] | null;
  readonly filters: readonly { readonly index: number; readonly text: string }[];
}

function matchesFilters(values: readonly Cell[], shape: Shape): boolean {
  for (const filter of shape.filters) if (values[filter.index] !== filter.text) return false;
  return true;
}

/** Filters and projects consolidated rows; a projection can make rows equal, so it consolidates again. */
function shapeRows(rows: readonly OutputRow[], shape: Shape): readonly OutputRow[] {
  const { columnIndexes } = shape;
  if (columnIndexes === null && shape.filters.length === 0) return rows; // shared, never copied
  const kept =
    shape.filters.length === 0 ? rows : rows.filter((row) => matchesFilters(row.values, shape));
  if (columnIndexes === null) return kept;
  return consolidate(
    kept.map((row) => ({
      values: columnIndexes.map((index) => row.values[index] ?? null),
      diff: row.diff,
    })),
  );
}

export class ViewState {
  readonly name: string;
  readonly columns: readonly DoubleColumn[];
  readonly #columnPositions: ReadonlyMap<string, number>;
  /** Live subscriptions, told about every advance. */
  readonly subscriptions: Set<Subscription> = new Set();
  /** Closed timestamps with updates, ascending. */
  #history: Batch[] = [];
  #staged: Update[] = [];
  #since = 0n;
  #dropped = false;

  constructor(name: string, columns: readonly DoubleColumn[]) {
    this.name = name;
    this.columns = columns.map((column) => ({ name: column.name, type: column.type }));
    this.#columnPositions = new Map(this.columns.map((column, index) => [column.name, index]));
  }

  get since(): bigint {
    return this.#since;
  }

  get dropped(): boolean {
    return this.#dropped;
  }

  columnPosition(name: string): number | undefined {
    return this.#columnPositions.get(name);
  }

  encodeRow(row: DoubleRow): readonly Cell[] {
    for (const key of Object.keys(row)) {
      if (!this.#columnPositions.has(key)) {
        throw new TypeError(`materialize double: view "${this.name}" has no column "${key}"`);
      }
    }
    return this.columns.map((column) => encodeCell(column, row[column.name]));
  }

  encodeDiffs(diffs: readonly DoubleDiff[]): Update[] {
    return diffs.map(({ row, diff }) => {
      if (!Number.isSafeInteger(diff))
        throw new TypeError(`materialize double: diff ${diff} is not an integer`);
      return { values: this.encodeRow(row), diff };
    });
  }

  stage(updates: readonly Update[]): void {
    for (const update of updates) this.#staged.push(update);
  }

  /** Writes updates straight into history at a closed time (defineView's initial rows). */
  writeClosed(time: bigint, updates: readonly Update[]): void {
    const rows = consolidate(updates);
    if (rows.length > 0) this.#history.push({ time, rows, encoded: new EncodedRowsCache() });
  }

  /** The open timestamp `time` closes: its staged updates become a batch. */
  closeTimestamp(time: bigint): void {
    if (this.#staged.length === 0) return;
    const rows = consolidate(this.#staged);
    this.#staged = [];
    if (rows.length > 0) this.#history.push({ time, rows, encoded: new EncodedRowsCache() });
  }

  /** Index of the first batch at or after `time`. */
  firstBatchAtOrAfter(time: bigint): number {
    let low = 0;
    let high = this.#history.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#history[middle]?.time ?? 0n) < time) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  batchAt(index: number): Batch | undefined {
    return this.#history[index];
  }

  /** The contents at `asOf` (every update at a time <= asOf), shaped and consolidated. */
  snapshot(asOf: bigint, shape: Shape): readonly OutputRow[] {
    const end = this.firstBatchAtOrAfter(asOf + 1n);
    const only = this.#history[0];
    if (end === 1 && only !== undefined) return shapeRows(only.rows, shape);
    const updates: Update[] = [];
    for (let index = 0; index < end; index += 1) {
      const batch = this.#history[index];
      if (batch === undefined) continue;
      for (const row of batch.rows) {
        if (!matchesFilters(row.values, shape)) continue;
        const { columnIndexes } = shape;
        updates.push(
          columnIndexes === null
            ? row
            : {
                values: columnIndexes.map((position) => row.values[position] ?? null),
                diff: row.diff,
              },
        );
      }
    }
    return consolidate(updates);
  }

  /** History before `since` is merged into one batch at `since - 1` (only the state there remains readable). */
  compact(since: bigint): void {
    if (since <= this.#since) return;
    this.#since = since;
    const end = this.firstBatchAtOrAfter(since);
    if (end <= 1) return;
    const merged = consolidate(this.#history.slice(0, end).flatMap((batch) => batch.rows));
    const rest = this.#history.slice(end);
    this.#history =
      merged.length > 0
        ? [{ time: since - 1n, rows: merged, encoded: new EncodedRowsCache() }, ...rest]
        : rest;
  }

  drop(): void {
    this.#dropped = true;
    for (const subscription of this.subscriptions) subscription.markDropped();
    this.subscriptions.clear();
  }
}

// ---------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------

/** A DECLAREd SUBSCRIBE, resolved against the catalog. */
export interface SubscriptionPlan {
  readonly view: ViewState;
  readonly shape: Shape;
  readonly asOf: bigint;
  readonly snapshot: boolean;
  readonly progress: boolean;
  /** Columns after mz_timestamp [, mz_progressed], mz_diff. */
  readonly outputColumns: readonly DoubleColumn[];
  /** The RowDescription every FETCH of this cursor sends, encoded once. */
  readonly rowDescription: Buffer;
  /**
   * Why it cannot run (an AS OF below the view's since): the DECLARE succeeds, the first FETCH
   * fails with this, as the subscribe is only sequenced then.
   */
  readonly error: { readonly code: string; readonly message: string } | null;
}

/** Rows of one timestamp waiting to be fetched (`rows === null`: one progress row). */
interface Segment {
  readonly timestamp: string;
  readonly rows: readonly OutputRow[] | null;
  /** The batch's cache when the rows are the batch's own, else the segment's. */
  readonly encoded: EncodedRowsCache;
  /** What the segment counts against `subscribe_max_buffered_bytes`: payload plus the per-message overhead. */
  readonly footprint: number;
  next: number;
}

const NO_ENCODING = new EncodedRowsCache();

/**
 * Charged per queued message on top of its payload, so that a stalled client
 * receiving only progress messages still exhausts the budget
 * (`SUBSCRIBE_MESSAGE_OVERHEAD_BYTES`, src/adapter/src/active_compute_sink.rs).
 */
const MESSAGE_OVERHEAD_BYTES = 1024;

/** Payload bytes of a list of rows (text cells and diff), computed once per list. */
const payloadBytesOf = new WeakMap<readonly OutputRow[], number>();
function payloadBytes(rows: readonly OutputRow[]): number {
  let bytes = payloadBytesOf.get(rows);
  if (bytes === undefined) {
    bytes = 0;
    for (const row of rows) {
      bytes += 8 + row.diffText.length;
      for (const value of row.values) bytes += value === null ? 1 : value.length + 1;
    }
    payloadBytesOf.set(rows, bytes);
  }
  return bytes;
}

/** Bytes as Materialize prints them (bytesize: binary units, one decimal). */
function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit] ?? 'TiB'}`;
}

/** How a subscription retired for falling behind: the counts of its terminal error. */
export interface FellBehind {
  readonly bufferedBytes: number;
  readonly maxBufferedBytes: number;
}

/**
 * The terminal error of a subscription that fell behind: 53200 (`OUT_OF_MEMORY`,
 * `AdapterError::SubscribeFellBehind` in src/adapter/src/error.rs), with its text.
 */
function fellBehindMessage({ bufferedBytes, maxBufferedBytes }: FellBehind): string {
  return `SUBSCRIBE fell behind: the client did not read results fast enough, so its backlog reached ${formatBytes(bufferedBytes)}, exceeding the ${formatBytes(maxBufferedBytes)} budget`;
}

/**
 * A subscription's own queue of rows ready to FETCH: it is filled whenever a
 * timestamp closes, whether or not the client fetches (so the double buffers,
 * not the client). Segments point at history batches, so a backlog costs little.
 */
export class Subscription {
  readonly plan: SubscriptionPlan;
  /** `subscribe_max_buffered_bytes`, snapshotted when the subscription was created. */
  readonly #maxBufferedBytes: number;
  #segments: Segment[] = [];
  /** Footprints of the segments not fully sent (from `#head` on). */
  #queuedFootprint = 0;
  #fellBehind: FellBehind | null = null;
  #head = 0;
  #pendingRows = 0;
  #snapshotEmitted = false;
  /** Every time below this has been queued (or skipped as before the AS OF). */
  #queuedThrough: bigint;
  #lastProgress: bigint | null = null;
  #dropped = false;
  #closed = false;
  #onReady: (() => void) | null = null;

  constructor(
    plan: SubscriptionPlan,
    upper: bigint,
    maxBufferedBytes: number = Number.POSITIVE_INFINITY,
  ) {
    this.plan = plan;
    this.#maxBufferedBytes = maxBufferedBytes;
    this.#queuedThrough = plan.asOf;
    if (plan.error !== null) {
      this.#closed = true; // never runs: its first FETCH gets the error
      return;
    }
    // Materialize: the first update of a PROGRESS subscription is progress at its AS OF.
    if (plan.progress) this.#queueProgress(plan.asOf);
    plan.view.subscriptions.add(this);
    this.catchUp(upper);
  }

  get pendingRows(): number {
    return this.#pendingRows;
  }

  get dropped(): boolean {
    return this.#dropped;
  }

  /** Set once the subscription was retired for falling behind (its queued rows still go out first). */
  get fellBehind(): FellBehind | null {
    return this.#fellBehind;
  }

  /** The error a FETCH gets once the queued rows are sent: it could not start, or fell behind. */
  get failure(): { readonly code: string; readonly message: string } | null {
    if (this.plan.error !== null) return this.plan.error;
    if (this.#fellBehind !== null) {
      return { code: '53200', message: fellBehindMessage(this.#fellBehind) };
    }
    return null;
  }

  /**
   * Bytes queued behind the message the client is draining: that one is tolerated
   * whatever its size (`SubscribeBacklogAccounting::backlog_size`,
   * src/adapter/src/active_compute_sink.rs).
   */
  get backlogBytes(): number {
    return this.#queuedFootprint - (this.#segments[this.#head]?.footprint ?? 0);
  }

  /** Called (once per event) when rows become ready or the view is dropped; null to stop. */
  onReady(listener: (() => void) | null): void {
    this.#onReady = listener;
  }

  /** Queues every timestamp that is closed now (`< upper`) and not queued yet, then progress. */
  catchUp(upper: bigint): void {
    if (this.#dropped || this.#closed || this.#fellBehind !== null || upper <= this.plan.asOf)
      return;
    const { view, shape } = this.plan;
    const before = this.#pendingRows;
    if (!this.#snapshotEmitted) {
      this.#snapshotEmitted = true;
      if (this.plan.snapshot) {
        this.#queueRows(
          this.plan.asOf,
          view.snapshot(this.plan.asOf, shape),
          new EncodedRowsCache(),
        );
      }
      this.#queuedThrough = this.plan.asOf + 1n; // the AS OF itself is the snapshot's (or skipped without one)
    }
    for (let index = view.firstBatchAtOrAfter(this.#queuedThrough); ; index += 1) {
      const batch = view.batchAt(index);
      if (batch === undefined || batch.time >= upper) break;
      const rows = shapeRows(batch.rows, shape);
      this.#queueRows(
        batch.time,
        rows,
        rows === batch.rows ? batch.encoded : new EncodedRowsCache(),
      );
    }
    this.#queuedThrough = upper;
    if (this.plan.progress && (this.#lastProgress === null || upper > this.#lastProgress))
      this.#queueProgress(upper);
    // Checked after every delivered batch; over budget, the subscribe is retired: nothing more is
    // produced, and its error follows what is already queued (`SubscribeEmitter::backlog_exceeded`
    // and `ActiveSubscribe::retire`, src/adapter/src/active_compute_sink.rs).
    const backlog = this.backlogBytes;
    if (backlog > this.#maxBufferedBytes) {
      this.#fellBehind = { bufferedBytes: backlog, maxBufferedBytes: this.#maxBufferedBytes };
      this.plan.view.subscriptions.delete(this);
      this.#onReady?.();
      return;
    }
    if (this.#pendingRows > before) this.#onReady?.();
  }

  markDropped(): void {
    this.#dropped = true;
    this.#onReady?.();
  }

  close(): void {
    this.#closed = true;
    this.plan.view.subscriptions.delete(this);
    this.#segments = [];
    this.#head = 0;
    this.#pendingRows = 0;
    this.#queuedFootprint = 0;
    this.#onReady = null;
  }

  /**
   * Sends up to `max` queued rows: update rows as pre-encoded DataRows handed to
   * the socket without copying, progress rows through the writer. Stops early when
   * the socket asks to wait for 'drain'. Returns the rows sent.
   */
  sendRows(writer: WireWriter, max: number): number {
    const columnCount = this.plan.outputColumns.length;
    const { progress } = this.plan;
    let sent = 0;
    while (sent < max && this.#head < this.#segments.length && !writer.needsDrain) {
      const segment = this.#segments[this.#head];
      if (segment === undefined) break;
      const { rows, timestamp } = segment;
      if (rows === null) {
        writer.progressRow(timestamp, columnCount);
        sent += 1;
        this.#head += 1;
        this.#queuedFootprint -= segment.footprint;
        continue;
      }
      const { bytes, ends } = segment.encoded.get(timestamp, progress, rows);
      const count = Math.min(max - sent, rows.length - segment.next);
      const from = segment.next === 0 ? 0 : (ends[segment.next - 1] ?? 0);
      writer.bytes(bytes.subarray(from, ends[segment.next + count - 1]));
      segment.next += count;
      sent += count;
      if (segment.next === rows.length) {
        this.#head += 1;
        this.#queuedFootprint -= segment.footprint;
      }
    }
    this.#pendingRows -= sent;
    // Drop consumed segments now and then, not on every FETCH.
    if (this.#head > 256 && this.#head * 2 > this.#segments.length) {
      this.#segments = this.#segments.slice(this.#head);
      this.#head = 0;
    }
    return sent;
  }

  #queueRows(time: bigint, rows: readonly OutputRow[], encoded: EncodedRowsCache): void {
    if (rows.length === 0) return;
    const footprint = payloadBytes(rows) + MESSAGE_OVERHEAD_BYTES;
    this.#segments.push({ timestamp: time.toString(), rows, encoded, footprint, next: 0 });
    this.#pendingRows += rows.length;
    this.#queuedFootprint += footprint;
  }

  #queueProgress(time: bigint): void {
    // A progress row's payload: mz_timestamp, mz_progressed and a NULL per other column.
    const footprint =
      time.toString().length + this.plan.outputColumns.length + MESSAGE_OVERHEAD_BYTES;
    this.#segments.push({
      timestamp: time.toString(),
      rows: null,
      encoded: NO_ENCODING,
      footprint,
      next: 0,
    });
    this.#pendingRows += 1;
    this.#queuedFootprint += footprint;
    this.#lastProgress = time;
  }
}
