import type { ServerOptions } from 'node:http';
import { OptionChecks } from '@flowforge/kernel';
import { ServerError } from './errors.js';

/**
 * The deepest JSON body the Fastify binding accepts by default: objects and
 * arrays nested 32 levels (a widget config is capped well below that). Deeper
 * bodies are refused with `BODY_TOO_DEEP` (400) before any code walks them: a
 * 20 KB body nested 10,000 arrays deep overflowed the stack of recursive code.
 */
export const MAX_JSON_DEPTH = 32;

/** The `BODY_TOO_DEEP` error of a body over `maxDepth`. */
export function bodyTooDeep(maxDepth: number): ServerError {
  return new ServerError(
    'BODY_TOO_DEEP',
    `The JSON body nests objects or arrays more than ${maxDepth} levels deep.`,
  );
}

/** How long the HTTP server waits for a client (`settings.http` has each). */
export interface HttpTimeouts {
  /** How long a client may take to send a whole request, headers and body, in ms; then 408. @default 30_000 */
  readonly requestTimeoutMs?: number;
  /** How long a client may take to send the request headers, in ms; at most `requestTimeoutMs`. @default 10_000 */
  readonly headersTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open, in ms. @default 5_000 */
  readonly keepAliveTimeoutMs?: number;
}

/**
 * `node:http` server options that bound how long a slow client holds a socket:
 * Node's defaults let a client send headers for 60 s and a body for 300 s
 * (Fastify's, forever), and check them only every 30 s. Pass them to
 * `http.createServer(options, app)`; `fastifyServerOptions` applies them itself.
 * Responses (an event stream, say) are not limited by them.
 *
 * @throws {ServerError} INVALID_OPTIONS for a value out of range, or a headers
 *   timeout over the request timeout (Node refuses that server)
 * @example
 * ```ts
 * const server = http.createServer(httpServerOptions(settings.http), app);
 * ```
 */
export function httpServerOptions(timeouts: HttpTimeouts = {}): ServerOptions {
  const checks = new OptionChecks();
  const range = { min: 1_000, max: 600_000 } as const;
  const requestTimeout = checks.wholeNumber(
    'requestTimeoutMs',
    timeouts.requestTimeoutMs,
    range,
    30_000,
  );
  const headersTimeout = checks.wholeNumber(
    'headersTimeoutMs',
    timeouts.headersTimeoutMs,
    range,
    Math.min(10_000, requestTimeout),
  );
  const keepAliveTimeout = checks.wholeNumber(
    'keepAliveTimeoutMs',
    timeouts.keepAliveTimeoutMs,
    { min: 1, max: 600_000 },
    5_000,
  );
  checks.throwIfAny((message) => new ServerError('INVALID_OPTIONS', message));
  if (headersTimeout > requestTimeout) {
    throw new ServerError(
      'INVALID_OPTIONS',
      `headersTimeoutMs (${headersTimeout}) must not exceed requestTimeoutMs (${requestTimeout})`,
    );
  }
  return {
    requestTimeout,
    headersTimeout,
    keepAliveTimeout,
    // Node checks both timeouts on this period (default 30 s): a 10 s limit would fire after up to 40 s.
    connectionsCheckingInterval: Math.min(1_000, headersTimeout),
  };
}

/**
 * Headers every API response carries unless the route set its own: JSON is
 * never sniffed into HTML, never stored by a browser or proxy (it is one
 * tenant's data), never framed, and sends no referrer onward (OWASP's REST
 * guidance). No CORS header: cross-origin reads stay closed until configured.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
});
