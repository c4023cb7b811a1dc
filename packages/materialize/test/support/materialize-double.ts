/**
 * A Materialize wire-protocol test double: a loopback PostgreSQL-protocol server
 * that imitates the parts of Materialize FlowForge uses (simple queries,
 * transactions, `DECLARE … CURSOR FOR SUBSCRIBE`, `FETCH … WITH (timeout)`,
 * PROGRESS rows, AS OF / SNAPSHOT, cancellation), driven by a control API that
 * owns the clock (`apply` / `advance` / `commit`) and can misbehave on demand
 * (`dropConnections`, `stall`, `stop` / `restart`).
 *
 * A TEST FIXTURE: never part of the package's `src/`. One self-contained file,
 * erasable TypeScript only, so Node 24 runs it directly:
 *
 *   node packages/materialize/test/support/materialize-double.ts --port 6875 --demo
 *
 * The semantics are specified in the shared spec (mz-double-spec.md); the time
 * model in short: `upper` is the first open timestamp, every time below it is
 * closed; `apply` stages updates at `upper`, `advance` closes it, subscribers
 * only ever see closed timestamps, consolidated.
 */
import { randomInt } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { PostgresConnection, type State } from 'pg-gateway';

// ---------------------------------------------------------------------------
// Public API (the shared spec: names and signatures are depended upon)
// ---------------------------------------------------------------------------

/** Column types the double can serve, with their PostgreSQL text encodings. */
export type DoubleColumnType =
  'text' | 'int4' | 'int8' | 'float8' | 'numeric' | 'bool' | 'uuid' | 'timestamptz' | 'jsonb';

/** One column of a view defined on the double. */
export interface DoubleColumn {
  readonly name: string;
  readonly type: DoubleColumnType;
}

/** A row of a view, keyed by column name; a missing key is NULL. */
export type DoubleRow = Readonly<Record<string, string | number | bigint | boolean | null>>;

/** A change to a view: `diff` copies of `row` inserted (positive) or deleted (negative). */
export interface DoubleDiff {
  readonly row: DoubleRow;
  readonly diff: number;
}

/** Options of {@link startMaterializeDouble}. */
export interface MaterializeDoubleOptions {
  /** Interface to listen on; default `127.0.0.1`. */
  readonly host?: string;
  /** Port to listen on; default 0 (ephemeral). */
  readonly port?: number;
  /** User name put in `url` and required when a password is set; default `materialize`. */
  readonly user?: string;
  /** When set, cleartext password authentication is required. */
  readonly password?: string;
  /** Database name put in `url` (any database is accepted); default `materialize`. */
  readonly database?: string;
  /** Timestamp of `defineView`'s initial rows; `upper` starts one above; default `1_700_000_000_000n`. */
  readonly initialTimestamp?: bigint;
  /** When set, `advance(1n)` runs every `tickMs` milliseconds (a live clock); default off. */
  readonly tickMs?: number;
}

/** What the double knows about one authenticated client session. */
export interface DoubleSession {
  readonly pid: number;
  readonly inTransaction: boolean;
  /** The transaction is aborted (every statement gets 25P02 until it ends). */
  readonly failed: boolean;
  /** Name of the declared cursor, if any. */
  readonly cursor: string | null;
  /** A FETCH is waiting for rows. */
  readonly fetching: boolean;
  /** Rows queued in the session's subscription, not fetched yet. */
  readonly pendingRows: number;
}

/** Counters since the double started (kept across `stop` / `restart`). */
export interface DoubleStats {
  /** Client connections accepted (CancelRequest connections are not counted here). */
  readonly connectionsOpened: number;
  /** Client connections currently open. */
  readonly connectionsOpen: number;
  /** CancelRequest packets plus `pg_cancel_backend` calls received. */
  readonly cancelRequests: number;
  /** Statements received in simple queries (skipped ones after an error included). */
  readonly statements: number;
}

/** A running double and its control API. */
export interface MaterializeDouble {
  /** `postgres://user[:password]@host:port/database`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The first open timestamp: every timestamp below it is closed. */
  readonly upper: bigint;
  /** Defines a view; its initial rows are written at `initialTimestamp`. Throws if it exists. */
  defineView(
    name: string,
    columns: readonly DoubleColumn[],
    initialRows?: readonly DoubleRow[],
  ): void;
  /** Drops a view: live subscriptions on it end with an ErrorResponse (XX000 "… was dropped"). */
  dropView(name: string): void;
  /** Stages updates at the open timestamp, which it returns. */
  apply(view: string, diffs: readonly DoubleDiff[]): bigint;
  /** Closes the open timestamp: `upper += by`; returns the new upper. */
  advance(by?: bigint): bigint;
  /** `apply` then `advance()`; returns the timestamp written. */
  commit(view: string, diffs: readonly DoubleDiff[]): bigint;
  /** `commit` with diff +1 for each row. */
  insert(view: string, rows: readonly DoubleRow[]): bigint;
  /** `commit` with diff -1 for each row. */
  remove(view: string, rows: readonly DoubleRow[]): bigint;
  /** Forgets history before `since`: `AS OF` below it then fails with XX000. */
  compact(view: string, since: bigint): void;
  /** The authenticated sessions, by pid. */
  sessions(): readonly DoubleSession[];
  readonly stats: DoubleStats;
  /** The last 1000 statements received, as sent. */
  statementLog(): readonly string[];
  /**
   * Calls `listener` with each statement as it arrives, before it runs (`null`
   * removes it): a test can stall or drop the server at an exact point.
   */
  onStatement(listener: ((statement: string) => void) | null): void;
  /** Destroys every client socket abruptly (a crashed backend: no ErrorResponse); keeps listening. */
  dropConnections(): void;
  /** `true`: stop reading and answering (a hung server); `false`: resume. */
  stall(on: boolean): void;
  /** Closes the listener and every socket; views and time are kept. */
  stop(): Promise<void>;
  /** Listens again on the same port, views and time kept. */
  restart(): Promise<void>;
}

/**
 * Starts a double listening on loopback (or `options.host`).
 *
 * @example
 * const mz = await startMaterializeDouble();
 * mz.defineView('orders', [{ name: 'id', type: 'int8' }, { name: 'status', type: 'text' }]);
 * mz.insert('orders', [{ id: 1n, status: 'open' }]);
 * // connect node-postgres to mz.url, BEGIN; DECLARE c CURSOR FOR SUBSCRIBE orders; FETCH ALL c
 * await mz.stop();
 */
export async function startMaterializeDouble(
  options: MaterializeDoubleOptions = {},
): Promise<MaterializeDouble> {
  const double = new WireDouble(options);
  await double.listen();
  return double;
}

// ---------------------------------------------------------------------------
// Wire constants
// ---------------------------------------------------------------------------

const DEFAULT_INITIAL_TIMESTAMP = 1_700_000_000_000n;
const MZ_VERSION = 'v0.147.0 (double)';
const SERVER_VERSION = '9.5.0';
const CANCEL_REQUEST_CODE = 80877102;
/** Small messages are built in slabs this big; finished parts go to the socket without copying. */
const SLAB_BYTES = 64 * 1024;
const STATEMENT_LOG_SIZE = 1000;

const TYPE_INFO: Readonly<
  Record<DoubleColumnType, { readonly oid: number; readonly size: number }>
> = {
  text: { oid: 25, size: -1 },
  int4: { oid: 23, size: 4 },
  int8: { oid: 20, size: 8 },
  float8: { oid: 701, size: 8 },
  numeric: { oid: 1700, size: -1 },
  bool: { oid: 16, size: 1 },
  uuid: { oid: 2950, size: 16 },
  timestamptz: { oid: 1184, size: 8 },
  jsonb: { oid: 3802, size: -1 },
};

/** A statement failed with this SQLSTATE; the session answers with an ErrorResponse. */
class SqlError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

// ---------------------------------------------------------------------------
// Values: DoubleRow values → PostgreSQL text format
// ---------------------------------------------------------------------------

type Cell = string | null;
type CellValue = DoubleRow[string] | undefined;

const INTEGER_TEXT = /^-?\d+$/;
const NUMERIC_TEXT = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^NaN$/;
const FLOAT_TEXT = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^-?Infinity$|^NaN$/;

