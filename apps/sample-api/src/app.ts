import fastifySwagger from '@fastify/swagger';
import { STATUS_CODES } from 'node:http';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify';
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
import {
  AuthError,
  createApiKeyVerifier,
  createAuth,
  isAuthError,
  type Auth,
} from '@flowforge/auth';
import {
  apiKey,
  bearer,
  fastifyAuth,
  requireRole,
  type ApiKeyVerifierLike,
} from '@flowforge/auth/fastify';
import { isDatabaseError, type Database, type DatabaseError } from '@flowforge/db';
import { isClickHouseError, type ClickHouse, type ClickHouseError } from '@flowforge/clickhouse';
import { isRedisError, type Redis } from '@flowforge/redis';
import {
  isMaterializeError,
  type Materialize,
  type MaterializeError,
} from '@flowforge/materialize';
import type { AppDB } from './db/schema.js';
import { answerClientError, answerConnect, answerFrameworkError } from './framework-errors.js';
import { sendProblem, type Problem } from './problem.js';
import type { ReadinessCheck, UnconfiguredDependency } from './readiness.js';
import { apiKeyRoutes } from './routes/api-keys.js';
import { dashboardRoutes, DatabaseNotConfigured } from './routes/dashboards.js';
import { embedRoutes } from './routes/embed.js';
import { healthRoutes } from './routes/health.js';
import { widgetDataRoutes } from './routes/widget-data.js';
import { createLiveStreams, widgetStreamRoutes, type LiveStreams } from './routes/widget-stream.js';
import { createWidgetDataReader, StoreNotConfigured } from './services/widget-data.js';

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
  server.setErrorHandler((error: { statusCode?: number; message?: string }, request, reply) => {
    if (isDatabaseError(error)) {
      const problem = databaseProblem(error);
      if (problem.status >= 500) {
        logger[problem.status === 503 ? 'warn' : 'error'](
          { err: error, code: error.code, sqlstate: error.sqlstate },
          'database request failed',
        );
      }
      if (problem.status === 503) void reply.header('retry-after', '1');
      if (problem.status === 401) {
        void reply.header('www-authenticate', 'Bearer realm="flowforge", error="invalid_token"');
      }
      return sendProblem(request, reply, problem);
    }
    if (isAuthError(error)) {
      // The embed routes take an API key, not a bearer token: challenge for what they accept.
      const scheme = request.url.startsWith('/embed/') ? 'ApiKey' : 'Bearer';
      const challenge = error.challenge(REALM, scheme);
      if (challenge) void reply.header('www-authenticate', challenge);
      if (error.status === 503) {
        void reply.header('retry-after', '5');
        logger.warn({ code: error.code }, 'authentication unavailable');
      } else if (error.status >= 500) {
        logger.error({ err: error, code: error.code }, 'authentication misused');
      }
      return sendProblem(request, reply, {
        title: TITLES[error.status] ?? 'Error',
        status: error.status,
        // Written for clients: never the token, the key or a claim value.
        ...(error.status < 500 || error.status === 503 ? { detail: error.message } : {}),
      });
    }
    // An analytical store's error: logged with its code, answered by the store's mapping.
    const storeFailure = (store: string, code: string, problem: Problem): FastifyReply => {
      logger[problem.status === 500 ? 'error' : 'warn'](
        { err: error, code },
        `${store} request failed`,
      );
      if (problem.status === 503) void reply.header('retry-after', '1');
      return sendProblem(request, reply, problem);
    };
    if (isClickHouseError(error)) {
      return storeFailure('clickhouse', error.code, clickHouseProblem(error));
    }
    if (isMaterializeError(error)) {
      return storeFailure('materialize', error.code, materializeProblem(error));
    }
    if (isRedisError(error)) {
      // Redis is only the widget cache, whose failures are absorbed: one reaching here is a bug.
      logger.error({ err: error, code: error.code }, 'redis request failed');
      return sendProblem(request, reply, { title: 'Internal Server Error', status: 500 });
    }
    if (error instanceof StoreNotConfigured) {
      void reply.header('retry-after', '60');
      return sendProblem(request, reply, {
        title: 'Service Unavailable',
        status: 503,
        detail: error.message,
      });
    }
    if (error instanceof DatabaseNotConfigured) {
      return sendProblem(request, reply, {
        title: 'Service Unavailable',
        status: 503,
        detail: error.message,
      });
    }
    const status =
      typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) logger.error({ err: error }, 'request failed');
    return sendProblem(request, reply, {
      // Fastify's own 4xx (413, 415, …) keep their reason phrase: a 415 is not a "Bad Request".
      title:
        TITLES[status] ??
        STATUS_CODES[status] ??
        (status >= 500 ? 'Internal Server Error' : 'Bad Request'),
      status,
      // A client's mistake is explained; a server fault is not described to the client.
      ...(status < 500 && error.message ? { detail: error.message } : {}),
    });
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

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/**
 * The HTTP face of a database error: the client's mistakes are 4xx with a fixed
 * explanation (the server's message may quote values), a store that is down or
 * overloaded is 503 (retry), anything else is a 500 that describes nothing.
 */
function databaseProblem(error: DatabaseError): Problem {
  switch (error.code) {
    case 'UNAVAILABLE':
    case 'TIMEOUT':
    case 'CLOSED':
    case 'NOT_CONFIGURED':
    case 'SERIALIZATION_FAILURE':
      return {
        title: 'Service Unavailable',
        status: 503,
        detail: 'The database is not available right now; try again.',
      };
    case 'UNIQUE_VIOLATION':
      return {
        title: 'Conflict',
        status: 409,
        detail: 'A record with these values already exists.',
      };
    case 'CHECK_VIOLATION':
    case 'NOT_NULL_VIOLATION':
    case 'INVALID_INPUT':
    case 'FOREIGN_KEY_VIOLATION':
      return {
        title: 'Bad Request',
        status: 400,
        detail: 'The request has values the data model refuses.',
      };
    case 'TENANT_INVALID':
      return {
        title: 'Unauthorized',
        status: 401,
        detail: 'The credentials carry no usable tenant.',
      };
    default:
      return { title: 'Internal Server Error', status: 500 };
  }
}

/**
 * The HTTP face of a ClickHouse error. Our queries are fixed and their values
 * validated, so nothing here is the client's mistake: a store that is down,
 * slow or refusing our credentials is 503 (retry), anything else a 500.
 */
function clickHouseProblem(error: ClickHouseError): Problem {
  switch (error.code) {
    case 'UNAVAILABLE':
    case 'TIMEOUT':
    case 'CLOSED':
    case 'NOT_CONFIGURED':
    case 'AUTH_FAILED':
    case 'CANCELLED':
      return {
        title: 'Service Unavailable',
        status: 503,
        detail: 'Widget data is not available right now; try again.',
      };
    default:
      return { title: 'Internal Server Error', status: 500 };
  }
}

/**
 * The HTTP face of a Materialize error. A widget whose view is missing or has no
 * tenant column is a 409 (its config is wrong, not the request); a store that is
 * down, slow or refusing our credentials is 503 (retry); anything else a 500.
 */
function materializeProblem(error: MaterializeError): Problem {
  switch (error.code) {
    case 'UNAVAILABLE':
    case 'TIMEOUT':
    case 'CLOSED':
    case 'NOT_CONFIGURED':
    case 'AUTH_FAILED':
    case 'CONNECTION_LOST':
    case 'CANCELLED':
      return {
        title: 'Service Unavailable',
        status: 503,
        detail: 'Live data is not available right now; try again.',
      };
    case 'UNKNOWN_VIEW':
    case 'INVALID_ARGUMENT':
      return {
        title: 'Conflict',
        status: 409,
        detail: "The widget's view cannot be streamed: it does not exist or has no tenant column.",
      };
    default:
      return { title: 'Internal Server Error', status: 500 };
  }
}
