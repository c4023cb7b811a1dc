import { isExactOrigin } from '@flowforge/kernel';
import { ServerError } from '../errors.js';

// The CORS policy both bindings apply, written once: Fastify's through @fastify/cors, node's by
// corsOriginCheck. Closed by default: no origin is allowed until the app lists it.

/** What a cross-origin caller may send: the methods of a FlowForge API. */
export const CORS_METHODS: readonly string[] = ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE'];

/** Request headers a cross-origin caller may send, before the app's own (the API-key header). */
const CORS_ALLOWED_HEADERS: readonly string[] = [
  'Authorization',
  'Content-Type',
  'Last-Event-ID',
  'X-Request-ID',
];

/** Response headers a cross-origin caller may read. */
export const CORS_EXPOSED_HEADERS: readonly string[] = [
  'X-Request-ID',
  'Retry-After',
  'WWW-Authenticate',
  'Location',
];

/** How long a browser may reuse a preflight's answer, in seconds. */
export const CORS_MAX_AGE_SECONDS = 600;

/** The refusal of a request from an origin that may not call the API. */
export function originNotAllowed(): ServerError {
  return new ServerError('ORIGIN_NOT_ALLOWED', 'Requests from this origin are not allowed.');
}

// RFC 9110 §5.6.2 token characters: what a header name is made of.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The allow-list, checked: each an origin exactly as a browser sends it in
 * `Origin` (http or https, a host, a port only when not the default, nothing
 * after), since it is compared as text; never `*`. And the extra request
 * headers, checked as header names (`*` would allow any).
 *
 * @throws {ServerError} INVALID_OPTIONS naming every entry that is not
 */
export function checkedCorsOptions(
  origins: readonly string[] = [],
  allowedHeaders: readonly string[] = [],
): { readonly origins: ReadonlySet<string>; readonly allowedHeaders: readonly string[] } {
  const problems: string[] = [];
  for (const origin of origins) {
    if (!isExactOrigin(origin)) {
      const parsed = URL.parse(origin);
      const hint =
        parsed !== null && isHttp(parsed) && parsed.origin !== origin && !origin.includes('*')
          ? ` (did you mean ${parsed.origin}?)`
          : '';
      problems.push(
        `corsOrigins: ${JSON.stringify(origin)} is not an origin like https://app.example.com (scheme://host[:port], no path, no *)${hint}`,
      );
    }
  }
  for (const header of allowedHeaders) {
    if (header === '*' || !HEADER_NAME.test(header)) {
      problems.push(`corsAllowedHeaders: ${JSON.stringify(header)} is not a header name`);
    }
  }
  if (problems.length > 0) throw new ServerError('INVALID_OPTIONS', problems.join('; '));
  const known = new Set(CORS_ALLOWED_HEADERS.map((name) => name.toLowerCase()));
  return {
    origins: new Set(origins),
    allowedHeaders: [
      ...CORS_ALLOWED_HEADERS,
      ...allowedHeaders.filter((name) => !known.has(name.toLowerCase())),
    ],
  };
}

function isHttp(url: URL): boolean {
  return url.protocol === 'http:' || url.protocol === 'https:';
}

/**
 * True when `origin` names the host the request was sent to (`host`: the Host
 * header, or the proxy's X-Forwarded-Host where it is trusted): the page is the
 * API's own, which needs no allow-list. Ports compare after the scheme's default
 * is dropped (`Host: api.example.com:443` is `https://api.example.com`).
 */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || host === '') return false;
  const parsed = URL.parse(origin);
  if (parsed === null || !isHttp(parsed)) return false;
  const served = URL.parse(`${parsed.protocol}//${host}`);
  return served !== null && served.pathname === '/' && served.host === parsed.host;
}

/** Whether a request with `origin` (its Origin header) may go on: none, the API's own, or listed. */
export function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  allowed: ReadonlySet<string>,
): boolean {
  return origin === undefined || allowed.has(origin) || isSameOrigin(origin, host);
}
