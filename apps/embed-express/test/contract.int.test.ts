// The embed contract (testing/embed-contract), the same cases the sample app
// runs, against this app built as main.ts builds it, over the real stores.
import { loadSettings } from '@flowforge/config';
import { createDatabase } from '@flowforge/db';
import { createLogger, createMetrics } from '@flowforge/observability';
import { openOptionalStores } from '@flowforge/server';
import type { WidgetsDB } from '@flowforge/widgets';
import { describeEmbedContract } from '@flowforge/embed-contract';
import { buildEmbedApp } from '../src/app.js';

describeEmbedContract('embed-express', async ({ env }) => {
  const settings = loadSettings(env);
  const logger = createLogger({ level: 'silent' });
  const metrics = createMetrics();
  const { url } = settings.database;
  const embed = buildEmbedApp({
    settings,
    logger,
    metrics,
    database: url === null ? null : createDatabase<WidgetsDB>({ ...settings.database, url }),
    ...(await openOptionalStores(settings, { logger, metrics }, { only: ['clickhouse', 'redis'] })),
    listen: { host: '127.0.0.1', port: 0 },
  });
  await embed.lifecycle.start();
  return {
    baseUrl: `http://127.0.0.1:${embed.address()!.port}`,
    close: () => embed.lifecycle.stop(),
  };
});
