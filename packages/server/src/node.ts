/**
 * The node:http binding of the server kit, for plain `http.createServer`
 * handlers and for Express 5 (whose requests and responses are Node's): problem
 * responses and the error middleware, health and metrics handlers, event
 * streams, and the listener as a lifecycle component.
 * @packageDocumentation
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import {
  acceptRequestId,
  createMetricsEndpoint,
  setRefusalReason,
  type Logger,
  type Metrics,
} from '@flowforge/observability';
import type { EventStreamRefusal, EventStreams, OpenEventStream } from './event-streams.js';
import { SocketSweep, closeWithin, openForResponse } from './internal/http.js';
import {
  CORS_EXPOSED_HEADERS,
  CORS_MAX_AGE_SECONDS,
  CORS_METHODS,
  checkedCorsOptions,
  originAllowed,
  originNotAllowed,
} from './internal/origins.js';
import type { Component, ListenOptions } from './lifecycle.js';
import {
  PROBLEM_CONTENT_TYPE,
  createProblems,
  problemBody,
  type Problem,
  type Problems,
} from './problems.js';
import { answerClientError, answerConnect } from './raw-http.js';
import type { Readiness } from './readiness.js';
import { SECURITY_HEADERS } from './http-limits.js';
import {
  METRICS_UNAUTHORIZED,
  NOT_FOUND,
  answerAndLog,
  answerStreamAndLog,
  logRefusal,
  readinessAnswerer,
  streamAnswerOf,
} from './internal/answers.js';

/** A `(request, response)` handler of node:http, which Express also takes as a route handler. */
export type NodeHandler = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * The request id of `request`: the X-Request-ID response header that
 * `nodeHttpObservability` (`@flowforge/observability`) set, else one taken from
 * the request's header or made, and set on the response.
 */
function requestIdOf(request: IncomingMessage, response: ServerResponse): string {
  const given = response.getHeader('x-request-id');
  if (typeof given === 'string') return given;
  const id = acceptRequestId(request.headers['x-request-id']);
  if (!response.headersSent) response.setHeader('x-request-id', id);
  return id;
}

/**
 * Middleware (Express's `app.use`, or call it first in a node:http handler)
 * that sets {@link SECURITY_HEADERS} on every response before the route runs,
 * so a route that sets its own `Cache-Control` replaces the default.
 *
 * @example
 * ```ts
 * app.use(securityHeaders());
 * ```
 */
export function securityHeaders(): (
  request: IncomingMessage,
  response: ServerResponse,
  next: () => void,
) => void {
  const headers = Object.entries(SECURITY_HEADERS);
  return (_request, response, next) => {
    for (const [name, value] of headers) response.setHeader(name, value);
    next();
  };
}

/** Options of {@link corsOriginCheck}. */
export interface CorsOriginCheckOptions {
  /**
   * The browser origins that may call this API from another site, exactly as a
   * browser sends them (`https://app.example.com`; no path, no `*`), e.g.
   * `settings.http.corsOrigins`. Empty: none.
   * @default []
   */
  readonly origins?: readonly string[];
  /**
   * Request headers allowed from them besides `Authorization`, `Content-Type`,
   * `Last-Event-ID` and `X-Request-ID`: the API-key header, say.
   * @default []
   */
  readonly allowedHeaders?: readonly string[];
}

/**
 * Middleware (Express's `app.use`, before the routes and their authentication)
 * with the CORS policy of the Fastify plugin, without a dependency: a request
 * whose `Origin` is neither the API's own (its host is the request's: Express's
 * `req.host`, which honours `trust proxy`, else the Host header) nor in
 * `origins` is refused 403 `ORIGIN_NOT_ALLOWED` (a problem) and goes no
 * further; an allowed origin's responses carry `Access-Control-Allow-Origin`
 * and the exposed headers, and its preflight (OPTIONS with
 * `Access-Control-Request-Method`) is answered 204 with the allowed methods,
 * headers and a 600 s max age. No origin is allowed by default.
 *
 * @throws {ServerError} INVALID_OPTIONS for an entry that is not an exact origin or a header name
 * @example
 * ```ts
 * app.use(corsOriginCheck({ origins: settings.http.corsOrigins, allowedHeaders: [settings.auth.apiKeyHeader] }));
 * ```
 */
