import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyPluginCallback, FastifyRequest } from 'fastify';
import { runWithRequestContext } from './context.js';
import { CLIENT_CLOSED_REQUEST, type HttpObservability, type ObservedRequest } from './http.js';
import { createMetricsEndpoint } from './metrics-endpoint.js';
import type { Metrics } from './metrics.js';
import { acceptRequestId } from './request-id.js';

/** Options of {@link fastifyObservability}. */
export interface FastifyObservabilityOptions {
  /** The request observer from `createHttpObservability` (`@flowforge/observability`). */
  readonly http: HttpObservability;
  /** Serve GET {path} from these metrics; omit to serve no metrics route. */
  readonly metricsEndpoint?: {
    /** The registry to render, from `createMetrics` (`@flowforge/observability`). */
    readonly metrics: Metrics;
    /** The route. @default '/metrics' */
    readonly path?: string;
    /** When non-empty, scrapes must send `Authorization: Bearer <token>`. @default '' (open) */
    readonly token?: string;
  };
}

const OBSERVED = Symbol('flowforge.observed');
type Observed = FastifyRequest & { [OBSERVED]?: ObservedRequest };

/**
 * Fastify's `genReqId` that accepts a sane inbound X-Request-ID, else makes a
 * UUID v4, so that `request.id`, the X-Request-ID header and every log line agree.
 */
export function genReqId(request: IncomingMessage): string {
  const id = acceptRequestId(request.headers['x-request-id']);
  (request as Marked)[GENERATED_ID] = id;
  return id;
}

// Marks ids made by genReqId, so that the plugin can tell them from Fastify's
// default ("req-1") and from a custom genReqId, whose ids it replaces. A symbol
// property, not a WeakMap: a WeakMap keyed by every request costs GC time.
const GENERATED_ID = Symbol('flowforge.generatedId');
type Marked = IncomingMessage & { [GENERATED_ID]?: string };

/**
 * The Fastify plugin: request id and context for every request, X-Request-ID
 * on every response, HTTP metrics and one access log line per request, and
 * optionally GET /metrics. Hooks apply to the whole app (not encapsulated).
 *
 * @example
 * const app = Fastify({ genReqId, logController: new LogController({ disableRequestLogging: true }) });
 * await app.register(fastifyObservability, { http, metricsEndpoint: { metrics, token: settings.observability.metricsToken } });
 */
export const fastifyObservability: FastifyPluginCallback<FastifyObservabilityOptions> = (
  app: FastifyInstance,
  options: FastifyObservabilityOptions,
  done: (error?: Error) => void,
) => {
  const { http } = options;

  app.addHook('onRequest', (request: Observed, reply, next) => {
    const ours = (request.raw as Marked)[GENERATED_ID] === request.id;
    const observed = http.start({
      method: request.method,
      headers: request.headers,
      ...(ours ? { requestId: request.id } : {}),
    });
    // One id everywhere: request.id (error bodies), the header and the logs.
    if (!ours) request.id = observed.requestId;
    // A client that leaves before the response is finished gets no onResponse:
    // the socket's close records it as 499 (it covers what onRequestAbort does,
    // and the case that hook misses, a client leaving after its body was read).
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished)
        observed.finish(CLIENT_CLOSED_REQUEST, request.routeOptions.url);
    });
    request[OBSERVED] = observed;
    void reply.header('x-request-id', observed.requestId);
    // The rest of the request (hooks, handler, serialisation) runs inside its context.
    runWithRequestContext(observed.context, next);
  });

  app.addHook('onResponse', (request: Observed, reply, next) => {
    request[OBSERVED]?.finish(reply.statusCode, request.routeOptions.url);
    next();
  });

  if (options.metricsEndpoint) {
    const endpoint = createMetricsEndpoint(options.metricsEndpoint.metrics, {
      ...(options.metricsEndpoint.token === undefined
        ? {}
        : { token: options.metricsEndpoint.token }),
    });
    app.get(options.metricsEndpoint.path ?? '/metrics', async (request, reply) => {
      const answer = await endpoint(request.headers.authorization);
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    });
  }
  done();
};

// Equivalent of fastify-plugin: the hooks must reach every route of the app.
Object.assign(fastifyObservability, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@flowforge/observability',
});
