/* eslint-disable @typescript-eslint/no-unsafe-member-access --
   response bodies are untyped JSON; the assertions are what check their shape */
// Widget data end to end: PostgreSQL (widgets), ClickHouse 18.16 over HTTP as the
// readonly=1 user (the data), Redis (the cache) — all real servers. The embed route's
// cases are the embed contract's (test/embed-contract.int.test.ts).
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { Redis as IORedis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createClickHouse } from '@flowforge/clickhouse';
import { createDatabase } from '@flowforge/db';
import { createRedis } from '@flowforge/redis';
import { buildApp, type App } from '../src/app.js';
import type { AppDB } from '../src/db/schema.js';
import { createMetricStore, dayBefore, READER, CLICKHOUSE_URL } from './support/clickhouse.js';
import { requestJson } from './support/http.js';
import { createMigratedDatabase } from './support/postgres.js';

const TENANT_A = '7e2a4c10-5b3d-4f6e-8a90-00000000000a';
const TENANT_B = '7e2a4c10-5b3d-4f6e-8a90-00000000000b';
const USER = '7e2a4c10-5b3d-4f6e-8a90-000000000001';
const REDIS_URL = 'redis://127.0.0.1:6379';

let testDb: Awaited<ReturnType<typeof createMigratedDatabase>>;
let store: Awaited<ReturnType<typeof createMetricStore>>;
let deadPort: number;
const running: App[] = [];

interface Stores {
  readonly clickhouse?: 'up' | 'down' | 'none';
  readonly redis?: 'up' | 'down' | 'none';
}

/** The app as `tenant`'s dev principal (an admin) sees it, over a real socket. */
async function appFor(tenant: string, stores: Stores = {}) {
  const settings = loadSettings({
    APP_ENV: 'development',
    AUTH_DEV_TENANT_ID: tenant,
    AUTH_DEV_USER_ID: USER,
  });
  const clickhouse = stores.clickhouse ?? 'up';
  const redis = stores.redis ?? 'up';
  const app = await buildApp({
    settings,
    database: createDatabase<AppDB>({ url: testDb.appUrl, poolSize: 2 }),
    clickhouse:
      clickhouse === 'none'
        ? null
        : createClickHouse({
            url: clickhouse === 'up' ? CLICKHOUSE_URL : `http://127.0.0.1:${deadPort}`,
            ...READER,
            database: store.database,
            requestTimeoutMs: 2_000,
          }),
    redis:
      redis === 'none'
        ? null
        : createRedis({
            ...loadSettings({
              APP_ENV: 'test',
              REDIS_URL: redis === 'up' ? REDIS_URL : `redis://127.0.0.1:${deadPort}`,
            }).redis,
            commandTimeoutMs: 500,
          }),
  });
  running.push(app);
  const base = await app.server.listen({ host: '127.0.0.1', port: 0 });
  const call = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
    requestJson(base, method, path, body, headers);
  /** A dashboard with one widget; resolves to the widget id. */
  const widget = async (kind: string, config?: Record<string, unknown>): Promise<string> => {
    const dashboard = await call('POST', '/api/v1/dashboards', { name: 'Sales' });
    expect(dashboard.status).toBe(201);
    const created = await call('POST', `/api/v1/dashboards/${dashboard.body.id}/widgets`, {
      name: 'w',
      kind,
      ...(config === undefined ? {} : { config }),
    });
    expect(created.status).toBe(201);
    return created.body.id as string;
  };
  return { app, call, widget };
}

beforeAll(async () => {
  // A port nobody listens on: a store there is "down".
  const probe: Server = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  deadPort = (probe.address() as { port: number }).port;
  probe.close();
  [testDb, store] = await Promise.all([
    createMigratedDatabase('widget_data'),
    createMetricStore('widget_data'),
  ]);
  await store.insert([
    { tenant_id: TENANT_A, metric: 'orders', daysAgo: 0, value: 2 },
    { tenant_id: TENANT_A, metric: 'orders', daysAgo: 0, value: 3 },
    { tenant_id: TENANT_A, metric: 'orders', daysAgo: 2, value: 7 },
    { tenant_id: TENANT_A, metric: 'orders', daysAgo: 30, value: 1_000 }, // outside 7 days
    { tenant_id: TENANT_A, metric: 'visits', daysAgo: 1, value: 50 }, // another metric
    { tenant_id: TENANT_B, metric: 'orders', daysAgo: 0, value: 99 }, // another tenant
    { tenant_id: TENANT_B, metric: 'orders', daysAgo: 1, value: 98 },
  ]);
});

