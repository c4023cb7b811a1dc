import { jwtVerify, type JWTPayload } from 'jose';
import { ALLOWED_JWT_ALGORITHMS, type JwtAlgorithm } from '@flowforge/config';
import { isTenantId } from '@flowforge/db';
import { OptionChecks } from '@flowforge/kernel';
import { AuthError, type TokenFailure } from './errors.js';
import { deepFreeze } from './internal/deep-freeze.js';
import { JwksCache } from './internal/jwks.js';
import { TokenCache } from './internal/token-cache.js';
import type { Principal } from './principal.js';

/** Asymmetric algorithms only (config's list): `none` and HS* (a shared secret) are never accepted. */
export type { JwtAlgorithm };

/** Options of {@link createJwtVerifier} (`createAuth` fills them from its own). */
export interface JwtVerifierOptions {
  /** The `iss` every token must carry: `{KEYCLOAK_URL}/realms/{realm}`. */
  readonly issuer: string;
  /** The realm's keys: `{issuer}/protocol/openid-connect/certs`. */
  readonly jwksUrl: string;
  /** This API's client id: accepted in `aud`, or as `azp` (Keycloak's default `aud` is "account"). */
  readonly audience: string;
  /**
   * Signing algorithms accepted, from @flowforge/config's asymmetric list; any
   * other throws AuthError INVALID_OPTIONS. @default ['RS256', 'ES256']
   */
  readonly algorithms?: readonly JwtAlgorithm[];
  /** Leeway for exp/nbf/iat, in seconds: a token issued later than now + this is refused. @default 30 */
  readonly clockToleranceSeconds?: number;
  /**
   * The longest lifetime (`exp − iat`) of a token accepted, in seconds, 60 to 2592000
   * (AUTH_MAX_TOKEN_LIFETIME_SECONDS). Keycloak's access tokens live 300 s by default; a
   * token minted to live for years is refused (TOKEN_INVALID, failure `lifetime`).
   * @default 3600
   */
  readonly maxTokenLifetimeSeconds?: number;
  /**
   * An unknown kid refetches the keys at most once per this many ms; a token issued after
   * the last fetch (a key rotated to since) may refetch sooner, at most once a second.
   * @default 30000
   */
  readonly jwksCooldownMs?: number;
  /** Keys older than this are refreshed (the old ones are kept if that fails). @default 600000 */
  readonly jwksMaxAgeMs?: number;
  /** How long one JWKS fetch may take, in ms. @default 5000 */
  readonly jwksTimeoutMs?: number;
  /** Tokens longer than this are refused before any parsing. @default 8192 */
  readonly maxTokenLength?: number;
  /** Verified tokens remembered (by hash, until their exp); 0 turns the cache off. @default 10000 */
  readonly cacheSize?: number;
  /** The fetch used for the JWKS. @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** The clock, in epoch milliseconds (token times and the cache). @default Date.now */
  readonly now?: () => number;
  /** Told about JWKS fetch failures (the keys in use stay). */
  readonly onJwksError?: (error: unknown, serving: 'stale' | 'none') => void;
}

/** Verifies Keycloak access tokens; made by {@link createJwtVerifier}. */
export interface JwtVerifier {
  /**
   * Verifies an access token and returns its principal.
   * @throws {AuthError} TOKEN_INVALID, TOKEN_EXPIRED or IDP_UNAVAILABLE, with `failure` saying why
   */
  verify(token: string): Promise<Principal>;
  /** How many times the JWKS was fetched. */
  readonly jwksFetches: () => number;
  /**
   * The identity provider as token verification sees it, for readiness; never rejects.
   * Cheap: it fetches the JWKS (refreshing the keys in use) at most once per
   * `jwksCooldownMs` (at least a second apart) and otherwise reports the latest fetch,
   * whoever made it; it waits at most a second (or `jwksTimeoutMs`, if shorter) for an
   * answer.
   */
  health(): Promise<IdentityProviderHealth>;
}

/**
 * What {@link JwtVerifier.health} (and `Auth.health`) report.
 *
 * | status | means | bearer requests |
 * |---|---|---|
 * | `ok` | the latest JWKS fetch succeeded | verify |
 * | `degraded` | the latest fetch failed or has not answered yet; keys fetched earlier are in use | verify with the cached keys; a token signed by a key rotated to since answers 503 |
 * | `down` | no keys were ever fetched and the IdP does not answer | answer 503 IDP_UNAVAILABLE |
 */
