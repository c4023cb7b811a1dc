import fastifySwagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Settings } from '@flowforge/config';
import {
  createHttpObservability,
  createLogger,
  createMetricsEndpoint,
  createMetrics,
  type Logger,
  type Metrics,
} from '@flowforge/observability';
import { fastifyObservability, genReqId } from '@flowforge/observability/fastify';
import { AuthError, createApiKeyVerifier, createAuth, type Auth } from '@flowforge/auth';
import {
  apiKey,
  bearer,
  fastifyAuth,
  requireRole,
  type ApiKeyVerifierLike,
} from '@flowforge/auth/fastify';
import type { Database } from '@flowforge/db';
import type { ClickHouse } from '@flowforge/clickhouse';
import type { Redis } from '@flowforge/redis';
import type { Materialize } from '@flowforge/materialize';
import type { AppDB } from './db/schema.js';
import { answerClientError, answerConnect, answerFrameworkError } from './framework-errors.js';
import { answerError } from './error-answer.js';
import { sendProblem } from './problem.js';
import type { ReadinessCheck, UnconfiguredDependency } from './readiness.js';
import { apiKeyRoutes } from './routes/api-keys.js';
import { dashboardRoutes } from './routes/dashboards.js';
import { embedRoutes } from './routes/embed.js';
import { healthRoutes } from './routes/health.js';
import { widgetDataRoutes } from './routes/widget-data.js';
import { createLiveStreams, widgetStreamRoutes, type LiveStreams } from './routes/widget-stream.js';
import { createWidgetDataReader } from './services/widget-data.js';

/** The WWW-Authenticate realm of every challenge. */
const REALM = 'flowforge';

export interface AppOptions {
  readonly settings: Settings;
  /** Dependencies that /health/ready reports on. */
  readonly checks?: readonly ReadinessCheck[];
  /** The process logger; silent unless given (tests pass one that captures lines). */
  readonly logger?: Logger;
  /** The metrics registry; a fresh one unless given. */
  readonly metrics?: Metrics;
  /**
   * The tenant data store; `null` or absent: not configured, and its routes answer
   * 503. The app takes it over: readiness checks it, and closing the app closes it.
   */
  readonly database?: Database<AppDB> | null;
  /**
   * ClickHouse, where widget data lives; `null` or absent: not configured, and
   * data routes answer 503 naming CLICKHOUSE_URL. The app takes it over (readiness, close).
   */
  readonly clickhouse?: ClickHouse | null;
  /**
   * Redis, the widget data cache; `null` or absent: no cache. The app takes it
   * over (readiness, close). A Redis outage slows data reads, it does not fail them.
   */
  readonly redis?: Redis | null;
  /**
   * Materialize, which live widgets stream from; `null` or absent: not configured,
   * and streams answer 503 naming MATERIALIZE_URL. The app takes it over (readiness,
   * close); it should be started (`start()`) before it is passed in.
   */
  readonly materialize?: Materialize | null;
  /** How often an idle SSE stream sends a heartbeat comment. @default 15_000 */
  readonly streamHeartbeatMs?: number;
  /** How long widget data is served from the Redis cache. @default 30_000 */
  readonly widgetCacheTtlMs?: number;
  /** Bearer authentication; built from `settings.auth` unless given (tests pass one with a fake clock). */
  readonly auth?: Auth;
  /** Registers more routes before the app is sealed (later packages add theirs here). */
  readonly routes?: (server: FastifyInstance) => void;
}

/** A built app, plus the switch that turns readiness to 503 when shutdown begins. */
export interface App {
  readonly server: FastifyInstance;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The live SSE streams being served. */
  readonly streams: LiveStreams;
  /**
   * Readiness answers 503 from now on, responses ask clients to close their
   * connection, and live streams end with a `shutdown` event.
   */
  beginShutdown(): void;
}

