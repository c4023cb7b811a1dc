import type { IncomingMessage, ServerResponse } from 'node:http';
import { runWithRequestContext } from './context.js';
import { CLIENT_CLOSED_REQUEST, type HttpObservability } from './http.js';

/** Options of {@link nodeHttpObservability}. */
export interface NodeHttpObservabilityOptions {
  /**
   * The route template of a finished request. Default: Express's
   * `req.baseUrl + req.route.path` when routed, else unmatched.
   */
  readonly routeOf?: (request: IncomingMessage) => string | undefined;
}

type ExpressLike = IncomingMessage & { baseUrl?: string; route?: { path?: unknown } };

const expressRoute = (request: IncomingMessage): string | undefined => {
  const { route, baseUrl } = request as ExpressLike;
  return typeof route?.path === 'string' ? `${baseUrl ?? ''}${route.path}` : undefined;
};

/**
 * Connect/Express-style middleware `(req, res, next)` for node:http servers: the
 * same request id, context, metrics and access log as the Fastify plugin.
 */
export function nodeHttpObservability(
  http: HttpObservability,
  options: NodeHttpObservabilityOptions = {},
): (request: IncomingMessage, response: ServerResponse, next: () => void) => void {
  const routeOf = options.routeOf ?? expressRoute;
  return (request, response, next) => {
    const observed = http.start({ method: request.method ?? 'GET', headers: request.headers });
    response.setHeader('x-request-id', observed.requestId);
    response.once('finish', () => observed.finish(response.statusCode, routeOf(request)));
    response.once('close', () => {
      if (!response.writableFinished) observed.finish(CLIENT_CLOSED_REQUEST, routeOf(request));
    });
    runWithRequestContext(observed.context, next);
  };
}
