import { createServiceContext, openOptionalStores } from '@flowforge/server';
import { buildApp } from './app.js';
import { openDatabase } from './db/open.js';
import { seedDemo } from './services/demo-seed.js';

const { settings, logger, metrics } = createServiceContext();
const database = await openDatabase(settings, logger, metrics);
// `--seed-demo` (scripts/start): demo data in the database the app itself opened
// (the embedded PGlite cannot be opened by a second process); development only.
if (
  database !== null &&
  process.argv.includes('--seed-demo') &&
  settings.app.env === 'development'
) {
  await seedDemo(database, settings, logger);
}
// The optional stores degrade (503 on their routes, `degraded` readiness) rather than stop the app.
const stores = await openOptionalStores(settings, { logger, metrics });
const { host, port } = settings.app;
const app = await buildApp({
  settings,
  logger,
  metrics,
  database,
  ...stores,
  listen: { host, port },
});
// Signals from now on (a SIGTERM during start stops what started); exit 1 if start fails.
await app.lifecycle.run();
logger.info({ env: settings.app.env }, 'started');
