// Loads the demo data (src/services/demo-seed.ts) into the configured stores and
// exits: `node apps/sample-api/dist/seed.js`. Against the embedded PGlite run it
// while the app is stopped, or start the app with `--seed-demo` (scripts/start does).
import { ConfigError, settings as environmentSettings, type Settings } from '@flowforge/config';
import { createLogger, createMetrics, flushLogger } from '@flowforge/observability';
import { openDatabase } from './db/open.js';
import { seedDemo } from './services/demo-seed.js';

function loadOrExit(): Settings {
  try {
    // The first field read parses the environment, and throws while it is invalid.
    void environmentSettings.app;
    return environmentSettings;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
}

const settings = loadOrExit();
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
