import type { Logger, Metrics } from '@flowforge/observability';
import { AuthError, isAuthError } from './errors.js';
import { failureCounter } from './internal/metrics.js';
import {
  createJwtVerifier,
  type IdentityProviderHealth,
  type JwtAlgorithm,
  type JwtVerifier,
} from './jwt.js';
import type { Principal } from './principal.js';

/**
 * Options of {@link createAuth}: `settings.auth` from @flowforge/config spreads
 * in; add `appEnv: settings.app.env`.
 */
export interface AuthOptions {
  /**
   * APP_ENV (`settings.app.env`). The dev bypass exists only when this is exactly
   * `development`; anything else (production, test, empty, `undefined` from a JS
   * caller) leaves it out. @flowforge/config gives `production` for an unset
   * APP_ENV, so only an explicit APP_ENV=development reaches here as `development`.
   */
  readonly appEnv: string;
  /** The realm whose access tokens are accepted (`settings.auth.keycloak`). */
  readonly keycloak: {
    /** `{KEYCLOAK_URL}/realms/{realm}`. */
    readonly issuer: string;
    /** `{issuer}/protocol/openid-connect/certs`. */
    readonly jwksUrl: string;
    /** The audience expected in access tokens (KEYCLOAK_CLIENT_ID). */
    readonly clientId: string;
  };
  /**
   * Signing algorithms accepted, from @flowforge/config's asymmetric list (any
   * other throws AuthError INVALID_OPTIONS). @default ['RS256', 'ES256']
   */
  readonly algorithms?: readonly JwtAlgorithm[];
  /** Leeway for exp/nbf/iat, in seconds: a token issued later than now + this is refused. @default 30 */
  readonly clockToleranceSeconds?: number;
  /**
   * The longest lifetime (`exp − iat`) of an access token accepted, in seconds, 60 to
   * 2592000 (AUTH_MAX_TOKEN_LIFETIME_SECONDS; Keycloak's access tokens live 300 s by
   * default); a longer one is TOKEN_INVALID. @default 3600
   */
  readonly maxTokenLifetimeSeconds?: number;
  /** An unknown `kid` refetches the JWKS at most once per this many ms. @default 30000 */
  readonly jwksCooldownMs?: number;
  /** Keys older than this are refreshed (the old ones are kept if that fails). @default 600000 */
  readonly jwksMaxAgeMs?: number;
  /** The dev principal (settings.auth.devBypass); ignored unless `appEnv` is development. */
  readonly devBypass?: {
    /** The dev user's id (AUTH_DEV_USER_ID). */
    readonly userId: string;
    /** The dev user's tenant, a UUID (AUTH_DEV_TENANT_ID). */
    readonly tenantId: string;
  } | null;
  /** Roles of the dev principal. @default ['viewer', 'editor', 'admin'] */
  readonly devRoles?: readonly string[];
  /** Verified tokens remembered until their exp; 0 turns it off. @default 10000 */
  readonly tokenCacheSize?: number;
  /** The fetch used for the JWKS. @default globalThis.fetch */
  readonly fetch?: typeof fetch;
}

/** What {@link createAuth} reports to; both are optional. */
export interface AuthDependencies {
  /** Gets JWKS fetch failures (warn), a warning when the dev bypass is on, and each dev-bypass use (info). */
  readonly logger?: Logger;
  /**
   * Counts refused authentications in `flowforge_auth_failures_total{reason}` and
   * dev-bypass uses in `flowforge_auth_dev_bypass_total`.
   */
  readonly metrics?: Metrics;
}

/** The bearer-token half of authentication (dev bypass, then JWT). API keys: `createApiKeyVerifier`. */
export interface Auth {
  /**
   * Authenticates an `Authorization` header value (a string, or the array a
   * server gives for a repeated header). Dev bypass first (development only:
   * no header, or `Bearer dev-token`), then a Keycloak access token.
   * @throws {AuthError} CREDENTIALS_MISSING, REQUEST_INVALID, TOKEN_INVALID, TOKEN_EXPIRED, IDP_UNAVAILABLE
   */
  authenticateBearer(authorization: string | readonly string[] | undefined): Promise<Principal>;
  /** True when the dev bypass is on (APP_ENV=development with a dev principal). */
  readonly devBypassEnabled: boolean;
  /** How many times the JWKS was fetched. */
  readonly jwksFetches: () => number;
  /**
   * The identity provider, for readiness: `ok`, `degraded` (cached keys still verify) or
   * `down` (no keys: bearer requests answer 503). Never rejects; fetches the JWKS at most
   * once per `jwksCooldownMs` and waits at most a second. See {@link IdentityProviderHealth}.
   * @example
   * const { status, error } = await auth.health(); // status: 'ok' | 'degraded' | 'down'
   */
  health(): Promise<IdentityProviderHealth>;
}