export interface IdentityProviderHealth {
  /** See the table above. */
  readonly status: 'ok' | 'degraded' | 'down';
  /** When the keys in use were fetched, in epoch ms (by the verifier's clock); null when there are none. */
  readonly keysFetchedAt: number | null;
  /** Why it is not `ok` (the fetch's error, without the JWKS URL); absent when it is. */
  readonly error?: string;
}

/** The longest a health probe waits for the JWKS (readiness checks have about 2 s in all). */
const HEALTH_WAIT_MS = 1_000;

const invalid = (failure: TokenFailure, message: string, cause?: unknown): AuthError =>
  new AuthError(failure === 'expired' ? 'TOKEN_EXPIRED' : 'TOKEN_INVALID', message, {
    failure,
    ...(cause === undefined ? {} : { cause }),
  });

/** Header parameters that point at keys elsewhere: we only trust the realm's JWKS. */
const FOREIGN_KEY_HEADERS = ['jku', 'jwk', 'x5u', 'x5c'];

/**
 * Verifies Keycloak access tokens: signature by the realm's JWKS with an
 * asymmetric allow-list, `iss`, `aud` or `azp`, `exp`/`nbf`/`iat` with a small
 * tolerance (an `iat` in the future is refused), a lifetime `exp − iat` of at most
 * `maxTokenLifetimeSeconds`, required `exp`, `iat`, `sub` and a UUID `tenant_id`
 * (not the nil UUID), and an access-token type (Keycloak's claim `typ: "Bearer"`,
 * or the RFC 9068 header `typ: "at+jwt"`), so ID and refresh tokens are refused.
 *
 * @throws {AuthError} INVALID_OPTIONS when `algorithms` names one outside
 *   @flowforge/config's asymmetric list (`none`, HS*), or `maxTokenLifetimeSeconds`
 *   is not a whole number from 60 to 2592000, before anything is fetched.
 */
