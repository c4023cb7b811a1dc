import {
  FlowForgeError,
  defineErrors,
  errorGuard,
  type ErrorCatalog,
  type ErrorGuard,
  sharedErrorKinds,
} from '@flowforge/kernel';

/**
 * Stable codes of {@link AuthError}, each with its HTTP status:
 *
 * | code | status | retry? | when |
 * |---|---|---|---|
 * | `CREDENTIALS_MISSING` | 401 | no | no Authorization header (and no API key where one is accepted) |
 * | `REQUEST_INVALID` | 400 | no | a malformed Authorization header: two of them, no token, bad characters |
 * | `INPUT_INVALID` | 400 | no | bad input to an API-key function (a blank name, an expiry in the past) or to a stream ticket (no widgets, more than 16, a repeated one, a resume point that is not digits): not an authentication failure |
 * | `TOKEN_INVALID` | 401 | no | a bearer token that does not verify (signature, issuer, audience, claims, type, size) |
 * | `TOKEN_EXPIRED` | 401 | no | a verified token past its `exp` |
 * | `API_KEY_INVALID` | 401 | no | an API key that is malformed, unknown, revoked or expired |
 * | `TICKET_INVALID` | 401 | no | a stream ticket that is malformed, unknown, already redeemed or expired (one message for all) |
 * | `INSUFFICIENT_SCOPE` | 403 | no | a missing role, or a widget outside the API key's scope |
 * | `TOO_MANY_FAILURES` | 429 | yes, after `retryAfterSeconds` | this client sent too many wrong API keys in the window of its {@link FailureThrottle} (checked before any key is looked up) |
 * | `IDP_UNAVAILABLE` | 503 | yes | no signing keys can be had: the identity provider is unreachable |
 * | `STORE_UNAVAILABLE` | 503 | yes | the API-key store (PostgreSQL) or the stream-ticket store (Redis) is unreachable |
 * | `TICKETS_FULL` | 503 | yes, after `retryAfterSeconds` | the in-process ticket store (no Redis) holds its `maxTickets` live tickets: the seconds until the oldest expires |
 * | `NOT_CONFIGURED` | 503 | no | an API key arrived at a verifier made without a database (`createApiKeyVerifier(null)`: DATABASE_URL is not set) |
 * | `NO_PRINCIPAL` | 500 | no | `getCurrent…()` outside an authenticated request: a bug, not a client error |
 * | `INVALID_OPTIONS` | 500 | no | a factory's option is wrong (`algorithms` naming a symmetric one, a negative `lastUsedIntervalMs`): a bug of the caller's code, thrown before anything runs |
 */
export type AuthErrorCode =
  | 'CREDENTIALS_MISSING'
  | 'REQUEST_INVALID'
  | 'INPUT_INVALID'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'API_KEY_INVALID'
  | 'TICKET_INVALID'
  | 'INSUFFICIENT_SCOPE'
  | 'TOO_MANY_FAILURES'
  | 'IDP_UNAVAILABLE'
  | 'STORE_UNAVAILABLE'
  | 'TICKETS_FULL'
  | 'NOT_CONFIGURED'
  | 'NO_PRINCIPAL'
  | 'INVALID_OPTIONS';

/** Why a bearer token was refused: the `reason` label of `flowforge_auth_failures_total`. */
export type TokenFailure =
  | 'oversized'
  | 'malformed'
  | 'header'
  | 'algorithm'
  | 'unknown_key'
  | 'signature'
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'lifetime'
  | 'issuer'
  | 'audience'
  | 'type'
  | 'claims'
  | 'tenant'
  | 'idp_unavailable';

/**
 * The table of {@link AuthErrorCode}s. Client-safe: every message is written
 * to be shown to the caller, never a token, a key or a claim value.
 */