/** 8-4-4-4-12 hex digits; a loop, since a case-insensitive regex cost more than the rest of a row's encoding. */
function isUuid(text: string): boolean {
  if (text.length !== 36) return false;
  for (let index = 0; index < 36; index += 1) {
    const code = text.charCodeAt(index);
    if (index === 8 || index === 13 || index === 18 || index === 23) {
      if (code !== 45) return false;
    } else if (!(
      (code >= 48 && code <= 57) ||
      (code >= 97 && code <= 102) ||
      (code >= 65 && code <= 70)
    )) {
      return false;
    }
  }
  return true;
}
const BOOL_TEXT: Readonly<Record<string, 't' | 'f'>> = {
  t: 't',
  true: 't',
  yes: 't',
  on: 't',
  '1': 't',
  f: 'f',
  false: 'f',
  no: 'f',
  off: 'f',
  '0': 'f',
};

function invalidValue(column: string, type: DoubleColumnType, value: CellValue): TypeError {
  return new TypeError(
    `materialize double: ${typeof value} ${String(value)} is not a valid ${type} for column "${column}"`,
  );
}

/** PostgreSQL's timestamptz output in UTC: `2026-11-28 14:00:00+00`, fractional seconds when present. */
function formatTimestamptz(epochMs: number): string | null {
  if (!Number.isFinite(epochMs)) return null;
  const iso = new Date(epochMs).toISOString();
  if (iso.length !== 24) return null; // years beyond 9999 have no PostgreSQL-like form here
  const millis = iso.slice(20, 23).replace(/0+$/, '');
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${millis === '' ? '' : `.${millis}`}+00`;
}

function parseTimestamptz(text: string): number {
  const direct = Date.parse(text);
  if (!Number.isNaN(direct)) return direct;
  // PostgreSQL's own form: a space for the T and an hour-only offset.
  return Date.parse(
    text
      .trim()
      .replace(' ', 'T')
      .replace(/([+-]\d\d)$/, '$1:00'),
  );
}

function encodeCell(column: DoubleColumn, value: CellValue): Cell {
  if (value === null || value === undefined) return null;
  const { type, name } = column;
  switch (type) {
    case 'text':
      return typeof value === 'string' ? value : String(value);
    case 'int4':
    case 'int8':
      if (typeof value === 'bigint') return value.toString();
      if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
      if (typeof value === 'string' && INTEGER_TEXT.test(value)) return BigInt(value).toString();
      throw invalidValue(name, type, value);
    case 'numeric':
      if (typeof value === 'bigint') return value.toString();
      if (typeof value === 'number' && Number.isFinite(value)) return String(value);
      if (typeof value === 'string' && NUMERIC_TEXT.test(value)) return value;
      throw invalidValue(name, type, value);
    case 'float8':
      if (typeof value === 'number') return String(value);
      if (typeof value === 'bigint') return value.toString();
      if (typeof value === 'string' && FLOAT_TEXT.test(value)) return value;
      throw invalidValue(name, type, value);
    case 'bool': {
      if (typeof value === 'boolean') return value ? 't' : 'f';
      const text = BOOL_TEXT[String(value).toLowerCase()];
      if (text === undefined) throw invalidValue(name, type, value);
      return text;
    }
    case 'uuid':
      if (typeof value === 'string' && isUuid(value)) return value.toLowerCase();
      throw invalidValue(name, type, value);
    case 'timestamptz': {
      const epochMs =
        typeof value === 'number'
          ? value
          : typeof value === 'string'
            ? parseTimestamptz(value)
            : NaN;
      const text = formatTimestamptz(epochMs);
      if (text === null) throw invalidValue(name, type, value);
      return text;
    }
    case 'jsonb':
      if (typeof value === 'string') {
        try {
          return JSON.stringify(JSON.parse(value)); // a string holding JSON text, normalised
        } catch {
          return JSON.stringify(value); // any other string is a JSON string value
        }
      }
      return typeof value === 'bigint' ? value.toString() : JSON.stringify(value);
  }
}

// ---------------------------------------------------------------------------
// Views, history and consolidation
// ---------------------------------------------------------------------------

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

/** Writes a length-prefixed text cell at `offset` (the caller made room for 4 + 3 × length bytes). */
function writeCell(target: Buffer, offset: number, value: Cell): number {
  if (value === null) {
    target.writeInt32BE(-1, offset);
    return offset + 4;
  }
  const at = offset + 4;
  const length = value.length;
  // Short ASCII (numbers, ids, labels) is copied by hand: cheaper than a write() call.
  if (length <= 48) {
    let index = 0;
    for (; index < length; index += 1) {
      const code = value.charCodeAt(index);
      if (code > 127) break;
      target[at + index] = code;
    }
    if (index === length) {
      target.writeInt32BE(length, offset);
      return at + length;
    }
  }
  const written = target.write(value, at, 'utf8');
  target.writeInt32BE(written, offset);
  return at + written;
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

class ViewState {
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
interface SubscriptionPlan {
  readonly view: ViewState;
  readonly shape: Shape;
  readonly asOf: bigint;
  readonly snapshot: boolean;
  readonly progress: boolean;
  /** Columns after mz_timestamp [, mz_progressed], mz_diff. */
  readonly outputColumns: readonly DoubleColumn[];
  /** The RowDescription every FETCH of this cursor sends, encoded once. */
  readonly rowDescription: Buffer;
}

/** Rows of one timestamp waiting to be fetched (`rows === null`: one progress row). */
interface Segment {
  readonly timestamp: string;
  readonly rows: readonly OutputRow[] | null;
  /** The batch's cache when the rows are the batch's own, else the segment's. */
  readonly encoded: EncodedRowsCache;
  next: number;
}

const NO_ENCODING = new EncodedRowsCache();

/**
 * A subscription's own queue of rows ready to FETCH: it is filled whenever a
 * timestamp closes, whether or not the client fetches (so the double buffers,
 * not the client). Segments point at history batches, so a backlog costs little.
 */
class Subscription {
  readonly plan: SubscriptionPlan;
  #segments: Segment[] = [];
  #head = 0;
  #pendingRows = 0;
  #snapshotEmitted = false;
  /** Every time below this has been queued (or skipped as before the AS OF). */
  #queuedThrough: bigint;
  #lastProgress: bigint | null = null;
  #dropped = false;
  #closed = false;
  #onReady: (() => void) | null = null;

  constructor(plan: SubscriptionPlan, upper: bigint) {
    this.plan = plan;
    this.#queuedThrough = plan.asOf;
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

  /** Called (once per event) when rows become ready or the view is dropped; null to stop. */
  onReady(listener: (() => void) | null): void {
    this.#onReady = listener;
  }

  /** Queues every timestamp that is closed now (`< upper`) and not queued yet, then progress. */
  catchUp(upper: bigint): void {
    if (this.#dropped || this.#closed || upper <= this.plan.asOf) return;
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
        continue;
      }
      const { bytes, ends } = segment.encoded.get(timestamp, progress, rows);
      const count = Math.min(max - sent, rows.length - segment.next);
      const from = segment.next === 0 ? 0 : (ends[segment.next - 1] ?? 0);
      writer.bytes(bytes.subarray(from, ends[segment.next + count - 1]));
      segment.next += count;
      sent += count;
      if (segment.next === rows.length) this.#head += 1;
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
    this.#segments.push({ timestamp: time.toString(), rows, encoded, next: 0 });
    this.#pendingRows += rows.length;
  }

  #queueProgress(time: bigint): void {
    this.#segments.push({ timestamp: time.toString(), rows: null, encoded: NO_ENCODING, next: 0 });
    this.#pendingRows += 1;
    this.#lastProgress = time;
  }
}

// ---------------------------------------------------------------------------
// SQL: tokens, statements, parser
// ---------------------------------------------------------------------------

type TokenKind = 'word' | 'quoted' | 'string' | 'number' | 'symbol';

interface Token {
  readonly kind: TokenKind;
  /** Words folded to lower case; quoted identifiers and strings unescaped. */
  readonly text: string;
  readonly start: number;
  readonly end: number;
}

interface Statement {
  /** The statement as sent (between semicolons, trimmed). */
  readonly source: string;
  readonly tokens: readonly Token[];
  /** A quote or comment opened in it never closes. */
  readonly unterminated: boolean;
}

const isWordStart = (code: number): boolean =>
  (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || code === 95 || code > 127;
const isWordPart = (code: number): boolean =>
  isWordStart(code) || (code >= 48 && code <= 57) || code === 36;
const isDigit = (code: number): boolean => code >= 48 && code <= 57;

/** Reads a quoted run starting at `start` (the quote); a doubled quote is one quote. Null if unterminated. */
function readQuoted(
  sql: string,
  start: number,
  quote: string,
): { readonly text: string; readonly end: number } | null {
  let text = '';
  let position = start + 1;
  for (;;) {
    const close = sql.indexOf(quote, position);
    if (close < 0) return null;
    text += sql.slice(position, close);
    if (sql[close + 1] === quote) {
      text += quote;
      position = close + 2;
    } else {
      return { text, end: close + 1 };
    }
  }
}

/** Splits a simple query into statements at semicolons outside quotes and comments. */
function splitStatements(sql: string): Statement[] {
  const statements: Statement[] = [];
  let tokens: Token[] = [];
  let segmentStart = 0;
  const finish = (end: number, unterminated: boolean): void => {
    if (tokens.length > 0 || unterminated) {
      statements.push({ source: sql.slice(segmentStart, end).trim(), tokens, unterminated });
    }
    tokens = [];
  };
  let position = 0;
  while (position < sql.length) {
    const code = sql.charCodeAt(position);
    const char = sql[position] ?? '';
    if (code <= 32) {
      position += 1;
    } else if (char === '-' && sql[position + 1] === '-') {
      const newline = sql.indexOf('\n', position);
      position = newline < 0 ? sql.length : newline + 1;
    } else if (char === '/' && sql[position + 1] === '*') {
      const close = sql.indexOf('*/', position + 2);
      if (close < 0) {
        finish(sql.length, true);
        return statements;
      }
      position = close + 2;
    } else if (char === "'" || char === '"') {
      const quoted = readQuoted(sql, position, char);
      if (quoted === null) {
        finish(sql.length, true);
        return statements;
      }
      tokens.push({
        kind: char === "'" ? 'string' : 'quoted',
        text: quoted.text,
        start: position,
        end: quoted.end,
      });
      position = quoted.end;
    } else if (isDigit(code) || (char === '.' && isDigit(sql.charCodeAt(position + 1)))) {
      const match = /^(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?/.exec(sql.slice(position, position + 64));
      const length = match?.[0].length ?? 1;
      tokens.push({
        kind: 'number',
        text: sql.slice(position, position + length),
        start: position,
        end: position + length,
      });
      position += length;
    } else if (isWordStart(code)) {
      let end = position + 1;
      while (end < sql.length && isWordPart(sql.charCodeAt(end))) end += 1;
      tokens.push({
        kind: 'word',
        text: sql.slice(position, end).toLowerCase(),
        start: position,
        end,
      });
      position = end;
    } else if (char === ';') {
      finish(position, false);
      position += 1;
      segmentStart = position;
    } else {
      tokens.push({ kind: 'symbol', text: char, start: position, end: position + 1 });
      position += 1;
    }
  }
  finish(sql.length, false);
  return statements;
}

interface Literal {
  readonly kind: 'string' | 'number' | 'boolean';
  readonly text: string;
}

interface SubscribeRequest {
  readonly object: string;
  /** Selected columns; null for `*` or a bare object. */
  readonly columns: readonly string[] | null;
  readonly filters: readonly { readonly column: string; readonly literal: Literal }[];
  readonly snapshot: boolean;
  readonly progress: boolean;
  readonly asOf: bigint | null;
  readonly asOfAtLeast: boolean;
}

type Command =
  | { readonly kind: 'begin' }
  | { readonly kind: 'commit' }
  | { readonly kind: 'rollback' }
  | { readonly kind: 'declare'; readonly cursor: string; readonly subscribe: SubscribeRequest }
  | {
      readonly kind: 'fetch';
      readonly cursor: string;
      readonly count: number;
      readonly timeoutMs: number | null;
    }
  | { readonly kind: 'close'; readonly cursor: string | null }
  | { readonly kind: 'select-integer'; readonly value: string; readonly column: string }
  | { readonly kind: 'select-backend-pid' }
  | { readonly kind: 'select-cancel-backend'; readonly pid: number }
  | { readonly kind: 'select-mz-version' }
  | { readonly kind: 'set' };

/** Statements the double recognises but does not implement: 0A000 rather than a syntax error. */
const UNSUPPORTED_WORDS = new Set([
  'abort',
  'alter',
  'analyze',
  'copy',
  'create',
  'deallocate',
  'delete',
  'discard',
  'drop',
  'execute',
  'explain',
  'grant',
  'insert',
  'listen',
  'move',
  'notify',
  'prepare',
  'reset',
  'revoke',
  'savepoint',
  'release',
  'show',
  'subscribe',
  'table',
  'truncate',
  'update',
  'values',
  'with',
]);

const INTERVAL_UNITS: Readonly<Record<string, number>> = {
  '': 1000,
  ms: 1,
  msec: 1,
  msecs: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  secs: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hrs: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
};

/** `'0s'`, `'250ms'`, `'2 seconds'`, `'1m'` … → milliseconds; anything else is 22007. */
function parseInterval(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const factor = match === null ? undefined : INTERVAL_UNITS[(match[2] ?? '').toLowerCase()];
  if (match === null || factor === undefined) {
    throw new SqlError('22007', 'invalid input syntax for type interval');
  }
  return Math.round(Number(match[1]) * factor);
}

/** A recursive-descent parser over one statement's tokens. Error messages name only the first word. */
class StatementParser {
  readonly #tokens: readonly Token[];
  readonly #statementWord: string;
  #position = 0;

  constructor(tokens: readonly Token[]) {
    this.#tokens = tokens;
    const first = tokens[0];
    this.#statementWord = first?.kind === 'word' ? first.text.toUpperCase() : 'statement';
  }

  parse(): Command {
    const first = this.#tokens[0];
    if (first?.kind !== 'word') {
      throw new SqlError('42601', 'syntax error at or near the start of the statement');
    }
    this.#position = 1;
    switch (first.text) {
      case 'begin':
        this.#acceptWord('work', 'transaction');
        this.#transactionModes();
        return { kind: 'begin' };
      case 'start':
        this.#expectWord('transaction');
        this.#transactionModes();
        return { kind: 'begin' };
      case 'commit':
      case 'end':
        this.#acceptWord('work', 'transaction');
        this.#expectEnd();
        return { kind: 'commit' };
      case 'rollback':
        this.#acceptWord('work', 'transaction');
        if (this.#isWord('to')) throw this.#unsupported('ROLLBACK TO SAVEPOINT');
        this.#expectEnd();
        return { kind: 'rollback' };
      case 'declare':
        return this.#declare();
      case 'fetch':
        return this.#fetch();
      case 'close': {
        if (this.#acceptWord('all') !== null) {
          this.#expectEnd();
          return { kind: 'close', cursor: null };
        }
        const cursor = this.#identifier('a cursor name');
        this.#expectEnd();
        return { kind: 'close', cursor };
      }
      case 'select':
        return this.#select();
      case 'set':
        this.#acceptWord('session', 'local');
        this.#identifier('a parameter name');
        while (!this.#atEnd()) this.#position += 1; // values are accepted and ignored
        return { kind: 'set' };
      default:
        if (UNSUPPORTED_WORDS.has(first.text)) throw this.#unsupported(this.#statementWord);
        throw new SqlError('42601', `syntax error at or near "${this.#statementWord}"`);
    }
  }

  #declare(): Command {
    const cursor = this.#identifier('a cursor name');
    this.#acceptWord('binary', 'insensitive', 'asensitive');
    if (this.#acceptWord('no') !== null) this.#expectWord('scroll');
    if (this.#isWord('scroll')) throw this.#unsupported('SCROLL cursors');
    this.#expectWord('cursor');
    if (this.#acceptWord('without') !== null) this.#expectWord('hold');
    if (this.#isWord('with')) throw this.#unsupported('WITH HOLD cursors');
    this.#expectWord('for');
    if (this.#acceptWord('subscribe') === null) {
      throw this.#unsupported('cursors other than SUBSCRIBE (DECLARE … CURSOR FOR SUBSCRIBE …)');
    }
    return { kind: 'declare', cursor, subscribe: this.#subscribe() };
  }

  #subscribe(): SubscribeRequest {
    this.#acceptWord('to');
    let object: string;
    let columns: string[] | null = null;
    const filters: { column: string; literal: Literal }[] = [];
    if (this.#acceptSymbol('(')) {
      this.#expectWord('select');
      if (!this.#acceptSymbol('*')) {
        columns = [this.#identifier('a column name')];
        while (this.#acceptSymbol(',')) columns.push(this.#identifier('a column name'));
      }
      this.#expectWord('from');
      object = this.#qualifiedName();
      if (this.#acceptWord('where') !== null) {
        do filters.push(this.#condition());
        while (this.#acceptWord('and') !== null);
      }
      this.#expectSymbol(')');
    } else {
      object = this.#qualifiedName();
    }
    let snapshot = true;
    let progress = false;
    let asOf: bigint | null = null;
    let asOfAtLeast = false;
    while (!this.#atEnd()) {
      if (this.#acceptWord('with') !== null) {
        this.#expectSymbol('(');
        do {
          const option = this.#acceptWord('snapshot', 'progress');
          if (option === null) throw this.#syntax('SNAPSHOT or PROGRESS');
          const value = this.#optionValue();
          if (option === 'snapshot') snapshot = value;
          else progress = value;
        } while (this.#acceptSymbol(','));
        this.#expectSymbol(')');
      } else if (this.#acceptWord('as') !== null) {
        this.#expectWord('of');
        if (this.#acceptWord('at') !== null) {
          this.#expectWord('least');
          asOfAtLeast = true;
        }
        const timestamp = this.#next('a timestamp');
        if (timestamp.kind !== 'number' || !INTEGER_TEXT.test(timestamp.text)) {
          throw this.#unsupported('AS OF other than an integer timestamp');
        }
        asOf = BigInt(timestamp.text);
      } else if (this.#isWord('envelope') || this.#isWord('within') || this.#isWord('up')) {
        throw this.#unsupported('ENVELOPE, WITHIN TIMESTAMP ORDER BY and UP TO');
      } else {
        throw this.#syntax('WITH (…) or AS OF');
      }
    }
    return { object, columns, filters, snapshot, progress, asOf, asOfAtLeast };
  }

  /** `SNAPSHOT`, `SNAPSHOT = false`, `PROGRESS true`, `PROGRESS = 'true'`. */
  #optionValue(): boolean {
    const hasEquals = this.#acceptSymbol('=');
    const token = this.#tokens[this.#position];
    if (token === undefined || (token.kind === 'symbol' && !hasEquals)) return true;
    this.#position += 1;
    const text = token.text.toLowerCase();
    if ((token.kind === 'word' || token.kind === 'string') && BOOL_TEXT[text] !== undefined) {
      return BOOL_TEXT[text] === 't';
    }
    throw this.#syntax('true or false');
  }

  #condition(): { column: string; literal: Literal } {
    const column = this.#identifier('a column name');
    if (this.#isWord('is')) throw this.#unsupported('IS [NOT] NULL');
    this.#expectSymbol('=');
    const negative = this.#acceptSymbol('-');
    const token = this.#next('a literal');
    if (token.kind === 'number') {
      return {
        column,
        literal: { kind: 'number', text: negative ? `-${token.text}` : token.text },
      };
    }
    if (negative) throw this.#syntax('a number');
    if (token.kind === 'string') return { column, literal: { kind: 'string', text: token.text } };
    if (token.kind === 'word' && (token.text === 'true' || token.text === 'false')) {
      return { column, literal: { kind: 'boolean', text: token.text } };
    }
    if (token.kind === 'word' && token.text === 'null') throw this.#unsupported('NULL comparisons');
    throw this.#syntax('a literal');
  }

  #fetch(): Command {
    this.#acceptWord('forward');
    let count = 1;
    const token = this.#tokens[this.#position];
    const after = this.#tokens[this.#position + 1];
    if (token?.kind === 'number') {
      if (!INTEGER_TEXT.test(token.text)) throw this.#syntax('an integer count');
      count = Number(token.text);
      this.#position += 1;
    } else if (token?.kind === 'word' && token.text === 'all' && after !== undefined) {
      count = Number.POSITIVE_INFINITY;
      this.#position += 1;
    } else if (token?.kind === 'word' && token.text === 'next' && after !== undefined) {
      this.#position += 1;
    }
    this.#acceptWord('from', 'in');
    const cursor = this.#identifier('a cursor name');
    let timeoutMs: number | null = null;
    if (this.#acceptWord('with') !== null) {
      this.#expectSymbol('(');
      this.#expectWord('timeout');
      this.#acceptSymbol('=');
      const value = this.#next('an interval');
      if (value.kind !== 'string') throw this.#syntax("an interval such as '1s'");
      timeoutMs = parseInterval(value.text);
      this.#expectSymbol(')');
    }
    this.#expectEnd();
    return { kind: 'fetch', cursor, count, timeoutMs };
  }

  #select(): Command {
    const negative = this.#acceptSymbol('-');
    const token = this.#next('a select list');
    if (token.kind === 'number' && INTEGER_TEXT.test(token.text)) {
      let column = '?column?';
      if (this.#acceptWord('as') !== null) column = this.#identifier('a column alias');
      this.#expectEnd();
      return {
        kind: 'select-integer',
        value: BigInt(`${negative ? '-' : ''}${token.text}`).toString(),
        column,
      };
    }
    if (!negative && token.kind === 'word') {
      if (token.text === 'pg_backend_pid' || token.text === 'mz_version') {
        this.#expectSymbol('(');
        this.#expectSymbol(')');
        this.#expectEnd();
        return token.text === 'mz_version'
          ? { kind: 'select-mz-version' }
          : { kind: 'select-backend-pid' };
      }
      if (token.text === 'pg_cancel_backend') {
        this.#expectSymbol('(');
        const pid = this.#next('a pid');
        if (pid.kind !== 'number' || !INTEGER_TEXT.test(pid.text)) throw this.#syntax('a pid');
        this.#expectSymbol(')');
        this.#expectEnd();
        return { kind: 'select-cancel-backend', pid: Number(pid.text) };
      }
    }
    throw this.#unsupported(
      'SELECT other than SELECT <integer>, pg_backend_pid(), pg_cancel_backend(<pid>), mz_version()',
    );
  }

  #transactionModes(): void {
    // ISOLATION LEVEL …, READ ONLY / WRITE, [NOT] DEFERRABLE: accepted, no effect.
    while (!this.#atEnd()) {
      const token = this.#next('a transaction mode');
      if (token.kind !== 'word' && token.text !== ',') throw this.#syntax('a transaction mode');
    }
  }

  #qualifiedName(): string {
    let name = this.#identifier('an object name');
    for (let parts = 1; parts < 3 && this.#acceptSymbol('.'); parts += 1)
      name = this.#identifier('an object name');
    return name;
  }

  #identifier(what: string): string {
    const token = this.#tokens[this.#position];
    if (token === undefined || (token.kind !== 'word' && token.kind !== 'quoted'))
      throw this.#syntax(what);
    this.#position += 1;
    return token.text;
  }

  #next(what: string): Token {
    const token = this.#tokens[this.#position];
    if (token === undefined) throw this.#syntax(what);
    this.#position += 1;
    return token;
  }

  #atEnd(): boolean {
    return this.#position >= this.#tokens.length;
  }

  #isWord(word: string): boolean {
    const token = this.#tokens[this.#position];
    return token?.kind === 'word' && token.text === word;
  }

  #acceptWord(...words: string[]): string | null {
    const token = this.#tokens[this.#position];
    if (token?.kind !== 'word' || !words.includes(token.text)) return null;
    this.#position += 1;
    return token.text;
  }

  #expectWord(word: string): void {
    if (this.#acceptWord(word) === null) throw this.#syntax(word.toUpperCase());
  }

  #acceptSymbol(symbol: string): boolean {
    const token = this.#tokens[this.#position];
    if (token?.kind !== 'symbol' || token.text !== symbol) return false;
    this.#position += 1;
    return true;
  }

  #expectSymbol(symbol: string): void {
    if (!this.#acceptSymbol(symbol)) throw this.#syntax(`"${symbol}"`);
  }

  #expectEnd(): void {
    if (!this.#atEnd()) throw this.#syntax('the end of the statement');
  }

  #syntax(expected: string): SqlError {
    return new SqlError('42601', `syntax error in ${this.#statementWord}: expected ${expected}`);
  }

  #unsupported(what: string): SqlError {
    return new SqlError('0A000', `the Materialize double does not support ${what}`);
  }
}

