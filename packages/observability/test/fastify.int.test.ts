import { once } from 'node:events';
import { connect } from 'node:net';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import {
  bindRequestContext,
  createHttpObservability,
  createLogger,
  createMetrics,
  getRequestContext,
  setRefusalReason,
  type Metrics,
} from '../src/index.js';
import { fastifyObservability, genReqId } from '../src/fastify.js';
import { captureLines } from './log-capture.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Harness {
  app: FastifyInstance;
  metrics: Metrics;
  logs: ReturnType<typeof captureLines>;
  base: string;
}

let current: FastifyInstance | undefined;
afterEach(async () => {
  await current?.close();
  current = undefined;
});

async function harness(
  options: {
    genReqId?: boolean;
    maxLabelValues?: number;
    routes?: (app: FastifyInstance) => void;
  } = {},
): Promise<Harness> {
  const logs = captureLines();
  const logger = createLogger({ destination: logs.stream, level: 'debug' });
  const metrics = createMetrics({
    defaultMetrics: false,
    maxLabelValues: options.maxLabelValues ?? 100,
  });
  const http = createHttpObservability({ logger, metrics });
  const app = Fastify({
    logController: new LogController({ disableRequestLogging: true }),
    ...(options.genReqId === false ? {} : { genReqId }),
  });
  await app.register(fastifyObservability, { http, metricsEndpoint: { metrics } });

  app.get('/api/v1/dashboards/:id', async (request) => {
    // Work inside the request: async hops and a timer, as a real handler has.
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
    bindRequestContext({ tenant_id: 'tenant-a', user_id: 'user-1' });
    logger.info({ id: (request.params as { id: string }).id }, 'loading dashboard');
    await Promise.resolve();
    return { id: (request.params as { id: string }).id, context: getRequestContext() };
  });
  app.get('/boom', () => {
    throw new Error('kaput');
  });
  app.get('/client-error', async (_request, reply) => reply.code(422).send({ error: 'no' }));
  app.get('/refused/:status', async (request, reply) => {
    setRefusalReason('TOO_MANY_STREAMS');
    return reply.code(Number((request.params as { status: string }).status)).send();
  });
  options.routes?.(app);
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  current = app;
  return { app, metrics, logs, base };
}

const accessLines = (logs: ReturnType<typeof captureLines>) =>
  logs.lines().filter((line) => line.msg === 'request completed' || line.msg === 'request failed');

