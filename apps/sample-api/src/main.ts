import { ConfigError, getSettings, type Settings } from '@flowforge/config';
import { buildApp } from './app.js';
import { closeGracefully } from './lifecycle.js';

const EXIT_CONFIG = 78; // EX_CONFIG from sysexits.h

function loadOrExit(): Settings {
  try {
    return getSettings();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
}

const settings = loadOrExit();
const app = await buildApp({ settings, logger: true });

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  app.server.log.info({ signal }, 'shutting down');
  const outcome = await closeGracefully(app, settings.app.shutdownTimeoutMs);
  app.server.log.info({ outcome }, 'stopped');
  process.exit(outcome === 'drained' ? 0 : 1);
}
process.once('SIGTERM', (signal) => void shutdown(signal));
process.once('SIGINT', (signal) => void shutdown(signal));

await app.server.listen({ host: settings.app.host, port: settings.app.port });