// ---------------------------------------------------------------------------
// Backend messages
// ---------------------------------------------------------------------------

interface FieldDescription {
  readonly name: string;
  readonly type: DoubleColumnType;
}

/** RowDescription for text-format columns of the given types. */
function encodeRowDescription(fields: readonly FieldDescription[]): Buffer {
  let length = 4 + 2;
  for (const field of fields) length += Buffer.byteLength(field.name) + 1 + 18;
  const message = Buffer.allocUnsafe(1 + length);
  message[0] = 0x54; // 'T'
  message.writeInt32BE(length, 1);
  message.writeInt16BE(fields.length, 5);
  let offset = 7;
  for (const field of fields) {
    offset += message.write(field.name, offset, 'utf8');
    message[offset] = 0;
    const info = TYPE_INFO[field.type];
    message.writeInt32BE(0, offset + 1); // table OID
    message.writeInt16BE(0, offset + 5); // column attribute number
    message.writeInt32BE(info.oid, offset + 7);
    message.writeInt16BE(info.size, offset + 11);
    message.writeInt32BE(-1, offset + 13); // type modifier
    message.writeInt16BE(0, offset + 17); // text format
    offset += 19;
  }
  return message;
}

/**
 * Builds backend messages straight into a large slab and hands finished parts to
 * the socket without copying (the slab is never rewritten after a hand-over).
 */
