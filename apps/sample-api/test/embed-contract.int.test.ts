// The embed contract (testing/embed-contract), the same cases apps/embed-express
// runs, against this app's buildApp over the real stores.
import { loadSettings } from '@flowforge/config';
import { createDatabase } from '@flowforge/db';
import { createLogger, createMetrics } from '@flowforge/observability';
import { openOptionalStores } from '@flowforge/server';
import { describeEmbedContract } from '@flowforge/embed-contract';
import { buildApp } from '../src/app.js';
import type { AppDB } from '../src/db/schema.js';

describeEmbedContract('sample-api', async ({ env }) => {
  const settings = loadSettings(env);
  const logger = createLogger({ level: 'silent' });
  const metrics = createMetrics();
  const { url } = settings.database;
  const app = await buildApp({
    settings,
    logger,
    metrics,
    database: url === null ? null : createDatabase<AppDB>({ ...settings.database, url }),
    ...(await openOptionalStores(settings, { logger, metrics }, { only: ['clickhouse', 'redis'] })),
  });
  return {
    baseUrl: await app.server.listen({ host: '127.0.0.1', port: 0 }),
    close: () => app.close(),
  };
});
