import {
  FlowForgeError,
  defineErrors,
  errorGuard,
  type ErrorCatalog,
  type ErrorGuard,
  sharedErrorKinds,
} from '@flowforge/kernel';

/**
 * Stable codes of {@link MaterializeError}; switch on these, never on messages.
 * `status` is what an HTTP server answers when the error reaches its error
 * handler unhandled: 503 when live data cannot be had right now, 500 for a
 * bug or a view that cannot be streamed (the app knows whether the view came
 * from a client, and answers 4xx for it itself).
 *
 * | code | status | when | retry? |
 * |---|---|---|---|
 * | `NOT_CONFIGURED` | 503 | no `url` (MATERIALIZE_URL unset); thrown by `createMaterialize` | no |
 * | `INVALID_OPTIONS` | 500 | an option is out of range, or a handle `name` is already reporting to the same metrics registry | no |
 * | `INVALID_ARGUMENT` | 500 | refused before anything is sent: a view, column or filter name that is not a plain identifier, a filter value of another type, a NUL in a string, conflicting subscribe options; or the server's unknown column (Materialize: XX000 `column "x" does not exist`; PostgreSQL: 42703) | no |
 * | `UNAVAILABLE` | 503 | no connection: refused, reset, DNS, no answer to the handshake within `connectTimeoutMs`, or too many connections (Materialize's FATAL 53000 at `max_connections`, PostgreSQL's 53300; a resuming subscription retries it) | yes, later |
 * | `TIMEOUT` | 503 | `health()` got no answer within `connectTimeoutMs`, or no pooled connection became free within it | yes, later |
 * | `AUTH_FAILED` | 503 | the server refused the credentials (28P01, 28000) | no |
 * | `UNKNOWN_VIEW` | 500 | the view does not exist (Materialize: XX000 `unknown catalog item 'x'`; PostgreSQL: 42P01) | no |
 * | `HISTORY_UNAVAILABLE` | 500 | the `AS OF` time is before what the view still keeps (22000 "could not find a valid timestamp for the query" at the first FETCH; older releases XX000 "… not valid for all inputs"): a resumption would skip updates, so it stops instead | no |
 * | `CANCELLED` | 503 | the caller's `signal` aborted (`cause` is its reason), or the server cancelled the statement (57014) without us asking | no |
 * | `CONNECTION_LOST` | 503 | the connection of a subscription was lost and `resume` is off or `reconnect.maxAttempts` ran out | yes, resubscribe |
 * | `CLOSED` | 503 | the handle was closed (before or during the call) | no |
 * | `QUERY_FAILED` | 500 | any other server error (`sqlstate` says which), or a reply the client cannot read | no |
 * | `LAGGED` | 503 | a shared subscription's viewer fell behind its subscription's `windowSize` recent items and was cut off (`createSharedSubscriptions`): reconnect from its last progress | yes, resume |
 * | `TOO_MANY_SUBSCRIPTIONS` | 429 | a tenant already holds `maxSubscriptionsPerTenant` distinct shared subscriptions and catch-ups | yes, later |
 * | `SUBSCRIPTIONS_FULL` | 503 | the process already holds `maxSubscriptions` distinct shared subscriptions and catch-ups | yes, later |
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
  | 'QUERY_FAILED'
  | 'LAGGED'
  | 'TOO_MANY_SUBSCRIPTIONS'
  | 'SUBSCRIPTIONS_FULL';

/** The table of {@link MaterializeErrorCode}s: the HTTP status and retryability of each. */
const MATERIALIZE_ERRORS: ErrorCatalog<MaterializeErrorCode> = defineErrors({
  source: '@flowforge/materialize',
  name: 'MaterializeError',
  codes: {
    ...sharedErrorKinds(
      'NOT_CONFIGURED',
      'INVALID_OPTIONS',
      'UNAVAILABLE',
      'TIMEOUT',
      'AUTH_FAILED',
      'CANCELLED',
      'CLOSED',
    ),
    INVALID_ARGUMENT: { status: 500, retryable: false },
    UNKNOWN_VIEW: { status: 500, retryable: false },
    HISTORY_UNAVAILABLE: { status: 500, retryable: false },
    CONNECTION_LOST: { status: 503, retryable: true },
    QUERY_FAILED: { status: 500, retryable: false },
    LAGGED: { status: 503, retryable: true },
    TOO_MANY_SUBSCRIPTIONS: { status: 429, retryable: true },
    SUBSCRIPTIONS_FULL: { status: 503, retryable: true },
  },
});

/** Extra facts about a {@link MaterializeError}. */
export interface MaterializeErrorDetails {
  /** The server's SQLSTATE (`42P01`, `XX000`, …) when the server sent an error. */
  readonly sqlstate?: string;
}

/**
 * The one error class of @flowforge/materialize. Every error that reaches you
 * through a {@link Materialize} handle is one of these, with the driver's error
 * (or the abort reason) as `cause`. Messages and causes never contain the
 * password. `code`, `status`, `retryable` (true for `UNAVAILABLE`, `TIMEOUT`
 * and `CONNECTION_LOST`) and `reason` come from the kernel's base,
 * `FlowForgeError`.
 */
export class MaterializeError extends FlowForgeError<MaterializeErrorCode> {
  /** The server's SQLSTATE when the error came from Materialize (`42P01`, `57014`, …). */
  readonly sqlstate: string | undefined;

  /**
   * @param code - the stable code callers switch on
   * @param message - the explanation, prefixed with `@flowforge/materialize: `
   * @param options - `cause`, and `sqlstate` when the server sent one
   */
  constructor(
    code: MaterializeErrorCode,
    message: string,
    options?: ErrorOptions & MaterializeErrorDetails,
  ) {
    super(MATERIALIZE_ERRORS, code, message, options);
    this.sqlstate = options?.sqlstate;
  }
}

/** True when `error` is a {@link MaterializeError} (optionally with one of `codes`). */
export const isMaterializeError: ErrorGuard<MaterializeError> = errorGuard(MaterializeError);
