import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createMetrics } from '@flowforge/observability';
import { createReadiness } from '../src/readiness.js';
import { openOptionalStores, type OptionalStores } from '../src/stores.js';
import { capturedLogger } from './support/log-capture.js';

let opened: OptionalStores | undefined;
afterEach(async () => {
  for (const store of [opened?.clickhouse, opened?.redis, opened?.materialize])
    await store?.close();
  opened = undefined;
});

/** A loopback port nothing listens on. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('openOptionalStores', () => {
  it('leaves every store whose URL is unset out (null), saying so once each', async () => {
    const capture = capturedLogger();
    opened = await openOptionalStores(loadSettings({ APP_ENV: 'test' }), {
      logger: capture.logger,
      metrics: createMetrics(),
    });
    expect(opened).toEqual({ clickhouse: null, redis: null, materialize: null });
    const variables = capture.lines().map((line) => line.variable);
    expect(variables).toEqual(['CLICKHOUSE_URL', 'REDIS_URL', 'MATERIALIZE_URL']);
  });

  it('opens only the stores named in `only`, saying nothing of the others', async () => {
    const capture = capturedLogger();
    opened = await openOptionalStores(
      loadSettings({ APP_ENV: 'test', REDIS_URL: 'redis://127.0.0.1:6379' }),
      { logger: capture.logger, metrics: createMetrics() },
      { only: ['redis', 'clickhouse'] },
    );
    expect(opened.redis).not.toBeNull();
    expect(opened.clickhouse).toBeNull();
    expect(opened.materialize).toBeNull();
    expect(capture.lines().map((line) => line.variable)).toEqual(['CLICKHOUSE_URL']);
  });

  it('opens real handles for the URLs set; an unreachable Materialize does not stop it', async () => {
    const port = await deadPort();
    opened = await openOptionalStores(
      loadSettings({
        APP_ENV: 'test',
        REDIS_URL: 'redis://127.0.0.1:6379',
        CLICKHOUSE_URL: 'http://127.0.0.1:8123',
        MATERIALIZE_URL: `postgres://materialize@127.0.0.1:${port}/materialize`,
      }),
      { logger: capturedLogger().logger, metrics: createMetrics() },
    );
    // Real servers answer (scripts/services starts Redis and ClickHouse); Materialize is down.
    const readiness = createReadiness({ timeoutMs: 5_000 });
    readiness.addStore('redis', opened.redis, { variable: 'REDIS_URL' });
    readiness.addStore('clickhouse', opened.clickhouse, { variable: 'CLICKHOUSE_URL' });
    readiness.addStore('materialize', opened.materialize, { variable: 'MATERIALIZE_URL' });
    const report = await readiness.report();
    expect(report.checks.redis?.status).toBe('up');
    expect(report.checks.clickhouse?.status).toBe('up');
    expect(report.checks.materialize?.status).toBe('down');
    expect(report.status).toBe('degraded');
    expect(opened.materialize?.status).toBe('unavailable');
  });
});
