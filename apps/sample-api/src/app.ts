import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Settings } from '@flowforge/config';
import { createLogger, createMetrics, type Logger, type Metrics } from '@flowforge/observability';
import {
  createApiKeyVerifier,
  createApiKeyWatch,
  createAuth,
  createFailureThrottle,
  createStreamTickets,
  FAILURE_THROTTLE_PREFIX,
  STREAM_TICKET_PREFIX,
  type Auth,
} from '@flowforge/auth';
import { apiKey, bearer, fastifyAuth, requireRole } from '@flowforge/auth/fastify';
import type { Database } from '@flowforge/db';
import type { ClickHouse } from '@flowforge/clickhouse';
import type { Redis } from '@flowforge/redis';
import { createSharedSubscriptions, type Materialize } from '@flowforge/materialize';
import {
  createEventStreams,
  createLifecycle,
  createProblems,
  createReadiness,
  registerStore,
  type EventStreams,
  type Lifecycle,
  type ReadinessCheck,
  type StopOutcome,
} from '@flowforge/server';
import { fastifyListener, fastifyServer, fastifyServerOptions } from '@flowforge/server/fastify';
import {
  WIDGET_DATA_CACHE_PREFIX,
  createWidgetDataReader,
  type WidgetsDB,
} from '@flowforge/widgets';
import { apiKeyRoutes } from './routes/api-keys.js';
import { liveStreamRoutes, liveTicketRoutes, type LiveRoutesOptions } from './routes/live.js';
import { dashboardRoutes } from './routes/dashboards.js';
import { embedRoutes, widgetDataRoutes } from './routes/widget-data.js';
import { widgetStreamRoutes } from './routes/widget-stream.js';

export interface AppOptions {
  readonly settings: Settings;
  /** More dependencies for /health/ready; one named like a store replaces the store's own check. */
  readonly checks?: readonly ReadinessCheck[];
  /** The process logger; silent unless given (tests pass one that captures lines). */
  readonly logger?: Logger;
  /** The metrics registry; a fresh one unless given. */
  readonly metrics?: Metrics;
  /**
   * The stores; `null` or absent: not configured, and their routes answer 503
   * naming the variable. The app takes each over: readiness checks it, and
   * closing the app closes it. Materialize should be started before it is passed in.
   */
  readonly database?: Database<WidgetsDB> | null;
  readonly clickhouse?: ClickHouse | null;
  /** The widget data cache; a Redis outage slows data reads, it does not fail them. */
  readonly redis?: Redis | null;
  readonly materialize?: Materialize | null;
  /** How often an idle SSE stream sends a heartbeat comment. @default 15_000 */
  readonly streamHeartbeatMs?: number;
  /** How long a live view's shared SUBSCRIBE outlives its last viewer, in ms (tests shorten it). @default 5000 */
  readonly liveLingerMs?: number;
  /** How often an API key's live streams check that it was not revoked, in ms (tests shorten it). @default 30_000 */
  readonly apiKeyRecheckMs?: number;
  /** How long widget data is served from the Redis cache. @default 30_000 */
  readonly widgetCacheTtlMs?: number;
  /** Bearer authentication; built from `settings.auth` unless given (tests pass one with a fake clock). */
  readonly auth?: Auth;
  /** Where `lifecycle.start()` listens; absent: the caller listens (`server.listen()`), as tests do. */
  readonly listen?: { readonly host: string; readonly port: number };
  /** Registers more routes before the app is sealed. */
  readonly routes?: (server: FastifyInstance) => void;
}

/** A built app: its server and the lifecycle that stops it (server first, then the stores). */
export interface App {
  readonly server: FastifyInstance;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly lifecycle: Lifecycle;
  /** The live SSE streams being served. */
  readonly streams: EventStreams;
  /** Readiness answers 503 from now on, responses close their connections, and streams end. */
  beginShutdown(): void;
  /** Stops everything within SHUTDOWN_TIMEOUT_MS: in-flight requests finish, then the stores close. */
  close(): Promise<StopOutcome>;
}