export function corsOriginCheck(
  options: CorsOriginCheckOptions = {},
): (request: IncomingMessage, response: ServerResponse, next: () => void) => void {
  const { origins, allowedHeaders } = checkedCorsOptions(options.origins, options.allowedHeaders);
  const exposed = CORS_EXPOSED_HEADERS.join(', ');
  const preflight = {
    'access-control-allow-methods': CORS_METHODS.join(', '),
    'access-control-allow-headers': allowedHeaders.join(', '),
    'access-control-max-age': String(CORS_MAX_AGE_SECONDS),
    'content-length': '0',
  };
  return (request, response, next) => {
    const { origin } = request.headers;
    // The answer depends on Origin: a shared cache must not give one origin's to another.
    if (origins.size > 0) response.appendHeader('vary', 'Origin');
    const { host } = request as IncomingMessage & { host?: unknown };
    if (!originAllowed(origin, typeof host === 'string' ? host : request.headers.host, origins)) {
      const error = originNotAllowed();
      setRefusalReason(error.code);
      sendProblem(request, response, {
        title: 'Forbidden',
        status: error.status,
        detail: error.reason,
      });
      return;
    }
    if (origin === undefined || !origins.has(origin)) {
      next();
      return;
    }
    response.setHeader('access-control-allow-origin', origin);
    response.setHeader('access-control-expose-headers', exposed);
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method']) {
      response.writeHead(204, preflight);
      response.end();
      return;
    }
    next();
  };
}

