/**
 * The Fastify binding of the server kit: the server options, one plugin for
 * problems, request ids, access logs, metrics and health routes, the event
 * stream reply, and the listener as a lifecycle component.
 * @packageDocumentation
 */
import { STATUS_CODES, type Server } from 'node:http';
import {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyPluginCallback,
  type FastifyReply,
  type FastifyRequest,
  type FastifyHttpOptions,
} from 'fastify';
import {
  createHttpObservability,
  createMetricsEndpoint,
  type Logger,
  type Metrics,
} from '@flowforge/observability';
import { fastifyObservability, genReqId } from '@flowforge/observability/fastify';
import AjvCompiler from '@fastify/ajv-compiler';
import fastifyCors from '@fastify/cors';
import type { EventStreams, OpenEventStream } from './event-streams.js';
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
import { PROBLEM_CONTENT_TYPE, problemBody, type Problem, type Problems } from './problems.js';
import { answerClientError, answerConnect } from './raw-http.js';
import type { Readiness } from './readiness.js';
import {
  MAX_JSON_DEPTH,
  SECURITY_HEADERS,
  bodyTooDeep,
  httpServerOptions,
  type HttpTimeouts,
} from './http-limits.js';
import { jsonDepthExceeds } from '@flowforge/kernel';
import {
  METRICS_UNAUTHORIZED,
  NOT_FOUND,
  answerAndLog,
  answerStreamAndLog,
  readinessAnswerer,
} from './internal/answers.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * This route answers with an event stream (`sendEventStream`). A temporary
     * refusal (429 or 503, from a hook or the handler) is then answered as a
     * `200 text/event-stream` with `retry:` and one `event: refused`, which a
     * browser's EventSource retries by itself; other errors stay problems.
     * @default false
     */
    eventStream?: boolean;
  }
}

/**
 * Options of {@link fastifyServerOptions}. Spread `settings.http` into it: its
 * timeouts and body limit have the same names (the stream caps are ignored).
 */
export interface FastifyServerOptionsInput extends Pick<
  HttpTimeouts,
  'requestTimeoutMs' | 'headersTimeoutMs'
> {
  /** The process logger (`createLogger`); request lines carry the request's context. */
  readonly logger: Logger;
  /** How long an idle keep-alive connection stays open, in ms. @default 5_000 */
  readonly keepAliveTimeout?: number;
  /**
   * The largest body a route accepts unless it sets its own `bodyLimit`, in
   * bytes (HTTP_BODY_LIMIT_BYTES); a larger one is refused with 413 before it is read.
   * @default 65_536
   */
  readonly bodyLimitBytes?: number;
  /**
   * The proxies whose `X-Forwarded-For` is believed for `request.ip` (addresses
   * or CIDR ranges, HTTP_TRUST_PROXY); empty: the peer is the client. Per-client
   * limits (the API-key throttle) count by `request.ip`, so behind a load balancer
   * without it every client is the balancer.
   * @default []
   */
  readonly trustProxy?: readonly string[];
}

/**
 * The Fastify constructor options every FlowForge service starts from: our
 * logger and request ids (a sane inbound X-Request-ID or a UUID v4), one access
 * line (the plugin's) instead of Fastify's two, problems for the requests
 * Fastify refuses before routing, short keep-alive, idle connections closed on
 * close, a slow client cut off (`requestTimeoutMs`, `headersTimeoutMs`: Fastify
 * waits forever by default), a 64 KiB body limit, and bodies validated as sent:
 * no type coercion (Fastify's default turns `["metric"]` into `"metric"` before
 * any check runs) and unknown fields refused instead of dropped. Query strings
 * and path parameters are still coerced (they are text). Spread it and add your own.
 *
 * @throws {ServerError} INVALID_OPTIONS for a timeout out of range
 * @example
 * ```ts
 * const app = Fastify(fastifyServerOptions({ logger, ...settings.http }));
 * ```
 */
