import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express, type Request, type Response } from 'express';
import {
  createApiKeyVerifier,
  createFailureThrottle,
  FAILURE_THROTTLE_PREFIX,
} from '@flowforge/auth';
import { apiKey, principalOf } from '@flowforge/auth/node';
import type { ClickHouse } from '@flowforge/clickhouse';
import type { Settings } from '@flowforge/config';
import type { Database } from '@flowforge/db';
import {
  createHttpObservability,
  createLogger,
  createMetrics,
  nodeHttpObservability,
  type Logger,
  type Metrics,
} from '@flowforge/observability';
import type { Redis } from '@flowforge/redis';
import {
  createLifecycle,
  createProblems,
  createReadiness,
  httpServerOptions,
  registerStore,
  storeNotConfigured,
  type Lifecycle,
  type ListenOptions,
  type Readiness,
} from '@flowforge/server';
import {
  healthHandlers,
  metricsHandler,
  nodeListener,
  notFoundHandler,
  problemHandler,
  securityHeaders,
} from '@flowforge/server/node';
import {
  WIDGET_DATA_CACHE_PREFIX,
  createWidgetDataReader,
  readWidgetData,
  type WidgetsDB,
} from '@flowforge/widgets';

/** What {@link buildEmbedApp} composes. */
export interface EmbedAppOptions {
  readonly settings: Settings;
  /** The process logger. @default a silent one */
  readonly logger?: Logger;
  /** The metrics registry. @default a fresh one */
  readonly metrics?: Metrics;
  /**
   * The shared database (widgets and API keys), only read here; `null` when
   * DATABASE_URL is unset: the embed route answers 503 naming it. The stores
   * are the app's from here on: readiness checks them, stopping closes them.
   */
  readonly database: Database<WidgetsDB> | null;
  /** Widget data; `null` when CLICKHOUSE_URL is unset (503 naming it). */
  readonly clickhouse: ClickHouse | null;
  /** The widget data cache; `null` when REDIS_URL is unset (every read goes to ClickHouse). */
  readonly redis: Redis | null;
  /** Where `lifecycle.start()` listens (`settings.app` in main). */
  readonly listen: ListenOptions;
}

/** The built app: nothing listens until `lifecycle.start()`. */
export interface EmbedApp {
  readonly app: Express;
  readonly server: Server;
  /** Starts the listener; stops it first (in-flight requests finish), then the stores. */
  readonly lifecycle: Lifecycle;
  readonly readiness: Readiness;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Where it listens, once started. */
  address(): AddressInfo | null;
}

/**
 * The Embed surface on Express 5: `GET /embed/v1/widgets/:id/data` for API
 * keys, with readiness, metrics and problem+json errors, composed only from the
 * `@flowforge/*` packages' public entry points.
 */
export function buildEmbedApp(options: EmbedAppOptions): EmbedApp {
  const { settings } = options;
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const metrics = options.metrics ?? createMetrics();
  const lifecycle = createLifecycle({ logger, shutdownTimeoutMs: settings.app.shutdownTimeoutMs });
  const readiness = lifecycle.add(createReadiness({ logger }));
  // Without the database no key can be verified: not ready (and the embed route answers 503).
  const database = registerStore(lifecycle, readiness, 'postgres', options.database, {
    variable: 'DATABASE_URL',
    required: true,
  });
  const clickhouse = registerStore(lifecycle, readiness, 'clickhouse', options.clickhouse, {
    variable: 'CLICKHOUSE_URL',
  });
  const redis = registerStore(lifecycle, readiness, 'redis', options.redis, {
    variable: 'REDIS_URL',
  });

  const app = express();
  app.disable('x-powered-by');
  // One URL per resource: `…/data/` is no alias of `…/data`.
  app.enable('strict routing');
  // Widget data changes under the same URL within seconds: no ETag, no 304 to a stale copy.
  app.set('etag', false);
  // Behind a load balancer, the client the API-key throttle counts is X-Forwarded-For's (HTTP_TRUST_PROXY).
  app.set(
    'trust proxy',
    settings.http.trustProxy.length > 0 ? [...settings.http.trustProxy] : false,
  );
  app.use(nodeHttpObservability(createHttpObservability({ logger, metrics })));
  app.use(securityHeaders());
  const health = healthHandlers(readiness, { token: settings.observability.metricsToken });
  app.get('/health/live', health.live);
  app.get('/health/ready', health.ready);
  app.get('/metrics', metricsHandler(metrics, { token: settings.observability.metricsToken }));
  const widgetData = createWidgetDataReader({
    clickhouse,
    cache: redis?.ownedKeyspace(WIDGET_DATA_CACHE_PREFIX) ?? null,
    logger,
  });
  app.get(
    '/embed/v1/widgets/:id/data',
    // Without a database every key is refused with NOT_CONFIGURED (503 naming DATABASE_URL).
    apiKey(createApiKeyVerifier(database, { logger, metrics }), settings.auth.apiKeyHeader, {
      throttle: createFailureThrottle({
        ...settings.auth.apiKeyFailures,
        // The same keys as the sample app's: a guesser is throttled across both apps.
        store: redis?.ownedKeyspace(FAILURE_THROTTLE_PREFIX) ?? null,
        logger,
        metrics,
      }),
    }),
    async (request: Request<{ id: string }>, response: Response) => {
      if (database === null) throw storeNotConfigured('The database', 'DATABASE_URL');
      // A UUID id (400), in the key's scope (403), in the key's tenant (404), a metric widget (409).
      response.json(
        await readWidgetData(database, widgetData, principalOf(request)!, request.params.id),
      );
    },
  );
  app.use(notFoundHandler());
  // Every credential this app takes is an API key: its 401s and 403s challenge for one.
  app.use(problemHandler({ problems: createProblems(), logger, schemeOf: () => 'ApiKey' }));

  // A slow client is cut off (Node's defaults wait 60 s for headers, 300 s for a body).
  const server = createServer(httpServerOptions(settings.http), app);
  const listener = lifecycle.add(nodeListener(server, options.listen, { logger }));
  return { app, server, lifecycle, readiness, logger, metrics, address: () => listener.address() };
}