afterAll(async () => {
  await Promise.allSettled(running.map((app) => app.close()));
  await Promise.allSettled([testDb?.drop(), store?.drop()]);
});

describe('GET /api/v1/widgets/:id/data', () => {
  it("returns the metric per day for the principal's tenant only, then from the cache", async () => {
    const a = await appFor(TENANT_A);
    const id = await a.widget('metric', { metric: 'orders', days: 7 });
    const first = await a.call('GET', `/api/v1/widgets/${id}/data`);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      widget_id: id,
      metric: 'orders',
      days: 7,
      points: [
        { day: dayBefore(store.today, 2), value: 7 },
        { day: store.today, value: 5 },
      ],
      cached: false,
    });
    const second = await a.call('GET', `/api/v1/widgets/${id}/data`);
    expect(second.body).toEqual({ ...first.body, cached: true });
    // The cache entry is keyed by the tenant, under the app's own prefix.
    const raw = new IORedis(REDIS_URL);
    try {
      const keys = await raw.keys(`flowforge:cache:widget-data:${TENANT_A}:${id}:*`);
      expect(keys).toHaveLength(1);
    } finally {
      raw.disconnect();
    }
  });

  it("another tenant's widget is not found, and its rows never show", async () => {
    const a = await appFor(TENANT_A);
    const b = await appFor(TENANT_B);
    const idOfB = await b.widget('metric', { metric: 'orders', days: 1 });
    expect((await a.call('GET', `/api/v1/widgets/${idOfB}/data`)).status).toBe(404);
    const own = await b.call('GET', `/api/v1/widgets/${idOfB}/data`);
    expect(own.body.points).toEqual([{ day: store.today, value: 99 }]);
  });

  it('answers 409 for a live widget or a metric widget without a metric', async () => {
    const a = await appFor(TENANT_A);
    for (const id of [await a.widget('live'), await a.widget('metric')]) {
      const response = await a.call('GET', `/api/v1/widgets/${id}/data`);
      expect(response.status).toBe(409);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
    }
  });

  it('refuses a metric config that is not a plain metric name (400), so no SQL can ride in it', async () => {
    const a = await appFor(TENANT_A);
    const dashboard = await a.call('POST', '/api/v1/dashboards', { name: 'x' });
    for (const config of [
      { metric: "orders' OR 1=1 --" },
      { metric: 'orders', days: 0 },
      { metric: 'orders', days: 'all' },
    ]) {
      const response = await a.call('POST', `/api/v1/dashboards/${dashboard.body.id}/widgets`, {
        name: 'w',
        kind: 'metric',
        config,
      });
      expect(response.status).toBe(400);
    }
  });

  it('answers 503 naming CLICKHOUSE_URL when ClickHouse is not configured; readiness says so', async () => {
    const a = await appFor(TENANT_A, { clickhouse: 'none', redis: 'none' });
    const id = await a.widget('metric', { metric: 'orders' });
    const response = await a.call('GET', `/api/v1/widgets/${id}/data`);
    expect(response.status).toBe(503);
    expect(response.body.detail).toContain('CLICKHOUSE_URL');
    const ready = await a.call('GET', '/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toMatchObject({
      clickhouse: { status: 'not_configured', detail: 'set CLICKHOUSE_URL' },
      redis: { status: 'not_configured', detail: 'set REDIS_URL' },
    });
  });

  it('answers 503 with Retry-After when ClickHouse is down; readiness is degraded, not unready', async () => {
    const a = await appFor(TENANT_A, { clickhouse: 'down' });
    const id = await a.widget('metric', { metric: 'orders' });
    const response = await a.call('GET', `/api/v1/widgets/${id}/data`);
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('1');
    expect(JSON.stringify(response.body)).not.toContain(String(deadPort));
    const ready = await a.call('GET', '/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      status: 'degraded',
      checks: {
        clickhouse: { status: 'down' },
        redis: { status: 'up' },
        postgres: { status: 'up' },
      },
    });
  });

  it('still serves data from ClickHouse when the Redis cache is down', async () => {
    const a = await appFor(TENANT_A, { redis: 'down' });
    const id = await a.widget('metric', { metric: 'visits' });
    for (let i = 0; i < 2; i += 1) {
      const response = await a.call('GET', `/api/v1/widgets/${id}/data`);
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({
        points: [{ day: dayBefore(store.today, 1), value: 50 }],
        cached: false,
      });
    }
    const ready = await a.call('GET', '/health/ready');
    expect(ready.body).toMatchObject({ status: 'degraded', checks: { redis: { status: 'down' } } });
  });
});
