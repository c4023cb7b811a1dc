import type {
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
} from 'fastify';
import type { Auth } from './auth.js';
import { AuthError } from './errors.js';
import { bindPrincipal, type Principal } from './principal.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified principal, once an authentication hook of @flowforge/auth ran; else null. */
    principal: Principal | null;
  }
}

/**
 * An async onRequest hook of any Fastify app. A plain function type rather than Fastify's
 * `onRequestAsyncHookHandler`: that one carries the instance's logger type, so a hook typed with
 * the default logger would not fit an app built with `loggerInstance: createLogger(…)` (pino's
 * `Logger`), and a cast would be needed.
 */
export type AuthHook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** A callback-style onRequest hook of any Fastify app (see {@link AuthHook}). */
export type AuthCallbackHook = (
  request: FastifyRequest,
  reply: FastifyReply,
  done: HookHandlerDoneFunction,
) => void;

/** Verifies API keys: `createApiKeyVerifier(database)`. */
export interface ApiKeyVerifierLike {
  /** The principal of a valid key. @throws {AuthError} API_KEY_INVALID, STORE_UNAVAILABLE */
  verify(key: unknown): Promise<Principal>;
}

/**
 * Registers `request.principal` (null until a hook below sets it). The hooks
 * throw {@link AuthError}s; the app's error handler answers them with
 * `error.status`, `error.challenge(realm)` as `WWW-Authenticate`, and
 * `error.reason` (the message without the package prefix; safe to show).
 *
 * @example
 * await app.register(fastifyAuth);
 * app.get('/api/v1/me', { onRequest: [bearer(auth), requireRole('viewer')] }, (request) => request.principal);
 */
export const fastifyAuth: FastifyPluginCallback = (app, _options, done) => {
  app.decorateRequest('principal', null);
  done();
};
Object.assign(fastifyAuth, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@flowforge/auth',
});

/**
 * Node keeps only the first of repeated Authorization headers (and joins repeated
 * custom ones with ", "): the raw header list is the only place a repeat shows.
 */
function assertSingleHeader(request: FastifyRequest, name: string): void {
  const raw = request.raw.rawHeaders;
  let seen = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === name && ++seen > 1) {
      throw new AuthError('REQUEST_INVALID', `send one ${name} header, not several`);
    }
  }
}

function accept(request: FastifyRequest, principal: Principal): void {
  request.principal = principal;
  bindPrincipal(principal);
}

/**
 * An onRequest hook: dev bypass (development only) or a Keycloak bearer token.
 * onRequest runs before the body is parsed and validated, so an anonymous
 * caller learns nothing about the route's schema.
 */
export function bearer(auth: Auth): AuthHook {
  return async function authenticateBearer(request) {
    assertSingleHeader(request, 'authorization');
    accept(request, await auth.authenticateBearer(request.headers.authorization));
  };
}

/** An onRequest hook: an API key in `header` (lower case). @default 'x-api-key' */
export function apiKey(verifier: ApiKeyVerifierLike, header = 'x-api-key'): AuthHook {
  return async function authenticateApiKey(request) {
    assertSingleHeader(request, header);
    const value = request.headers[header];
    if (value === undefined) {
      throw new AuthError('CREDENTIALS_MISSING', `an API key is required in ${header}`);
    }
    if (typeof value !== 'string') {
      throw new AuthError('REQUEST_INVALID', `send one ${header} header, not several`);
    }
    accept(request, await verifier.verify(value));
  };
}

/**
 * A hook that lets the request through when its principal has at least one of
 * `roles`; 403 `insufficient_scope` otherwise. Which role a route needs is the
 * app's policy; register it after an authentication hook.
 */
export function requireRole(...roles: readonly string[]): AuthCallbackHook {
  return function checkRole(request, _reply, done) {
    const principal = request.principal;
    if (!principal) {
      done(new AuthError('NO_PRINCIPAL', 'requireRole runs after an authentication hook'));
    } else if (!roles.some((role) => principal.roles.includes(role))) {
      done(new AuthError('INSUFFICIENT_SCOPE', `this needs one of the roles: ${roles.join(', ')}`));
    } else {
      done();
    }
  };
}
