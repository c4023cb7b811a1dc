// Loads the demo data (src/services/demo-seed.ts) into the configured stores and
// exits: `node apps/sample-api/dist/seed.js`. Against the embedded PGlite run it
// while the app is stopped, or start the app with `--seed-demo` (scripts/start does).
import { createLogger, createMetrics, flushLogger } from '@flowforge/observability';
import { settingsOrExit } from '@flowforge/server';
import { openDatabase } from './db/open.js';
import { seedDemo } from './services/demo-seed.js';

const settings = settingsOrExit();
const logger = createLogger({
  level: settings.app.logLevel,
  format: settings.app.logFormat,
  service: `${settings.app.name}-seed`,
});
const database = await openDatabase(settings, logger, createMetrics());
if (database === null) {
  logger.error('DATABASE_URL is not set (and this is not development): nothing to seed');
  await flushLogger(logger);
  process.exit(1);
}
try {
  await seedDemo(database, settings, logger);
} finally {
  await database.close();
  await flushLogger(logger);
}
