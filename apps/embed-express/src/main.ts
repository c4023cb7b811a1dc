import { createDatabase } from '@flowforge/db';
import { createServiceContext, openOptionalStores } from '@flowforge/server';
import type { WidgetsDB } from '@flowforge/widgets';
import { buildEmbedApp } from './app.js';

const { settings, logger, metrics } = createServiceContext();
// The shared database, read only; never an embedded one (another app migrates and seeds it).
const database =
  settings.database.url === null
    ? null
    : createDatabase<WidgetsDB>({
        ...settings.database,
        applicationName: settings.app.name,
        logger,
        metrics,
      });
if (database === null) logger.warn('DATABASE_URL is not set: the embed route answers 503');
const { clickhouse, redis } = await openOptionalStores(
  settings,
  { logger, metrics },
  { only: ['clickhouse', 'redis'] },
);
const embed = buildEmbedApp({
  settings,
  logger,
  metrics,
  database,
  clickhouse,
  redis,
  listen: settings.app,
});
// Signals from now on (a SIGTERM during start stops what started); exit 1 if start fails.
await embed.lifecycle.run();