describe('fastifyObservability over a real socket', () => {
  it('sets X-Request-ID on every response: a new UUID v4, or the sane inbound one', async () => {
    const { base } = await harness();
    const fresh = await fetch(`${base}/api/v1/dashboards/1`);
    expect(fresh.headers.get('x-request-id')).toMatch(UUID_V4);

    const kept = await fetch(`${base}/api/v1/dashboards/1`, {
      headers: { 'x-request-id': 'edge-7f3a' },
    });
    expect(kept.headers.get('x-request-id')).toBe('edge-7f3a');

    const unsafe = await fetch(`${base}/api/v1/dashboards/1`, {
      headers: { 'x-request-id': 'a b"c' },
    });
    expect(unsafe.headers.get('x-request-id')).toMatch(UUID_V4);

    const notFound = await fetch(`${base}/nowhere`);
    expect(notFound.status).toBe(404);
    expect(notFound.headers.get('x-request-id')).toMatch(UUID_V4);

    const failed = await fetch(`${base}/boom`);
    expect(failed.status).toBe(500);
    expect(failed.headers.get('x-request-id')).toMatch(UUID_V4);
  });

  it('writes one access line per request with route template, status, duration and context', async () => {
    const { base, logs } = await harness();
    const response = await fetch(`${base}/api/v1/dashboards/42`, {
      headers: { 'x-request-id': 'req-42' },
    });
    const body = (await response.json()) as { context: unknown };
    expect(body.context).toEqual({
      request_id: 'req-42',
      tenant_id: 'tenant-a',
      user_id: 'user-1',
    });

    const handlerLine = logs.lines().find((line) => line.msg === 'loading dashboard');
    expect(handlerLine).toMatchObject({
      request_id: 'req-42',
      tenant_id: 'tenant-a',
      user_id: 'user-1',
      id: '42',
    });

    const access = accessLines(logs);
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({
      level: 'info',
      method: 'GET',
      route: '/api/v1/dashboards/:id',
      status_code: 200,
      request_id: 'req-42',
      tenant_id: 'tenant-a',
      user_id: 'user-1',
    });
    expect(typeof access[0]?.duration_ms).toBe('number');
  });

  it('logs a failure of ours at error, a refusal at warn (503, 429) or info (other 4xx), and labels unmatched requests UNMATCHED', async () => {
    const { base, logs } = await harness();
    await fetch(`${base}/client-error`);
    await fetch(`${base}/boom`);
    await fetch(`${base}/no/such/route`);
    await fetch(`${base}/refused/503`);
    await fetch(`${base}/refused/429`);
    const levels = accessLines(logs).map((line) => [
      line.route,
      line.status_code,
      line.level,
      line.msg,
      line.reason,
    ]);
    expect(levels).toEqual([
      ['/client-error', 422, 'info', 'request completed', undefined],
      ['/boom', 500, 'error', 'request failed', undefined],
      ['UNMATCHED', 404, 'info', 'request completed', undefined],
      ['/refused/:status', 503, 'warn', 'request completed', 'TOO_MANY_STREAMS'],
      ['/refused/:status', 429, 'warn', 'request completed', 'TOO_MANY_STREAMS'],
    ]);
  });

  it('keeps the context of concurrent interleaved requests apart', async () => {
    const { base, logs } = await harness();
    const ids = Array.from({ length: 50 }, (_, i) => `req-${i}`);
    const answers = await Promise.all(
      ids.map(async (id, i) => {
        const response = await fetch(`${base}/api/v1/dashboards/${i}`, {
          headers: { 'x-request-id': id },
        });
        return (await response.json()) as { id: string; context: { request_id: string } };
      }),
    );
    answers.forEach((answer, i) => expect(answer.context.request_id).toBe(ids[i]));
    const handlerLines = logs.lines().filter((l) => l.msg === 'loading dashboard');
    expect(handlerLines).toHaveLength(50);
    for (const line of handlerLines) {
      expect(line.request_id).toBe(`req-${String(line.id)}`);
    }
    const access = accessLines(logs);
    expect(access).toHaveLength(50);
    expect(new Set(access.map((line) => line.request_id))).toEqual(new Set(ids));
  });

  it('records the HTTP metrics by route template, never the raw URL', async () => {
    const { base, metrics } = await harness();
    for (const id of ['a', 'b', 'c']) await fetch(`${base}/api/v1/dashboards/${id}`);
    await fetch(`${base}/boom`);
    await fetch(`${base}/wp-admin/install.php`);
    const text = await metrics.render();
    expect(text).toContain(
      'flowforge_http_requests_total{method="GET",route="/api/v1/dashboards/:id",status_code="200"} 3',
    );
    expect(text).toContain(
      'flowforge_http_requests_total{method="GET",route="/boom",status_code="500"} 1',
    );
    expect(text).toContain(
      'flowforge_http_requests_total{method="GET",route="UNMATCHED",status_code="404"} 1',
    );
    expect(text).toContain(
      'flowforge_http_request_duration_seconds_count{method="GET",route="/api/v1/dashboards/:id",status_code="200"} 3',
    );
    expect(text).toMatch(/flowforge_http_requests_in_flight 0/);
    expect(text).not.toContain('wp-admin');
    expect(text).not.toContain('dashboards/a');
  });

  it('counts a request in flight while it runs', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { base, metrics } = await harness({
      routes: (app) => app.get('/hold', async () => held.then(() => 'done')),
    });
    const pending = fetch(`${base}/hold`);
    let text = '';
    for (let i = 0; i < 100 && !/flowforge_http_requests_in_flight 1\n/.test(text); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      text = await metrics.render();
    }
    expect(text).toMatch(/flowforge_http_requests_in_flight 1\n/);
    release();
    expect((await pending).status).toBe(200);
    expect(await metrics.render()).toMatch(/flowforge_http_requests_in_flight 0\n/);
  });

  it('records unknown methods as OTHER and caps distinct status codes', async () => {
    const { base, metrics } = await harness({ maxLabelValues: 2 });
    await Promise.all(
      ['PROPFIND', 'MKCOL'].map((method) => fetch(`${base}/api/v1/dashboards/1`, { method })),
    );
    await fetch(`${base}/api/v1/dashboards/1`);
    await fetch(`${base}/client-error`);
    await fetch(`${base}/boom`);
    const text = await metrics.render();
    expect(text).not.toContain('PROPFIND');
    expect(text).toContain('method="OTHER"');
    // 404 (the unmatched PROPFIND/MKCOL) and 200 took the two places; 422 and 500 became OTHER.
    expect(text).toContain('status_code="OTHER"');
    expect(text).toContain(
      'flowforge_metrics_label_overflow_total{metric="flowforge_http_requests_total",label="status_code"} 2',
    );
  });

  it('keeps one series per bounded label set when routes overflow their cap', async () => {
    const { base, metrics } = await harness({
      maxLabelValues: 2,
      routes: (app) => {
        for (const name of ['a', 'b', 'c', 'd']) app.get(`/r/${name}`, () => name);
      },
    });
    for (const name of ['a', 'b', 'c', 'd', 'c']) await fetch(`${base}/r/${name}`);
    const text = await metrics.render();
    const series = text.split('\n').filter((line) => line.startsWith('flowforge_http_'));
    expect(new Set(series).size).toBe(series.length);
    const names = series.map((line) => line.slice(0, line.lastIndexOf(' ')));
    expect(new Set(names).size).toBe(names.length);
    // a and b took the two places; c, d and c again share OTHER.
    expect(series.filter((line) => line.startsWith('flowforge_http_requests_total{'))).toEqual([
      'flowforge_http_requests_total{method="GET",route="/r/a",status_code="200"} 1',
      'flowforge_http_requests_total{method="GET",route="/r/b",status_code="200"} 1',
      'flowforge_http_requests_total{method="GET",route="OTHER",status_code="200"} 3',
    ]);
  });

  it('brings in-flight back down when a client leaves after sending its body (499)', async () => {
    const { base, metrics } = await harness({
      routes: (app) =>
        app.post('/slow', async () => {
          await new Promise((resolve) => setTimeout(resolve, 300));
          return 'late';
        }),
    });
    const { port } = new URL(base);
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write(
      'POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\npayload',
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    let text = '';
    for (let i = 0; i < 60 && !text.includes('status_code="499"'); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      text = await metrics.render();
    }
    expect(text).toContain(
      'flowforge_http_requests_total{method="POST",route="/slow",status_code="499"} 1',
    );
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await metrics.render()).toMatch(/flowforge_http_requests_in_flight 0\n/);
  });

  it('serves GET /metrics in the Prometheus text format', async () => {
    const { base } = await harness();
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await response.text()).toContain('# TYPE flowforge_http_requests_total counter');
  });

  it('uses its own UUID when the app kept Fastify’s default request ids, and request.id agrees', async () => {
    const { base } = await harness({
      genReqId: false,
      routes: (app) => app.get('/id', (request) => ({ id: request.id })),
    });
    const response = await fetch(`${base}/id`, { headers: { 'x-request-id': 'edge-1' } });
    const { id } = (await response.json()) as { id: string };
    expect(id).toBe('edge-1');
    expect(response.headers.get('x-request-id')).toBe('edge-1');
    const fresh = await fetch(`${base}/id`);
    expect(((await fresh.json()) as { id: string }).id).toMatch(UUID_V4);
  });
});

describe('fastifyObservability through inject', () => {
  it('behaves the same without a socket', async () => {
    const { app, logs } = await harness();
    const response = await app.inject({
      url: '/api/v1/dashboards/9',
      headers: { 'x-request-id': 'inj-1' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-request-id']).toBe('inj-1');
    expect(accessLines(logs)[0]).toMatchObject({
      request_id: 'inj-1',
      route: '/api/v1/dashboards/:id',
    });
  });
});
