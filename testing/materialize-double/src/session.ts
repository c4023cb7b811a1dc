/** One client connection: startup, authentication, the simple query protocol, FETCH. */
import { randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import { PostgresConnection, type State } from 'pg-gateway';
import type { DoubleColumnType, DoubleSession } from './api.js';
import { Subscription, type SubscriptionPlan } from './dataflow.js';
import {
  SqlError,
  StatementParser,
  splitStatements,
  type Statement,
  type SubscribeRequest,
} from './sql.js';
import { encodeRowDescription, WireWriter } from './wire.js';

const MZ_VERSION = 'v0.147.0 (double)';
const SERVER_VERSION = '9.5.0';
const CANCEL_REQUEST_CODE = 80877102;

/** What a session needs from the double. */
export interface SessionHost {
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
