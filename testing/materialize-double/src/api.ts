/**
 * The double's public API (the shared spec: names and signatures are depended upon
 * by @flowforge/materialize's tests, the sample app's tests and the benchmarks).
 */

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
  /**
   * `idle_in_transaction_session_timeout` of new sessions, in ms (0: none): a session idle in a
   * transaction longer than this is terminated, and its next message is answered with FATAL
   * 25P03. A session may change its own with `SET` or the startup `options`
   * (`-c idle_in_transaction_session_timeout=500ms`). Default 120000, Materialize's.
   */
  readonly idleInTransactionTimeoutMs?: number;
  /**
   * `subscribe_max_buffered_bytes`: a subscription whose unfetched backlog (behind the batch
   * being read) exceeds it is retired; its client gets 53200 "SUBSCRIBE fell behind" after the
   * rows already queued. Default 134217728 (128 MiB), Materialize's.
   */
  readonly subscribeMaxBufferedBytes?: number;
  /**
   * `max_connections`: a connection past it is refused with FATAL 53000 after authentication.
   * Default: no limit.
   */
  readonly maxConnections?: number;
}

/** The server limits a running double can change (as `ALTER SYSTEM SET` changes Materialize's). */
export interface DoubleLimits {
  /** See {@link MaterializeDoubleOptions.idleInTransactionTimeoutMs}; applies to new sessions. */
  readonly idleInTransactionTimeoutMs?: number;
  /** See {@link MaterializeDoubleOptions.subscribeMaxBufferedBytes}; applies to new subscriptions. */
  readonly subscribeMaxBufferedBytes?: number;
  /** See {@link MaterializeDoubleOptions.maxConnections}; `Infinity` for none; applies to new connections. */
  readonly maxConnections?: number;
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
  /**
   * Forgets history before `since`: a SUBSCRIBE `AS OF` below it is then declared, and its first
   * FETCH fails with 22000 "could not find a valid timestamp for the query".
   */
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
  /** Changes server limits for what starts from now on (sessions, subscriptions, connections). */
  setLimits(limits: DoubleLimits): void;
  /** Destroys every client socket abruptly (a crashed backend: no ErrorResponse); keeps listening. */
  dropConnections(): void;
  /** `true`: stop reading and answering (a hung server); `false`: resume. */
  stall(on: boolean): void;
  /** Closes the listener and every socket; views and time are kept. */
  stop(): Promise<void>;
  /** Listens again on the same port, views and time kept. */
  restart(): Promise<void>;
}
