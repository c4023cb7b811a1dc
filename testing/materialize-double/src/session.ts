/** One client connection: startup, authentication, the simple query protocol, FETCH. */
import { randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import { PostgresConnection, type State } from 'pg-gateway';
import type { DoubleColumnType, DoubleSession } from './api.js';
import { Subscription, type SubscriptionPlan } from './dataflow.js';
import {
  SqlError,
  StatementParser,
  parseInterval,
  splitStatements,
  type Statement,
  type SubscribeRequest,
} from './sql.js';
import { encodeRowDescription, WireWriter } from './wire.js';

const MZ_VERSION = 'v0.147.0 (double)';
const SERVER_VERSION = '9.5.0';
const CANCEL_REQUEST_CODE = 80877102;
/** FETCH timeouts are limited to one day (`plan_fetch`, src/sql/src/plan/statement/scl.rs). */
const MAX_FETCH_TIMEOUT_MS = 86_400_000;
const IDLE_TIMEOUT_SETTING = 'idle_in_transaction_session_timeout';

/** What a session needs from the double. */
export interface SessionHost {
  readonly upper: bigint;
  readonly stalled: boolean;
  readonly user: string;
  readonly password: string | undefined;
  /** `idle_in_transaction_session_timeout` of a new session, in ms (0: none). */
  readonly idleInTransactionTimeoutMs: number;
  /** `subscribe_max_buffered_bytes` of a new subscription. */
  readonly subscribeMaxBufferedBytes: number;
  /** Takes a connection slot: null, or the refusal's message when `max_connections` are in use. */
  allocateConnection(session: Session): string | null;
  allocatePid(): number;
  sessionReady(session: Session): void;
  sessionClosed(session: Session): void;
  cancelRequest(socket: Session, pid: number, secret: number): void;
  cancelBackend(pid: number): boolean;
  recordStatement(source: string): void;
  planSubscription(request: SubscribeRequest): SubscriptionPlan;
}

type InboxEntry =
  | {
      readonly kind: 'startup';
      readonly user: string;
      readonly parameters: Readonly<Record<string, string>>;
    }
  | { readonly kind: 'frame'; readonly data: Buffer };

type WaitOutcome = 'ready' | 'timeout' | 'cancelled' | 'closed';

/** The socket closed while a statement ran: stop without answering. */
class SessionClosed extends Error {}

/** One client connection: pg-gateway parses startup; every later message is handled here, in order. */
export class Session {
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
  /** This session's `idle_in_transaction_session_timeout` (ms, 0: none). */
  #idleTimeoutMs: number;
  #idleTimer: NodeJS.Timeout | undefined;
  /** The idle-in-transaction timeout fired: the next message is answered with FATAL 25P03. */
  #timedOut = false;
  /** Holds a `max_connections` slot. */
  allocated = false;

  constructor(host: SessionHost, socket: Socket) {
    this.#host = host;
    this.socket = socket;
    this.#idleTimeoutMs = host.idleInTransactionTimeoutMs;
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
        const parameters: Readonly<Record<string, string>> = state.clientInfo?.parameters ?? {};
        this.#receive({ kind: 'startup', user: parameters.user ?? '', parameters });
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
    if (entry === undefined) {
      this.#armIdleTimeout();
      return;
    }
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#timedOut) {
      // Materialize cannot send an ErrorResponse unprompted: the FATAL it queued when the
      // timeout fired is the answer to the client's next message, which is not run
      // (`advance_ready`, src/pgwire/src/protocol.rs).
      this.#inbox.length = 0;
      this.#fatal('25P03', 'terminating connection due to idle-in-transaction timeout');
      return;
    }
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

  /**
   * Idle in a transaction (nothing to handle, a transaction open) for longer than
   * `idle_in_transaction_session_timeout`: the session is terminated, its subscription ended
   * (`add_idle_in_transaction_session_timeout`, src/adapter/src/client.rs; the default of 120 s,
   * src/sql/src/session/vars/definitions.rs).
   */
  #armIdleTimeout(): void {
    if (
      this.#idleTimer !== undefined ||
      this.#timedOut ||
      this.#phase !== 'ready' ||
      !this.#inTransaction ||
      this.#idleTimeoutMs <= 0
    ) {
      return;
    }
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#phase !== 'ready' || this.#processing) return;
      this.#timedOut = true;
      this.#closeCursor();
    }, this.#idleTimeoutMs);
    this.#idleTimer.unref();
  }

  async #handle(entry: InboxEntry): Promise<void> {
    if (entry.kind === 'startup') {
      this.#user = entry.user;
      this.#applyStartupParameters(entry.parameters);
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

  /**
   * Startup parameters other than user and database set session variables, `options` as
   * `-c name=value` (`run` and `parse_options`, src/pgwire/src/protocol.rs). The double keeps
   * only `idle_in_transaction_session_timeout`.
   */
  #applyStartupParameters(parameters: Readonly<Record<string, string>>): void {
    const settings: [string, string][] = [];
    for (const [name, value] of Object.entries(parameters)) {
      if (name !== 'options') {
        settings.push([name, value]);
        continue;
      }
      const words = value.split(/\s+/).filter((word) => word.length > 0);
      for (let index = 0; index < words.length; index += 1) {
        let word = words[index] ?? '';
        if (word === '-c') word = words[++index] ?? '';
        else if (word.startsWith('-c')) word = word.slice(2);
        else if (word.startsWith('--')) word = word.slice(2).replaceAll('-', '_');
        const equals = word.indexOf('=');
        if (equals > 0) settings.push([word.slice(0, equals), word.slice(equals + 1)]);
      }
    }
    for (const [name, value] of settings) {
      if (name.toLowerCase() !== IDLE_TIMEOUT_SETTING) continue;
      try {
        this.#idleTimeoutMs = parseInterval(value, 1);
      } catch {
        // Materialize sends a notice for a bad startup setting and carries on.
      }
    }
  }

  #completeStartup(): void {
    // After authentication, before AuthenticationOk: FATAL 53000 when every slot is taken
    // (`allocate_connection` in `run`, src/pgwire/src/protocol.rs; the message is
    // `AdapterError::ResourceExhaustion`'s, src/adapter/src/error.rs).
    const refusal = this.#host.allocateConnection(this);
    if (refusal !== null) return this.#fatal('53000', refusal);
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
          subscription: new Subscription(
            plan,
            this.#host.upper,
            this.#host.subscribeMaxBufferedBytes,
          ),
        };
        writer.commandComplete('DECLARE CURSOR');
        return;
      }
      case 'fetch':
        // Planned before the cursor is looked up: a PlanError, so XX000 (`plan_fetch`,
        // src/sql/src/plan/statement/scl.rs; `AdapterError::code`, src/adapter/src/error.rs).
        if (command.timeoutMs !== null && command.timeoutMs > MAX_FETCH_TIMEOUT_MS) {
          throw new SqlError('XX000', `timeout out of range: ${command.timeoutText ?? ''}`);
        }
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
        if (command.name === IDLE_TIMEOUT_SETTING) {
          this.#idleTimeoutMs =
            command.value === null
              ? this.#host.idleInTransactionTimeoutMs
              : parseInterval(command.value, 1);
        }
        writer.commandComplete('SET');
        return;
    }
  }

  #singleRow(column: string, type: DoubleColumnType, value: string): void {
    this.#writer.raw(encodeRowDescription([{ name: column, type }]));
    this.#writer.dataRow([value]);
    this.#writer.commandComplete('SELECT 1');
  }

  /**
   * `send_rows` (src/pgwire/src/protocol.rs): without a timeout (`ExecuteTimeout::WaitOnce`,
   * `plan_fetch` in src/sql/src/plan/statement/scl.rs) the FETCH blocks until rows are ready,
   * then takes only what is ready; `WITH (timeout = t)` keeps taking rows as they come until
   * `count` were sent or t has passed (so `FETCH 1000 … WITH (timeout = '1s')` with one row
   * ready waits the whole second); `0s` takes what is ready. A subscription's error (dropped
   * view, fell behind) follows the rows queued before it.
   */
  async #fetch(cursorName: string, count: number, timeoutMs: number | null): Promise<void> {
    const cursor = this.#cursor;
    if (cursor === null || cursor.name !== cursorName) {
      throw new SqlError('34000', `cursor "${cursorName}" does not exist`);
    }
    const { subscription } = cursor;
    const deadline = timeoutMs === null ? null : performance.now() + timeoutMs;
    let waitOnce = timeoutMs === null;
    let described = false;
    let sent = 0;
    for (;;) {
      if (sent >= count) break;
      if (subscription.pendingRows > 0) {
        if (!described) {
          this.#writer.raw(subscription.plan.rowDescription);
          described = true;
        }
        sent += await this.#sendReady(subscription, count - sent);
        waitOnce = false;
        continue;
      }
      if (subscription.dropped) {
        throw new SqlError(
          'XX000',
          `SUBSCRIBE has been terminated because underlying relation "${subscription.plan.view.name}" was dropped`,
        );
      }
      const failure = subscription.failure;
      if (failure !== null) throw new SqlError(failure.code, failure.message);
      let left: number | null = null;
      if (deadline !== null) {
        left = deadline - performance.now();
        if (left <= 0) break;
      } else if (!waitOnce) {
        break;
      }
      const outcome = await this.#waitForRows(subscription, left);
      if (outcome === 'closed' || this.#phase === 'closed') throw new SessionClosed();
      if (outcome === 'cancelled')
        throw new SqlError('57014', 'canceling statement due to user request');
      if (outcome === 'timeout') break;
    }
    if (!described) this.#writer.raw(subscription.plan.rowDescription);
    this.#writer.commandComplete(`FETCH ${sent}`);
    this.#writer.flush();
  }

  /** Sends up to `max` of the rows queued now, flushed; returns how many. */
  async #sendReady(subscription: Subscription, max: number): Promise<number> {
    const writer = this.#writer;
    const limit = Math.min(max, subscription.pendingRows);
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
    } finally {
      socket.uncork();
    }
    return sent;
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
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#phase === 'closed') return;
    const wasCancel = this.#phase === 'cancel';
    this.#phase = 'closed';
    this.#inbox.length = 0;
    this.#waiter?.finish('closed');
    this.#closeCursor();
    if (!wasCancel) this.#host.sessionClosed(this);
  }
}
