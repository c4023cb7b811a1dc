import type {
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
} from 'fastify';
import type { Auth } from './auth.js';
import type { AuthError } from './errors.js';
import {
  clientOfAddress,
  createFailureThrottle,
  type FailureThrottle,
} from './failure-throttle.js';
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

/** Options of {@link apiKey}. */
export interface ApiKeyHookOptions {
  /**
   * Counts wrong, missing and malformed keys per client; a client with too many in the window
   * is answered 429 TOO_MANY_FAILURES (with `retryAfterSeconds`) before its key is looked
   * up. Make one with `createFailureThrottle` and share it between routes (and, through its
   * store, between instances). `null` turns throttling off.
   * @default a throttle of this hook's own, in memory: 10 failures per 60 s
   */
  readonly throttle?: FailureThrottle | null;
  /**
   * The client a request counts against. Behind a proxy set Fastify's `trustProxy`, or every
   * client counts as the proxy.
   * @default clientOfAddress(request.ip): the peer address, an IPv6 one as its /64
   */
  readonly clientOf?: (request: FastifyRequest) => string;
}

/**
 * An onRequest hook: an API key in `header` (lower case), throttled per client (see
 * {@link ApiKeyHookOptions.throttle}). Refusals: CREDENTIALS_MISSING, REQUEST_INVALID (the
 * header twice), API_KEY_INVALID, TOO_MANY_FAILURES, STORE_UNAVAILABLE.
 *
 * @param header - @default 'x-api-key' (`settings.auth.apiKeyHeader`)
 * @example
 * const throttle = createFailureThrottle({ ...settings.auth.apiKeyFailures, store: redis?.ownedKeyspace(FAILURE_THROTTLE_PREFIX) ?? null });
 * app.get('/embed/v1/widgets/:id/data', { onRequest: apiKey(apiKeys, settings.auth.apiKeyHeader, { throttle }) }, handler);
 */
export function apiKey(
  verifier: ApiKeyVerifierLike,
  header = 'x-api-key',
  options: ApiKeyHookOptions = {},
): AuthHook {
  const throttle = options.throttle === undefined ? createFailureThrottle() : options.throttle;
  const clientOf = options.clientOf ?? ((request: FastifyRequest) => clientOfAddress(request.ip));
  const authenticate = apiKeyCredentials(verifier, header, throttle);
  return async function authenticateApiKey(request) {
    request.principal = await authenticate(sourceOf(request), () => clientOf(request));
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