export function fastifyServerOptions(
  options: FastifyServerOptionsInput,
): FastifyHttpOptions<Server> {
  // Widened by annotation (pino's Logger is a superset), so the instance is a plain FastifyInstance.
  const loggerInstance: FastifyBaseLogger = options.logger;
  const http = httpServerOptions({
    ...(options.requestTimeoutMs === undefined
      ? {}
      : { requestTimeoutMs: options.requestTimeoutMs }),
    ...(options.headersTimeoutMs === undefined
      ? {}
      : { headersTimeoutMs: options.headersTimeoutMs }),
    keepAliveTimeoutMs: options.keepAliveTimeout ?? 5_000,
  });
  return {
    loggerInstance,
    // request.log is the logger itself: its lines already carry request_id from the request
    // context, so a pino child per request (Fastify's default) buys nothing.
    childLoggerFactory: (parent) => parent,
    genReqId,
    logController: new LogController({ disableRequestLogging: true }),
    keepAliveTimeout: http.keepAliveTimeout ?? 5_000,
    // Fastify sets requestTimeout on the server after creating it (0 unless given here); `http`
    // carries it too, so that Node checks the headers timeout against it when creating it.
    requestTimeout: http.requestTimeout ?? 30_000,
    http,
    bodyLimit: options.bodyLimitBytes ?? 65_536,
    trustProxy:
      options.trustProxy !== undefined && options.trustProxy.length > 0
        ? [...options.trustProxy]
        : false,
    forceCloseConnections: 'idle',
    // A request that reaches a still-open connection while closing is served like any other
    // (the pools close only after the server): Fastify's closing 503 would skip every hook,
    // so it would carry no X-Request-ID, no problem+json and no access line.
    return503OnClosing: false,
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
    // Unknown body fields are refused (400), not silently dropped: a client that sends
    // tenant_id learns that it is not accepted.
    ajv: { customOptions: { removeAdditional: false } },
    schemaController: { compilersFactory: { buildValidator: bodiesWithoutCoercion() } },
  };
}

/**
 * Fastify's validator factory with one change: bodies are validated by an Ajv
 * that does not coerce types. JSON carries its own types, so coercing a body
 * only hides a client's mistake (or its attempt: a one-element array passed as
 * a string skipped every check keyed on that string).
 */
function bodiesWithoutCoercion(): AjvCompiler.ValidatorFactory {
  const pool = AjvCompiler();
  return (externalSchemas, serverOptions = {}) => {
    const parts = pool(externalSchemas, serverOptions);
    const bodies = pool(externalSchemas, {
      ...serverOptions,
      customOptions: { ...serverOptions.customOptions, coerceTypes: false },
    } as AjvCompiler.ValidatorFactory extends (a: never, b?: infer O) => unknown ? O : never);
    return (route) => (route.httpPart === 'body' ? bodies(route) : parts(route));
  };
}

/**
 * Fastify's `frameworkErrors`: a URL it cannot decode (bad percent-encoding,
 * invalid UTF-8) or a path parameter over its length limit. No hook runs for
 * these, so the X-Request-ID header is set here.
 */
function answerFrameworkError(
  error: { statusCode?: number },
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const status = error.statusCode !== undefined && error.statusCode < 500 ? error.statusCode : 400;
  void sendProblem(request, reply.header('x-request-id', request.id), {
    title: STATUS_CODES[status] ?? 'Bad Request',
    status,
    detail: 'The request URL cannot be decoded or is too long.',
  });
}

