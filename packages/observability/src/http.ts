import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { refusalReasonOf, runWithRequestContext, type RequestContext } from './context.js';
import { rawLineWriter } from './logger.js';
import type { Metrics, MetricSample } from './metrics.js';
import { acceptRequestId, parseTraceparent } from './request-id.js';

/** The route label of a request that matched no route. */
export const UNMATCHED_ROUTE = 'UNMATCHED';
/** Status recorded when the client went away before a response was sent (nginx's convention). */
export const CLIENT_CLOSED_REQUEST = 499;

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const REQUESTS_TOTAL = 'flowforge_http_requests_total';
const DURATION = 'flowforge_http_request_duration_seconds';
const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Options of {@link createHttpObservability}. */
export interface HttpObservabilityOptions {
  /** Where the access line of each request goes; a {@link createLogger} logger takes the fast path. */
  readonly logger: Logger;
  /** The registry the three HTTP metrics are declared in. */
  readonly metrics: Metrics;
  /** Histogram buckets of flowforge_http_request_duration_seconds, in seconds. */
  readonly durationBuckets?: readonly number[];
}

/** What a request needs to be started. */
export interface RequestStart {
  /** The HTTP method; methods other than GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS are labelled `OTHER`. */
  readonly method: string;
  /** The request headers: `x-request-id` and `traceparent` are read. */
  readonly headers: IncomingHttpHeaders;
  /** An id already chosen (Fastify's request.id); else taken from X-Request-ID or made. */
  readonly requestId?: string;
}

/** One request being observed. */
export interface ObservedRequest {
  /** The request id, also sent back as the X-Request-ID response header. */
  readonly requestId: string;
  /** The context every log line of this request carries; auth adds tenant_id and user_id. */
  readonly context: RequestContext;
  /**
   * Records the request: metrics and one access log line. `route` is the route
   * template (`/api/v1/dashboards/:id`), never the raw URL; undefined when no
   * route matched. Only the first call counts.
   */
  finish(statusCode: number, route: string | undefined): void;
}

/** The framework-neutral core that the Fastify plugin and the Node middleware share. */
export interface HttpObservability {
  /**
   * Starts observing one request: picks its request id, builds its context and
   * counts it in flight. Run the rest of the request inside
   * {@link runWithRequestContext} with the returned context, and call `finish` once.
   */
  start(request: RequestStart): ObservedRequest;
}

/** The tallies of one (method, route, status) series. */
interface Series {
  readonly labels: Readonly<Record<'method' | 'route' | 'status_code', string>>;
  count: number;
  sum: number;
  /** Observations per bucket, not cumulative; the last slot is +Inf. */
  readonly buckets: Float64Array;
}

/**
 * Creates the request observer: request id, context, the three HTTP metrics
 * (flowforge_http_requests_total, flowforge_http_request_duration_seconds,
 * flowforge_http_requests_in_flight) and the access log line.
 *
 * The hot path calls no prom-client code: each series keeps plain tallies that
 * the registry reads at scrape time (prom-client hashes the label set on every
 * update otherwise). The access line of a {@link createLogger} logger is
 * written as ready-made JSON (see bench/observability for what each costs).
 */
