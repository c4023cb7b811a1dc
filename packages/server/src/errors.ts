import {
  FlowForgeError,
  defineErrors,
  errorGuard,
  sharedErrorKinds,
  type ErrorCatalog,
  type ErrorGuard,
} from '@flowforge/kernel';

/**
 * Stable codes of {@link ServerError}. Every message is written for clients (it
 * names a variable or a limit, never a value), so a problem shows it as `detail`.
 *
 * | code | status | when | retry? |
 * |---|---|---|---|
 * | `NOT_CONFIGURED` | 503 | a route needs a store whose variable is not set ({@link storeNotConfigured}) | no: an operator must set it |
 * | `INVALID_OPTIONS` | 500 | the kit was given a bad option (a duplicate check name, a negative timeout) | no |
 * | `SHUTTING_DOWN` | 503 | this instance is stopping and takes no new stream | yes, at once (another instance) |
 * | `LAST_EVENT_ID_INVALID` | 400 | a reconnecting client's `Last-Event-ID` is longer than 1024 characters or holds a control character (`lastEventIdOf`) | no |
 * | `TOO_MANY_STREAMS` | 429 | the caller, or its tenant, already holds its share of event streams | yes, later |
 * | `BODY_TOO_DEEP` | 400 | a JSON body nests arrays or objects deeper than the limit (`jsonDepthExceeds`) | no |
 * | `STREAMS_FULL` | 503 | every event stream slot of this instance is taken | yes, later |
 * | `ORIGIN_NOT_ALLOWED` | 403 | a browser request from an origin that is neither the API's own nor in the CORS allow-list (`corsOrigins`) | no |
 */
export type ServerErrorCode =
  | 'NOT_CONFIGURED'
  | 'INVALID_OPTIONS'
  | 'SHUTTING_DOWN'
  | 'LAST_EVENT_ID_INVALID'
  | 'TOO_MANY_STREAMS'
  | 'STREAMS_FULL'
  | 'BODY_TOO_DEEP'
  | 'ORIGIN_NOT_ALLOWED';

const SERVER_ERRORS: ErrorCatalog<ServerErrorCode> = defineErrors({
  source: '@flowforge/server',
  name: 'ServerError',
  clientSafe: true,
  codes: {
    ...sharedErrorKinds('NOT_CONFIGURED', 'INVALID_OPTIONS'),
    SHUTTING_DOWN: { status: 503, retryable: true },
    LAST_EVENT_ID_INVALID: { status: 400, retryable: false },
    TOO_MANY_STREAMS: { status: 429, retryable: true },
    STREAMS_FULL: { status: 503, retryable: true },
    BODY_TOO_DEEP: { status: 400, retryable: false },
    ORIGIN_NOT_ALLOWED: { status: 403, retryable: false },
  },
});

/** Options of a {@link ServerError} beyond `cause`. */
export interface ServerErrorOptions extends ErrorOptions {
  /** Seconds a client should wait before trying again: the problem's `Retry-After`. */
  readonly retryAfterSeconds?: number;
}

/** An error of the server kit; its message is written for clients. */
export class ServerError extends FlowForgeError<ServerErrorCode> {
  /** Seconds a client should wait before trying again, when the kit knows better than the default. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ServerErrorCode, reason: string, options?: ServerErrorOptions) {
    super(SERVER_ERRORS, code, reason, options);
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** True when `error` is a {@link ServerError} (optionally with one of `codes`). */
export const isServerError: ErrorGuard<ServerError> = errorGuard(ServerError);

/**
 * The error of a route that needs a store the deployment has not configured:
 * 503 (Retry-After 60: an operator must act) with a detail naming the variable.
 *
 * @example
 * if (clickhouse === null) throw storeNotConfigured('ClickHouse', 'CLICKHOUSE_URL');
 */
export function storeNotConfigured(store: string, variable: string): ServerError {
  return new ServerError('NOT_CONFIGURED', `${store} is not configured: set ${variable}.`);
}
