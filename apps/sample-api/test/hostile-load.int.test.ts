/* eslint-disable @typescript-eslint/no-unsafe-member-access --
   response bodies are untyped JSON; the assertions are what check their shape */
// Issue 16's findings that live in the server kit, checked on the whole sample
// app over real sockets: a slow client is cut off, responses carry nosniff and
// no-store and no CORS header, public readiness shows no driver message, and a
// refusal is logged at warn with its reason rather than at error. (Bodies,
// pagination and caps: limits.int.test.ts; a hanging PostgreSQL:
// postgres-hang.int.test.ts; tokens and API-key throttling: auth's tests.)
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createDatabase } from '@flowforge/db';
import { buildApp, type App } from '../src/app.js';
import type { AppDB } from '../src/db/schema.js';
import { requestJson } from './support/http.js';
import { createMigratedDatabase } from './support/postgres.js';
import { rawExchange } from './support/raw-http.js';
import { captureLogs } from './support/log-capture.js';

const METRICS_TOKEN = randomBytes(16).toString('hex');

let testDb: Awaited<ReturnType<typeof createMigratedDatabase>>;
/** Production, with its database on a port nobody listens on. */
let production: { app: App; base: string };
/** Development (the dev principal) on the real database. */
let development: { app: App; base: string; port: number; lines: () => Record<string, unknown>[] };

beforeAll(async () => {
  testDb = await createMigratedDatabase('app_hostile');
  const deadUrl = 'postgres://flowforge:secret-LEAKCHECK@127.0.0.1:1/flowforge';
  const prodApp = await buildApp({
    settings: loadSettings({
      APP_ENV: 'production',
      SECRET_KEY: randomBytes(32).toString('hex'),
      METRICS_TOKEN,
      DATABASE_URL: deadUrl,
      KEYCLOAK_URL: 'http://127.0.0.1:1',
    }),
    database: createDatabase<AppDB>({ url: deadUrl, poolSize: 1, connectTimeoutMs: 500 }),
  });
  production = {
    app: prodApp,
    base: await prodApp.server.listen({ host: '127.0.0.1', port: 0 }),
  };

  const logs = captureLogs();
  const devApp = await buildApp({
    settings: loadSettings({
      APP_ENV: 'development',
      DATABASE_URL: testDb.appUrl,
      HTTP_REQUEST_TIMEOUT_MS: '2000',
      HTTP_HEADERS_TIMEOUT_MS: '1000',
      HTTP_TRUST_PROXY: '127.0.0.1',
      AUTH_API_KEY_MAX_FAILURES: '3',
    }),
    logger: logs.logger,
    database: createDatabase<AppDB>({ url: testDb.appUrl, poolSize: 2 }),
  });
  const devBase = await devApp.server.listen({ host: '127.0.0.1', port: 0 });
  development = {
    app: devApp,
    base: devBase,
    port: Number(new URL(devBase).port),
    lines: logs.lines,
  };
});

afterAll(async () => {
  await production?.app.close();
  await development?.app.close();
  await testDb?.drop();
});

describe('sample-api under hostile load', () => {
  it('shows anyone each dependency’s status on /health/ready, and the driver’s message only with the scrape token', async () => {
    const open = await fetch(`${production.base}/health/ready`);
    expect(open.status).toBe(503);
    const text = await open.text();
    expect(JSON.parse(text)).toMatchObject({
      status: 'not_ready',
      checks: { postgres: { status: 'down', required: true } },
    });
    for (const leak of ['127.0.0.1', 'ECONNREFUSED', 'LEAKCHECK', 'error', 'latency_ms']) {
      expect(text).not.toContain(leak);
    }
    const scraped = await fetch(`${production.base}/health/ready`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    const details = (await scraped.json()) as { checks: { postgres: { error?: string } } };
    expect(details.checks.postgres.error).toEqual(expect.any(String));
    expect(JSON.stringify(details)).not.toContain('LEAKCHECK');
  });

  it('serves /metrics only with the token in production', async () => {
    expect((await fetch(`${production.base}/metrics`)).status).toBe(401);
    const scraped = await fetch(`${production.base}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(scraped.status).toBe(200);
  });

  it('answers API, embed and health routes with nosniff and no-store, and no CORS header for a foreign origin', async () => {
    const origin = { origin: 'https://attacker.example' };
    for (const path of ['/health/live', '/api/v1/me', '/embed/v1/widgets/x/data', '/nowhere']) {
      const response = await fetch(`${production.base}${path}`, { headers: origin });
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
    }
    const preflight = await fetch(`${production.base}/api/v1/me`, {
      method: 'OPTIONS',
      headers: { ...origin, 'access-control-request-method': 'GET' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('cuts off an authenticated client that sends its body one byte at a time: 408 within HTTP_REQUEST_TIMEOUT_MS', async () => {
    const started = performance.now();
    const answer = await rawExchange(
      development.port,
      Buffer.from(
        'POST /api/v1/dashboards HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer dev-token\r\n' +
          'Content-Type: application/json\r\nContent-Length: 64\r\n\r\n{"na',
      ),
      { timeoutMs: 10_000 },
    );
    expect(answer.status).toBe(408);
    // 2 s, plus at most one check period (1 s) and scheduling; main held such a socket past 100 s.
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('throttles wrong API keys per client (429 with Retry-After, no database work), the client taken from X-Forwarded-For of a trusted proxy', async () => {
    const path = '/embed/v1/widgets/7d4c1a50-0000-4000-8000-000000000001/data';
    const attempt = (client: string) =>
      fetch(`${development.base}${path}`, {
        headers: {
          // Well-formed, so each attempt that gets through is a lookup in PostgreSQL.
          'x-api-key': `ffk_${'7'.repeat(32)}_${'A'.repeat(43)}`,
          'x-forwarded-for': client,
        },
      });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await attempt('203.0.113.7')).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    const refused = await attempt('203.0.113.7');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    // Another client behind the same proxy is not blocked by the first one's guesses.
    expect((await attempt('203.0.113.8')).status).toBe(401);
    // Four lookups (three of .7's, one of .8's); the two refusals cost none.
    const text = await development.app.metrics.render();
    expect(text).toContain('flowforge_auth_failures_total{reason="api_key_invalid"} 4');
    expect(text).toContain('flowforge_auth_failures_total{reason="throttled"} 2');
  });

  it('logs a 503 refusal at warn with its code as the reason, not at error', async () => {
    const dashboard = await requestJson(development.base, 'POST', '/api/v1/dashboards', {
      name: 'Refusals',
    });
    const widget = await requestJson(
      development.base,
      'POST',
      `/api/v1/dashboards/${dashboard.body.id}/widgets`,
      { name: 'Revenue', kind: 'metric', config: { metric: 'revenue' } },
    );
    expect(widget.status).toBe(201);
    // ClickHouse is not configured: 503 NOT_CONFIGURED, a refusal rather than a fault of ours.
    const data = await requestJson(
      development.base,
      'GET',
      `/api/v1/widgets/${widget.body.id}/data`,
    );
    expect(data.status).toBe(503);
    const access = development
      .lines()
      .filter((line) => line.route === '/api/v1/widgets/:id/data' && line.status_code === 503);
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({ level: 'warn', reason: 'NOT_CONFIGURED' });
    expect(development.lines().filter((line) => line.level === 'error')).toEqual([]);
  });
});
