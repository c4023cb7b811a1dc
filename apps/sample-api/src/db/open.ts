import type { Settings } from '@flowforge/config';
import { createDatabase, migrateToLatest, type Database } from '@flowforge/db';
import type { Logger, Metrics } from '@flowforge/observability';
import { migrations, packages } from './migrations.js';
import type { AppDB } from './schema.js';

/**
 * The app's database: PostgreSQL at DATABASE_URL, else (development only) the
 * embedded PGlite under DATABASE_EMBEDDED_DIR, migrated on start because no
 * deploy step runs for it. `null` when neither applies: the data routes answer 503.
 */
export async function openDatabase(
  settings: Settings,
  logger: Logger,
  metrics: Metrics,
): Promise<Database<AppDB> | null> {
  const { url, embeddedDir } = settings.database;
  if (url === null && settings.app.env !== 'development') {
    logger.warn('DATABASE_URL is not set: the data routes answer 503');
    return null;
  }
  const database = createDatabase<AppDB>({
    ...settings.database,
    // APP_NAME names the service's connections in pg_stat_activity.
    applicationName: settings.app.name,
    embedded: url === null,
    logger,
    metrics,
  });
  if (database.kind === 'pglite') {
    const started = performance.now();
    const run = await migrateToLatest(database.db as never, { packages, migrations });
    logger.info(
      { dir: embeddedDir, applied: run.applied, ms: Math.round(performance.now() - started) },
      'embedded PGlite database ready (development only)',
    );
  }
  return database;
}