export function createHttpObservability(options: HttpObservabilityOptions): HttpObservability {
  const { logger, metrics } = options;
  const bounds = [...new Set(options.durationBuckets ?? DEFAULT_BUCKETS)]
    .filter((bound) => Number.isFinite(bound))
    .sort((a, b) => a - b);
  if (bounds.length === 0) throw new RangeError('durationBuckets needs at least one finite bound');
  const series = new Map<string, Series>();
  let inFlight = 0;

  metrics.collected({
    name: REQUESTS_TOTAL,
    help: 'HTTP requests completed.',
    type: 'counter',
    collect: () => [...series.values()].map((s) => ({ labels: s.labels, value: s.count })),
  });
  metrics.collected({
    name: DURATION,
    help: 'HTTP request duration from the first byte received to the response finished.',
    type: 'histogram',
    collect: () => [...series.values()].flatMap((s) => histogramSamples(s, bounds)),
  });
  metrics.collected({
    name: 'flowforge_http_requests_in_flight',
    help: 'HTTP requests being served.',
    type: 'gauge',
    collect: () => [{ value: inFlight }],
  });

  // Keyed by the bounded labels only: a key per raw value would grow without
  // bound and render one OTHER series many times.
  function seriesFor(method: string, route: string, status: number): Series {
    const labels = {
      method,
      route: metrics.boundLabel(REQUESTS_TOTAL, 'route', route),
      status_code: metrics.boundLabel(REQUESTS_TOTAL, 'status_code', String(status)),
    };
    const key = `${labels.method}\u0000${labels.status_code}\u0000${labels.route}`;
    let found = series.get(key);
    if (found === undefined) {
      found = { labels, count: 0, sum: 0, buckets: new Float64Array(bounds.length + 1) };
      series.set(key, found);
    }
    return found;
  }

  const writeLine = rawLineWriter(logger);
  function accessLine(
    context: RequestContext,
    method: string,
    route: string,
    status: number,
    ms: number,
  ): void {
    const level = accessLevel(status);
    const msg = level === 'error' ? 'request failed' : 'request completed';
    const durationMs = Math.round(ms * 100) / 100;
    const reason = refusalReasonOf(context);
    if (writeLine === undefined) {
      const fields = {
        method,
        route,
        status_code: status,
        duration_ms: durationMs,
        ...(reason === undefined ? {} : { reason }),
      };
      runWithRequestContext(context, () => logger[level](fields, msg));
      return;
    }
    let body = `"request_id":${JSON.stringify(context.request_id)}`;
    if (context.tenant_id !== undefined)
      body += `,"tenant_id":${JSON.stringify(context.tenant_id)}`;
    if (context.user_id !== undefined) body += `,"user_id":${JSON.stringify(context.user_id)}`;
    if (context.trace_id !== undefined && context.span_id !== undefined) {
      body += `,"trace_id":"${context.trace_id}","span_id":"${context.span_id}"`;
    }
    body += `,"method":${JSON.stringify(method)},"route":${JSON.stringify(route)},"status_code":${status},"duration_ms":${durationMs}`;
    if (reason !== undefined) body += `,"reason":${JSON.stringify(reason)}`;
    body += `,"msg":"${msg}"`;
    writeLine(level, body);
  }

  return {
    start(request) {
      const started = performance.now();
      const requestId = request.requestId ?? acceptRequestId(request.headers['x-request-id']);
      const context: RequestContext = { request_id: requestId };
      const trace = parseTraceparent(request.headers.traceparent);
      if (trace) {
        context.trace_id = trace.trace_id;
        context.span_id = trace.span_id;
      }
      inFlight += 1;
      let finished = false;

      return {
        requestId,
        context,
        finish(statusCode, route) {
          if (finished) return;
          finished = true;
          inFlight -= 1;
          const ms = performance.now() - started;
          const seconds = ms / 1000;
          const tally = seriesFor(
            METHODS.has(request.method) ? request.method : 'OTHER',
            route ?? UNMATCHED_ROUTE,
            statusCode,
          );
          tally.count += 1;
          tally.sum += seconds;
          let bucket = 0;
          while (bucket < bounds.length && seconds > (bounds[bucket] as number)) bucket += 1;
          tally.buckets[bucket] = (tally.buckets[bucket] ?? 0) + 1;
          accessLine(context, request.method, route ?? UNMATCHED_ROUTE, statusCode, ms);
        },
      };
    },
  };
}

/**
 * The level of an access line: a failure of ours (5xx) is an error, but a
 * refusal is not: 503 (a dependency down or a limit reached) and 429 are warn,
 * other 4xx (the client's mistake, 499 a client that left) info. A burst of
 * refused streams or bad tokens must not page anyone as errors.
 */
function accessLevel(status: number): 'info' | 'warn' | 'error' {
  if (status === 503 || status === 429) return 'warn';
  return status >= 500 ? 'error' : 'info';
}

/** The _bucket (cumulative, with le), _sum and _count samples of one series. */
function histogramSamples(series: Series, bounds: readonly number[]): MetricSample[] {
  const samples: MetricSample[] = [];
  let cumulative = 0;
  bounds.forEach((bound, index) => {
    cumulative += series.buckets[index] ?? 0;
    samples.push({
      metricName: `${DURATION}_bucket`,
      labels: { ...series.labels, le: bound },
      value: cumulative,
    });
  });
  samples.push({
    metricName: `${DURATION}_bucket`,
    labels: { ...series.labels, le: '+Inf' },
    value: series.count,
  });
  samples.push({ metricName: `${DURATION}_sum`, labels: series.labels, value: series.sum });
  samples.push({ metricName: `${DURATION}_count`, labels: series.labels, value: series.count });
  return samples;
}
