import { timingSafeEqual, createHash } from 'node:crypto';
import type { Metrics } from './metrics.js';

/** Options of {@link createMetricsEndpoint}. */
export interface MetricsEndpointOptions {
  /** When non-empty, scrapes must send `Authorization: Bearer <token>`. */
  readonly token?: string;
}

/** A framework-neutral HTTP answer. */
export interface MetricsResponse {
  /** 200 with the metrics, or 401 when the bearer token is missing or wrong. */
  readonly status: 200 | 401;
  /** `content-type` (and `www-authenticate` on a 401) to send. */
  readonly headers: Readonly<Record<string, string>>;
  /** Prometheus text on a 200; an RFC 9457 problem JSON on a 401. */
  readonly body: string;
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * A check of `Authorization` headers against a bearer `token`: the scheme is
 * case-insensitive (RFC 9110), the token compared in constant time (digests,
 * so neither its length nor its bytes leak), computed once. With an empty
 * `token` every request passes: the protection is off.
 *
 * @example
 * ```ts
 * const entitled = bearerTokenCheck(settings.observability.metricsToken);
 * if (!entitled(request.headers.authorization)) return { status: 401 };
 * ```
 */
export function bearerTokenCheck(token: string): (authorization: string | undefined) => boolean {
  if (token === '') return () => true;
  const expected = digest(token);
  return (authorization) => {
    const presented =
      authorization === undefined ? undefined : /^bearer +(\S+)\s*$/i.exec(authorization)?.[1];
    return presented !== undefined && timingSafeEqual(digest(presented), expected);
  };
}

/**
 * The /metrics handler: Prometheus text with its content type, optionally
 * behind a bearer token (compared in constant time; never logged or echoed).
 */
export function createMetricsEndpoint(
  metrics: Metrics,
  options: MetricsEndpointOptions = {},
): (authorization: string | undefined) => Promise<MetricsResponse> {
  const entitled = bearerTokenCheck(options.token ?? '');
  return async (authorization) => {
    if (!entitled(authorization)) {
      return {
        status: 401,
        headers: {
          'content-type': 'application/problem+json',
          'www-authenticate': 'Bearer realm="metrics"',
        },
        body: JSON.stringify({
          type: 'about:blank',
          title: 'Unauthorized',
          status: 401,
          detail: 'Scraping /metrics needs the metrics bearer token.',
        }),
      };
    }
    return {
      status: 200,
      headers: { 'content-type': metrics.contentType },
      body: await metrics.render(),
    };
  };
}
