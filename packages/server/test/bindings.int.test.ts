// The same cases over real HTTP against the two bindings: a Fastify app
// (@flowforge/server/fastify) and an Express 5 app on node:http
// (@flowforge/server/node). Each test builds its own app, listening on a free
// loopback port, and stops it.
import { Agent, createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DatabaseError } from '@flowforge/db';
import {
  createHttpObservability,
  createMetrics,
  nodeHttpObservability,
} from '@flowforge/observability';
import {
  createEventStreams,
  createLifecycle,
  createProblems,
  createReadiness,
  httpServerOptions,
  type EventSource,
  type EventStreams,
  type Lifecycle,
} from '../src/index.js';
import {
  fastifyListener,
  fastifyServer,
  fastifyServerOptions,
  sendEventStream as sendFastifyEventStream,
} from '../src/fastify.js';
import {
  healthHandlers,
  metricsHandler,
  nodeListener,
  notFoundHandler,
  problemHandler,
  securityHeaders,
  sendEventStream as sendNodeEventStream,
} from '../src/node.js';
import { deferred, never, whenAborted, type Deferred } from './support/deferred.js';
import { get, idleKeepAlive, openStream, rawExchange, type Answer } from './support/http-client.js';
import { capturedLogger } from './support/log-capture.js';

const METRICS_TOKEN = 'scrape-token-for-tests';

/** One app under test, listening on loopback. */
interface Harness {
  readonly port: number;
  readonly server: Server;
  readonly lifecycle: Lifecycle;
  readonly streams: EventStreams;
  readonly lines: () => Record<string, unknown>[];
  /** Whether the readiness check of the (pretend) database passes. */
  databaseUp: boolean;
  /** Requests that reached GET /slow or GET /hang, which wait for `release`. */
  readonly waiting: { count: number };
  /** Lets every GET /slow answer. */
  readonly release: Deferred<void>;
}

interface HarnessOptions {
  readonly shutdownTimeoutMs?: number;
  readonly graceMs?: number;
  readonly requestTimeoutMs?: number;
  readonly headersTimeoutMs?: number;
}

/** The HTTP timeouts of `options`, as both bindings take them. */
const timeoutsOf = (options: HarnessOptions) => ({
  ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
  ...(options.headersTimeoutMs === undefined ? {} : { headersTimeoutMs: options.headersTimeoutMs }),
});

/** What both apps share: the kit's parts, and the routes' behaviour. */
function parts(options: HarnessOptions) {
  const capture = capturedLogger();
  const { logger } = capture;
  const metrics = createMetrics({ defaultMetrics: false });
  const problems = createProblems();
  const readiness = createReadiness({ cacheMs: 0 });
  const streams = createEventStreams({ logger, firstEventWaitMs: 1_000, stalledClientMs: 300 });
  const lifecycle = createLifecycle({
    logger,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? 10_000,
    graceMs: options.graceMs ?? 10_000,
  });
  const state = {
    databaseUp: true,
    waiting: { count: 0 },
    release: deferred(),
  };
  readiness.add({
    name: 'postgres',
    check: () =>
      state.databaseUp
        ? Promise.resolve()
        : Promise.reject(new DatabaseError('UNAVAILABLE', 'connection refused')),
  });
  const ticks: EventSource = async function* (signal) {
    yield { event: 'tick', id: '1', data: '{"n":1}' };
    yield { event: 'tick', id: '2', data: '{"n":2}' };
    await whenAborted(signal);
  };
  // As fast as the client reads: one that stops reading fills its buffers at once.
  const flood: EventSource = (signal) => {
    const data = JSON.stringify({ pad: 'x'.repeat(4_096) });
    return {
      next: () =>
        Promise.resolve(
          signal.aborted
            ? { done: true, value: undefined }
            : { done: false, value: { event: 'flood', data } },
        ),
    };
  };

  const routes = {
    unavailable: (): never => {
      throw new DatabaseError('UNAVAILABLE', 'connection to 10.0.0.7:5432 refused');
    },
    boom: (): never => {
      throw new Error('secret internals: password=hunter2');
    },
    slow: async (): Promise<{ ok: true }> => {
      state.waiting.count += 1;
      await state.release.promise;
      return { ok: true };
    },
    hang: (): Promise<never> => {
      state.waiting.count += 1;
      return never();
    },
  };
  return {
    capture,
    logger,
    metrics,
    problems,
    readiness,
    streams,
    lifecycle,
    state,
    ticks,
    flood,
    routes,
  };
}