const AUTH_ERRORS: ErrorCatalog<AuthErrorCode> = defineErrors({
  source: '@flowforge/auth',
  name: 'AuthError',
  clientSafe: true,
  codes: {
    ...sharedErrorKinds('INVALID_OPTIONS', 'NOT_CONFIGURED'),
    CREDENTIALS_MISSING: { status: 401, retryable: false },
    REQUEST_INVALID: { status: 400, retryable: false },
    INPUT_INVALID: { status: 400, retryable: false },
    TOKEN_INVALID: { status: 401, retryable: false },
    TOKEN_EXPIRED: { status: 401, retryable: false },
    API_KEY_INVALID: { status: 401, retryable: false },
    TICKET_INVALID: { status: 401, retryable: false },
    INSUFFICIENT_SCOPE: { status: 403, retryable: false },
    TOO_MANY_FAILURES: { status: 429, retryable: true },
    IDP_UNAVAILABLE: { status: 503, retryable: true },
    STORE_UNAVAILABLE: { status: 503, retryable: true },
    TICKETS_FULL: { status: 503, retryable: true },
    NO_PRINCIPAL: { status: 500, retryable: false },
  },
});

/** RFC 6750 error codes, for `WWW-Authenticate`. */
const BEARER_ERROR: Partial<Record<AuthErrorCode, string>> = {
  REQUEST_INVALID: 'invalid_request',
  TOKEN_INVALID: 'invalid_token',
  TOKEN_EXPIRED: 'invalid_token',
  API_KEY_INVALID: 'invalid_token',
  TICKET_INVALID: 'invalid_token',
  INSUFFICIENT_SCOPE: 'insufficient_scope',
};

/** What an {@link AuthError} may carry beyond `cause`. */
export interface AuthErrorDetails {
  /** Why a bearer token was refused (set by the JWT verifier only). */
  readonly failure?: TokenFailure;
  /** Seconds the client should wait before trying again (TOO_MANY_FAILURES, TICKETS_FULL): the `Retry-After`. */
  readonly retryAfterSeconds?: number;
}

/**
 * The one error class of @flowforge/auth. Its message (and `reason`, the
 * message without the `@flowforge/auth: ` prefix) is safe to show a client:
 * it never contains the token, the key or a claim value. `code`, `status`,
 * `retryable` and `reason` come from the kernel's base, `FlowForgeError`.
 */
export class AuthError extends FlowForgeError<AuthErrorCode> {
  /**
   * Why a bearer token was refused, when the JWT verifier refused one: the
   * `reason` label of `flowforge_auth_failures_total`. Undefined otherwise.
   */
  readonly failure: TokenFailure | undefined;

  /**
   * Seconds the client should wait before trying again, when known (TOO_MANY_FAILURES, TICKETS_FULL):
   * the server kit's problem mapping sends it as `Retry-After`. Undefined otherwise.
   */
  readonly retryAfterSeconds: number | undefined;

  /**
   * @param code - the stable code; it also sets `status` and `retryable`
   * @param message - safe to show a client: never a token, key or claim value
   * @param options - `cause`, when another error is behind this one; `failure`, for a refused
   *   token; `retryAfterSeconds`, for a throttled client
   */
  constructor(code: AuthErrorCode, message: string, options?: ErrorOptions & AuthErrorDetails) {
    super(AUTH_ERRORS, code, message, options);
    this.failure = options?.failure;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }

  /** The same as `status`, under the name Fastify's error handling reads. */
  get statusCode(): number {
    return this.status;
  }

  /**
   * The `WWW-Authenticate` value for a 400/401/403 (RFC 6750), or `undefined`;
   * `scheme` is `Bearer` unless the route takes another credential (`ApiKey`).
   * The description is `reason`: the message without the package prefix.
   * @example reply.header('www-authenticate', error.challenge('flowforge'))
   */
  challenge(realm: string, scheme = 'Bearer'): string | undefined {
    // Bad input (to an API-key function, to a ticket) is not an authentication failure.
    if (this.code === 'INPUT_INVALID') return undefined;
    if (this.status !== 400 && this.status !== 401 && this.status !== 403) return undefined;
    const error = BEARER_ERROR[this.code];
    const quoted = (value: string): string => `"${value.replace(/["\\]/g, '')}"`;
    return error === undefined
      ? `${scheme} realm=${quoted(realm)}`
      : `${scheme} realm=${quoted(realm)}, error=${quoted(error)}, error_description=${quoted(this.reason)}`;
  }
}

/** True when `error` is an {@link AuthError} (optionally with one of `codes`). */
export const isAuthError: ErrorGuard<AuthError> = errorGuard(AuthError);
