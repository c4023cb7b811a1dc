import { afterEach, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { buildApp, type App } from '../src/app.js';
import { captureLogs } from './support/log-capture.js';

let app: App | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function start(env: Record<string, string> = {}) {
  const logs = captureLogs();
  app = await buildApp({
    settings: loadSettings({ APP_ENV: 'test', ...env }),
    logger: logs.logger,
    routes: (server) =>
      server.get('/explode', () => {
        throw new Error('database password=hunter2-LEAKCHECK rejected');
      }),
  });
  const base = await app.server.listen({ host: '127.0.0.1', port: 0 });
  return { base, logs };
}

describe('sample-api observability', () => {
  it('puts X-Request-ID on every response, and the problem body carries the same id', async () => {
    const { base } = await start();
    for (const path of ['/health/live', '/health/ready', '/metrics', '/nope']) {
      const response = await fetch(`${base}${path}`);
      expect(response.headers.get('x-request-id'), path).toMatch(/^[0-9a-f-]{36}$/);
    }
    const kept = await fetch(`${base}/nope`, { headers: { 'x-request-id': 'trace-me-1' } });
    expect(kept.headers.get('x-request-id')).toBe('trace-me-1');
    expect(await kept.json()).toMatchObject({
      request_id: 'trace-me-1',
      instance: 'urn:request:trace-me-1',
    });
  });

  it('serves /metrics with the HTTP metrics of the routes it served', async () => {
    const { base } = await start();
    await fetch(`${base}/health/live`);
    await fetch(`${base}/api/v1/unknown/123`);
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain(
      'flowforge_http_requests_total{method="GET",route="/health/live",status_code="200"} 1',
    );
    expect(text).toContain(
      'flowforge_http_requests_total{method="GET",route="UNMATCHED",status_code="404"} 1',
    );
    expect(text).not.toContain('/api/v1/unknown/123');
  });

  it('protects /metrics with METRICS_TOKEN when it is set', async () => {
    const { base } = await start({ METRICS_TOKEN: 'scrape-token-LEAKCHECK' });
    const refused = await fetch(`${base}/metrics`);
    expect(refused.status).toBe(401);
    expect(await refused.text()).not.toContain('LEAKCHECK');
    const allowed = await fetch(`${base}/metrics`, {
      headers: { authorization: 'Bearer scrape-token-LEAKCHECK' },
    });
    expect(allowed.status).toBe(200);
  });

  it('writes one access line per request with its context, and nothing from Fastify itself', async () => {
    const { base, logs } = await start();
    await fetch(`${base}/health/live`, {
      headers: { 'x-request-id': 'acc-1', authorization: 'Bearer SECRET-LEAKCHECK' },
    });
    const lines = logs.lines();
    expect(lines.filter((line) => line.request_id === 'acc-1')).toEqual([
      expect.objectContaining({
        msg: 'request completed',
        method: 'GET',
        route: '/health/live',
        status_code: 200,
        request_id: 'acc-1',
      }),
    ]);
    expect(lines.some((line) => line.msg === 'incoming request')).toBe(false);
    expect(JSON.stringify(lines)).not.toContain('LEAKCHECK');
  });

  it('logs a server error with its request context, and tells the client nothing about it', async () => {
    const { base, logs } = await start();
    const response = await fetch(`${base}/explode`, { headers: { 'x-request-id': 'err-1' } });
    expect(response.status).toBe(500);
    const body = await response.text();
    expect(body).not.toContain('LEAKCHECK');
    expect(body).not.toContain('at ');
    expect(JSON.parse(body)).toMatchObject({
      title: 'Internal Server Error',
      status: 500,
      request_id: 'err-1',
    });
    const lines = logs.lines().filter((line) => line.request_id === 'err-1');
    expect(lines.map((line) => [line.level, line.msg])).toEqual([
      ['error', 'request failed'],
      ['error', 'request failed'],
    ]);
    expect(lines[0]).toMatchObject({
      err: { message: expect.stringContaining('rejected') as string },
    });
    expect(lines[1]).toMatchObject({ route: '/explode', status_code: 500 });
  });
});
