/**
 * Stable codes of {@link AuthError}, each with its HTTP status:
 *
 * | code | status | when |
 * |---|---|---|
 * | `CREDENTIALS_MISSING` | 401 | no Authorization header (and no API key where one is accepted) |
 * | `REQUEST_INVALID` | 400 | a malformed Authorization header: two of them, no token, bad characters |
 * | `INPUT_INVALID` | 400 | bad input to an API-key function (a blank name, an expiry in the past): not an authentication failure |
 * | `TOKEN_INVALID` | 401 | a bearer token that does not verify (signature, issuer, audience, claims, type, size) |
 * | `TOKEN_EXPIRED` | 401 | a verified token past its `exp` |
 * | `API_KEY_INVALID` | 401 | an API key that is malformed, unknown, revoked or expired |
 * | `INSUFFICIENT_SCOPE` | 403 | a missing role, or a widget outside the API key's scope |
 * | `IDP_UNAVAILABLE` | 503 | no signing keys can be had: the identity provider is unreachable |
 * | `STORE_UNAVAILABLE` | 503 | the API-key store (PostgreSQL) is unreachable |
 * | `NO_PRINCIPAL` | 500 | `getCurrent…()` outside an authenticated request: a bug, not a client error |
 */
export type AuthErrorCode =
  | 'CREDENTIALS_MISSING'
  | 'REQUEST_INVALID'
  | 'INPUT_INVALID'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'API_KEY_INVALID'
  | 'INSUFFICIENT_SCOPE'
  | 'IDP_UNAVAILABLE'
  | 'STORE_UNAVAILABLE'
  | 'NO_PRINCIPAL';

const STATUS: Record<AuthErrorCode, number> = {
  CREDENTIALS_MISSING: 401,
  REQUEST_INVALID: 400,
  INPUT_INVALID: 400,
  TOKEN_INVALID: 401,
  TOKEN_EXPIRED: 401,
  API_KEY_INVALID: 401,
  INSUFFICIENT_SCOPE: 403,
  IDP_UNAVAILABLE: 503,
  STORE_UNAVAILABLE: 503,
  NO_PRINCIPAL: 500,
};

/** RFC 6750 error codes, for `WWW-Authenticate`. */
const BEARER_ERROR: Partial<Record<AuthErrorCode, string>> = {
  REQUEST_INVALID: 'invalid_request',
  TOKEN_INVALID: 'invalid_token',
  TOKEN_EXPIRED: 'invalid_token',
  API_KEY_INVALID: 'invalid_token',
  INSUFFICIENT_SCOPE: 'insufficient_scope',
};

/**
 * The one error class of @flowforge/auth. Its message is safe to show a
 * client: it never contains the token, the key or a claim value.
 */
export class AuthError extends Error {
  /** What went wrong; stable across releases (see {@link AuthErrorCode}). */
  readonly code: AuthErrorCode;
  /** The HTTP status this error answers with. */
  readonly status: number;

  /**
   * @param code - the stable code; it also sets `status`
   * @param message - safe to show a client: never a token, key or claim value
   * @param options - `cause`, when another error is behind this one
   */
  constructor(code: AuthErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AuthError';
    this.code = code;
    this.status = STATUS[code];
  }

  /** The same as `status`, under the name Fastify's error handling reads. */
  get statusCode(): number {
    return this.status;
  }

  /**
   * The `WWW-Authenticate` value for a 400/401/403 (RFC 6750), or `undefined`;
   * `scheme` is `Bearer` unless the route takes another credential (`ApiKey`).
   * @example reply.header('www-authenticate', error.challenge('flowforge'))
   */
  challenge(realm: string, scheme = 'Bearer'): string | undefined {
    // Bad input to an API-key function is not an authentication failure.
    if (this.code === 'INPUT_INVALID') return undefined;
    if (this.status !== 400 && this.status !== 401 && this.status !== 403) return undefined;
    const error = BEARER_ERROR[this.code];
    const quoted = (value: string): string => `"${value.replace(/["\\]/g, '')}"`;
    return error === undefined
      ? `${scheme} realm=${quoted(realm)}`
      : `${scheme} realm=${quoted(realm)}, error=${quoted(error)}, error_description=${quoted(this.message)}`;
  }
}

/** True when `error` is an {@link AuthError} (optionally with one of `codes`). */
export function isAuthError(
  error: unknown,
  ...codes: readonly AuthErrorCode[]
): error is AuthError {
  return error instanceof AuthError && (codes.length === 0 || codes.includes(error.code));
}
