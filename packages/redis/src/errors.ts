import {
  FlowForgeError,
  defineErrors,
  errorGuard,
  type ErrorCatalog,
  type ErrorGuard,
  sharedErrorKinds,
} from '@flowforge/kernel';

/**
 * Stable codes of {@link RedisError}; switch on these, never on messages.
 * `status` is what an HTTP server answers when the error reaches its error
 * handler unhandled.
 *
 * | code | status | when | retry? |
 * |---|---|---|---|
 * | `NOT_CONFIGURED` | 503 | no `topology` (REDIS_URL unset) and no `client` | no |
 * | `INVALID_OPTIONS` | 500 | an option is out of range, or a handle `name` is already reporting to the same metrics registry | no |
 * | `INVALID_ARGUMENT` | 500 | a call's arguments are refused before anything is sent (an owned key outside its prefix, a bad range, keys of one call in several Cluster slots: `CROSSSLOT`): our code's call, not the client's | no |
 * | `UNAVAILABLE` | 503 | no connection: refused, reset, between reconnect attempts, none made within `connectTimeoutMs`, or the server is loading / has no primary (`LOADING`, `MASTERDOWN`, `TRYAGAIN`) | yes, later |
 * | `TIMEOUT` | 503 | no reply within `commandTimeoutMs` (the connection is kept) | yes |
 * | `AUTH_FAILED` | 503 | the server refused the credentials (`WRONGPASS`, `NOAUTH`): ours, so the dependency is down for us | no |
 * | `PERMISSION_DENIED` | 500 | an ACL forbids the command or key (`NOPERM`): a grant our user lacks, a deployment bug | no |
 * | `READ_ONLY` | 500 | a write through the read-only view (refused before sending), or the server's `READONLY` reply (a write reached a replica) | no |
 * | `WRONG_TYPE` | 500 | `WRONGTYPE`: the key holds another kind of value | no |
 * | `CLUSTER_DOWN` | 503 | `CLUSTERDOWN`: the cluster cannot serve the slot | yes, later |
 * | `COMMAND_FAILED` | 500 | any other error reply (`reply` holds its first word) | no |
 * | `CLOSED` | 503 | the handle was closed | no |
 */
export type RedisErrorCode =
  | 'NOT_CONFIGURED'
  | 'INVALID_OPTIONS'
  | 'INVALID_ARGUMENT'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'AUTH_FAILED'
  | 'PERMISSION_DENIED'
  | 'READ_ONLY'
  | 'WRONG_TYPE'
  | 'CLUSTER_DOWN'
  | 'COMMAND_FAILED'
  | 'CLOSED';

/** The table of {@link RedisErrorCode}s: the HTTP status and retryability of each. */
const REDIS_ERRORS: ErrorCatalog<RedisErrorCode> = defineErrors({
  source: '@flowforge/redis',
  name: 'RedisError',
  codes: {
    ...sharedErrorKinds(
      'NOT_CONFIGURED',
      'INVALID_OPTIONS',
      'UNAVAILABLE',
      'TIMEOUT',
      'AUTH_FAILED',
      'PERMISSION_DENIED',
      'CLOSED',
    ),
    INVALID_ARGUMENT: { status: 500, retryable: false },
    READ_ONLY: { status: 500, retryable: false },
    WRONG_TYPE: { status: 500, retryable: false },
    CLUSTER_DOWN: { status: 503, retryable: true },
    COMMAND_FAILED: { status: 500, retryable: false },
  },
});

/** Extra facts about a {@link RedisError}. */
export interface RedisErrorDetails {
  /** The first word of the server's error reply (`WRONGTYPE`, `NOPERM`, `ERR`, …), when there was one. */
  readonly reply?: string;
}

/**
 * The one error class of @flowforge/redis. Every error that reaches you through
 * a {@link Redis} handle is one of these, with the driver's error as `cause`.
 * Messages never contain a password or a key's value. `code`, `status`,
 * `retryable` and `reason` come from the kernel's base, `FlowForgeError`.
 */
export class RedisError extends FlowForgeError<RedisErrorCode> {
  /** The first word of the server's error reply (`WRONGTYPE`, `NOPERM`, …); undefined when there was none. */
  readonly reply: string | undefined;

  /**
   * @param code - the stable code callers switch on
   * @param message - the explanation, prefixed with `@flowforge/redis: `
   * @param options - `cause` (the driver's error) and the server's reply word
   */
  constructor(code: RedisErrorCode, message: string, options?: ErrorOptions & RedisErrorDetails) {
    super(REDIS_ERRORS, code, message, options);
    this.reply = options?.reply;
  }
}

/** True when `error` is a {@link RedisError} (optionally with one of `codes`). */
export const isRedisError: ErrorGuard<RedisError> = errorGuard(RedisError);
