import {
  FlowForgeError,
  defineErrors,
  errorGuard,
  type ErrorCatalog,
  type ErrorGuard,
  sharedErrorKinds,
} from '@flowforge/kernel';

/**
 * Stable codes of {@link ClickHouseError}; switch on these, never on messages.
 * `status` is what an HTTP server answers when the error reaches its error
 * handler unhandled.
 *
 * | code | status | when | retry? |
 * |---|---|---|---|
 * | `NOT_CONFIGURED` | 503 | no `url` and no `client` (CLICKHOUSE_URL unset) | no |
 * | `INVALID_OPTIONS` | 500 | an option is out of range (`requestTimeoutMs: expected a positive whole number from 1 to 2147483647 (got 0)`, a URL that is not http(s), …); every problem in one message | no |
 * | `INVALID_ARGUMENT` | 500 | checked before sending: a placeholder without a value, a value without a placeholder, a value that does not fit its type, an unknown type (client-side binding), an `Identifier` placeholder, a placeholder inside a string or comment, SQL that servers lex differently (`$` in names, non-ASCII outside strings), a setting off the allow-list, a tenant id that is not a UUID, a `tenant_id` param given by the caller | no |
 * | `SYNTAX_ERROR` | 500 | server code 62 | no |
 * | `UNKNOWN_TABLE` | 500 | 60 unknown table, 81 unknown database | no |
 * | `QUERY_INVALID` | 500 | the query names or types something wrongly: 47 unknown identifier, 46 unknown function, 16, 42, 43, 44, 53, 115, 184, 215, 352, 456, 457 | no |
 * | `READONLY` | 500 | 164: a write, DDL or setting change refused by the server's readonly mode (or, for a readonly=1 user, settings refused before sending) | no |
 * | `TIMEOUT` | 503 | the query's deadline (`timeoutMs`) passed, or the server's 159 TIMEOUT_EXCEEDED, 160, 209 | yes |
 * | `AUTH_FAILED` | 503 | 516, 192 unknown user, 193 wrong password, 194, 195 | no |
 * | `UNAVAILABLE` | 503 | connection refused/reset, socket hang up, the server died mid-query, a proxy's 502/503/504 page, 202 too many simultaneous queries, 203, 210, 216 a query with the caller's own `queryId` still runs | yes, later |
 * | `CANCELLED` | 503 | the caller's `signal` aborted | no |
 * | `CLOSED` | 503 | the handle was closed (before or during the query) | no |
 * | `QUERY_FAILED` | 500 | any other server error (`serverCode` says which) or a malformed response | no |
 */
export type ClickHouseErrorCode =
  | 'NOT_CONFIGURED'
  | 'INVALID_OPTIONS'
  | 'INVALID_ARGUMENT'
  | 'SYNTAX_ERROR'
  | 'UNKNOWN_TABLE'
  | 'QUERY_INVALID'
  | 'READONLY'
  | 'TIMEOUT'
  | 'AUTH_FAILED'
  | 'UNAVAILABLE'
  | 'CANCELLED'
  | 'CLOSED'
  | 'QUERY_FAILED';

/** The table of {@link ClickHouseErrorCode}s: the HTTP status and retryability of each. */
const CLICKHOUSE_ERRORS: ErrorCatalog<ClickHouseErrorCode> = defineErrors({
  source: '@flowforge/clickhouse',
  name: 'ClickHouseError',
  codes: {
    ...sharedErrorKinds(
      'NOT_CONFIGURED',
      'INVALID_OPTIONS',
      'TIMEOUT',
      'AUTH_FAILED',
      'UNAVAILABLE',
      'CANCELLED',
      'CLOSED',
    ),
    INVALID_ARGUMENT: { status: 500, retryable: false },
    SYNTAX_ERROR: { status: 500, retryable: false },
    UNKNOWN_TABLE: { status: 500, retryable: false },
    QUERY_INVALID: { status: 500, retryable: false },
    READONLY: { status: 500, retryable: false },
    QUERY_FAILED: { status: 500, retryable: false },
  },
});

/** What the server said about a failure (every field optional: client-side errors have none). */
export interface ClickHouseErrorDetails {
  /** ClickHouse's numeric error code, e.g. 62 for a syntax error. */
  readonly serverCode?: number;
  /** ClickHouse's error name when the server sent one (servers ≥ 20.x), e.g. `SYNTAX_ERROR`. */
  readonly serverType?: string;
  /** The query_id the failed query ran under. */
  readonly queryId?: string;
}

/**
 * The one error class of @flowforge/clickhouse. Every error that reaches you
 * through a {@link ClickHouse} handle is one of these, with the driver's error
 * as `cause`. Messages carry the server's text (trimmed), never the password or
 * a URL with credentials; a syntax error's text echoes the query, bound values
 * included on 18.16: log messages, never put them in a response. `code`,
 * `status`, `retryable` and `reason` come from the kernel's base,
 * `FlowForgeError`.
 */
export class ClickHouseError extends FlowForgeError<ClickHouseErrorCode> {
  /** ClickHouse's numeric error code, e.g. 62 for a syntax error; undefined for client-side errors. */
  readonly serverCode: number | undefined;
  /** ClickHouse's error name (servers ≥ 20.x), e.g. `SYNTAX_ERROR`; undefined when not sent. */
  readonly serverType: string | undefined;
  /** The query_id the failed query ran under, to find it in `system.query_log`. */
  readonly queryId: string | undefined;

  /**
   * @param code - the stable code callers switch on
   * @param message - the explanation, prefixed with `@flowforge/clickhouse: `
   * @param options - `cause` (the driver's error) and what the server said
   */
  constructor(
    code: ClickHouseErrorCode,
    message: string,
    options?: ErrorOptions & ClickHouseErrorDetails,
  ) {
    super(CLICKHOUSE_ERRORS, code, message, options);
    this.serverCode = options?.serverCode;
    this.serverType = options?.serverType;
    this.queryId = options?.queryId;
  }
}

/** True when `error` is a {@link ClickHouseError} (optionally with one of `codes`). */
export const isClickHouseError: ErrorGuard<ClickHouseError> = errorGuard(ClickHouseError);