class WireWriter {
  readonly #socket: Socket;
  #slab: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  /** First byte not yet handed to the socket. */
  #start = 0;
  #offset = 0;

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  /** Bytes built but not handed to the socket yet. */
  get buffered(): number {
    return this.#offset - this.#start;
  }

  /** Hands everything built to the socket; false when the socket asks the writer to wait for 'drain'. */
  flush(): boolean {
    if (this.#offset > this.#start && !this.#socket.destroyed) {
      this.#socket.write(this.#slab.subarray(this.#start, this.#offset));
    }
    this.#start = this.#offset;
    return !this.#socket.writableNeedDrain;
  }

  /** Resolves when the socket has drained or closed. */
  drained(): Promise<void> {
    const socket = this.#socket;
    if (!socket.writableNeedDrain || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  /** The socket holds more than its high-water mark: wait for 'drain' before sending more. */
  get needsDrain(): boolean {
    return this.#socket.writableNeedDrain;
  }

  /** Hands `bytes` to the socket as they are (zero-copy), after what was built before them. */
  bytes(bytes: Buffer): void {
    this.flush();
    if (!this.#socket.destroyed) this.#socket.write(bytes);
  }

  /** Copies `bytes` into the message being built (small, reused messages such as RowDescription). */
  raw(bytes: Buffer): void {
    this.#reserve(bytes.length);
    this.#offset += bytes.copy(this.#slab, this.#offset);
  }

  authentication(code: number): void {
    this.#header(0x52, 8);
    this.#int32(code);
  }

  parameterStatus(name: string, value: string): void {
    this.#header(0x53, 4 + Buffer.byteLength(name) + 1 + Buffer.byteLength(value) + 1);
    this.#cstring(name);
    this.#cstring(value);
  }

  backendKeyData(pid: number, secret: number): void {
    this.#header(0x4b, 12);
    this.#int32(pid);
    this.#int32(secret);
  }

  readyForQuery(status: 'I' | 'T' | 'E'): void {
    this.#header(0x5a, 5);
    this.#slab[this.#offset++] = status.charCodeAt(0);
  }

  commandComplete(tag: string): void {
    this.#header(0x43, 4 + Buffer.byteLength(tag) + 1);
    this.#cstring(tag);
  }

  emptyQuery(): void {
    this.#header(0x49, 4);
  }

  error(severity: 'ERROR' | 'FATAL', code: string, message: string): void {
    const fields: [number, string][] = [
      [0x53, severity], // S
      [0x56, severity], // V
      [0x43, code], // C
      [0x4d, message], // M
    ];
    let length = 4 + 1;
    for (const [, value] of fields) length += 1 + Buffer.byteLength(value) + 1;
    this.#header(0x45, length);
    for (const [field, value] of fields) {
      this.#slab[this.#offset++] = field;
      this.#cstring(value);
    }
    this.#slab[this.#offset++] = 0;
  }

  /** A DataRow of text cells (small results: SELECT 1 and friends). */
  dataRow(cells: readonly Cell[]): void {
    let bound = 4 + 2;
    for (const cell of cells) bound += 4 + (cell === null ? 0 : cell.length * 3);
    this.#reserve(1 + bound);
    const start = this.#offset;
    this.#slab[start] = 0x44;
    this.#offset = start + 5;
    this.#int16(cells.length);
    for (const cell of cells) this.#cell(cell);
    this.#slab.writeInt32BE(this.#offset - start - 1, start + 1);
  }

  /** A PROGRESS row: mz_timestamp, mz_progressed = t, then NULL for mz_diff and every view column. */
  progressRow(timestamp: string, columnCount: number): void {
    this.#reserve(1 + 4 + 2 + 4 + timestamp.length * 3 + 5 + (columnCount - 2) * 4);
    const start = this.#offset;
    this.#slab[start] = 0x44;
    this.#offset = start + 5;
    this.#int16(columnCount);
    this.#cell(timestamp);
    this.#cell('t');
    for (let index = 2; index < columnCount; index += 1) this.#int32(-1);
    this.#slab.writeInt32BE(this.#offset - start - 1, start + 1);
  }

  /** Starts a message whose total length (type byte excluded) is `length`. */
  #header(type: number, length: number): void {
    this.#reserve(1 + length);
    this.#slab[this.#offset] = type;
    this.#slab.writeInt32BE(length, this.#offset + 1);
    this.#offset += 5;
  }

  #reserve(bytes: number): void {
    if (this.#offset + bytes <= this.#slab.length) return;
    this.flush();
    this.#slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, bytes));
    this.#start = 0;
    this.#offset = 0;
  }

  #int16(value: number): void {
    this.#slab.writeInt16BE(value, this.#offset);
    this.#offset += 2;
  }

  #int32(value: number): void {
    this.#slab.writeInt32BE(value, this.#offset);
    this.#offset += 4;
  }