/** Sends `problem` as application/problem+json, with the request id as its `instance`. */
export function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  problem: Problem,
): FastifyReply {
  return reply
    .code(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(problemBody(request.id, problem));
}

/** Options of the {@link fastifyServer} plugin. */
export interface FastifyServerPluginOptions {
  /** The process logger: failed requests are logged on it. */
  readonly logger: Logger;
  /** The registry of the HTTP metrics and of GET /metrics. */
  readonly metrics: Metrics;
  /** The mapping from errors to problems (`createProblems`). */
  readonly problems: Problems;
  /**
   * GET /health/live and GET /health/ready from this registry; omit to serve neither.
   * With a non-empty `metricsToken`, /health/ready shows each check only to a
   * request that sends it (the status code and `status` to anyone).
   */
  readonly readiness?: Readiness;
  /**
   * GET /metrics: the bearer token scrapes must send (`settings.observability.metricsToken`);
   * `''` serves it openly (development), `null` serves no route.
   */
  readonly metricsToken: string | null;
  /** The credential scheme a route takes, for the challenge of its 401s. @default () => 'Bearer' */
  readonly schemeOf?: (request: FastifyRequest) => string;
  /** The deepest JSON body accepted (objects and arrays); deeper is `BODY_TOO_DEEP` (400). @default 32 ({@link MAX_JSON_DEPTH}) */
  readonly maxJsonDepth?: number;
  /**
   * The browser origins that may call this API from another site, exactly as a
   * browser sends them (`https://app.example.com`: scheme, host, a port only
   * when not the default; no path, no `*`), e.g. `settings.http.corsOrigins`
   * (HTTP_CORS_ORIGINS). Their preflights are answered and their responses carry
   * `Access-Control-Allow-Origin`. A request whose `Origin` is neither the API's
   * own (its host is the `Host` header's) nor listed is refused 403
   * `ORIGIN_NOT_ALLOWED` before any other hook of the routes, authentication
   * included, runs. Empty: no origin is allowed and no CORS header is sent.
   * @default []
   */
  readonly corsOrigins?: readonly string[];
  /**
   * Request headers allowed from those origins besides `Authorization`,
   * `Content-Type`, `Last-Event-ID` and `X-Request-ID`: the API-key header
   * (`settings.auth.apiKeyHeader`), say.
   * @default []
   */
  readonly corsAllowedHeaders?: readonly string[];
}

/**
 * Everything around a FlowForge service's routes, as one plugin (register it
 * before them): request ids, context, metrics and access lines
 * (`@flowforge/observability`); every error and unknown route answered as a
 * problem through `problems`, with the right log line and the error's code as
 * the access line's `reason`; Node's own refusals (malformed requests, CONNECT)
 * as problems too; JSON bodies over `maxJsonDepth` refused before any code
 * walks them; `nosniff`, `no-store`, a CSP that forbids framing and
 * `no-referrer` on every response (`SECURITY_HEADERS`; a route's own header
 * wins); CORS for the origins in `corsOrigins` only (none by default), and 403
 * `ORIGIN_NOT_ALLOWED` for a request from any other site, before the routes'
 * hooks; on routes with `config: { eventStream: true }`, a 429 or 503 answered
 * as an event stream that says `refused` (see `eventStreamRefusal`); GET
 * /metrics, /health/live and /health/ready; and, once shutdown began
 * ({@link fastifyListener}'s drain), `Connection: close` on every response so
 * no keep-alive socket outlives it.
 *
 * @example
 * ```ts
 * await app.register(fastifyServer, { logger, metrics, problems, readiness, metricsToken: settings.observability.metricsToken });
 * ```
 */
export const fastifyServer: FastifyPluginCallback<FastifyServerPluginOptions> = (
  app: FastifyInstance,
  options: FastifyServerPluginOptions,
  done: (error?: Error) => void,
) => {
  const { logger, metrics, problems } = options;
  const schemeOf = options.schemeOf ?? (() => 'Bearer');
  let cors: ReturnType<typeof checkedCorsOptions>;
  try {
    cors = checkedCorsOptions(options.corsOrigins, options.corsAllowedHeaders);
  } catch (error) {
    done(error as Error);
    return;
  }
  app.server.on('connect', answerConnect);

  app.setNotFoundHandler((request, reply) => sendProblem(request, reply, NOT_FOUND));
  app.setErrorHandler((error: unknown, request, reply) => {
    const scheme = schemeOf(request);
    const answer =
      request.routeOptions.config.eventStream === true
        ? answerStreamAndLog(problems, logger, error, scheme)
        : { problem: answerAndLog(problems, logger, error, scheme) };
    if ('refusal' in answer) {
      return reply.code(200).headers(answer.refusal.headers).send(answer.refusal.body);
    }
    return sendProblem(request, reply.headers(answer.problem.headers), answer.problem.problem);
  });

  app.addHook('onSend', (_request, reply, payload, next) => {
    for (const name in SECURITY_HEADERS) {
      if (!reply.hasHeader(name)) void reply.header(name, SECURITY_HEADERS[name]);
    }
    if (draining.has(app.server)) void reply.header('connection', 'close');
    next(null, payload);
  });

  const maxJsonDepth = options.maxJsonDepth ?? MAX_JSON_DEPTH;
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    void parseJson(request, body as string, (error: Error | null, value?: unknown) => {
      if (error) done(error);
      else if (jsonDepthExceeds(value, maxJsonDepth)) done(bodyTooDeep(maxJsonDepth));
      else done(null, value);
    });
  });

  app.register(fastifyObservability, { http: createHttpObservability({ logger, metrics }) });
  // After the request id and context (the refusal carries them), before every other hook.
  app.register(originCheck, { origins: cors.origins });
  if (cors.origins.size > 0) {
    app.register(fastifyCors, {
      origin: [...cors.origins],
      methods: [...CORS_METHODS],
      allowedHeaders: [...cors.allowedHeaders],
      exposedHeaders: [...CORS_EXPOSED_HEADERS],
      maxAge: CORS_MAX_AGE_SECONDS,
      credentials: false,
      // An OPTIONS that is no preflight is not refused as text/plain: it gets the same 204.
      strictPreflight: false,
    });
  }

  if (options.metricsToken !== null) {
    // Here rather than by the observability plugin: its refusal is then a problem like every
    // other error, with the request id.
    const scrape = createMetricsEndpoint(metrics, { token: options.metricsToken });
    app.get('/metrics', async (request, reply) => {
      const answer = await scrape(request.headers.authorization);
      if (answer.status === 200) return reply.headers(answer.headers).send(answer.body);
      const challenge = answer.headers['www-authenticate'];
      if (challenge) void reply.header('www-authenticate', challenge);
      return sendProblem(request, reply, METRICS_UNAUTHORIZED);
    });
  }

  const { readiness } = options;
  if (readiness) {
    app.get('/health/live', () => ({ status: 'ok' }));
    const answerReadiness = readinessAnswerer(readiness, options.metricsToken ?? '');
    app.get('/health/ready', async (request, reply) => {
      const answer = await answerReadiness(request.headers.authorization);
      return reply.code(answer.status).send(answer.body);
    });
  }
  done();
};
// Equivalent of fastify-plugin: the hooks and handlers must reach every route of the app.
Object.assign(fastifyServer, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@flowforge/server',
});

