/**
 * Stable codes of {@link DatabaseError}; switch on these, never on messages.
 *
 * | code | when | retry? |
 * |---|---|---|
 * | `NOT_CONFIGURED` | no URL, pool or embedded database was given | no |
 * | `INVALID_OPTIONS` | an option is out of range (`poolSize: expected a positive whole number from 1 to 1000`, a role name that is not an identifier, …); thrown by `createDatabase` before anything connects | no |
 * | `UNAVAILABLE` | the server cannot be reached, refused us, went away, or gave no connection within `connectTimeoutMs` (also when the pool stayed exhausted that long) | yes, later |
 * | `TIMEOUT` | statement_timeout, lock_timeout or idle_in_transaction_session_timeout fired | maybe |
 * | `UNIQUE_VIOLATION` | SQLSTATE 23505 | no |
 * | `FOREIGN_KEY_VIOLATION` | 23503 | no |
 * | `NOT_NULL_VIOLATION` | 23502 | no |
 * | `CHECK_VIOLATION` | 23514, 23P01 | no |
 * | `INVALID_INPUT` | class 22 (bad uuid, value out of range, …) | no |
 * | `SERIALIZATION_FAILURE` | 40001, 40P01: the transaction lost a race | yes |
 * | `TENANT_INVALID` | `withTenant` got something that is not a UUID | no |
 * | `TENANT_VIOLATION` | a row fails the tenant policy (another tenant's `tenant_id`, or none set) | no |
 * | `PERMISSION_DENIED` | 42501 for any other reason; a refused switch to the app role says to `GRANT <app role> TO <login role>` or log in as the app's login | no |
 * | `NESTED_TRANSACTION` | `withTransaction`/`withTenant` inside another one of the same handle | no |
 * | `TRANSACTION_ABORTED` | 25P02: a statement failed earlier in this transaction | no |
 * | `MIGRATION_FAILED` | a migration threw, or the history could not be read or written (a 42501 there says to migrate as the schema owner, DATABASE_MIGRATION_URL); the run was rolled back | no |
 * | `CLOSED` | the handle was closed | no |
 * | `QUERY_FAILED` | any other server error (`sqlstate` says which) | no |
 */
export type DatabaseErrorCode =
  | 'NOT_CONFIGURED'
  | 'INVALID_OPTIONS'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'UNIQUE_VIOLATION'
  | 'FOREIGN_KEY_VIOLATION'
  | 'NOT_NULL_VIOLATION'
  | 'CHECK_VIOLATION'
  | 'INVALID_INPUT'
  | 'SERIALIZATION_FAILURE'
  | 'TENANT_INVALID'
  | 'TENANT_VIOLATION'
  | 'PERMISSION_DENIED'
  | 'NESTED_TRANSACTION'
  | 'TRANSACTION_ABORTED'
  | 'MIGRATION_FAILED'
  | 'CLOSED'
  | 'QUERY_FAILED';

/** What every {@link DatabaseError} message starts with. */
const PREFIX = '@flowforge/db: ';

/** What the server said, where it said it (every field optional: connection errors have none). */
export interface DatabaseErrorDetails {
  /** The five-character SQLSTATE, e.g. `23505`. */
  readonly sqlstate?: string;
  /** The constraint that was violated, when the server names one. */
  readonly constraint?: string;
  /** The table the error is about, when the server names one. */
  readonly table?: string;
  /** The column the error is about, when the server names one. */
  readonly column?: string;
}

/**
 * The one error class of @flowforge/db. Every error that reaches you through a
 * {@link Database} handle (its `db`, `withTransaction`, `withTenant`, `health`)
 * is one of these, with the driver's error as `cause`. Errors your own callback
 * throws pass through unchanged.
 */
export class DatabaseError extends Error {
  /** What went wrong; stable across releases (see {@link DatabaseErrorCode}). */
  readonly code: DatabaseErrorCode;
  /** The server's SQLSTATE, e.g. `23505`; undefined for connection and client-side errors. */
  readonly sqlstate: string | undefined;
  /** The violated constraint, when the server names one. */
  readonly constraint: string | undefined;
  /** The table the error is about, when the server names one. */
  readonly table: string | undefined;
  /** The column the error is about, when the server names one. */
  readonly column: string | undefined;

  /**
   * @param code - the stable code callers switch on
   * @param message - the explanation, prefixed with `@flowforge/db: `
   * @param options - `cause` (the driver's error) and what the server said
   */
  constructor(
    code: DatabaseErrorCode,
    message: string,
    options?: ErrorOptions & DatabaseErrorDetails,
  ) {
    super(`${PREFIX}${message}`, options?.cause === undefined ? {} : { cause: options.cause });
    this.name = 'DatabaseError';
    this.code = code;
    this.sqlstate = options?.sqlstate;
    this.constraint = options?.constraint;
    this.table = options?.table;
    this.column = options?.column;
  }

  /** True for codes where trying the same work again later can succeed. */
  get retryable(): boolean {
    return (
      this.code === 'UNAVAILABLE' ||
      this.code === 'TIMEOUT' ||
      this.code === 'SERIALIZATION_FAILURE'
    );
  }
}

/** True when `error` is a {@link DatabaseError} (optionally with one of `codes`). */
export function isDatabaseError(
  error: unknown,
  ...codes: readonly DatabaseErrorCode[]
): error is DatabaseError {
  return error instanceof DatabaseError && (codes.length === 0 || codes.includes(error.code));
}

/**
 * The message of `error` without the package prefix, for wrapping it in
 * another DatabaseError: the prefix then appears once.
 * @internal
 */
export function reasonOf(error: DatabaseError): string {
  return error.message.startsWith(PREFIX) ? error.message.slice(PREFIX.length) : error.message;
}
