import { ConfigError, settings as environmentSettings, type Settings } from '@flowforge/config';
import { createLogger, createMetrics, flushLogger } from '@flowforge/observability';
import { buildApp } from './app.js';
import { openDatabase } from './db/open.js';
import { openClickHouse, openMaterialize, openRedis } from './stores.js';
import { closeGracefully } from './lifecycle.js';
import { seedDemo } from './services/demo-seed.js';

const EXIT_CONFIG = 78; // EX_CONFIG from sysexits.h

function loadOrExit(): Settings {
  try {
    // The first field read parses the environment, and throws while it is invalid.
    void environmentSettings.app;
    return environmentSettings;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
}

const settings = loadOrExit();
const logger = createLogger({
  level: settings.app.logLevel,
  format: settings.app.logFormat,
  service: settings.app.name,
});
const metrics = createMetrics();
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
// The optional stores: each degrades (503 on its routes, `degraded` readiness)
// rather than stopping the app; then auth and routes (buildApp), then listen.
const redis = openRedis(settings, logger, metrics);
const clickhouse = openClickHouse(settings, logger, metrics);
const materialize = await openMaterialize(settings, logger, metrics);
const app = await buildApp({ settings, logger, metrics, database, redis, clickhouse, materialize });

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  // A second signal while draining is ignored: with `once`, it would kill the
  // process outright and lose the lines still queued.
  if (stopping) return;
  stopping = true;
  // The backstop if closing itself hangs (an onClose hook that never returns).
  setTimeout(() => process.exit(1), settings.app.shutdownTimeoutMs + 5_000).unref();
  let code = 1;
  try {
    logger.info({ signal }, 'shutting down');
    const outcome = await closeGracefully(app, settings.app.shutdownTimeoutMs);
    logger.info({ outcome }, 'stopped');
    code = outcome === 'drained' ? 0 : 1;
  } catch (error) {
    logger.error({ err: error }, 'shutdown failed');
  }
  await flushLogger(logger).catch(() => undefined);
  process.exit(code);
}
process.on('SIGTERM', (signal) => void shutdown(signal));
process.on('SIGINT', (signal) => void shutdown(signal));

const address = await app.server.listen({ host: settings.app.host, port: settings.app.port });
logger.info({ address, env: settings.app.env }, 'listening');