async function fastifyApp(options: HarnessOptions = {}): Promise<Harness> {
  const {
    capture,
    logger,
    metrics,
    problems,
    readiness,
    streams,
    lifecycle,
    state,
    ticks,
    flood,
    routes,
  } = parts(options);
  const app = Fastify(fastifyServerOptions({ logger, ...timeoutsOf(options) }));
  await app.register(fastifyServer, {
    logger,
    metrics,
    problems,
    readiness,
    metricsToken: METRICS_TOKEN,
  });
  app.get('/ok', () => ({ ok: true }));
  app.get('/unavailable', routes.unavailable);
  app.get('/boom', async () => Promise.resolve(routes.boom()));
  app.get('/slow', routes.slow);
  app.get('/hang', routes.hang);
  app.post('/echo', (request) => request.body);
  app.get('/events', (request, reply) =>
    sendFastifyEventStream(request, reply, streams, { clientId: 'user-1', source: ticks }),
  );
  app.get('/flood', (request, reply) =>
    sendFastifyEventStream(request, reply, streams, { clientId: 'user-2', source: flood }),
  );
  lifecycle.add(readiness);
  lifecycle.add(streams);
  lifecycle.add(fastifyListener(app, { host: '127.0.0.1', port: 0 }));
  await lifecycle.start();
  return Object.assign(state, {
    port: (app.server.address() as AddressInfo).port,
    server: app.server,
    lifecycle,
    streams,
    lines: capture.lines,
  });
}

async function expressApp(options: HarnessOptions = {}): Promise<Harness> {
  const {
    capture,
    logger,
    metrics,
    problems,
    readiness,
    streams,
    lifecycle,
    state,
    ticks,
    flood,
    routes,
  } = parts(options);
  const app = express();
  app.use(nodeHttpObservability(createHttpObservability({ logger, metrics })));
  app.use(securityHeaders());
  const health = healthHandlers(readiness, { token: METRICS_TOKEN });
  app.get('/health/live', health.live);
  app.get('/health/ready', health.ready);
  app.get('/metrics', metricsHandler(metrics, { token: METRICS_TOKEN }));
  app.get('/ok', (_request, response) => void response.json({ ok: true }));
  app.get('/unavailable', routes.unavailable);
  app.get('/boom', async () => Promise.resolve(routes.boom()));
  app.get('/slow', async (_request, response) => void response.json(await routes.slow()));
  app.get('/hang', () => void routes.hang());
  app.post('/echo', express.json(), (request, response) => void response.json(request.body));
  app.get('/events', (request, response) =>
    sendNodeEventStream(request, response, streams, { clientId: 'user-1', source: ticks }),
  );
  app.get('/flood', (request, response) =>
    sendNodeEventStream(request, response, streams, { clientId: 'user-2', source: flood }),
  );
  app.use(notFoundHandler());
  app.use(problemHandler({ problems, logger }));
  const server = createServer(httpServerOptions(timeoutsOf(options)), app);
  lifecycle.add(readiness);
  lifecycle.add(streams);
  const listener = lifecycle.add(nodeListener(server, { host: '127.0.0.1', port: 0 }));
  await lifecycle.start();
  return Object.assign(state, {
    port: listener.address()!.port,
    server,
    lifecycle,
    streams,
    lines: capture.lines,
  });
}

/** Every app a test built: stopped after it (a stopped one again is a no-op). */
const built: Harness[] = [];
afterEach(async () => {
  for (const harness of built.splice(0)) {
    harness.release.resolve();
    await harness.lifecycle.stop();
  }
});

function problemOf(answer: Answer): Record<string, unknown> {
  expect(answer.headers['content-type']).toBe('application/problem+json; charset=utf-8');
  const body = JSON.parse(answer.text) as Record<string, unknown>;
  // The request id is one value everywhere: the header, the body and its instance.
  expect(body.request_id).toBe(answer.headers['x-request-id']);
  expect(body.instance).toBe(`urn:request:${String(body.request_id)}`);
  return body;
}

