/**
 * Stable codes of {@link RedisError}; switch on these, never on messages.
 *
 * | code | when | retry? |
 * |---|---|---|
 * | `NOT_CONFIGURED` | no `topology` (REDIS_URL unset) and no `client` | no |
 * | `INVALID_OPTIONS` | an option is out of range, or a handle `name` is already reporting to the same metrics registry | no |
 * | `INVALID_ARGUMENT` | a call's arguments are refused before anything is sent (an owned key outside its prefix, a bad range, keys of one call in several Cluster slots: `CROSSSLOT`) | no |
 * | `UNAVAILABLE` | no connection: refused, reset, between reconnect attempts, none made within `connectTimeoutMs`, or the server is loading / has no primary (`LOADING`, `MASTERDOWN`, `TRYAGAIN`) | yes, later |
 * | `TIMEOUT` | no reply within `commandTimeoutMs` (the connection is kept) | maybe |
 * | `AUTH_FAILED` | the server refused the credentials (`WRONGPASS`, `NOAUTH`) | no |
 * | `PERMISSION_DENIED` | an ACL forbids the command or key (`NOPERM`) | no |
 * | `READ_ONLY` | a write through the read-only view (refused before sending), or the server's `READONLY` reply (a write reached a replica) | no |
 * | `WRONG_TYPE` | `WRONGTYPE`: the key holds another kind of value | no |
 * | `CLUSTER_DOWN` | `CLUSTERDOWN`: the cluster cannot serve the slot | yes, later |
 * | `COMMAND_FAILED` | any other error reply (`reply` holds its first word) | no |
 * | `CLOSED` | the handle was closed | no |
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

/** Extra facts about a {@link RedisError}. */
export interface RedisErrorDetails {
  /** The first word of the server's error reply (`WRONGTYPE`, `NOPERM`, `ERR`, …), when there was one. */
  readonly reply?: string;
}

/**
 * The one error class of @flowforge/redis. Every error that reaches you through
 * a {@link Redis} handle is one of these, with the driver's error as `cause`.
 * Messages never contain a password or a key's value.
 */
export class RedisError extends Error {
  /** What went wrong; stable across releases (see {@link RedisErrorCode}). */
  readonly code: RedisErrorCode;
  /** The first word of the server's error reply (`WRONGTYPE`, `NOPERM`, …); undefined when there was none. */
  readonly reply: string | undefined;

  /**
   * @param code - the stable code callers switch on
   * @param message - the explanation, prefixed with `@flowforge/redis: `
   * @param options - `cause` (the driver's error) and the server's reply word
   */
  constructor(code: RedisErrorCode, message: string, options?: ErrorOptions & RedisErrorDetails) {
    super(
      `@flowforge/redis: ${message}`,
      options?.cause === undefined ? {} : { cause: options.cause },
    );
    this.name = 'RedisError';
    this.code = code;
    this.reply = options?.reply;
  }

  /** True for codes where trying the same call again later can succeed. */
  get retryable(): boolean {
    return this.code === 'UNAVAILABLE' || this.code === 'TIMEOUT' || this.code === 'CLUSTER_DOWN';
  }
}

/** True when `error` is a {@link RedisError} (optionally with one of `codes`). */
export function isRedisError(
  error: unknown,
  ...codes: readonly RedisErrorCode[]
): error is RedisError {
  return error instanceof RedisError && (codes.length === 0 || codes.includes(error.code));
}