/**
 * Refuses a request whose Origin is neither the API's own nor allowed, in
 * onRequest: registered right after the observability plugin, so its hook runs
 * before @fastify/cors's (a refused preflight is not answered 204) and before any
 * hook of the routes (authentication: a refused request starts no work).
 */
const originCheck: FastifyPluginCallback<{ readonly origins: ReadonlySet<string> }> = (
  app,
  { origins },
  done,
) => {
  app.addHook('onRequest', (request, _reply, next) => {
    // request.host is X-Forwarded-Host where trustProxy believes it, else the Host header.
    if (originAllowed(request.headers.origin, request.host, origins)) next();
    else next(originNotAllowed());
  });
  done();
};
Object.assign(originCheck, { [Symbol.for('skip-override')]: true });

/** Servers whose shutdown began: their responses close the connection. */
const draining = new WeakSet<object>();

/**
 * The HTTP server as a lifecycle component: `start` listens (when `listen` is
 * given; tests that listen themselves omit it), `drain` makes every response
 * close its connection and begins closing every connection with no request in
 * flight, every 100 ms until the server is closed (a keep-alive connection
 * between requests, and one that never sent a request: browsers open one
 * ahead, and it would otherwise hold the stop to its deadline), `stop` closes
 * the server (in-flight requests finish) and, at the shutdown deadline, cuts
 * the connections still open. Create it before the server listens: it counts
 * connections from then on.
 */
export function fastifyListener(
  app: FastifyInstance,
  listen?: ListenOptions,
): Component & {
  /** Its name in the lifecycle's logs. */
  readonly name: 'http';
} {
  const sockets = new SocketSweep(app.server);
  return {
    name: 'http',
    async start() {
      if (listen === undefined) return;
      const address = await app.listen({ host: listen.host, port: listen.port });
      app.log.info({ address }, 'listening');
    },
    drain() {
      draining.add(app.server);
      sockets.begin();
    },
    stop: (signal) => closeWithin(app.server, app.close(), signal, sockets),
  };
}

/**
 * Opens an event stream for this request and sends it (the client leaving
 * cancels it); when the client left while it was opening, nothing is sent. A
 * refusal (limits, the source failing at once) is thrown, for the error handler:
 * give the route `config: { eventStream: true }` so that a 429 or 503 reaches a
 * browser as `event: refused`, which EventSource retries, rather than a status
 * it treats as final.
 *
 * @example
 * ```ts
 * app.get('/api/v1/ticks', { config: { eventStream: true } }, (request, reply) =>
 *   sendEventStream(request, reply, streams, { clientId: request.principal!.userId, source: ticks }));
 * ```
 */
export async function sendEventStream(
  request: FastifyRequest,
  reply: FastifyReply,
  streams: EventStreams,
  options: Omit<OpenEventStream, 'signal'>,
): Promise<FastifyReply> {
  const stream = await openForResponse(reply.raw, streams, options);
  return stream === undefined ? reply : reply.headers(stream.headers).send(stream.body);
}