/** Builds the sample API. Nothing listens until `server.listen()` (or a listener component). */
export async function buildApp(options: AppOptions): Promise<App> {
  const { settings } = options;
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const metrics = options.metrics ?? createMetrics();
  const lifecycle = createLifecycle({ logger, shutdownTimeoutMs: settings.app.shutdownTimeoutMs });
  const readiness = lifecycle.add(createReadiness({ logger }));
  for (const check of options.checks ?? []) readiness.add(check);
  // A check passed in under a store's name replaces the store's own.
  const database = registerStore(lifecycle, readiness, 'postgres', options.database ?? null, {
    variable: 'DATABASE_URL',
    required: true,
  });
  const clickhouse = registerStore(lifecycle, readiness, 'clickhouse', options.clickhouse ?? null, {
    variable: 'CLICKHOUSE_URL',
  });
  const redis = registerStore(lifecycle, readiness, 'redis', options.redis ?? null, {
    variable: 'REDIS_URL',
  });
  const materialize = registerStore(
    lifecycle,
    readiness,
    'materialize',
    options.materialize ?? null,
    {
      variable: 'MATERIALIZE_URL',
    },
  );
  // Viewers of one view and tenant share one SUBSCRIBE (each holds a pooled connection): the
  // pool bounds distinct subscriptions, not viewers. Added after Materialize, so stopped before it.
  const live =
    materialize === null
      ? null
      : createSharedSubscriptions(materialize, {
          maxSubscriptions: settings.materialize.poolSize,
          ...(options.liveLingerMs === undefined ? {} : { lingerMs: options.liveLingerMs }),
          logger,
        });
  if (live !== null) lifecycle.add({ name: 'live-subscriptions', stop: () => live.close() });
  const streams = lifecycle.add(
    createEventStreams({
      logger,
      maxStreams: settings.http.maxStreams,
      maxStreamsPerClient: settings.http.streamsPerUser,
      // 0: the kit's default, half of maxStreams, so that one tenant cannot take every slot.
      ...(settings.http.streamsPerTenant === 0
        ? {}
        : { maxStreamsPerTenant: settings.http.streamsPerTenant }),
      ...(options.streamHeartbeatMs === undefined
        ? {}
        : { heartbeatMs: options.streamHeartbeatMs }),
    }),
  );

  const server = Fastify(fastifyServerOptions({ logger, ...settings.http }));
  // Before any route: the plugin builds /openapi.json from the schemas of the routes registered after it.
  await server.register(fastifySwagger, openApi(settings));
  server.get('/openapi.json', { schema: { hide: true } }, () => server.swagger());
  await server.register(fastifyServer, {
    logger,
    metrics,
    problems: createProblems({
      // Live data known to be down takes Materialize a few seconds to get back: browsers
      // reconnecting every second would only add load.
      retryAfter: (error) => (error.source === '@flowforge/materialize' ? 5 : undefined),
    }),
    readiness,
    metricsToken: settings.observability.metricsToken,
    // The embed routes take an API key, not a bearer token: challenge for what they accept.
    schemeOf: (request) => (request.url.startsWith('/embed/') ? 'ApiKey' : 'Bearer'),
    // Pages of these origins may call the API from the browser (embeds, live widgets); none by default.
    corsOrigins: settings.http.corsOrigins,
    corsAllowedHeaders: [settings.auth.apiKeyHeader],
  });
  lifecycle.add(fastifyListener(server, options.listen));

  const widgetData = createWidgetDataReader({
    clickhouse,
    cache: redis?.ownedKeyspace(WIDGET_DATA_CACHE_PREFIX) ?? null,
    ...(options.widgetCacheTtlMs === undefined ? {} : { cacheTtlMs: options.widgetCacheTtlMs }),
    logger,
  });
  const auth =
    options.auth ?? createAuth({ ...settings.auth, appEnv: settings.app.env }, { logger, metrics });
  const apiKeys = createApiKeyVerifier(database, { logger, metrics });
  // Wrong API keys per client, counted in Redis keys the app owns so every instance shares them.
  const apiKeyFailures = createFailureThrottle({
    ...settings.auth.apiKeyFailures,
    store: redis?.ownedKeyspace(FAILURE_THROTTLE_PREFIX) ?? null,
    logger,
    metrics,
  });
  // Degraded, never not ready, while the identity provider is down: cached keys still verify,
  // API keys need no IdP, and another instance would do no better.
  if (!readiness.has('keycloak'))
    readiness.add({
      name: 'keycloak',
      required: false,
      check: async () => {
        const idp = await auth.health();
        if (idp.status !== 'ok') throw new Error(idp.error ?? `identity provider ${idp.status}`);
      },
    });

  // Browsers open live streams with a single-use ticket (an EventSource sends no headers), kept
  // in Redis when there is one, so that any instance redeems what another issued.
  const liveRoutes: LiveRoutesOptions = {
    database,
    materialize,
    live,
    streams,
    tickets: createStreamTickets({
      store: redis?.ownedKeyspace(STREAM_TICKET_PREFIX) ?? null,
      logger,
    }),
    apiKeyWatch: lifecycle.closes(
      'api-key-watch',
      createApiKeyWatch({
        database,
        logger,
        ...(options.apiKeyRecheckMs === undefined ? {} : { intervalMs: options.apiKeyRecheckMs }),
      }),
    ),
  };

  await server.register(fastifyAuth);
  server.register((api, _options, done) => {
    // onRequest: before body parsing and validation, so an anonymous caller gets
    // 401, never a 400 that describes the schema.
    api.addHook('onRequest', bearer(auth));
    const viewer = requireRole('viewer', 'editor', 'admin');
    api.get('/api/v1/me', { onRequest: viewer }, (request) => {
      const principal = request.principal!;
      return {
        user_id: principal.userId,
        tenant_id: principal.tenantId,
        roles: principal.roles,
        auth_method: principal.method,
      };
    });
    dashboardRoutes(api, { database, canRead: viewer, canWrite: requireRole('editor', 'admin') });
    widgetDataRoutes(api, { database, widgetData, canRead: viewer });
    widgetStreamRoutes(api, { database, materialize, live, canRead: viewer, streams });
    apiKeyRoutes(api, { database, canManage: requireRole('admin') });
    liveTicketRoutes(api, '/api/v1', { ...liveRoutes, canRead: viewer });
    done();
  });
  server.register((embed, _options, done) => {
    embed.addHook(
      'onRequest',
      apiKey(apiKeys, settings.auth.apiKeyHeader, { throttle: apiKeyFailures }),
    );
    embedRoutes(embed, { database, widgetData });
    liveTicketRoutes(embed, '/embed/v1', liveRoutes);
    done();
  });
  // The ticket in the query is the credential: no header authentication here.
  server.register((stream, _options, done) => {
    liveStreamRoutes(stream, liveRoutes);
    done();
  });
  options.routes?.(server);
  await server.ready();
  return {
    server,
    logger,
    metrics,
    lifecycle,
    streams,
    beginShutdown: () => lifecycle.drain(),
    close: () => lifecycle.stop(),
  };
}

/** The OpenAPI document's frame; which credentials a route takes follows from its prefix. */
function openApi(settings: Settings): Parameters<typeof fastifySwagger>[1] {
  return {
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
          streamTicket: { type: 'apiKey', in: 'query', name: 'ticket' },
        },
      },
    },
    transform: ({ schema, url }) => ({
      schema: {
        ...schema,
        ...(url.startsWith('/api/')
          ? { security: [{ bearer: [] }] }
          : url.startsWith('/embed/')
            ? { security: [{ apiKey: [] }] }
            : url.startsWith('/live/')
              ? { security: [{ streamTicket: [] }] }
              : {}),
      },
      url,
    }),
  };
}