/** RFC 6750 b64token. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;
const DEV_TOKEN = 'dev-token';

/**
 * Creates the bearer authenticator.
 *
 * @throws {AuthError} INVALID_OPTIONS when `algorithms` names one outside the asymmetric list,
 *   or `maxTokenLifetimeSeconds` is not a whole number from 60 to 2592000.
 * @example
 * const auth = createAuth({ ...settings.auth, appEnv: settings.app.env }, { logger, metrics });
 * const principal = await auth.authenticateBearer(request.headers.authorization);
 */
export function createAuth(options: AuthOptions, dependencies: AuthDependencies = {}): Auth {
  const { logger, metrics } = dependencies;
  // The bypass is decided here, once: outside development it does not exist,
  // whatever the settings say (config refuses such settings in production too).
  // Only the exact string counts: no default, no NODE_ENV, no case folding.
  const dev =
    options.appEnv === 'development' && options.devBypass
      ? Object.freeze({
          userId: options.devBypass.userId,
          tenantId: options.devBypass.tenantId,
          roles: Object.freeze([...(options.devRoles ?? ['viewer', 'editor', 'admin'])]),
          claims: Object.freeze({}),
          method: 'dev' as const,
        })
      : null;

  if (dev) {
    logger?.warn(
      { tenant_id: dev.tenantId, user_id: dev.userId },
      'development bypass is on: requests without a token act as the dev principal (APP_ENV=development)',
    );
  }

  const failures = metrics ? failureCounter(metrics) : undefined;
  const bypasses = metrics?.counter({
    name: 'auth_dev_bypass_total',
    help: 'Requests authenticated by the development bypass (must stay 0 outside development).',
  });

  const verifier: JwtVerifier = createJwtVerifier({
    issuer: options.keycloak.issuer,
    jwksUrl: options.keycloak.jwksUrl,
    audience: options.keycloak.clientId,
    ...(options.algorithms ? { algorithms: options.algorithms } : {}),
    ...(options.clockToleranceSeconds === undefined
      ? {}
      : { clockToleranceSeconds: options.clockToleranceSeconds }),
    ...(options.maxTokenLifetimeSeconds === undefined
      ? {}
      : { maxTokenLifetimeSeconds: options.maxTokenLifetimeSeconds }),
    ...(options.jwksCooldownMs === undefined ? {} : { jwksCooldownMs: options.jwksCooldownMs }),
    ...(options.jwksMaxAgeMs === undefined ? {} : { jwksMaxAgeMs: options.jwksMaxAgeMs }),
    ...(options.tokenCacheSize === undefined ? {} : { cacheSize: options.tokenCacheSize }),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    onJwksError: (error, serving) => {
      logger?.warn(
        { err: error instanceof Error ? { message: error.message } : undefined, serving },
        serving === 'stale'
          ? 'JWKS refresh failed; still verifying with the last good keys'
          : 'JWKS fetch failed; no keys to verify tokens with',
      );
    },
  });

  const refuse = (reason: string, error: AuthError): never => {
    failures?.inc({ reason });
    throw error;
  };

  return {
    devBypassEnabled: dev !== null,
    jwksFetches: verifier.jwksFetches,
    health: () => verifier.health(),
    async authenticateBearer(authorization) {
      if (typeof authorization !== 'string' && authorization !== undefined) {
        return refuse(
          'malformed_header',
          new AuthError('REQUEST_INVALID', 'send one Authorization header, not several'),
        );
      }
      if (dev && (authorization === undefined || authorization === `Bearer ${DEV_TOKEN}`)) {
        bypasses?.inc();
        logger?.info(
          { auth_method: 'dev' },
          'development bypass: request authenticated as the dev principal',
        );
        return dev;
      }
      if (authorization === undefined || authorization.trim() === '') {
        return refuse(
          'missing',
          new AuthError('CREDENTIALS_MISSING', 'a bearer token is required'),
        );
      }
      const match = BEARER.exec(authorization);
      if (!match) {
        // Another scheme (Basic, …) is not a malformed request: it is missing bearer credentials.
        if (!/^bearer(\s|$)/i.test(authorization)) {
          return refuse(
            'missing',
            new AuthError('CREDENTIALS_MISSING', 'a bearer token is required'),
          );
        }
        return refuse(
          'malformed_header',
          new AuthError('REQUEST_INVALID', 'the Authorization header is not "Bearer <token>"'),
        );
      }
      try {
        return await verifier.verify(match[1]!);
      } catch (error) {
        // Only the verifier's refusals carry a failure; anything else is not counted.
        if (isAuthError(error) && error.failure !== undefined) return refuse(error.failure, error);
        throw error;
      }
    },
  };
}