export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const algorithms = [...(options.algorithms ?? ['RS256', 'ES256'])];
  const checks = new OptionChecks();
  for (const alg of algorithms) checks.oneOf('algorithms', alg, ALLOWED_JWT_ALGORITHMS, 'RS256');
  // The range of AUTH_MAX_TOKEN_LIFETIME_SECONDS: a minute to thirty days.
  const maxLifetime = checks.wholeNumber(
    'maxTokenLifetimeSeconds',
    options.maxTokenLifetimeSeconds,
    { min: 60, max: 2_592_000 },
    3_600,
  );
  checks.throwIfAny((message) => new AuthError('INVALID_OPTIONS', message));
  const now = options.now ?? Date.now;
  const maxLength = options.maxTokenLength ?? 8192;
  const cache = new TokenCache(options.cacheSize ?? 10_000);
  const tolerance = options.clockToleranceSeconds ?? 30;
  const cooldownMs = options.jwksCooldownMs ?? 30_000;
  const timeoutMs = options.jwksTimeoutMs ?? 5_000;
  const jwks = new JwksCache({
    url: options.jwksUrl,
    cooldownMs,
    maxAgeMs: options.jwksMaxAgeMs ?? 600_000,
    timeoutMs,
    fetch: options.fetch ?? globalThis.fetch,
    now,
    issuedAfterSlackMs: (tolerance + 1) * 1000,
    ...(options.onJwksError ? { onFetchError: options.onJwksError } : {}),
  });

  async function verifyUncached(
    token: string,
  ): Promise<{ principal: Principal; exp: number; generation: number }> {
    // The key set the verdict rests on, read first: when a refresh lands during
    // this verification, the entry is stale (verified again next time), never wrong.
    const generation = jwks.generation;
    let payload: JWTPayload;
    let header: Record<string, unknown>;
    try {
      const result = await jwtVerify(token, jwks.resolve, {
        issuer: options.issuer,
        algorithms,
        clockTolerance: tolerance,
        requiredClaims: ['exp', 'iat', 'sub'],
        currentDate: new Date(now()),
      });
      payload = result.payload;
      header = result.protectedHeader;
    } catch (error) {
      throw fromJose(error);
    }
    if (FOREIGN_KEY_HEADERS.some((name) => name in header)) {
      throw invalid('header', 'the token names keys outside the realm (jku/jwk/x5u/x5c)');
    }
    // jose has checked exp and iat are present and numbers; it checks iat only against a
    // maxTokenAge, which bounds age, not lifetime: a token minted for ten years passes that.
    const iat = payload.iat!;
    if (iat > now() / 1000 + tolerance) {
      throw invalid('issued_in_future', 'the token is issued in the future');
    }
    if (payload.exp! - iat > maxLifetime) {
      throw invalid('lifetime', `the token is valid for longer than ${maxLifetime} s`);
    }
    const headerType = typeof header.typ === 'string' ? header.typ.toLowerCase() : undefined;
    const isAccessTokenHeader = headerType === 'at+jwt' || headerType === 'application/at+jwt';
    if (
      isAccessTokenHeader
        ? payload.typ !== undefined && payload.typ !== 'Bearer'
        : payload.typ !== 'Bearer'
    ) {
      throw invalid('type', 'not an access token');
    }
    const audiences = Array.isArray(payload.aud)
      ? payload.aud
      : payload.aud === undefined
        ? []
        : [payload.aud];
    // azp stands in for aud only where Keycloak puts its default ("account") or
    // nothing: a token this client obtained for another API names that API in aud.
    const forUs =
      audiences.includes(options.audience) ||
      (payload.azp === options.audience && audiences.every((audience) => audience === 'account'));
    if (!forUs) {
      throw invalid('audience', 'the token is not meant for this API');
    }
    if (typeof payload.sub !== 'string' || payload.sub.length === 0) {
      throw invalid('claims', 'the token has no subject');
    }
    const tenantId = payload.tenant_id;
    if (!isTenantId(tenantId)) {
      throw invalid('tenant', 'the token carries no valid tenant_id');
    }
    return {
      principal: Object.freeze({
        userId: payload.sub,
        tenantId: tenantId.toLowerCase(),
        roles: Object.freeze(rolesOf(payload, options.audience)),
        // Deeply frozen: a cached principal is shared by every request with this token.
        // No copy needed: jose parses a fresh payload for every verification.
        claims: deepFreeze(payload),
        method: 'jwt' as const,
      }),
      exp: (payload.exp ?? 0) * 1000,
      generation,
    };
  }

  return {
    async verify(token) {
      if (token.length > maxLength) {
        throw invalid('oversized', `the token is longer than ${maxLength} characters`);
      }
      const key = TokenCache.keyOf(token);
      const cached = cache.get(key, now(), jwks.generation);
      if (cached) return cached;
      const { principal, exp, generation } = await verifyUncached(token);
      cache.set(key, principal, exp, generation);
      return principal;
    },
    jwksFetches: () => jwks.fetches,
    async health() {
      // A probe may fetch once per cooldown (never more than once a second), like an unknown kid.
      const state = await jwks.probe(
        Math.max(cooldownMs, 1_000),
        Math.min(HEALTH_WAIT_MS, timeoutMs),
      );
      if (!state.pending && !state.lastFetchFailed && state.keysFetchedAt !== null) {
        return { status: 'ok', keysFetchedAt: state.keysFetchedAt };
      }
      return {
        status: state.keysFetchedAt === null ? 'down' : 'degraded',
        keysFetchedAt: state.keysFetchedAt,
        error: state.pending
          ? `the JWKS did not answer within ${Math.min(HEALTH_WAIT_MS, timeoutMs)} ms`
          : (state.lastError ?? 'the JWKS fetch failed'),
      };
    },
  };
}

function rolesOf(payload: JWTPayload, clientId: string): string[] {
  const strings = (value: unknown): string[] =>
    Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
  const realm = strings((payload.realm_access as { roles?: unknown } | undefined)?.roles);
  const resource = payload.resource_access as Record<string, { roles?: unknown }> | undefined;
  const client = strings(resource?.[clientId]?.roles);
  return [...new Set([...realm, ...client])];
}

/** jose's errors, by code, to ours: messages say what failed, never what the token held. */
function fromJose(error: unknown): AuthError {
  // The key set's IDP_UNAVAILABLE, which carries its failure already.
  if (error instanceof AuthError) return error;
  const { code, claim } = (error ?? {}) as { code?: string; claim?: string };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return invalid('expired', 'the token has expired', error);
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return invalid('algorithm', 'the token is signed with an algorithm this API refuses', error);
    case 'ERR_JOSE_NOT_SUPPORTED':
      return invalid('header', 'the token has a header this API does not support (crit)', error);
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return invalid(
        'unknown_key',
        'the token is signed with a key the realm does not publish',
        error,
      );
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return invalid('signature', 'the token signature does not verify', error);
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (claim === 'iss') return invalid('issuer', 'the token is from another issuer', error);
      if (claim === 'nbf') return invalid('not_yet_valid', 'the token is not valid yet', error);
      return invalid(
        'claims',
        `the token's ${claim ?? 'claims'} claim is missing or invalid`,
        error,
      );
    default:
      return invalid('malformed', 'the token is malformed', error);
  }
}