/** Builds the sample API. Nothing listens until `server.listen()`. */
export async function buildApp(options: AppOptions): Promise<App> {
  const { settings } = options;
  let shuttingDown = false;
  const logger = options.logger ?? createLogger({ level: 'silent' });
  // Widened by annotation (pino's Logger is a superset), so the instance is a plain
  // FastifyInstance for route modules, as the observability README shows.
  const fastifyLogger: FastifyBaseLogger = logger;
  const metrics = options.metrics ?? createMetrics();
  const server = Fastify({
    // Our logger, our request ids (a sane inbound X-Request-ID or a UUID v4) and
    // our access line (the observability plugin) instead of Fastify's two lines.
    loggerInstance: fastifyLogger,
    // request.log is the logger itself: its lines already carry request_id from
    // the request context, so a pino child per request (Fastify's default) buys nothing.
    childLoggerFactory: (parent) => parent,
    genReqId,
    logController: new LogController({ disableRequestLogging: true }),
    // Idle keep-alive sockets are closed by close() and time out quickly; busy
    // ones are released by the Connection: close hook below (fastify/fastify#7044).
    keepAliveTimeout: 5_000,
    forceCloseConnections: 'idle',
    // A request that reaches a still-open connection while closing is served like
    // any other (the pools close only after the server has): Fastify's closing 503
    // would skip our hooks, so it carried no X-Request-ID, no problem+json and no
    // access line, and failed a request the app could still answer.
    return503OnClosing: false,
    // Requests Fastify refuses before routing are problems with a request id too.
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
    // Unknown body fields are refused (400), not silently dropped: a client that
    // sends tenant_id learns that it is not accepted.
    ajv: { customOptions: { removeAdditional: false } },
  });
  server.server.on('connect', answerConnect);
  const database = options.database ?? null;
  const clickhouse = options.clickhouse ?? null;
  const redis = options.redis ?? null;
  const materialize = options.materialize ?? null;
  const streams = createLiveStreams();
  const widgetData = createWidgetDataReader({
    clickhouse,
    cache: redis?.ownedKeyspace(WIDGET_CACHE_PREFIX) ?? null,
    ...(options.widgetCacheTtlMs === undefined ? {} : { cacheTtlMs: options.widgetCacheTtlMs }),
    logger,
  });
  const auth =
    options.auth ?? createAuth({ ...settings.auth, appEnv: settings.app.env }, { logger, metrics });
  const apiKeys: ApiKeyVerifierLike = database
    ? createApiKeyVerifier(database, { logger, metrics })
    : {
        verify: () =>
          Promise.reject(new AuthError('STORE_UNAVAILABLE', 'API keys need DATABASE_URL')),
      };

  server.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, {
      title: 'Not Found',
      status: 404,
      detail: 'No route matches this request.',
    }),
  );
  server.setErrorHandler((error: unknown, request, reply) => {
    // The embed routes take an API key, not a bearer token: challenge for what they accept.
    const scheme = request.url.startsWith('/embed/') ? 'ApiKey' : 'Bearer';
    const answer = answerError(error, REALM, scheme);
    if (answer.log !== undefined) {
      const { code } = (error ?? {}) as { code?: unknown };
      logger[answer.log]({ err: error, code }, 'request failed');
    }
    return sendProblem(request, reply.headers(answer.headers), answer.problem);
  });

  // Before any route: the plugin builds /openapi.json from the schemas of the routes registered after it.
  await server.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'FlowForge sample API',
        version: '1.0.0',
        description:
          'The reference FlowForge service. Errors are application/problem+json (RFC 9457) with the request id; every response carries X-Request-ID.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          apiKey: { type: 'apiKey', in: 'header', name: settings.auth.apiKeyHeader },
        },
      },
    },
    transform: ({ schema, url }) => ({
      schema: {
        ...schema,
        // Which credentials a route takes follows from its prefix (the auth hooks are per prefix).
        ...(url.startsWith('/api/')
          ? { security: [{ bearer: [] }] }
          : url.startsWith('/embed/')
            ? { security: [{ apiKey: [] }] }
            : {}),
      },
      url,
    }),
  });
  server.get('/openapi.json', { schema: { hide: true } }, () => server.swagger());

  await server.register(fastifyObservability, {
    http: createHttpObservability({ logger, metrics }),
  });
  // GET /metrics here rather than by the plugin: its refusal is then a problem like every
  // other error of the app, with the request id (the plugin's has none).
  const scrape = createMetricsEndpoint(metrics, { token: settings.observability.metricsToken });
  server.get('/metrics', async (request, reply) => {
    const answer = await scrape(request.headers.authorization);
    if (answer.status === 200) return reply.headers(answer.headers).send(answer.body);
    const challenge = answer.headers['www-authenticate'];
    if (challenge) void reply.header('www-authenticate', challenge);
    return sendProblem(request, reply, {
      title: 'Unauthorized',
      status: 401,
      detail: 'Scraping /metrics needs the metrics bearer token.',
    });
  });

  // Once shutdown begins, every response (in-flight ones included) closes its
  // keep-alive connection, so no socket outlives close() waiting for a next request.
  server.addHook('onSend', (_request, reply, payload, done) => {
    if (shuttingDown) void reply.header('connection', 'close');
    done(null, payload);
  });

  const checks: (ReadinessCheck | UnconfiguredDependency)[] = [...(options.checks ?? [])];
  if (database) {
    checks.push({
      name: 'postgres',
      required: true,
      check: async () => {
        await database.health();
      },
    });
    server.addHook('onClose', () => database.close());
  }
  // Optional stores: down means degraded (200), not unready; their routes answer 503.
  const given = new Set(checks.map((check) => check.name));
  const optionalStore = (
    name: string,
    store: { health(): Promise<unknown>; close(): Promise<void> } | null,
    variable: string,
  ): void => {
    if (store) server.addHook('onClose', () => store.close());
    if (given.has(name)) return; // a check passed in under this name replaces the store's own
    checks.push(
      store
        ? { name, required: false, check: () => store.health().then(() => undefined) }
        : { name, notConfigured: variable },
    );
  };
  optionalStore('clickhouse', clickhouse, 'CLICKHOUSE_URL');
  optionalStore('redis', redis, 'REDIS_URL');
  optionalStore('materialize', materialize, 'MATERIALIZE_URL');
  // SSE responses never end on their own: end them before close() waits for in-flight requests.
  // Not waited for here: close() waits for their responses to end, as for any request.
  server.addHook('preClose', (done) => {
    void streams.endAll();
    done();
  });
  healthRoutes(server, {
    checks,
    isShuttingDown: () => shuttingDown,
    checkTimeoutMs: 2_000,
  });

  await server.register(fastifyAuth);
  server.register((api, _options, done) => {
    // onRequest: before body parsing and validation, so an anonymous caller gets
    // 401, never a 400 that describes the schema.
    api.addHook('onRequest', bearer(auth));
    const viewer = requireRole('viewer', 'editor', 'admin');
    const editor = requireRole('editor', 'admin');
    api.get('/api/v1/me', { onRequest: viewer }, (request) => {
      const principal = request.principal!;
      return {
        user_id: principal.userId,
        tenant_id: principal.tenantId,
        roles: principal.roles,
        auth_method: principal.method,
      };
    });
    dashboardRoutes(api, { database, canRead: viewer, canWrite: editor });
    widgetDataRoutes(api, { database, widgetData, canRead: viewer });
    widgetStreamRoutes(api, {
      database,
      materialize,
      canRead: viewer,
      streams,
      logger,
      maxStreams: settings.materialize.poolSize,
      ...(options.streamHeartbeatMs === undefined
        ? {}
        : { heartbeatMs: options.streamHeartbeatMs }),
    });
    apiKeyRoutes(api, { database, canManage: requireRole('admin') });
    done();
  });
  server.register((embed, _options, done) => {
    embed.addHook('onRequest', apiKey(apiKeys, settings.auth.apiKeyHeader));
    embedRoutes(embed, { database, widgetData });
    done();
  });
  options.routes?.(server);
  await server.ready();
  return {
    server,
    logger,
    metrics,
    streams,
    beginShutdown: () => {
      shuttingDown = true;
      void streams.endAll();
    },
  };
}

/** Redis keys the app owns: its widget data cache. */
const WIDGET_CACHE_PREFIX = 'flowforge:cache:widget-data:';
