import type {
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
} from 'fastify';
import type { Auth } from './auth.js';
import type { AuthError } from './errors.js';
import {
  apiKeyCredentials,
  bearerCredentials,
  roleRefusal,
  type ApiKeyVerifierLike,
  type CredentialSource,
} from './internal/http-credentials.js';
import type { Principal } from './principal.js';

export type { ApiKeyVerifierLike };

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
 * An onRequest hook: dev bypass (development only) or a Keycloak bearer token.
 * onRequest runs before the body is parsed and validated, so an anonymous
 * caller learns nothing about the route's schema.
 */
export function bearer(auth: Auth): AuthHook {
  const authenticate = bearerCredentials(auth);
  return async function authenticateBearer(request) {
    request.principal = await authenticate(sourceOf(request));
  };
}

/** An onRequest hook: an API key in `header` (lower case). @default 'x-api-key' */
export function apiKey(verifier: ApiKeyVerifierLike, header = 'x-api-key'): AuthHook {
  const authenticate = apiKeyCredentials(verifier, header);
  return async function authenticateApiKey(request) {
    request.principal = await authenticate(sourceOf(request));
  };
}

/**
 * A hook that lets the request through when its principal has at least one of
 * `roles`; 403 `insufficient_scope` otherwise. Which role a route needs is the
 * app's policy; register it after an authentication hook.
 */
export function requireRole(...roles: readonly string[]): AuthCallbackHook {
  return function checkRole(request, _reply, done) {
    const refusal: AuthError | undefined = roleRefusal(request.principal, roles);
    done(refusal);
  };
}

// Fastify's `request.headers` (which a hook may have replaced), the raw list from node:http.
const sourceOf = (request: FastifyRequest): CredentialSource => ({
  headers: request.headers,
  rawHeaders: request.raw.rawHeaders,
});