/** Sends `problem` as application/problem+json, with the request id as its `instance`. */
export function sendProblem(
  request: IncomingMessage,
  response: ServerResponse,
  problem: Problem,
  headers: Readonly<Record<string, string>> = {},
): void {
  const body = JSON.stringify(problemBody(requestIdOf(request, response), problem));
  for (const [name, value] of Object.entries(headers)) response.setHeader(name, value);
  response.writeHead(problem.status, {
    'content-type': PROBLEM_CONTENT_TYPE,
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

/** Options of {@link problemHandler}. */
export interface ProblemHandlerOptions {
  /** The mapping from errors to problems (`createProblems`). */
  readonly problems: Problems;
  /** Failed requests (5xx) are logged on it. */
  readonly logger: Logger;
  /** The credential scheme a route takes, for the challenge of its 401s. @default () => 'Bearer' */
  readonly schemeOf?: (request: IncomingMessage) => string;
  /**
   * The routes it serves answer with event streams: a temporary refusal (429 or
   * 503) is answered as an event stream that says `refused` (see
   * {@link sendEventStreamError}). Give it to an error middleware of the stream
   * route itself, after the route's handlers, so that its authentication's
   * refusals are answered so too.
   * @default false
   */
  readonly eventStream?: boolean;
}

/**
 * Express's error middleware (four parameters, so register it last): every
 * error a route or middleware passes to `next` answered as a problem through
 * `problems`, logged when it is the server's fault. When the response already
 * began (a stream), the connection is cut instead: a second answer cannot follow.
 * With `eventStream: true`, as {@link sendEventStreamError} answers.
 *
 * @example
 * ```ts
 * app.use(problemHandler({ problems, logger }));
 * ```
 */
export function problemHandler(
  options: ProblemHandlerOptions,
): (
  error: unknown,
  request: IncomingMessage,
  response: ServerResponse,
  next: (error?: unknown) => void,
) => void {
  const { problems, logger } = options;
  const schemeOf = options.schemeOf ?? (() => 'Bearer');
  if (options.eventStream === true) {
    return function answerStreamProblem(error, request, response, _next) {
      sendEventStreamError(request, response, error, options);
    };
  }
  return function answerProblem(error, request, response, _next) {
    const answer = answerAndLog(problems, logger, error, schemeOf(request));
    if (response.headersSent) {
      response.destroy();
      return;
    }
    sendProblem(request, response, answer.problem, answer.headers);
  };
}

/** Sends `refusal` (a 429 or 503 said as an event stream), with the request id. */
function sendRefusal(
  request: IncomingMessage,
  response: ServerResponse,
  refusal: EventStreamRefusal,
): void {
  requestIdOf(request, response);
  response.writeHead(200, refusal.headers);
  response.end(refusal.body);
}

/**
 * Answers `error` on an event stream route, for a route or middleware that
 * caught it: a temporary refusal (429 or 503: a stream limit, a store down,
 * shutting down) as a `200 text/event-stream` with `retry:` and one
 * `event: refused` (`eventStreamRefusal`), which a browser's EventSource
 * retries after that delay (it treats a 503 as final); anything else as the
 * problem {@link problemHandler} sends. Logged as `problemHandler` logs (a
 * refusal at warn as "event stream refused"); the access line says 200 with the
 * code as `reason`. When the response already began, the connection is cut.
 *
 * @example
 * ```ts
 * app.get('/api/v1/ticks', (request, response) => {
 *   openTicks(request).then(
 *     (source) => sendEventStream(request, response, streams, { clientId: 'user-1', source }, { problems, logger }),
 *   ).catch((error: unknown) => sendEventStreamError(request, response, error, { problems, logger }));
 * });
 * ```
 */
export function sendEventStreamError(
  request: IncomingMessage,
  response: ServerResponse,
  error: unknown,
  options: ProblemHandlerOptions,
): void {
  const scheme = (options.schemeOf ?? (() => 'Bearer'))(request);
  const answer = answerStreamAndLog(options.problems, options.logger, error, scheme);
  if (response.headersSent) {
    response.destroy();
    return;
  }
  if ('refusal' in answer) sendRefusal(request, response, answer.refusal);
  else sendProblem(request, response, answer.problem.problem, answer.problem.headers);
}

/** The 404 problem of a request no route matched: register it after every route. */
export function notFoundHandler(): NodeHandler {
  return (request, response) => sendProblem(request, response, NOT_FOUND);
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

/** The two health routes' handlers. */
export interface HealthHandlers {
  /** GET /health/live: 200 while the process runs. */
  readonly live: NodeHandler;
  /** GET /health/ready: the readiness report, 503 when not ready or shutting down. */
  readonly ready: NodeHandler;
}

/**
 * GET /health/live (`live`: 200 while the process runs) and GET /health/ready
 * (`ready`: the report of `readiness`, 503 when not ready or shutting down).
 * With a non-empty `token` (`settings.observability.metricsToken`), each check
 * is shown only to a request with `Authorization: Bearer <token>`; the status
 * code and `status` to anyone.
 */
export function healthHandlers(
  readiness: Readiness,
  options: { readonly token?: string } = {},
): HealthHandlers {
  const answerReadiness = readinessAnswerer(readiness, options.token ?? '');
  return {
    live: (_request, response) => sendJson(response, 200, { status: 'ok' }),
    ready: (request, response) => {
      answerReadiness(request.headers.authorization).then(
        (answer) => sendJson(response, answer.status, answer.body),
        (error: unknown) => response.destroy(error instanceof Error ? error : undefined),
      );
    },
  };
}

/**
 * GET /metrics: the Prometheus text of `metrics`; with a non-empty `token`
 * (`settings.observability.metricsToken`) only for `Authorization: Bearer <token>`,
 * a 401 problem otherwise.
 */
export function metricsHandler(metrics: Metrics, options: { readonly token: string }): NodeHandler {
  const scrape = createMetricsEndpoint(metrics, { token: options.token });
  return (request, response) => {
    scrape(request.headers.authorization).then(
      (answer) => {
        if (answer.status === 200) {
          response.writeHead(200, answer.headers);
          response.end(answer.body);
          return;
        }
        const challenge = answer.headers['www-authenticate'];
        const headers = challenge ? { 'www-authenticate': challenge } : {};
        sendProblem(request, response, METRICS_UNAUTHORIZED, headers);
      },
      // A collector that throws: a 500 problem, never an unhandled rejection.
      () => sendProblem(request, response, { title: 'Internal Server Error', status: 500 }),
    );
  };
}

/** The kit's own mapping, for `sendEventStream` called without one. */
let kitProblems: Problems | undefined;

/**
 * Opens an event stream for this request and sends it (the client leaving
 * cancels it); when the client left while it was opening, nothing is sent. A
 * temporary refusal (429 or 503: the stream limits, shutting down, the source
 * failing at once with a 503) is answered as an event stream that says
 * `refused` (see {@link sendEventStreamError}): with `answering`, through its
 * `problems` and logged on its `logger`; without, through the kit's default
 * problems, named only by the access line's `reason`. Any other refusal
 * rejects, for the error middleware (Express 5 passes a rejected handler's
 * error to it).
 */
export async function sendEventStream(
  request: IncomingMessage,
  response: ServerResponse,
  streams: EventStreams,
  options: Omit<OpenEventStream, 'signal'>,
  answering?: ProblemHandlerOptions,
): Promise<void> {
  let stream;
  try {
    stream = await openForResponse(response, streams, options);
  } catch (error) {
    const problems = answering?.problems ?? (kitProblems ??= createProblems());
    const scheme = (answering?.schemeOf ?? (() => 'Bearer'))(request);
    const { answer, refusal } = streamAnswerOf(problems, error, scheme);
    // The rest is the error middleware's to answer (and log).
    if (refusal === undefined || response.headersSent) throw error;
    logRefusal(answering?.logger, error, answer, refusal);
    sendRefusal(request, response, refusal);
    return;
  }
  if (stream === undefined) return;
  response.writeHead(200, stream.headers);
  // pipeline, not pipe: a body destroyed (a client that stopped reading) destroys the response.
  pipeline(stream.body, response, () => undefined);
}

/**
 * A node:http server (an Express app's too: `http.createServer(app)`) as a
 * lifecycle component. It answers what Node refuses before any handler runs
 * (malformed requests, CONNECT) as problems; `start` listens when `listen` is
 * given; `drain` makes every response still to be sent close its connection and
 * begins closing every connection with no request in flight, every 100 ms until
 * the server is closed (keep-alive connections between requests, and ones that
 * never sent a request, which browsers open ahead); `stop` closes the server
 * (in-flight requests finish) and at the deadline cuts the connections still
 * open. Create it before the server listens: it counts connections from then on.
 *
 * @example
 * ```ts
 * lifecycle.add(nodeListener(createServer(app), settings.app, { logger }));
 * ```
 */
export function nodeListener(
  server: Server,
  listen?: ListenOptions,
  options: {
    /** Gets the `listening` line with the address, as `fastifyListener` writes it. */
    readonly logger?: Logger;
  } = {},
): Component & {
  /** Its name in the lifecycle's logs. */
  readonly name: 'http';
  /** The address it listens on, once started. */
  address(): AddressInfo | null;
} {
  server.on('connect', answerConnect);
  // Node answers a bare 400 only while nobody listens; an app's own handler is left alone.
  if (server.listenerCount('clientError') === 0) server.on('clientError', answerClientError);
  const sockets = new SocketSweep(server);
  // Responses not yet sent, so that drain can make them close their connection.
  const pending = new Set<ServerResponse>();
  let draining = false;
  server.prependListener('request', (_request: IncomingMessage, response: ServerResponse) => {
    if (draining) {
      response.setHeader('connection', 'close');
      return;
    }
    pending.add(response);
    response.once('close', () => pending.delete(response));
    response.once('finish', () => pending.delete(response));
  });
  return {
    name: 'http',
    address: () => {
      const address = server.address();
      return address !== null && typeof address === 'object' ? address : null;
    },
    async start() {
      if (listen === undefined) return;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(listen.port, listen.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const address = server.address();
      if (address !== null && typeof address === 'object') {
        options.logger?.info({ address: `http://${address.address}:${address.port}` }, 'listening');
      }
    },
    drain() {
      draining = true;
      for (const response of pending)
        if (!response.headersSent) response.setHeader('connection', 'close');
      sockets.begin();
    },
    async stop(signal) {
      if (!server.listening) {
        sockets.end();
        return;
      }
      await closeWithin(server, new Promise((resolve) => server.close(resolve)), signal, sockets);
    },
  };
}