  #cstring(value: string): void {
    this.#offset += this.#slab.write(value, this.#offset, 'utf8');
    this.#slab[this.#offset++] = 0;
  }

  #cell(value: Cell): void {
    this.#offset = writeCell(this.#slab, this.#offset, value);
  }
}

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

/** What a session needs from the double. */
interface SessionHost {
  readonly upper: bigint;
  readonly stalled: boolean;
  readonly user: string;
  readonly password: string | undefined;
  allocatePid(): number;
  sessionReady(session: Session): void;
  sessionClosed(session: Session): void;
  cancelRequest(socket: Session, pid: number, secret: number): void;
  cancelBackend(pid: number): boolean;
  recordStatement(source: string): void;
  planSubscription(request: SubscribeRequest): SubscriptionPlan;
}

type InboxEntry =
  | { readonly kind: 'startup'; readonly user: string }
  | { readonly kind: 'frame'; readonly data: Buffer };

type WaitOutcome = 'ready' | 'timeout' | 'cancelled' | 'closed';

/** The socket closed while a statement ran: stop without answering. */
class SessionClosed extends Error {}

/** One client connection: pg-gateway parses startup; every later message is handled here, in order. */
class Session {
  readonly socket: Socket;
  readonly secret: number = randomInt(1, 0x7fffffff);
  readonly #host: SessionHost;
  readonly #writer: WireWriter;
  readonly #inbox: InboxEntry[] = [];
  #pid = 0;
  #phase: 'startup' | 'password' | 'ready' | 'cancel' | 'closed' = 'startup';
  #user = '';
  #processing = false;
  #corked = false;
  #inTransaction = false;
  #failed = false;
  #declaredInTransaction = false;
  #cursor: { readonly name: string; readonly subscription: Subscription } | null = null;
  #waiter: { readonly finish: (outcome: WaitOutcome) => void } | null = null;
  /** An extended-protocol error was sent: messages are skipped until Sync. */
  #skipUntilSync = false;
  /** The start of a message whose rest has not arrived yet. */
  #partialInput: Buffer | null = null;

