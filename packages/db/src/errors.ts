import {
  FlowForgeError,
  defineErrors,
  errorGuard,
  type ErrorCatalog,
  type ErrorGuard,
  sharedErrorKinds,
} from '@flowforge/kernel';

/**
 * Stable codes of {@link DatabaseError}; switch on these, never on messages.
 * `status` is what an HTTP server answers when the error reaches its error
 * handler unhandled.
 *
 * | code | status | when | retry? |
 * |---|---|---|---|
 * | `NOT_CONFIGURED` | 503 | no URL, pool or embedded database was given | no |
 * | `INVALID_OPTIONS` | 500 | an option is out of range (`poolSize: expected a positive whole number from 1 to 1000`, a role name that is not an identifier, …); thrown by `createDatabase` before anything connects | no |
 * | `UNAVAILABLE` | 503 | the server cannot be reached, refused us, went away, or gave no connection within `connectTimeoutMs` (also when the pool stayed exhausted that long) | yes, later |
 * | `TIMEOUT` | 503 | statement_timeout, lock_timeout or idle_in_transaction_session_timeout fired | yes |
 * | `QUERY_TIMEOUT` | 503 | the server gave no answer within `queryTimeoutMs` (a frozen server, a black-holed network): the connection was discarded, and whether the statement ran (a COMMIT: whether it committed) is unknown | yes, if the work is safe to repeat |
 * | `UNIQUE_VIOLATION` | 409 | SQLSTATE 23505 | no |
 * | `FOREIGN_KEY_VIOLATION` | 400 | 23503 | no |
 * | `NOT_NULL_VIOLATION` | 400 | 23502 | no |
 * | `CHECK_VIOLATION` | 400 | 23514, 23P01 | no |
 * | `INVALID_INPUT` | 400 | class 22 (bad uuid, value out of range, …) | no |
 * | `SERIALIZATION_FAILURE` | 503 | 40001, 40P01: the transaction lost a race | yes |
 * | `TENANT_INVALID` | 401 | `withTenant` got something that is not a UUID | no |
 * | `TENANT_VIOLATION` | 500 | a row fails the tenant policy (another tenant's `tenant_id`, or none set) | no |
 * | `PERMISSION_DENIED` | 500 | 42501 for any other reason; a refused switch to the app role says to `GRANT <app role> TO <login role>` or log in as the app's login | no |
 * | `NESTED_TRANSACTION` | 500 | `withTransaction`/`withTenant` inside another one of the same handle | no |
 * | `TRANSACTION_ABORTED` | 500 | 25P02: a statement failed earlier in this transaction | no |
 * | `MIGRATION_FAILED` | 500 | a migration threw, or the history could not be read or written (a 42501 there says to migrate as the schema owner, DATABASE_MIGRATION_URL); the run was rolled back | no |
 * | `CLOSED` | 503 | the handle was closed | no |
 * | `QUERY_FAILED` | 500 | any other server error (`sqlstate` says which) | no |
 */
export type DatabaseErrorCode =
  | 'NOT_CONFIGURED'
  | 'INVALID_OPTIONS'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'QUERY_TIMEOUT'
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

/** The table of {@link DatabaseErrorCode}s: the HTTP status and retryability of each. */
const DATABASE_ERRORS: ErrorCatalog<DatabaseErrorCode> = defineErrors({
  source: '@flowforge/db',
  name: 'DatabaseError',
  codes: {
    ...sharedErrorKinds(
      'NOT_CONFIGURED',
      'INVALID_OPTIONS',
      'UNAVAILABLE',
      'TIMEOUT',
      'PERMISSION_DENIED',
      'CLOSED',
    ),
    // Not the shared TIMEOUT: that one means the server cancelled the statement;
    // here nobody knows whether it ran (docs/decisions/013-client-side-query-deadline.md).
    QUERY_TIMEOUT: { status: 503, retryable: true },
    UNIQUE_VIOLATION: { status: 409, retryable: false },
    FOREIGN_KEY_VIOLATION: { status: 400, retryable: false },
    NOT_NULL_VIOLATION: { status: 400, retryable: false },
    CHECK_VIOLATION: { status: 400, retryable: false },
    INVALID_INPUT: { status: 400, retryable: false },
    SERIALIZATION_FAILURE: { status: 503, retryable: true },
    TENANT_INVALID: { status: 401, retryable: false },
    TENANT_VIOLATION: { status: 500, retryable: false },
    NESTED_TRANSACTION: { status: 500, retryable: false },
    TRANSACTION_ABORTED: { status: 500, retryable: false },
    MIGRATION_FAILED: { status: 500, retryable: false },
    QUERY_FAILED: { status: 500, retryable: false },
  },
});

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
 * throws pass through unchanged. `code`, `status`, `retryable` and `reason`
 * come from the kernel's base, `FlowForgeError`.
 */
export class DatabaseError extends FlowForgeError<DatabaseErrorCode> {
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
    super(DATABASE_ERRORS, code, message, options);
    this.sqlstate = options?.sqlstate;
    this.constraint = options?.constraint;
    this.table = options?.table;
    this.column = options?.column;
  }
}

/** True when `error` is a {@link DatabaseError} (optionally with one of `codes`). */
export const isDatabaseError: ErrorGuard<DatabaseError> = errorGuard(DatabaseError);
