// The same cases over real HTTP against the two bindings: a Fastify app
// (@flowforge/server/fastify) and an Express 5 app on node:http
// (@flowforge/server/node). Each test builds its own app, listening on a free
// loopback port, and stops it.
import { Agent, createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { once } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import express from 'express';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
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
  isServerError,
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
  corsOriginCheck,
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
  /** Requests that reached the guard of GET /guarded-events. */
  readonly guarded: { count: number };
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
    guarded: { count: 0 },
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
    /** A route's authentication, as its refusals look: `x-refuse: 503` (its store down) or `401`. */
    guard: (headers: IncomingHttpHeaders): void => {
      state.guarded.count += 1;
      if (headers['x-refuse'] === '503') {
        throw new DatabaseError('UNAVAILABLE', 'connection to 10.0.0.7:5432 refused');
      }
      if (headers['x-refuse'] === '401') {
        throw Object.assign(new Error('Sign in first.'), { statusCode: 401 });
      }
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
  app.get('/events', { config: { eventStream: true } }, (request, reply) =>
    sendFastifyEventStream(request, reply, streams, { clientId: 'user-1', source: ticks }),
  );
  app.get('/flood', (request, reply) =>
    sendFastifyEventStream(request, reply, streams, { clientId: 'user-2', source: flood }),
  );
  const guard = {
    onRequest: (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
      routes.guard(request.headers);
      done();
    },
  };
  app.get('/guarded-events', { config: { eventStream: true }, ...guard }, (request, reply) =>
    sendFastifyEventStream(request, reply, streams, { clientId: 'user-3', source: ticks }),
  );
  // The same without the route config: its refusals stay problems.
  app.get('/guarded-plain', guard, (request, reply) =>
    sendFastifyEventStream(request, reply, streams, { clientId: 'user-3', source: ticks }),
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
    sendNodeEventStream(
      request,
      response,
      streams,
      { clientId: 'user-1', source: ticks },
      { problems, logger },
    ),
  );
  app.get('/flood', (request, response) =>
    sendNodeEventStream(request, response, streams, { clientId: 'user-2', source: flood }),
  );
  app.get(
    '/guarded-events',
    (request: express.Request, _response: express.Response, next: express.NextFunction) => {
      routes.guard(request.headers);
      next();
    },
    (request: express.Request, response: express.Response) =>
      sendNodeEventStream(request, response, streams, { clientId: 'user-3', source: ticks }),
    // The route's own error middleware: its authentication's refusals reach it too.
    problemHandler({ problems, logger, eventStream: true }),
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

/** The connections `server` holds open now. */
function connectionsOf(server: Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
  );
}

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

  it('refuses a stream past the limits as an event stream a browser retries: 200, retry:, event: refused 429, and the connection closes', async () => {
    const harness = await build();
    const { port } = harness;
    // maxStreamsPerClient defaults to 50 of 100: open them, and one more.
    const open = await Promise.all(Array.from({ length: 50 }, () => openStream(port, '/events')));
    try {
      expect(open.every((stream) => stream.status === 200)).toBe(true);
      const refused = await get(port, '/events', { headers: { 'x-request-id': 'refused-1' } });
      // EventSource treats any other answer as final: a 429 would never be retried.
      expect(refused.status).toBe(200);
      expect(refused.headers).toMatchObject({
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'close',
        'x-request-id': 'refused-1',
        'x-content-type-options': 'nosniff',
      });
      expect(refused.text).toBe(
        'retry: 5000\n\n' +
          'event: refused\ndata: {"status":429,"code":"TOO_MANY_STREAMS","retry_after_ms":5000}\n\n',
      );
      // The access line says what went on the wire, and why; one warn line says the refusal.
      await vi.waitFor(() =>
        expect(harness.lines()).toContainEqual(
          expect.objectContaining({
            request_id: 'refused-1',
            status_code: 200,
            level: 'info',
            reason: 'TOO_MANY_STREAMS',
          }),
        ),
      );
      expect(harness.lines()).toContainEqual(
        expect.objectContaining({
          level: 'warn',
          msg: 'event stream refused',
          code: 'TOO_MANY_STREAMS',
          status: 429,
          retry_after_ms: 5000,
        }),
      );
    } finally {
      for (const stream of open) stream.close();
    }
  });

  it('answers a temporary refusal of an event stream route’s authentication as `event: refused`, a permanent one as a problem', async () => {
    const harness = await build();
    const { port } = harness;
    const down = await get(port, '/guarded-events', { headers: { 'x-refuse': '503' } });
    expect([down.status, down.headers['content-type']]).toEqual([
      200,
      'text/event-stream; charset=utf-8',
    ]);
    // The error's Retry-After (1 s for a store that is down), and no word of its message.
    expect(down.text).toBe(
      'retry: 1000\n\n' +
        'event: refused\ndata: {"status":503,"code":"UNAVAILABLE","retry_after_ms":1000}\n\n',
    );
    expect(harness.lines()).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        msg: 'event stream refused',
        code: 'UNAVAILABLE',
        status: 503,
        err: expect.objectContaining({ code: 'UNAVAILABLE' }) as unknown,
      }),
    );
    const unauthorized = await get(port, '/guarded-events', { headers: { 'x-refuse': '401' } });
    expect(unauthorized.status).toBe(401);
    expect(problemOf(unauthorized)).toMatchObject({ status: 401, detail: 'Sign in first.' });
    const fine = await openStream(port, '/guarded-events');
    try {
      expect(fine.status).toBe(200);
      await fine.until((text) => text.includes('id: 2\n'));
    } finally {
      fine.close();
    }
    expect(harness.guarded.count).toBe(3);
  });

  it('closes the connection when a stream ends: after `event: shutdown` the server closes a keep-alive socket, and refuses a new stream as `event: refused`', async () => {
    const harness = await build();
    const socket = connect({ host: '127.0.0.1', port: harness.port });
    socket.on('error', () => undefined);
    let raw = '';
    socket.on('data', (chunk: Buffer) => (raw += chunk.toString('latin1')));
    const closed = new Promise<'closed'>((resolve) =>
      socket.once('close', () => resolve('closed')),
    );
    try {
      await once(socket, 'connect');
      // HTTP/1.1 without Connection: close: a keep-alive request, as a browser's.
      socket.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await vi.waitFor(() => expect(raw).toContain('id: 2\n'));
      expect(raw).toMatch(/\r\nconnection: close\r\n/i);
      // Only the streams drain: the listener does not, so the stream's own headers must close it.
      harness.streams.drain();
      // Well within the keep-alive timeout (5 s), which would close an idle socket anyway.
      const outcome = await Promise.race([
        closed,
        new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), 3_000)),
      ]);
      expect(outcome).toBe('closed');
      expect(raw).toMatch(/event: shutdown\ndata: \{\}\n\n/);
    } finally {
      socket.destroy();
    }
    const refused = await get(harness.port, '/events');
    expect(refused.status).toBe(200);
    expect(refused.text).toBe(
      'retry: 1000\n\n' +
        'event: refused\ndata: {"status":503,"code":"SHUTTING_DOWN","retry_after_ms":1000}\n\n',
    );
  });

  it('stop() closes a connection that never sent a request (drained, not held to the deadline) but lets a request in flight finish', async () => {
    // Below the headers timeout (10 s), which would otherwise be what closes the unused socket.
    const harness = await build({ shutdownTimeoutMs: 5_000 });
    const { port, server } = harness;
    const unused = connect({ host: '127.0.0.1', port });
    unused.on('error', () => undefined);
    const unusedClosed = once(unused, 'close');
    try {
      await once(unused, 'connect');
      let answered = false;
      const inFlight = get(port, '/slow').finally(() => (answered = true));
      await vi.waitFor(() => expect(harness.waiting.count).toBe(1));
      await vi.waitFor(async () => expect(await connectionsOf(server)).toBe(2));

      const stopping = harness.lifecycle.stop();
      await unusedClosed;
      // The unused connection is gone while the request is still being served.
      expect(answered).toBe(false);
      harness.release.resolve();
      expect((await inFlight).status).toBe(200);
      expect(await stopping).toBe('drained');
    } finally {
      unused.destroy();
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

describe('Fastify: a route without `eventStream`', () => {
  it('answers its temporary refusals as problems, as any route', async () => {
    const harness = await fastifyApp();
    built.push(harness);
    const down = await get(harness.port, '/guarded-plain', { headers: { 'x-refuse': '503' } });
    expect(down.status).toBe(503);
    expect(down.headers['retry-after']).toBe('1');
    expect(problemOf(down)).toMatchObject({ status: 503 });
  });
});

/** What a CORS test app saw: how often the route's own hook and its handler ran. */
interface CorsApp {
  readonly port: number;
  readonly calls: { hook: number; handler: number };
  readonly lines: () => Record<string, unknown>[];
}

const APP_ORIGIN = 'https://app.example.com';
const EVIL_ORIGIN = 'https://evil.example';

/** A Fastify app with the kit's plugin and `options`, and one route with its own onRequest hook (its authentication). */
async function fastifyCorsApp(
  options: { corsOrigins?: readonly string[]; corsAllowedHeaders?: readonly string[] } = {},
): Promise<CorsApp & { close(): Promise<void> }> {
  const capture = capturedLogger();
  const { logger } = capture;
  const app = Fastify(fastifyServerOptions({ logger }));
  await app.register(fastifyServer, {
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
    problems: createProblems(),
    metricsToken: null,
    ...options,
  });
  const calls = { hook: 0, handler: 0 };
  const authenticate = {
    onRequest: async () => {
      calls.hook += 1;
      await Promise.resolve();
    },
  };
  const handler = () => {
    calls.handler += 1;
    return { ok: true };
  };
  app.get('/api/things', authenticate, handler);
  app.post('/api/things', authenticate, handler);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    port: (app.server.address() as AddressInfo).port,
    calls,
    lines: capture.lines,
    close: () => app.close(),
  };
}

/** The same policy on Express 5: corsOriginCheck before the route and its authentication. */
async function expressCorsApp(
  options: { corsOrigins?: readonly string[]; corsAllowedHeaders?: readonly string[] } = {},
): Promise<CorsApp & { close(): Promise<void> }> {
  const capture = capturedLogger();
  const { logger } = capture;
  const metrics = createMetrics({ defaultMetrics: false });
  const app = express();
  app.use(nodeHttpObservability(createHttpObservability({ logger, metrics })));
  app.use(securityHeaders());
  app.use(
    corsOriginCheck({
      ...(options.corsOrigins === undefined ? {} : { origins: options.corsOrigins }),
      ...(options.corsAllowedHeaders === undefined
        ? {}
        : { allowedHeaders: options.corsAllowedHeaders }),
    }),
  );
  const calls = { hook: 0, handler: 0 };
  const authenticate = (
    _request: express.Request,
    _response: express.Response,
    next: express.NextFunction,
  ) => {
    calls.hook += 1;
    next();
  };
  const handler = (_request: express.Request, response: express.Response) => {
    calls.handler += 1;
    response.json({ ok: true });
  };
  app.get('/api/things', authenticate, handler);
  app.post('/api/things', authenticate, handler);
  app.use(notFoundHandler());
  app.use(problemHandler({ problems: createProblems(), logger }));
  const server = createServer(app);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    calls,
    lines: capture.lines,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe.each([
  ['Fastify (corsOrigins)', fastifyCorsApp],
  ['Express 5 (corsOriginCheck)', expressCorsApp],
] as const)('CORS on %s', (_name, buildCorsApp) => {
  const apps: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });
  async function build(
    options: { corsOrigins?: readonly string[]; corsAllowedHeaders?: readonly string[] } = {},
  ): Promise<CorsApp> {
    const app = await buildCorsApp(options);
    apps.push(app);
    return app;
  }

  it('is closed by default: another site’s request is refused 403 before the route’s authentication or handler runs, and no CORS header is sent', async () => {
    const { port, calls, lines } = await build();
    const refused = await get(port, '/api/things', {
      headers: { origin: EVIL_ORIGIN, 'x-request-id': 'cross-1' },
    });
    expect(refused.status).toBe(403);
    expect(problemOf(refused)).toMatchObject({
      title: 'Forbidden',
      status: 403,
      detail: 'Requests from this origin are not allowed.',
    });
    expect(refused.headers['access-control-allow-origin']).toBeUndefined();
    expect(refused.headers['x-content-type-options']).toBe('nosniff');
    const post = await get(port, '/api/things', {
      method: 'POST',
      headers: { origin: EVIL_ORIGIN },
    });
    expect(post.status).toBe(403);
    const preflight = await get(port, '/api/things', {
      method: 'OPTIONS',
      headers: { origin: EVIL_ORIGIN, 'access-control-request-method': 'GET' },
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    // A sandboxed page sends `Origin: null`: not the API's own either.
    expect((await get(port, '/api/things', { headers: { origin: 'null' } })).status).toBe(403);
    expect(calls).toEqual({ hook: 0, handler: 0 });
    await vi.waitFor(() =>
      expect(lines()).toContainEqual(
        expect.objectContaining({
          request_id: 'cross-1',
          status_code: 403,
          reason: 'ORIGIN_NOT_ALLOWED',
        }),
      ),
    );

    // The API's own pages (Origin's host is the Host header's) and clients that send no Origin pass.
    const own = await get(port, '/api/things', { headers: { origin: `http://127.0.0.1:${port}` } });
    expect(own.status).toBe(200);
    expect(own.headers['access-control-allow-origin']).toBeUndefined();
    expect((await get(port, '/api/things')).status).toBe(200);
    expect(calls).toEqual({ hook: 2, handler: 2 });
  });

  it('answers an allowed origin: its preflight 204 with methods, headers and max age; its responses with Access-Control-Allow-Origin', async () => {
    const { port, calls } = await build({
      corsOrigins: [APP_ORIGIN],
      corsAllowedHeaders: ['X-API-Key'],
    });
    const preflight = await get(port, '/api/things', {
      method: 'OPTIONS',
      headers: {
        origin: APP_ORIGIN,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, x-api-key',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers).toMatchObject({
      'access-control-allow-origin': APP_ORIGIN,
      'access-control-allow-methods': 'GET, HEAD, POST, PATCH, DELETE',
      'access-control-allow-headers':
        'Authorization, Content-Type, Last-Event-ID, X-Request-ID, X-API-Key',
      'access-control-max-age': '600',
    });
    expect(preflight.headers['access-control-allow-credentials']).toBeUndefined();
    expect(preflight.headers['x-request-id']).toBeDefined();
    // A preflight carries no credentials: the route's authentication never sees it.
    expect(calls).toEqual({ hook: 0, handler: 0 });

    const read = await get(port, '/api/things', { headers: { origin: APP_ORIGIN } });
    expect(read.status).toBe(200);
    expect(read.headers).toMatchObject({
      'access-control-allow-origin': APP_ORIGIN,
      'access-control-expose-headers': 'X-Request-ID, Retry-After, WWW-Authenticate, Location',
    });
    expect(read.headers.vary).toMatch(/origin/i);

    const other = await get(port, '/api/things', { headers: { origin: EVIL_ORIGIN } });
    expect(other.status).toBe(403);
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    expect(calls).toEqual({ hook: 1, handler: 1 });
  });

  it('refuses an allow-list entry that is not an exact origin, or a wildcard, with INVALID_OPTIONS', async () => {
    for (const corsOrigins of [
      ['*'],
      ['https://*.example.com'],
      [`${APP_ORIGIN}/`],
      ['app.example.com'],
    ]) {
      const error = await build({ corsOrigins }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(isServerError(error, 'INVALID_OPTIONS'), corsOrigins[0]).toBe(true);
    }
    const hinted = await build({ corsOrigins: [`${APP_ORIGIN}:443`] }).catch(
      (caught: unknown) => caught,
    );
    expect((hinted as Error).message).toContain(`did you mean ${APP_ORIGIN}?`);
    const header = await build({ corsAllowedHeaders: ['*'] }).catch((caught: unknown) => caught);
    expect(isServerError(header, 'INVALID_OPTIONS')).toBe(true);
  });
});