  constructor(host: SessionHost, socket: Socket) {
    this.#host = host;
    this.socket = socket;
    this.#writer = new WireWriter(socket);
    socket.setNoDelay(true); // small answers (ReadyForQuery) must not wait for Nagle
    socket.on('error', () => {
      // ECONNRESET and friends: 'close' follows and cleans up.
    });
    socket.on('close', () => this.#dispose());
    if (host.stalled) this.setStalled(true);
    const gateway: PostgresConnection = new PostgresConnection(socket, {
      authMode: 'none',
      onMessage: (data, state) => this.#onGatewayMessage(data, state),
      onStartup: (state) => {
        // The double takes over after the startup packet: pg-gateway 0.2.4 would send
        // ReadyForQuery before any hook could add BackendKeyData, and it mis-frames every
        // message after the first in a TCP chunk (subarray(start, length)).
        gateway.detach();
        socket.on('data', (chunk: Buffer) => this.#onData(chunk));
        this.#receive({ kind: 'startup', user: state.clientInfo?.parameters.user ?? '' });
        return true;
      },
    });
  }

  get pid(): number {
    return this.#pid;
  }

  get isCancelConnection(): boolean {
    return this.#phase === 'cancel';
  }

  describe(): DoubleSession {
    return {
      pid: this.#pid,
      inTransaction: this.#inTransaction,
      failed: this.#failed,
      cursor: this.#cursor?.name ?? null,
      fetching: this.#waiter !== null,
      pendingRows: this.#cursor?.subscription.pendingRows ?? 0,
    };
  }

  /** Ends a waiting FETCH with 57014; false when no FETCH is waiting. */
  cancelFetch(): boolean {
    if (this.#waiter === null) return false;
    this.#waiter.finish('cancelled');
    return true;
  }

  /** Stalled: nothing is read or answered (writes are corked), until resumed. */
  setStalled(on: boolean): void {
    if (on) {
      this.socket.pause();
      if (!this.#corked) this.socket.cork();
      this.#corked = true;
    } else {
      if (this.#corked) this.socket.uncork();
      this.#corked = false;
      this.socket.resume();
      this.#pump();
    }
  }

  /** Messages pg-gateway frames: the first packet (startup, SSLRequest or CancelRequest) only. */
  #onGatewayMessage(data: Uint8Array, state: State): boolean {
    if (state.hasStarted) return true; // after startup the double frames messages itself
    const frame = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (frame.length === 16 && frame.readInt32BE(4) === CANCEL_REQUEST_CODE) {
      // pg-gateway 0.2.4 would parse it as a startup message and answer "user is required".
      this.#phase = 'cancel';
      this.#host.cancelRequest(this, frame.readInt32BE(8), frame.readInt32BE(12));
      this.socket.end(); // PostgreSQL closes a cancel connection without a word
      return true;
    }
    return false; // SSLRequest ('N') and the startup packet: pg-gateway's
  }

  /** Frames type-byte + int32-length messages from the socket, across and within chunks. */
  #onData(chunk: Buffer): void {
    const input = this.#partialInput === null ? chunk : Buffer.concat([this.#partialInput, chunk]);
    this.#partialInput = null;
    let offset = 0;
    while (input.length - offset >= 5) {
      const length = input.readInt32BE(offset + 1);
      if (length < 4) {
        this.#fatal('08P01', 'invalid message length');
        return;
      }
      const end = offset + 1 + length;
      if (end > input.length) break;
      this.#receive({ kind: 'frame', data: input.subarray(offset, end) }); // chunks are never reused
      offset = end;
    }
    if (offset < input.length) this.#partialInput = input.subarray(offset);
  }

  #receive(entry: InboxEntry): void {
    if (this.#phase === 'closed') return;
    this.#inbox.push(entry);
    this.#pump();
  }

  /** Handles queued messages one at a time (a FETCH may wait); nothing while stalled. */
  #pump(): void {
    if (this.#processing || this.#host.stalled || this.#phase === 'closed') return;
    const entry = this.#inbox.shift();
    if (entry === undefined) return;
    this.#processing = true;
    void this.#handle(entry)
      .catch((error: unknown) => {
        if (error instanceof SessionClosed || this.#phase === 'closed') return;
        // A bug in the double: tell the client, close the connection, keep serving others.
        const message = error instanceof Error ? error.message : String(error);
        this.#writer.error('FATAL', 'XX000', `materialize double internal error: ${message}`);
        this.#writer.flush();
        this.socket.destroySoon();
      })
      .finally(() => {
        this.#processing = false;
        this.#pump();
      });
  }

  async #handle(entry: InboxEntry): Promise<void> {
    if (entry.kind === 'startup') {
      this.#user = entry.user;
      if (this.#host.password === undefined) {
        this.#completeStartup();
      } else {
        this.#phase = 'password';
        this.#writer.authentication(3); // AuthenticationCleartextPassword
        this.#writer.flush();
      }
      return;
    }
    const { data } = entry;
    const type = data[0];
    if (this.#phase === 'password') {
      if (type !== 0x70) return this.#fatal('08P01', 'expected a password message');
      const end = data.indexOf(0, 5);
      const password = data.toString('utf8', 5, end < 0 ? data.length : end);
      if (this.#user !== this.#host.user || password !== this.#host.password) {
        return this.#fatal('28P01', `password authentication failed for user "${this.#user}"`);
      }
      this.#completeStartup();
      return;
    }
    if (this.#phase !== 'ready') return;
    switch (type) {
      case 0x51: {
        // Query
        const end = data.indexOf(0, 5);
        await this.#simpleQuery(data.toString('utf8', 5, end < 0 ? data.length : end));
        return;
      }
      case 0x58: // Terminate
        this.socket.end();
        return;
      case 0x50: // Parse
      case 0x42: // Bind
      case 0x44: // Describe
      case 0x45: // Execute
      case 0x43: // Close
      case 0x48: // Flush
        if (this.#skipUntilSync) return;
        this.#skipUntilSync = true;
        this.#sendError(
          new SqlError('0A000', 'the Materialize double supports the simple query protocol only'),
        );
        this.#writer.flush();
        return;
      case 0x53: // Sync
        this.#skipUntilSync = false;
        this.#writer.readyForQuery(this.#transactionStatus());
        this.#writer.flush();
        return;
      case 0x46: // FunctionCall: no Sync follows
        this.#sendError(
          new SqlError('0A000', 'the Materialize double supports the simple query protocol only'),
        );
        this.#writer.readyForQuery(this.#transactionStatus());
        this.#writer.flush();
        return;
      case 0x64: // CopyData
      case 0x63: // CopyDone
      case 0x66: // CopyFail
        return;
      default:
        this.#fatal('08P01', `invalid frontend message type ${type ?? 'none'}`);
    }
  }

  #completeStartup(): void {
    this.#pid = this.#host.allocatePid();
    this.#phase = 'ready';
    const writer = this.#writer;
    writer.authentication(0); // AuthenticationOk
    const parameters: [string, string][] = [
      ['server_version', SERVER_VERSION],
      ['mz_version', MZ_VERSION],
      ['server_encoding', 'UTF8'],
      ['client_encoding', 'UTF8'],
      ['standard_conforming_strings', 'on'],
      ['DateStyle', 'ISO, MDY'],
      ['TimeZone', 'UTC'],
      ['IntervalStyle', 'postgres'],
      ['integer_datetimes', 'on'],
      ['is_superuser', 'off'],
    ];
    for (const [name, value] of parameters) writer.parameterStatus(name, value);
    writer.backendKeyData(this.#pid, this.secret);
    writer.readyForQuery('I');
    writer.flush();
    this.#host.sessionReady(this);
  }

  #fatal(code: string, message: string): void {
    this.#writer.error('FATAL', code, message);
    this.#writer.flush();
    this.socket.end();
  }

  #transactionStatus(): 'I' | 'T' | 'E' {
    if (!this.#inTransaction) return 'I';
    return this.#failed ? 'E' : 'T';
  }

  #sendError(error: SqlError): void {
    this.#writer.error('ERROR', error.code, error.message);
    if (this.#inTransaction) this.#failed = true;
  }

  async #simpleQuery(sql: string): Promise<void> {
    const statements = splitStatements(sql);
    for (const statement of statements) this.#host.recordStatement(statement.source);
    if (statements.length === 0) this.#writer.emptyQuery();
    for (const statement of statements) {
      try {
        await this.#execute(statement);
      } catch (error) {
        if (!(error instanceof SqlError)) throw error;
        this.#sendError(error);
        break; // the rest of the message is skipped
      }
    }
    this.#writer.readyForQuery(this.#transactionStatus());
    this.#writer.flush();
  }

  async #execute(statement: Statement): Promise<void> {
    if (statement.unterminated)
      throw new SqlError('42601', 'unterminated quoted string or comment');
    const command = new StatementParser(statement.tokens).parse();
    if (this.#failed && command.kind !== 'commit' && command.kind !== 'rollback') {
      throw new SqlError(
        '25P02',
        'current transaction is aborted, commands ignored until end of transaction block',
      );
    }
    const writer = this.#writer;
    switch (command.kind) {
      case 'begin':
        if (!this.#inTransaction) {
          this.#inTransaction = true;
          this.#failed = false;
          this.#declaredInTransaction = false;
        }
        writer.commandComplete('BEGIN');
        return;
      case 'commit': {
        const tag = this.#failed ? 'ROLLBACK' : 'COMMIT';
        this.#endTransaction();
        writer.commandComplete(tag);
        return;
      }
      case 'rollback':
        this.#endTransaction();
        writer.commandComplete('ROLLBACK');
        return;
      case 'declare': {
        const plan = this.#host.planSubscription(command.subscribe);
        if (!this.#inTransaction) {
          throw new SqlError('25P01', 'DECLARE CURSOR can only be used in transaction blocks');
        }
        if (this.#declaredInTransaction) {
          throw new SqlError('25000', 'SUBSCRIBE in transactions must be the only read statement');
        }
        this.#declaredInTransaction = true;
        this.#cursor = {
          name: command.cursor,
          subscription: new Subscription(plan, this.#host.upper),
        };
        writer.commandComplete('DECLARE CURSOR');
        return;
      }
      case 'fetch':
        await this.#fetch(command.cursor, command.count, command.timeoutMs);
        return;
      case 'close':
        if (command.cursor !== null && this.#cursor?.name !== command.cursor) {
          throw new SqlError('34000', `cursor "${command.cursor}" does not exist`);
        }
        this.#closeCursor();
        writer.commandComplete(command.cursor === null ? 'CLOSE CURSOR ALL' : 'CLOSE CURSOR');
        return;
      case 'select-integer': {
        const int4 = BigInt(command.value) >= -2147483648n && BigInt(command.value) <= 2147483647n;
        this.#singleRow(command.column, int4 ? 'int4' : 'int8', command.value);
        return;
      }
      case 'select-backend-pid':
        this.#singleRow('pg_backend_pid', 'int4', String(this.#pid));
        return;
      case 'select-cancel-backend':
        this.#singleRow(
          'pg_cancel_backend',
          'bool',
          this.#host.cancelBackend(command.pid) ? 't' : 'f',
        );
        return;
      case 'select-mz-version':
        this.#singleRow('mz_version', 'text', MZ_VERSION);
        return;
      case 'set':
        writer.commandComplete('SET');
        return;
    }
  }

  #singleRow(column: string, type: DoubleColumnType, value: string): void {
    this.#writer.raw(encodeRowDescription([{ name: column, type }]));
    this.#writer.dataRow([value]);
    this.#writer.commandComplete('SELECT 1');
  }

  async #fetch(cursorName: string, count: number, timeoutMs: number | null): Promise<void> {
    const cursor = this.#cursor;
    if (cursor === null || cursor.name !== cursorName) {
      throw new SqlError('34000', `cursor "${cursorName}" does not exist`);
    }
    const { subscription } = cursor;
    if (subscription.pendingRows === 0 && !subscription.dropped && count > 0 && timeoutMs !== 0) {
      const outcome = await this.#waitForRows(subscription, timeoutMs);
      if (outcome === 'closed' || this.#phase === 'closed') throw new SessionClosed();
      if (outcome === 'cancelled')
        throw new SqlError('57014', 'canceling statement due to user request');
    }
    if (subscription.pendingRows === 0 && subscription.dropped) {
      throw new SqlError(
        'XX000',
        `SUBSCRIBE has been terminated because underlying relation "${subscription.plan.view.name}" was dropped`,
      );
    }
    const writer = this.#writer;
    writer.raw(subscription.plan.rowDescription);
    // Rows queued now are this FETCH's; later ones wait for the next.
    const limit = Math.min(count, subscription.pendingRows);
    let sent = 0;
    const socket = this.socket;
    socket.cork(); // one writev for the whole answer, not a syscall per piece
    try {
      while (sent < limit) {
        sent += subscription.sendRows(writer, limit - sent);
        if (writer.needsDrain) {
          writer.flush();
          socket.uncork();
          await writer.drained();
          socket.cork();
          if (this.#phase === 'closed') throw new SessionClosed();
        }
      }
      writer.commandComplete(`FETCH ${sent}`);
      writer.flush();
    } finally {
      socket.uncork();
    }
  }

  #waitForRows(subscription: Subscription, timeoutMs: number | null): Promise<WaitOutcome> {
    this.#writer.flush(); // earlier statements' answers go out before the wait
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter = {
        finish: (outcome: WaitOutcome): void => {
          if (this.#waiter !== waiter) return;
          this.#waiter = null;
          if (timer !== undefined) clearTimeout(timer);
          subscription.onReady(null);
          resolve(outcome);
        },
      };
      this.#waiter = waiter;
      subscription.onReady(() => waiter.finish('ready'));
      if (timeoutMs !== null) timer = setTimeout(() => waiter.finish('timeout'), timeoutMs);
    });
  }

  #closeCursor(): void {
    this.#cursor?.subscription.close();
    this.#cursor = null;
  }

  #endTransaction(): void {
    this.#closeCursor(); // cursors without HOLD end with their transaction
    this.#inTransaction = false;
    this.#failed = false;
    this.#declaredInTransaction = false;
  }

  #dispose(): void {
    if (this.#phase === 'closed') return;
    const wasCancel = this.#phase === 'cancel';
    this.#phase = 'closed';
    this.#inbox.length = 0;
    this.#waiter?.finish('closed');
    this.#closeCursor();
    if (!wasCancel) this.#host.sessionClosed(this);
  }
}

