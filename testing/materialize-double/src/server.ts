/** The double: the listener, the catalog of views, the clock and the control API. */
import { randomInt } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import type {
  DoubleColumn,
  DoubleColumnType,
  DoubleDiff,
  DoubleLimits,
  DoubleRow,
  DoubleSession,
  DoubleStats,
  MaterializeDouble,
  MaterializeDoubleOptions,
} from './api.js';
import { ViewState, type SubscriptionPlan } from './dataflow.js';
import { Session, type SessionHost } from './session.js';
import { SqlError, type Literal, type SubscribeRequest } from './sql.js';
import { BOOL_TEXT, INTEGER_TEXT } from './values.js';
import { TYPE_INFO, encodeRowDescription } from './wire.js';

const DEFAULT_INITIAL_TIMESTAMP = 1_700_000_000_000n;
const STATEMENT_LOG_SIZE = 1000;
/** `idle_in_transaction_session_timeout`'s default (src/sql/src/session/vars/definitions.rs). */
const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 120_000;
/** `subscribe_max_buffered_bytes`'s default (src/adapter-types/src/dyncfgs.rs). */
const DEFAULT_SUBSCRIBE_MAX_BUFFERED_BYTES = 128 * 1024 * 1024;

function checkLimit(name: string, value: number | undefined, min: number): void {
  if (value !== undefined && !(value >= min))
    throw new RangeError(`materialize double: ${name} must be >= ${min}`);
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
  #idleInTransactionTimeoutMs = DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS;
  #subscribeMaxBufferedBytes = DEFAULT_SUBSCRIBE_MAX_BUFFERED_BYTES;
  #maxConnections = Number.POSITIVE_INFINITY;
  /** Sessions holding a `max_connections` slot. */
  #allocated = 0;

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
    this.setLimits(options);
  }

  get idleInTransactionTimeoutMs(): number {
    return this.#idleInTransactionTimeoutMs;
  }

  get subscribeMaxBufferedBytes(): number {
    return this.#subscribeMaxBufferedBytes;
  }

  setLimits(limits: DoubleLimits): void {
    const { idleInTransactionTimeoutMs, subscribeMaxBufferedBytes, maxConnections } = limits;
    checkLimit('idleInTransactionTimeoutMs', idleInTransactionTimeoutMs, 0);
    checkLimit('subscribeMaxBufferedBytes', subscribeMaxBufferedBytes, 0);
    checkLimit('maxConnections', maxConnections, 0);
    if (idleInTransactionTimeoutMs !== undefined)
      this.#idleInTransactionTimeoutMs = idleInTransactionTimeoutMs;
    if (subscribeMaxBufferedBytes !== undefined)
      this.#subscribeMaxBufferedBytes = subscribeMaxBufferedBytes;
    if (maxConnections !== undefined) this.#maxConnections = maxConnections;
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

  allocateConnection(session: Session): string | null {
    const current = this.#allocated;
    if (current >= this.#maxConnections) {
      // `ConnectionError::TooManyConnections` as `AdapterError::ResourceExhaustion` (src/adapter/src/error.rs).
      return `creating connection would violate max_connections limit (desired: ${current + 1}, limit: ${this.#maxConnections}, current: ${current})`;
    }
    this.#allocated += 1;
    session.allocated = true;
    return null;
  }

  sessionClosed(session: Session): void {
    if (session.allocated) {
      session.allocated = false;
      this.#allocated -= 1;
    }
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
    // Planning errors are `AdapterError::PlanError`, INTERNAL_ERROR (XX000) whatever PostgreSQL
    // would say (`AdapterError::code`, src/adapter/src/error.rs); the texts are
    // `CatalogError::UnknownItem` (src/sql/src/catalog.rs) and `PlanError::UnknownColumn`
    // (src/sql/src/plan/error.rs).
    const view = this.#views.get(request.object);
    if (view === undefined) throw new SqlError('XX000', `unknown catalog item '${request.object}'`);
    const position = (column: string): number => {
      const found = view.columnPosition(column);
      if (found === undefined) throw new SqlError('XX000', `column "${column}" does not exist`);
      return found;
    };
    const columnIndexes = request.columns === null ? null : request.columns.map(position);
    const filters = request.filters.map(({ column, literal }) => {
      const index = position(column);
      return { index, text: filterText(view.columns[index]?.type ?? 'text', literal) };
    });
    let asOf = request.asOf ?? (this.#upper - 1n > view.since ? this.#upper - 1n : view.since);
    if (request.asOfAtLeast && asOf < view.since) asOf = view.since;
    // No valid timestamp for a strict AS OF below the since: `ImpossibleTimestampConstraints`,
    // DATA_EXCEPTION (22000) "could not find a valid timestamp for the query"
    // (src/adapter/src/error.rs; releases before it sent XX000 "Timestamp (…) is not valid for
    // all inputs"). Found when the subscribe is sequenced, at the first FETCH: DECLARE succeeds.
    const error =
      asOf < view.since
        ? { code: '22000', message: 'could not find a valid timestamp for the query' }
        : null;
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
      error,
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