describe.each([
  ['Fastify', fastifyApp],
  ['Express 5 on node:http', expressApp],
] as const)('%s', (_name, buildApp) => {
  async function build(options: HarnessOptions = {}): Promise<Harness> {
    const harness = await buildApp(options);
    built.push(harness);
    return harness;
  }

  it('answers an unknown route 404 as a problem carrying the request id of X-Request-ID', async () => {
    const { port } = await build();
    const given = await get(port, '/nope', { headers: { 'x-request-id': 'req-abc-123' } });
    expect(given.status).toBe(404);
    expect(given.headers['x-request-id']).toBe('req-abc-123');
    expect(problemOf(given)).toEqual({
      type: 'about:blank',
      title: 'Not Found',
      status: 404,
      detail: 'No route matches this request.',
      instance: 'urn:request:req-abc-123',
      request_id: 'req-abc-123',
    });
    // Without one, a request id is made, and it is the same in the header and the body.
    const made = await get(port, '/nope');
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(problemOf(made).status).toBe(404);
  });

  it('answers a route that throws a FlowForgeError 503 with Retry-After and words for clients', async () => {
    const { port, lines } = await build();
    const answer = await get(port, '/unavailable');
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toBe('1');
    expect(problemOf(answer)).toMatchObject({
      title: 'Service Unavailable',
      status: 503,
      detail: 'The database is not available right now; try again.',
    });
    expect(answer.text).not.toContain('10.0.0.7');
    expect(lines()).toContainEqual(
      expect.objectContaining({ level: 'warn', code: 'UNAVAILABLE', msg: 'request failed' }),
    );
  });

  it('answers a route that throws a plain Error 500 with no detail, and logs it', async () => {
    const { port, lines } = await build();
    const answer = await get(port, '/boom');
    expect(answer.status).toBe(500);
    const body = problemOf(answer);
    expect(body).toMatchObject({ title: 'Internal Server Error', status: 500 });
    expect(body).not.toHaveProperty('detail');
    expect(answer.text).not.toContain('hunter2');
    expect(lines()).toContainEqual(
      expect.objectContaining({ level: 'error', msg: 'request failed' }),
    );
  });

  it('answers malformed HTTP 400 as a problem with X-Request-ID, and closes the connection', async () => {
    const { port } = await build();
    const answer = await rawExchange(
      port,
      'GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nThis is no header\r\n\r\n',
    );
    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(answer.headers.get('connection')).toBe('close');
    const body = JSON.parse(answer.body) as Record<string, unknown>;
    expect(body).toMatchObject({ title: 'Bad Request', status: 400 });
    expect(body.request_id).toBe(answer.headers.get('x-request-id'));
    expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers headers over the size limit 431 as a problem, and closes the connection', async () => {
    const { port } = await build();
    const answer = await rawExchange(
      port,
      `GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(answer.status).toBe(431);
    expect(JSON.parse(answer.body)).toMatchObject({
      title: 'Request Header Fields Too Large',
      status: 431,
      request_id: answer.headers.get('x-request-id'),
    });
  });

  it('sends nosniff, no-store, a CSP that forbids framing and no CORS header, on answers and problems alike', async () => {
    const { port } = await build();
    const origin = { headers: { origin: 'https://elsewhere.example' } };
    for (const path of ['/ok', '/no/such/route', '/unavailable']) {
      const answer = await get(port, path, origin);
      expect(answer.headers).toMatchObject({
        'x-content-type-options': 'nosniff',
        'cache-control': 'no-store',
        'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
        'referrer-policy': 'no-referrer',
      });
      expect(answer.headers['access-control-allow-origin']).toBeUndefined();
    }
  });

  it('logs a refusal (503) at warn with its code as the access line reason, a 404 at info, a failure of ours at error', async () => {
    const harness = await build();
    await get(harness.port, '/unavailable');
    await get(harness.port, '/no/such/route');
    await get(harness.port, '/boom');
    const access = harness
      .lines()
      .filter((line) => line.status_code !== undefined)
      .map((line) => [line.status_code, line.level, line.reason]);
    expect(access).toEqual([
      [503, 'warn', 'UNAVAILABLE'],
      [404, 'info', undefined],
      [500, 'error', undefined],
    ]);
  });

  it('cuts off a client that sends its body too slowly: 408 and the connection closed within the request timeout', async () => {
    const { port } = await build({ requestTimeoutMs: 1_500, headersTimeoutMs: 1_000 });
    const started = performance.now();
    // One byte of a 100-byte body, then nothing: the server must not wait forever.
    const answer = await rawExchange(
      port,
      'POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[',
      8_000,
    );
    expect(answer.status).toBe(408);
    // The timeout, plus at most one check period (1 s) and scheduling.
    expect(performance.now() - started).toBeLessThan(4_000);
  });

  it('cuts off a client that sends its headers too slowly: 408 within the headers timeout', async () => {
    const { port } = await build({ requestTimeoutMs: 5_000, headersTimeoutMs: 1_000 });
    const started = performance.now();
    const answer = await rawExchange(
      port,
      'GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1\r\n',
      8_000,
    );
    expect(answer.status).toBe(408);
    expect(performance.now() - started).toBeLessThan(3_500);
  });

  it('answers CONNECT 405 with Allow, as a problem with the request id', async () => {
    const { port } = await build();
    const answer = await rawExchange(
      port,
      'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nX-Request-ID: connect-1\r\n\r\n',
    );
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toContain('GET');
    expect(answer.headers.get('x-request-id')).toBe('connect-1');
    expect(JSON.parse(answer.body)).toMatchObject({
      title: 'Method Not Allowed',
      status: 405,
      request_id: 'connect-1',
    });
  });

  it('serves /health/live, and /health/ready: 200 ready, 503 with a required check down, 503 shutting_down after drain', async () => {
    const harness = await build();
    const { port } = harness;
    const live = await get(port, '/health/live');
    expect([live.status, JSON.parse(live.text)]).toEqual([200, { status: 'ok' }]);

    // Each dependency's status to anyone; its error and latency only for the scrape token (a
    // driver's message names hosts and users).
    const scraper = { headers: { authorization: `Bearer ${METRICS_TOKEN}` } };
    const anonymous = await get(port, '/health/ready');
    expect([anonymous.status, JSON.parse(anonymous.text)]).toEqual([
      200,
      { status: 'ready', checks: { postgres: { status: 'up', required: true } } },
    ]);
    const ready = await get(port, '/health/ready', scraper);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toMatchObject({
      status: 'ready',
      checks: { postgres: { status: 'up', required: true } },
    });

    harness.databaseUp = false;
    const hidden = await get(port, '/health/ready');
    expect([hidden.status, JSON.parse(hidden.text)]).toEqual([
      503,
      { status: 'not_ready', checks: { postgres: { status: 'down', required: true } } },
    ]);
    expect(hidden.text).not.toContain('connection refused');
    const down = await get(port, '/health/ready', scraper);
    expect(down.status).toBe(503);
    expect(JSON.parse(down.text)).toMatchObject({
      status: 'not_ready',
      checks: {
        postgres: { status: 'down', error: '@flowforge/db: connection refused' },
      },
    });

    harness.databaseUp = true;
    harness.lifecycle.drain();
    const draining = await get(port, '/health/ready', scraper);
    expect(draining.status).toBe(503);
    expect(JSON.parse(draining.text)).toEqual({ status: 'shutting_down', checks: {} });
    // Once shutdown began, every response closes its connection.
    expect(draining.headers.connection).toBe('close');
  });

  it('serves /metrics only with the token: a 401 problem with a challenge without it', async () => {
    const { port } = await build();
    await get(port, '/ok');
    const refused = await get(port, '/metrics');
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toBe('Bearer realm="metrics"');
    expect(problemOf(refused)).toMatchObject({
      title: 'Unauthorized',
      status: 401,
      detail: 'Scraping /metrics needs the metrics bearer token.',
    });
    const wrong = await get(port, '/metrics', { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);

    const scraped = await get(port, '/metrics', {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(scraped.status).toBe(200);
    expect(scraped.headers['content-type']).toContain('text/plain');
    expect(scraped.text).toContain(
      'flowforge_http_requests_total{method="GET",route="/ok",status_code="200"} 1',
    );
  });

  it('streams events, and on lifecycle.stop() sends `event: shutdown` and ends drained', async () => {
    // Shorter than the keep-alive timeout (5 s): a connection left open after its stream
    // ended would hold the server's close past the deadline.
    const harness = await build({ shutdownTimeoutMs: 2_000 });
    // A browser's connection: keep-alive, so the server itself must close it.
    const agent = new Agent({ keepAlive: true });
    try {
      const stream = await openStream(harness.port, '/events', { agent });
      expect(stream.status).toBe(200);
      expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(stream.headers['x-request-id']).toBeDefined();
      await stream.until((text) => text.includes('id: 2\n'));
      expect(stream.text()).toBe(
        'retry: 2000\n\n' +
          'event: tick\nid: 1\ndata: {"n":1}\n\n' +
          'event: tick\nid: 2\ndata: {"n":2}\n\n',
      );
      expect(harness.streams.size).toBe(1);
      const outcome = await harness.lifecycle.stop();
      expect(await stream.ended).toMatch(/event: shutdown\ndata: \{\}\n\n$/);
      expect(outcome).toBe('drained');
      expect(harness.streams.size).toBe(0);
      expect(harness.server.listening).toBe(false);
    } finally {
      agent.destroy();
    }
  });

  it('lets a client that stopped reading go: the stream ends, its connection is cut, stop() drains', async () => {
    const harness = await build({ shutdownTimeoutMs: 3_000 });
    const socket = connect({ host: '127.0.0.1', port: harness.port });
    try {
      await once(socket, 'connect');
      socket.write('GET /flood HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      socket.pause(); // never reads: the kernel's buffers, then the body's, fill
      await vi.waitFor(() => expect(harness.streams.heldBy('user-2')).toBe(1));
      await vi.waitFor(() => expect(harness.streams.size).toBe(0), { timeout: 10_000 });
      expect(harness.lines()).toContainEqual(
        expect.objectContaining({ msg: 'event stream client stopped reading; stream ended' }),
      );
      // Its response was destroyed with the body: nothing holds the server's close.
      expect(await harness.lifecycle.stop()).toBe('drained');
    } finally {
      socket.destroy();
    }
  });

  it('closes the source and frees the slot when the client leaves mid-stream', async () => {
    const harness = await build();
    const stream = await openStream(harness.port, '/events');
    await stream.until((text) => text.includes('id: 2\n'));
    expect(harness.streams.heldBy('user-1')).toBe(1);
    stream.close();
    await vi.waitFor(() => expect(harness.streams.size).toBe(0));
    expect(await harness.lifecycle.stop()).toBe('drained');
  });

  it('refuses a stream past the limits as a problem: the client’s share (429) with Retry-After', async () => {
    const { port } = await build();
    // maxStreamsPerClient defaults to 50 of 100: open them, and one more.
    const open = await Promise.all(Array.from({ length: 50 }, () => openStream(port, '/events')));
    try {
      expect(open.every((stream) => stream.status === 200)).toBe(true);
      const refused = await get(port, '/events');
      expect(refused.status).toBe(429);
      expect(refused.headers['retry-after']).toBe('5');
      expect(problemOf(refused)).toMatchObject({
        title: 'Too Many Requests',
        detail: 'At most 50 live streams per user at once.',
      });
    } finally {
      for (const stream of open) stream.close();
    }
  });

  it('stops gracefully under load: requests in flight complete, keep-alive connections close, the server closes', async () => {
    const harness = await build();
    const { port } = harness;
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    try {
      const idle = await idleKeepAlive(port, '/ok');
      expect(idle.first.status).toBe(200);
      expect(idle.first.headers.get('connection')).toBe('keep-alive');
      const inFlight = Array.from({ length: 8 }, () => get(port, '/slow', { agent }));
      await vi.waitFor(() => expect(harness.waiting.count).toBe(8));

      const stopping = harness.lifecycle.stop();
      // The listener no longer accepts connections: shutdown is under way.
      await vi.waitFor(() => expect(harness.server.listening).toBe(false));
      await idle.closed;
      harness.release.resolve();

      const answers = await Promise.all(inFlight);
      expect(answers.map((answer) => answer.status)).toEqual(Array(8).fill(200));
      expect(answers.map((answer) => answer.headers.connection)).toEqual(Array(8).fill('close'));
      expect(await stopping).toBe('drained');
      await expect(get(port, '/ok')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      agent.destroy();
    }
  });

  it('ends with deadline at shutdownTimeoutMs when a route never answers, cutting its connection', async () => {
    const shutdownTimeoutMs = 300;
    const harness = await build({ shutdownTimeoutMs, graceMs: 10_000 });
    const hanging = get(harness.port, '/hang').then(
      () => 'answered',
      (error: NodeJS.ErrnoException) => error.code,
    );
    await vi.waitFor(() => expect(harness.waiting.count).toBe(1));
    const began = performance.now();
    expect(await harness.lifecycle.stop()).toBe('deadline');
    const took = performance.now() - began;
    expect(await hanging).toBe('ECONNRESET');
    // The listener stopped at the deadline when it cut the connection, not graceMs later.
    expect(harness.lines().map((line) => line.msg)).not.toContain(
      'components still stopping after the deadline',
    );
    expect(took).toBeGreaterThanOrEqual(shutdownTimeoutMs - 5);
    // Generous slack for a loaded machine; graceMs (10 s) is far beyond it.
    expect(took).toBeLessThan(shutdownTimeoutMs + 5_000);
  });
});

describe('Fastify: bodies', () => {
  /** An app with the kit's options and plugin, and routes that validate their bodies. */
  async function bodiesApp(bodyLimitBytes?: number) {
    const capture = capturedLogger();
    const { logger } = capture;
    const app = Fastify(
      fastifyServerOptions({
        logger,
        ...(bodyLimitBytes === undefined ? {} : { bodyLimitBytes }),
      }),
    );
    await app.register(fastifyServer, {
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
      problems: createProblems(),
      metricsToken: null,
    });
    app.post(
      '/widgets',
      {
        schema: {
          body: {
            type: 'object',
            required: ['kind'],
            properties: { kind: { type: 'string', enum: ['metric', 'live'] }, config: {} },
          },
          querystring: { type: 'object', properties: { limit: { type: 'integer' } } },
        },
      },
      (request) => ({ body: request.body, query: request.query }),
    );
    app.post('/echo', (request) => request.body);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const post = (path: string, body: string) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
    return { app, post, lines: capture.lines };
  }
  const apps: Awaited<ReturnType<typeof bodiesApp>>['app'][] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });
  async function build(bodyLimitBytes?: number) {
    const built = await bodiesApp(bodyLimitBytes);
    apps.push(built.app);
    return built;
  }

  it('validates a body as sent: a one-element array is not a string (no coercion), a query string still is', async () => {
    const { post } = await build();
    const coerced = await post('/widgets', JSON.stringify({ kind: ['metric'] }));
    expect(coerced.status).toBe(400);
    expect(await coerced.json()).toMatchObject({ status: 400, detail: 'body/kind must be string' });
    expect((await post('/widgets', JSON.stringify({ kind: 7 }))).status).toBe(400);
    const fine = await post('/widgets?limit=5', JSON.stringify({ kind: 'metric' }));
    expect(fine.status).toBe(200);
    expect(await fine.json()).toEqual({ body: { kind: 'metric' }, query: { limit: 5 } });
  });

  it('refuses a body nested deeper than 32 levels with 400 BODY_TOO_DEEP, before any route code walks it', async () => {
    const { post, lines } = await build();
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    const answer = await post('/echo', deep);
    expect(answer.status).toBe(400);
    expect(await answer.json()).toMatchObject({
      status: 400,
      detail: 'The JSON body nests objects or arrays more than 32 levels deep.',
    });
    // Also inside an object a schema validates: Ajv never sees it.
    const nested = await post('/widgets', `{"kind":"metric","config":${deep}}`);
    expect(nested.status).toBe(400);
    expect(lines().filter((line) => line.level === 'error')).toEqual([]);
    const atLimit = `${'['.repeat(32)}${']'.repeat(32)}`;
    expect(await (await post('/echo', atLimit)).text()).toBe(atLimit);
  });

  it('refuses a body over the limit with 413 as a problem, and still refuses prototype poisoning', async () => {
    const { post } = await build(1_024);
    const large = await post('/echo', JSON.stringify({ pad: 'x'.repeat(2_000) }));
    expect(large.status).toBe(413);
    expect(large.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect((await post('/echo', JSON.stringify({ pad: 'x'.repeat(900) }))).status).toBe(200);
    expect((await post('/echo', '{"__proto__":{"admin":true}}')).status).toBe(400);
  });
});
