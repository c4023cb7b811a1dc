/**
 * Stable codes of {@link MaterializeError}; switch on these, never on messages.
 *
 * | code | when | retry? |
 * |---|---|---|
 * | `NOT_CONFIGURED` | no `url` (MATERIALIZE_URL unset); thrown by `createMaterialize` | no |
 * | `INVALID_OPTIONS` | an option is out of range, or a handle `name` is already reporting to the same metrics registry | no |
 * | `INVALID_ARGUMENT` | refused before anything is sent: a view, column or filter name that is not a plain identifier, a filter value of another type, a NUL in a string, conflicting subscribe options; or the server's 42703 (unknown column) | no |
 * | `UNAVAILABLE` | no connection: refused, reset, DNS, no answer to the handshake within `connectTimeoutMs` | yes, later |
 * | `TIMEOUT` | `health()` got no answer within `connectTimeoutMs`, or no pooled connection became free within it | yes, later |
 * | `AUTH_FAILED` | the server refused the credentials (28P01, 28000) | no |
 * | `UNKNOWN_VIEW` | the view does not exist (42P01) | no |
 * | `HISTORY_UNAVAILABLE` | the `AS OF` time is before what the view still keeps (XX000 "not valid for all inputs"): a resumption would skip updates, so it stops instead | no |
 * | `CANCELLED` | the caller's `signal` aborted (`cause` is its reason), or the server cancelled the statement (57014) without us asking | no |
 * | `CONNECTION_LOST` | the connection of a subscription was lost and `resume` is off or `reconnect.maxAttempts` ran out | yes, resubscribe |
 * | `CLOSED` | the handle was closed (before or during the call) | no |
 * | `QUERY_FAILED` | any other server error (`sqlstate` says which), or a reply the client cannot read | no |
 */
export type MaterializeErrorCode =
  | 'NOT_CONFIGURED'
  | 'INVALID_OPTIONS'
  | 'INVALID_ARGUMENT'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'AUTH_FAILED'
  | 'UNKNOWN_VIEW'
  | 'HISTORY_UNAVAILABLE'
  | 'CANCELLED'
  | 'CONNECTION_LOST'
  | 'CLOSED'
  | 'QUERY_FAILED';

/** Extra facts about a {@link MaterializeError}. */
export interface MaterializeErrorDetails {
  /** The server's SQLSTATE (`42P01`, `XX000`, …) when the server sent an error. */
  readonly sqlstate?: string;
}

/**
 * The one error class of @flowforge/materialize. Every error that reaches you
 * through a {@link Materialize} handle is one of these, with the driver's error
 * (or the abort reason) as `cause`. Messages and causes never contain the
 * password.
 */
export class MaterializeError extends Error {
  /** What went wrong, stable: switch on it (see {@link MaterializeErrorCode}). */
  readonly code: MaterializeErrorCode;
  /** The server's SQLSTATE when the error came from Materialize (`42P01`, `57014`, …). */
  readonly sqlstate: string | undefined;

  constructor(
    code: MaterializeErrorCode,
    message: string,
    options?: ErrorOptions & MaterializeErrorDetails,
  ) {
    super(
      `@flowforge/materialize: ${message}`,
      options?.cause === undefined ? {} : { cause: options.cause },
    );
    this.name = 'MaterializeError';
    this.code = code;
    this.sqlstate = options?.sqlstate;
  }

  /** True for codes where the same call can succeed later (`UNAVAILABLE`, `TIMEOUT`, `CONNECTION_LOST`). */
  get retryable(): boolean {
    return (
      this.code === 'UNAVAILABLE' || this.code === 'TIMEOUT' || this.code === 'CONNECTION_LOST'
    );
  }
}

/** True when `error` is a {@link MaterializeError} (optionally with one of `codes`). */
export function isMaterializeError(
  error: unknown,
  ...codes: readonly MaterializeErrorCode[]
): error is MaterializeError {
  return error instanceof MaterializeError && (codes.length === 0 || codes.includes(error.code));
}
