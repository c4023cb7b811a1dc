import type { IncomingMessage, ServerResponse } from 'node:http';
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
} from './internal/http-credentials.js';
import type { Principal } from './principal.js';

export type { ApiKeyVerifierLike };

/**
 * Connect-style middleware, for Express 5 (`app.use`, a route's handlers) and for a plain
 * node:http server. Typed with node:http's own classes, so Express's `Request` and `Response`
 * (which extend them) fit without a cast and without `@types/express`. It never throws and never
 * answers: it calls `next()` to go on, or `next(error)` with an {@link AuthError} (Express's
 * error-middleware contract), exactly once.
 */
export type AuthMiddleware = (
  request: IncomingMessage,
  response: ServerResponse,
  next: (error?: unknown) => void,
) => void;

// A symbol no other module holds, not `request.principal`: nothing but a verification here can
// set it (an app's `req.principal = …` cannot pass requireRole), it needs no augmentation of
// node:http's types in every consumer, and, non-enumerable, a copy of the request (`{ ...req }`
// in a log serializer) does not carry the claims along. A property, not a WeakMap keyed by every
// request, as @flowforge/observability marks requests: cheaper for the GC.
const PRINCIPAL = Symbol('flowforge.auth.principal');
type Marked = IncomingMessage & { [PRINCIPAL]?: Principal };

/**
 * The principal that {@link bearer} or {@link apiKey} verified for `request`, or null before
 * (or without) them. Inside the request `getCurrentPrincipal()` returns the same.
 *
 * @example
 * app.get('/api/v1/me', bearer(auth), (req, res) => { res.json({ user_id: principalOf(req)?.userId }); });
 */
export function principalOf(request: IncomingMessage): Principal | null {
  return (request as Marked)[PRINCIPAL] ?? null;
}

const REJECTED_WITHOUT_REASON =
  '@flowforge/auth: credential verification rejected without an error';

function authenticating(
  authenticate: (request: IncomingMessage) => Promise<Principal>,
): AuthMiddleware {
  return (request, _response, next) => {
    // Each outcome calls next once; a throw from next itself is the caller's (as for any async middleware).
    void authenticate(request).then(
      (principal) => {
        Object.defineProperty(request, PRINCIPAL, {
          value: principal,
          writable: true,
          configurable: true,
          enumerable: false,
        });
        next();
      },
      (error: unknown) => {
        // next(undefined) would mean "go on": a verifier rejecting without a reason must not open the route.
        next(error ? error : new Error(REJECTED_WITHOUT_REASON));
      },
    );
  };
}

/**
 * Middleware: dev bypass (development only) or a Keycloak bearer token in the one
 * `Authorization` header. Refusals go to `next(error)`: CREDENTIALS_MISSING, REQUEST_INVALID
 * (two Authorization headers), TOKEN_INVALID, TOKEN_EXPIRED, IDP_UNAVAILABLE.
 *
 * @example
 * app.use('/api/v1', bearer(auth));
 */
export function bearer(auth: Auth): AuthMiddleware {
  return authenticating(bearerCredentials(auth));
}

/** Express's `req.ip` when there is one (it honours `trust proxy`), else the socket's peer. */
function peerOf(request: IncomingMessage): string {
  const { ip } = request as { ip?: unknown };
  return clientOfAddress(typeof ip === 'string' ? ip : request.socket.remoteAddress);
}

/** Options of {@link apiKey}. */
export interface ApiKeyMiddlewareOptions {
  /**
   * Counts wrong, missing and malformed keys per client; a client with too many in the window
   * gets TOO_MANY_FAILURES (429, with `retryAfterSeconds`) before its key is looked up. Make
   * one with `createFailureThrottle` and share it between routes (and, through its store,
   * between instances). `null` turns throttling off.
   * @default a throttle of this middleware's own, in memory: 10 failures per 60 s
   */
  readonly throttle?: FailureThrottle | null;
  /**
   * The client a request counts against. Behind a proxy, set Express's `trust proxy` (or, on
   * a plain node:http server, read the address the proxy reports), or every client counts as
   * the proxy.
   * @default clientOfAddress(req.ip) under Express, else of `request.socket.remoteAddress`: the
   *   peer address, an IPv6 one as its /64
   */
  readonly clientOf?: (request: IncomingMessage) => string;
}

/**
 * Middleware: an API key in `header` (lower case), throttled per client (see
 * {@link ApiKeyMiddlewareOptions.throttle}). Refusals go to `next(error)`:
 * CREDENTIALS_MISSING, REQUEST_INVALID (the header twice), API_KEY_INVALID,
 * TOO_MANY_FAILURES (429: send `Retry-After: error.retryAfterSeconds`), STORE_UNAVAILABLE.
 * The error's challenge for these routes is `error.challenge(realm, 'ApiKey')`.
 *
 * @param header - @default 'x-api-key' (`settings.auth.apiKeyHeader`)
 * @example
 * app.use('/embed/v1', apiKey(apiKeys, settings.auth.apiKeyHeader, { throttle }));
 */
export function apiKey(
  verifier: ApiKeyVerifierLike,
  header = 'x-api-key',
  options: ApiKeyMiddlewareOptions = {},
): AuthMiddleware {
  const throttle = options.throttle === undefined ? createFailureThrottle() : options.throttle;
  const clientOf = options.clientOf ?? peerOf;
  const authenticate = apiKeyCredentials(verifier, header, throttle);
  return authenticating((request) => authenticate(request, () => clientOf(request)));
}

/**
 * Middleware that lets the request through when its principal has at least one of `roles`;
 * `next(error)` with INSUFFICIENT_SCOPE (403) otherwise, or NO_PRINCIPAL (500, a bug of the
 * app) when no {@link bearer} or {@link apiKey} ran before it. Which role a route needs is the
 * app's policy.
 *
 * @example
 * app.post('/api/v1/api-keys', bearer(auth), requireRole('admin'), createKeyRoute);
 */
export function requireRole(...roles: readonly string[]): AuthMiddleware {
  return (request, _response, next) => {
    const refusal: AuthError | undefined = roleRefusal(principalOf(request), roles);
    if (refusal) next(refusal);
    else next();
  };
}