// ---------------------------------------------------------------------------
// The double
// ---------------------------------------------------------------------------

class WireDouble implements MaterializeDouble, SessionHost {
  readonly host: string;
  readonly user: string;
  readonly password: string | undefined;
  readonly #database: string;
  readonly #initialTimestamp: bigint;
  readonly #tickMs: number | undefined;
  readonly #requestedPort: number;
  readonly #views = new Map<string, ViewState>();
  /** Every open socket (sessions before authentication and cancel connections included). */
  readonly #connections = new Set<Session>();
  /** Authenticated sessions by pid. */
  readonly #sessions = new Map<number, Session>();
  readonly #statementLog: string[] = [];
  #statementListener: ((statement: string) => void) | null = null;
  #server: Server | null = null;
  #port = 0;
  #upper: bigint;
  #stalled = false;
  #tick: NodeJS.Timeout | null = null;
  #nextPid = 1000 + randomInt(0, 20_000);
  #connectionsOpened = 0;
  #connectionsOpen = 0;
  #cancelRequests = 0;
  #statements = 0;

  constructor(options: MaterializeDoubleOptions) {
    this.host = options.host ?? '127.0.0.1';
    this.user = options.user ?? 'materialize';
    this.password = options.password;
    this.#database = options.database ?? 'materialize';
    this.#initialTimestamp = options.initialTimestamp ?? DEFAULT_INITIAL_TIMESTAMP;
    this.#tickMs = options.tickMs;
    this.#requestedPort = options.port ?? 0;
    this.#upper = this.#initialTimestamp + 1n;
    if (this.#tickMs !== undefined && !(this.#tickMs > 0))
      throw new RangeError('materialize double: tickMs must be > 0');
  }

  get url(): string {
    const credentials =
      encodeURIComponent(this.user) +
      (this.password === undefined ? '' : `:${encodeURIComponent(this.password)}`);
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `postgres://${credentials}@${host}:${this.#port}/${encodeURIComponent(this.#database)}`;
  }

  get port(): number {
    return this.#port;
  }

  get upper(): bigint {
    return this.#upper;
  }

  get stalled(): boolean {
    return this.#stalled;
  }

  get stats(): DoubleStats {
    return {
      connectionsOpened: this.#connectionsOpened,
      connectionsOpen: this.#connectionsOpen,
      cancelRequests: this.#cancelRequests,
      statements: this.#statements,
    };
  }

  async listen(): Promise<void> {
    const server = createServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port === 0 ? this.#requestedPort : this.#port, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => {
      // Accept errors (EMFILE…) must not crash the test process; clients see them.
    });
    const address = server.address();
    if (address !== null && typeof address === 'object') this.#port = address.port;
    this.#server = server;
    if (this.#tickMs !== undefined) {
      this.#tick = setInterval(() => this.advance(1n), this.#tickMs);
      this.#tick.unref(); // a live clock must not keep the process alive on its own
    }
  }

  // --- control API ---

  defineView(
    name: string,
    columns: readonly DoubleColumn[],
    initialRows: readonly DoubleRow[] = [],
  ): void {
    if (this.#views.has(name))
      throw new Error(`materialize double: view "${name}" is already defined`);
    if (columns.length === 0)
      throw new Error(`materialize double: view "${name}" needs at least one column`);
    const names = new Set<string>();
    for (const column of columns) {
      if (names.has(column.name))
        throw new Error(`materialize double: duplicate column "${column.name}"`);
      if (!(column.type in TYPE_INFO))
        throw new Error(`materialize double: unknown column type "${String(column.type)}"`);
      names.add(column.name);
    }
    const view = new ViewState(name, columns);
    view.writeClosed(
      this.#initialTimestamp,
      view.encodeDiffs(initialRows.map((row) => ({ row, diff: 1 }))),
    );
    this.#views.set(name, view);
  }

  dropView(name: string): void {
    this.#view(name).drop();
    this.#views.delete(name);
  }

  apply(view: string, diffs: readonly DoubleDiff[]): bigint {
    const state = this.#view(view);
    state.stage(state.encodeDiffs(diffs)); // encoded first: a bad value stages nothing
    return this.#upper;
  }

  advance(by = 1n): bigint {
    if (by < 1n) throw new RangeError('materialize double: advance(by) needs by >= 1n');
    const closing = this.#upper;
    for (const view of this.#views.values()) view.closeTimestamp(closing);
    this.#upper = closing + by;
    for (const view of this.#views.values()) {
      for (const subscription of view.subscriptions) subscription.catchUp(this.#upper);
    }
    return this.#upper;
  }

  commit(view: string, diffs: readonly DoubleDiff[]): bigint {
    const written = this.apply(view, diffs);
    this.advance();
    return written;
  }

  insert(view: string, rows: readonly DoubleRow[]): bigint {
    return this.commit(
      view,
      rows.map((row) => ({ row, diff: 1 })),
    );
  }

  remove(view: string, rows: readonly DoubleRow[]): bigint {
    return this.commit(
      view,
      rows.map((row) => ({ row, diff: -1 })),
    );
  }

  compact(view: string, since: bigint): void {
    if (since > this.#upper)
      throw new RangeError(`materialize double: cannot compact past upper ${this.#upper}`);
    this.#view(view).compact(since);
  }

  sessions(): readonly DoubleSession[] {
    return [...this.#sessions.values()]
      .map((session) => session.describe())
      .sort((a, b) => a.pid - b.pid);
  }

  statementLog(): readonly string[] {
    return [...this.#statementLog];
  }

  dropConnections(): void {
    for (const connection of this.#connections) connection.socket.destroy();
  }

  stall(on: boolean): void {
    if (on === this.#stalled) return;
    this.#stalled = on;
    for (const connection of this.#connections) connection.setStalled(on);
  }

  async stop(): Promise<void> {
    if (this.#tick !== null) clearInterval(this.#tick);
    this.#tick = null;
    const server = this.#server;
    this.#server = null;
    if (server === null) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const connection of this.#connections) connection.socket.destroy();
    await closed;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.listen();
  }

  // --- SessionHost ---

  allocatePid(): number {
    this.#nextPid += 1;
    return this.#nextPid;
  }

  sessionReady(session: Session): void {
    this.#sessions.set(session.pid, session);
  }

  sessionClosed(session: Session): void {
    this.#connections.delete(session);
    if (session.pid !== 0) this.#sessions.delete(session.pid);
    this.#connectionsOpen -= 1;
  }

  cancelRequest(session: Session, pid: number, secret: number): void {
    // A cancel connection is not a client connection: move it to its own counter.
    this.#connections.delete(session);
    this.#connectionsOpened -= 1;
    this.#connectionsOpen -= 1;
    this.#cancelRequests += 1;
    const target = this.#sessions.get(pid);
    if (target !== undefined && target.secret === secret) target.cancelFetch();
  }

  cancelBackend(pid: number): boolean {
    this.#cancelRequests += 1;
    const target = this.#sessions.get(pid);
    target?.cancelFetch();
    return target !== undefined;
  }

  recordStatement(source: string): void {
    this.#statements += 1;
    this.#statementLog.push(source);
    if (this.#statementLog.length > STATEMENT_LOG_SIZE) this.#statementLog.shift();
    this.#statementListener?.(source);
  }

  onStatement(listener: ((statement: string) => void) | null): void {
    this.#statementListener = listener;
  }

  planSubscription(request: SubscribeRequest): SubscriptionPlan {
    const view = this.#views.get(request.object);
    if (view === undefined) throw new SqlError('42P01', `unknown catalog item '${request.object}'`);
    const position = (column: string): number => {
      const found = view.columnPosition(column);
      if (found === undefined) throw new SqlError('42703', `column "${column}" does not exist`);
      return found;
    };
    const columnIndexes = request.columns === null ? null : request.columns.map(position);
    const filters = request.filters.map(({ column, literal }) => {
      const index = position(column);
      return { index, text: filterText(view.columns[index]?.type ?? 'text', literal) };
    });
    let asOf = request.asOf ?? (this.#upper - 1n > view.since ? this.#upper - 1n : view.since);
    if (request.asOfAtLeast && asOf < view.since) asOf = view.since;
    if (asOf < view.since) {
      throw new SqlError(
        'XX000',
        `Timestamp (${asOf}) is not valid for all inputs: [${view.since}]`,
      );
    }
    const selected =
      columnIndexes === null
        ? view.columns
        : columnIndexes.map((index) => view.columns[index] as DoubleColumn);
    const outputColumns: DoubleColumn[] = [
      { name: 'mz_timestamp', type: 'numeric' },
      ...(request.progress ? [{ name: 'mz_progressed', type: 'bool' as const }] : []),
      { name: 'mz_diff', type: 'int8' },
      ...selected,
    ];
    return {
      view,
      shape: { columnIndexes, filters },
      asOf,
      snapshot: request.snapshot,
      progress: request.progress,
      outputColumns,
      rowDescription: encodeRowDescription(outputColumns),
    };
  }

  // --- internals ---

  #view(name: string): ViewState {
    const view = this.#views.get(name);
    if (view === undefined) throw new Error(`materialize double: no view "${name}"`);
    return view;
  }

  #accept(socket: Socket): void {
    this.#connectionsOpened += 1;
    this.#connectionsOpen += 1;
    this.#connections.add(new Session(this, socket));
  }
}

/** A WHERE literal in the column's text form (the double compares text forms). */
function filterText(type: DoubleColumnType, literal: Literal): string {
  if (type === 'bool') {
    const text = BOOL_TEXT[literal.text.toLowerCase()];
    if (text === undefined) throw new SqlError('22P02', 'invalid input syntax for type boolean');
    return text;
  }
  if (literal.kind === 'boolean') return literal.text === 'true' ? 't' : 'f';
  if (type === 'uuid') return literal.text.toLowerCase();
  if ((type === 'int4' || type === 'int8') && INTEGER_TEXT.test(literal.text))
    return BigInt(literal.text).toString();
  return literal.text;
}

// ---------------------------------------------------------------------------
// CLI: node packages/materialize/test/support/materialize-double.ts [--port 6875] [--demo]
// ---------------------------------------------------------------------------

const CLI_USAGE = `Usage: node materialize-double.ts [--host 127.0.0.1] [--port 0] [--user materialize]
                              [--password pw] [--tick-ms N] [--demo]
Prints the double's URL on stdout, then serves until SIGTERM / SIGINT.
--demo defines view "demo_orders" (tenant_id uuid, order_id int8, product text,
amount float8, at timestamptz) with four orders of the sample app's two demo
tenants, and inserts one more every second.`;

async function runCli(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      host: { type: 'string' },
      port: { type: 'string', default: '0' },
      user: { type: 'string' },
      password: { type: 'string' },
      'tick-ms': { type: 'string' },
      demo: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(CLI_USAGE);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port: not a port: ${values.port}`);
  const tickMs = values['tick-ms'] === undefined ? undefined : Number(values['tick-ms']);
  const double = await startMaterializeDouble({
    port,
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(values.user === undefined ? {} : { user: values.user }),
    ...(values.password === undefined ? {} : { password: values.password }),
    ...(tickMs === undefined ? {} : { tickMs }),
  });
  let feed: NodeJS.Timeout | null = null;
  if (values.demo) {
    // The sample app's demo (apps/sample-api/src/seed.ts): live widgets of the two
    // seeded tenants stream this view, each seeing only its own orders.
    const tenants = [
      '00000000-0000-4000-8000-00000000000a',
      '00000000-0000-4000-8000-00000000000b',
    ];
    const products = ['widget', 'gadget', 'gizmo', 'doohickey'];
    const demoRow = (id: number): DoubleRow => ({
      tenant_id: tenants[id % tenants.length]!,
      order_id: id,
      product: products[id % products.length]!,
      amount: Math.round(((id * 37) % 100) * 1.5 * 100) / 100,
      at: Date.now(),
    });
    double.defineView(
      'demo_orders',
      [
        { name: 'tenant_id', type: 'uuid' },
        { name: 'order_id', type: 'int8' },
        { name: 'product', type: 'text' },
        { name: 'amount', type: 'float8' },
        { name: 'at', type: 'timestamptz' },
      ],
      [1, 2, 3, 4].map(demoRow),
    );
    let nextId = 5;
    feed = setInterval(() => double.insert('demo_orders', [demoRow(nextId++)]), 1000);
  }
  console.log(double.url);
  const shutdown = (): void => {
    if (feed !== null) clearInterval(feed);
    void double.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

if (import.meta.main) {
  try {
    await runCli(process.argv.slice(2));
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    console.error(CLI_USAGE);
    process.exit(2);
  }
}
