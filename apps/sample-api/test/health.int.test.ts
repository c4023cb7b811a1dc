import { afterEach, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { buildApp, type App } from '../src/app.js';
import type { ReadinessCheck } from '@flowforge/server';

// An identity provider nobody answers for: its check is deterministic (down) unless replaced.
const settings = loadSettings({
  APP_ENV: 'test',
  HOST: '127.0.0.1',
  PORT: '0',
  KEYCLOAK_URL: 'http://127.0.0.1:1',
});
let app: App | undefined;

async function listen(checks: readonly ReadinessCheck[] = []): Promise<string> {
  app = await buildApp({ settings, checks });
  return app.server.listen({ host: '127.0.0.1', port: 0 });
}

afterEach(async () => {
  await app?.close();
  app = undefined;
});

const up = (name: string, required: boolean): ReadinessCheck => ({
  name,
  required,
  check: async () => {},
});
const down = (name: string, required: boolean): ReadinessCheck => ({
  name,
  required,
  check: () => Promise.reject(new Error('connection refused')),
});
const hanging = (name: string): ReadinessCheck => ({
  name,
  required: true,
  check: () => new Promise(() => {}),
});

describe('health routes over a real socket', () => {
  it('GET /health/live answers 200 regardless of dependencies', async () => {
    const base = await listen([down('postgres', true)]);
    const response = await fetch(`${base}/health/live`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('GET /health/ready is 200 when every dependency is up, with latency per check', async () => {
    const base = await listen([up('postgres', true), up('redis', false), up('keycloak', false)]);
    const response = await fetch(`${base}/health/ready`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      status: string;
      checks: Record<string, { latency_ms: number }>;
    };
    expect(body.status).toBe('ready');
    // The given checks, then the stores this app has not configured (clickhouse, materialize here).
    expect(Object.keys(body.checks)).toEqual([
      'postgres',
      'redis',
      'keycloak',
      'clickhouse',
      'materialize',
    ]);
    expect(body.checks.postgres?.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it('reports the identity provider as an optional dependency: degraded (200), not failed, while it is unreachable', async () => {
    const base = await listen([up('postgres', true)]);
    const response = await fetch(`${base}/health/ready`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      status: 'degraded',
      checks: {
        keycloak: { status: 'down', required: false, error: expect.any(String) as string },
      },
    });
  });

  it('is 503 not_ready when a required dependency is down', async () => {
    const base = await listen([down('postgres', true), up('redis', false)]);
    const response = await fetch(`${base}/health/ready`);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({
      status: 'not_ready',
      checks: {
        postgres: { status: 'down', required: true, error: 'connection refused' },
        redis: { status: 'up' },
      },
    });
  });

  it('stays 200 but degraded when only an optional dependency is down', async () => {
    const base = await listen([up('postgres', true), down('clickhouse', false)]);
    const response = await fetch(`${base}/health/ready`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      status: 'degraded',
      checks: { clickhouse: { status: 'down' } },
    });
  });

  it('bounds a dependency that never answers', async () => {
    const base = await listen([hanging('materialize')]);
    const response = await fetch(`${base}/health/ready`);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({
      checks: { materialize: { status: 'down', error: 'no answer within 2000 ms' } },
    });
  });

  it('turns readiness to 503 as soon as shutdown begins, while liveness stays 200', async () => {
    const base = await listen([up('postgres', true)]);
    app?.beginShutdown();
    expect((await fetch(`${base}/health/ready`)).status).toBe(503);
    expect((await fetch(`${base}/health/live`)).status).toBe(200);
  });

  it('answers unknown routes with a 404 problem+json carrying the request id', async () => {
    const base = await listen();
    const response = await fetch(`${base}/api/v1/nope`);
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const body = (await response.json()) as { status: number; request_id: string };
    expect(body.status).toBe(404);
    expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/);
  });
});
