// The credential checks of every framework binding (`./fastify`, `./node`), written once: a
// binding only says where the request's headers are, where it keeps the principal, and how it
// hands an error on (throw, `done(error)`, `next(error)`).
import type { IncomingHttpHeaders } from 'node:http';
import type { Auth } from '../auth.js';
import { AuthError, isAuthError } from '../errors.js';
import type { FailureThrottle } from '../failure-throttle.js';
import { bindPrincipal, type Principal } from '../principal.js';

/** Verifies API keys: `createApiKeyVerifier(database)`. */
export interface ApiKeyVerifierLike {
  /** The principal of a valid key. @throws {AuthError} API_KEY_INVALID, STORE_UNAVAILABLE */
  verify(key: unknown): Promise<Principal>;
}

/** What the checks read of a request: node:http's `IncomingMessage` has both. */
export interface CredentialSource {
  /** The parsed headers (lower-case names). */
  readonly headers: IncomingHttpHeaders;
  /** Names and values as received, alternating: the only place a repeated header shows. */
  readonly rawHeaders: readonly string[];
}

/** Resolves to the request's verified principal, already bound to the request context. */
export type Authenticate = (source: CredentialSource) => Promise<Principal>;

/**
 * Node keeps only the first of repeated Authorization headers (and joins repeated
 * custom ones with ", "): the raw header list is the only place a repeat shows.
 */
function assertSingleHeader(rawHeaders: readonly string[], name: string): void {
  let seen = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === name && ++seen > 1) {
      throw new AuthError('REQUEST_INVALID', `send one ${name} header, not several`);
    }
  }
}

/** Binds here, not in each binding, so no binding can forget the log context. */
function accept(principal: Principal): Principal {
  bindPrincipal(principal);
  return principal;
}

/** Dev bypass (development only) or a Keycloak bearer token in the one Authorization header. */
export function bearerCredentials(auth: Auth): Authenticate {
  return async ({ headers, rawHeaders }) => {
    assertSingleHeader(rawHeaders, 'authorization');
    return accept(await auth.authenticateBearer(headers.authorization));
  };
}

/** Like {@link Authenticate}, with the client the request counts against (read only when throttling). */
export type AuthenticateApiKey = (
  source: CredentialSource,
  client: () => string,
) => Promise<Principal>;

/**
 * An API key in the one `header` (lower case). With a `throttle`, every attempt takes a
 * point first (one atomic increment), so a client past its limit is refused
 * (TOO_MANY_FAILURES) before anything else, the key store above all, even when it sends
 * its guesses all at once; a wrong, missing or malformed key keeps its point (a missing one
 * costs nothing to check, but counting it keeps a client from probing the route for free);
 * a valid key gives its point back and clears nothing else (a client holding one valid key
 * must not reset its count between guesses); the store being down (STORE_UNAVAILABLE,
 * NOT_CONFIGURED) is not the client's doing and gives the point back too.
 */
export function apiKeyCredentials(
  verifier: ApiKeyVerifierLike,
  header: string,
  throttle: FailureThrottle | null,
): AuthenticateApiKey {
  return async ({ headers, rawHeaders }, clientOf) => {
    const client = throttle ? clientOf() : '';
    if (throttle) await throttle.attempt(client);
    let principal: Principal;
    try {
      assertSingleHeader(rawHeaders, header);
      const value = headers[header];
      if (value === undefined) {
        throw new AuthError('CREDENTIALS_MISSING', `an API key is required in ${header}`);
      }
      if (typeof value !== 'string') {
        throw new AuthError('REQUEST_INVALID', `send one ${header} header, not several`);
      }
      principal = await verifier.verify(value);
    } catch (error) {
      // The client's mistakes keep their point; anything else (the store down) was not a guess.
      if (
        throttle &&
        !isAuthError(error, 'API_KEY_INVALID', 'CREDENTIALS_MISSING', 'REQUEST_INVALID')
      ) {
        await throttle.forgive(client);
      }
      throw error;
    }
    if (throttle) await throttle.forgive(client);
    return accept(principal);
  };
}

/**
 * Why `principal` may not pass (NO_PRINCIPAL before any authentication, INSUFFICIENT_SCOPE
 * without one of `roles`), or undefined when it may: returned, not thrown, because the
 * bindings hand it to a callback.
 */
export function roleRefusal(
  principal: Principal | null,
  roles: readonly string[],
): AuthError | undefined {
  if (!principal) {
    return new AuthError('NO_PRINCIPAL', 'requireRole runs after bearer or apiKey');
  }
  if (!roles.some((role) => principal.roles.includes(role))) {
    return new AuthError('INSUFFICIENT_SCOPE', `this needs one of the roles: ${roles.join(', ')}`);
  }
  return undefined;
}
