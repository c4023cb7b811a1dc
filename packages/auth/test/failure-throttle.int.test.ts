// The throttle of failed API-key attempts against the real Redis and PostgreSQL of
// scripts/services: counts shared between instances through Redis keys, the insurance
// limiter while Redis is down, and the three bindings (Fastify hooks, Express 5 and a plain
// node:http server with the `./node` middleware) answering 429 with Retry-After before the
// key store is reached.
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type ErrorRequestHandler } from 'express';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '@flowforge/observability';
import {
  createApiKey,
  createApiKeyVerifier,
  createFailureThrottle,
  isAuthError,
  type ApiKeyVerifier,
  FAILURE_THROTTLE_PREFIX,
  type FailureThrottle,
} from '../src/index.js';
import * as fastifyHooks from '../src/fastify.js';
import * as node from '../src/node.js';
import { createAuthTestDatabase, type AuthTestDatabase } from './support/postgres.js';
import { startTcpProxy } from './support/real-keycloak.js';
import { loadSettings } from '@flowforge/config';
import { createRedis, type OwnedKeyspace, type Redis } from '@flowforge/redis';

/** The real Redis of scripts/services. */
const REDIS_PORT = 6379;
/** A keyspace of this run's own, under the prefix the app would own. */
const prefix = (): string => `${FAILURE_THROTTLE_PREFIX}test-${randomBytes(4).toString('hex')}:`;
const handles: Redis[] = [];
/** What the app passes: @flowforge/redis's owned keyspace, on a handle of its own. */
const store = (keyspace: string, options?: { port?: number }): OwnedKeyspace => {
  const { redis: settings } = loadSettings({
    APP_ENV: 'test',
    REDIS_URL: `redis://127.0.0.1:${options?.port ?? REDIS_PORT}`,
    // An outage is noticed in a fraction of a second, not after the 2 s default.
    REDIS_COMMAND_TIMEOUT_MS: '300',
  });
  const redis = createRedis(settings);
  handles.push(redis);
  return redis.ownedKeyspace(keyspace);
};

// The keys expire with their windows; only the connections need closing.
afterAll(async () => {
  for (const redis of handles.splice(0)) await redis.close();
});

async function verdict(throttle: FailureThrottle, client: string): Promise<unknown> {
  try {
    await throttle.assertAllowed(client);
    return 'allowed';
  } catch (error) {
    if (!isAuthError(error)) throw error;
    return { code: error.code, status: error.status, retryAfterSeconds: error.retryAfterSeconds };
  }
}

describe('over Redis keys the app owns', () => {
  it("two instances over one keyspace share counts: one instance's failures block the other", async () => {
    const keyspace = prefix();
    const one = createFailureThrottle({ max: 3, windowSeconds: 60, store: store(keyspace) });
    const other = createFailureThrottle({ max: 3, windowSeconds: 60, store: store(keyspace) });
    const client = '203.0.113.7';
    await one.recordFailure(client);
    await other.recordFailure(client);
    await one.recordFailure(client);
    for (const instance of [one, other]) {
      const refused = (await verdict(instance, client)) as { retryAfterSeconds: number };
      expect(refused).toMatchObject({ code: 'TOO_MANY_FAILURES', status: 429 });
      expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(refused.retryAfterSeconds).toBeLessThanOrEqual(60);
    }
    expect(await verdict(other, '203.0.113.8')).toBe('allowed');
    // The count is one Redis key under the prefix, expiring with the window.
    const reader = store(keyspace);
    expect(await reader.get(`${keyspace}${client}`)).toBe('3');
    const ttl = await reader.pttl(`${keyspace}${client}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    // An operator lifting the block on one instance lifts it everywhere.
    await other.reset(client);
    expect(await verdict(one, client)).toBe('allowed');
    expect(await reader.get(`${keyspace}${client}`)).toBeNull();
  });

  it('a window ends: the key expires in Redis and the client may try again', async () => {
    const keyspace = prefix();
    const throttle = createFailureThrottle({ max: 1, windowSeconds: 1, store: store(keyspace) });
    await throttle.recordFailure('203.0.113.9');
    expect(await verdict(throttle, '203.0.113.9')).toMatchObject({ retryAfterSeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(await store(keyspace).get(`${keyspace}203.0.113.9`)).toBeNull();
    expect(await verdict(throttle, '203.0.113.9')).toBe('allowed');
  });

  it('a count that lost its expiry gets one back when it reaches the limit: no client is blocked for good', async () => {
    const keyspace = prefix();
    const raw = store(keyspace);
    const key = `${keyspace}203.0.113.10`;
    // What is left when the expiry of a new window was never set (the process died between).
    await raw.set(key, '1');
    const throttle = createFailureThrottle({ max: 2, windowSeconds: 60, store: raw });
    await throttle.attempt('203.0.113.10');
    await expect(throttle.attempt('203.0.113.10')).rejects.toMatchObject({
      code: 'TOO_MANY_FAILURES',
      retryAfterSeconds: 60,
    });
    const ttl = await raw.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    // And read without a failure (a blocked client's check) it is mended too.
    await raw.set(key, '5');
    expect(await verdict(throttle, '203.0.113.10')).toMatchObject({ retryAfterSeconds: 60 });
    expect(await raw.pttl(key)).toBeGreaterThan(0);
  });

  it('a valid attempt gives its point back: a client that only uses its key never nears the limit', async () => {
    const keyspace = prefix();
    const raw = store(keyspace);
    const throttle = createFailureThrottle({ max: 2, windowSeconds: 60, store: raw });
    for (let i = 0; i < 5; i += 1) {
      await throttle.attempt('203.0.113.11');
      await throttle.forgive('203.0.113.11');
    }
    // Back at zero, the key is gone rather than left without the expiry a new one needs.
    expect(await raw.get(`${keyspace}203.0.113.11`)).toBeNull();
    expect(await verdict(throttle, '203.0.113.11')).toBe('allowed');
  });

  it('Redis down: the insurance limiter throttles per instance; back up: shared again', async () => {
    const proxy = await startTcpProxy(REDIS_PORT);
    const keyspace = prefix();
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: 'info',
      destination: {
        write: (chunk: string) => {
          for (const line of chunk.split('\n').filter(Boolean)) {
            lines.push(JSON.parse(line) as Record<string, unknown>);
          }
        },
      },
    });
    const throttle = createFailureThrottle({
      max: 3,
      windowSeconds: 60,
      store: store(keyspace, { port: proxy.port }),
      logger,
    });
    try {
      expect(await verdict(throttle, '198.51.100.1')).toBe('allowed'); // connected
      await proxy.stop();
      for (let i = 0; i < 3; i += 1) {
        expect(await verdict(throttle, '198.51.100.2')).toBe('allowed');
        await throttle.recordFailure('198.51.100.2');
      }
      expect(await verdict(throttle, '198.51.100.2')).toMatchObject({
        code: 'TOO_MANY_FAILURES',
      });
      expect(await verdict(throttle, '198.51.100.3')).toBe('allowed');
      // One warning for the outage, not one per call.
      expect(lines.filter((line) => String(line.msg).includes('the store failed'))).toEqual([
        expect.objectContaining({ level: 'warn' }),
      ]);
    } finally {
      await proxy.start();
    }
    // Back: counts are read from (and written to) Redis again.
    const other = createFailureThrottle({ max: 3, windowSeconds: 60, store: store(keyspace) });
    for (let i = 0; i < 3; i += 1) await other.recordFailure('198.51.100.4');
    // Once the handle has reconnected through the proxy (its backoff, a moment).
    await vi.waitFor(
      async () =>
        expect(await verdict(throttle, '198.51.100.4')).toMatchObject({
          code: 'TOO_MANY_FAILURES',
        }),
      { timeout: 10_000, interval: 200 },
    );
    expect(lines.at(-1)).toMatchObject({
      level: 'info',
      msg: expect.stringContaining('the store is back') as string,
    });
  });
});

// ---------------------------------------------------------------------------------------------
// The bindings, over real HTTP and a real key store.

const WIDGET = randomUUID();
let database: AuthTestDatabase;
let goodKey: string;
let realVerifier: ApiKeyVerifier;

/** The real verifier, counting the calls that reach it (each one is a PostgreSQL transaction). */
function counting(): { verifier: ApiKeyVerifier; calls: () => number } {
  let calls = 0;
  return {
    verifier: {
      verify: (key) => {
        calls += 1;
        return realVerifier.verify(key);
      },
    },
    calls: () => calls,
  };
}

beforeAll(async () => {
  database = await createAuthTestDatabase();
  const created = await createApiKey(database.database, randomUUID(), {
    name: 'Wallboard',
    widgetIds: [WIDGET],
    createdBy: randomUUID(),
  });
  goodKey = created.key;
  realVerifier = createApiKeyVerifier(database.database);
});

afterAll(async () => {
  await database?.close();
});

/** What the server kit's problem mapping does with an AuthError: its status, and Retry-After. */
function answerOf(error: unknown): {
  status: number;
  headers: Record<string, string>;
  body: { code: string };
} {
  if (!isAuthError(error)) return { status: 500, headers: {}, body: { code: 'BUG' } };
  return {
    status: error.status,
    headers:
      error.retryAfterSeconds === undefined
        ? {}
        : { 'retry-after': String(error.retryAfterSeconds) },
    body: { code: error.code },
  };
}

interface Server {
  readonly url: string;
  close(): Promise<void>;
}

type Start = (verifier: ApiKeyVerifier, throttle: FailureThrottle) => Promise<Server>;

const startFastify: Start = async (verifier, throttle) => {
  const app = Fastify();
  await app.register(fastifyHooks.fastifyAuth);
  app.setErrorHandler((error, _request, reply) => {
    const answer = answerOf(error);
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  });
  app.get(
    '/embed',
    { onRequest: fastifyHooks.apiKey(verifier, 'x-api-key', { throttle }) },
    (request) => ({ method: request.principal?.method }),
  );
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, close: () => app.close() };
};

const startExpress: Start = async (verifier, throttle) => {
  const app = express();
  app.get('/embed', node.apiKey(verifier, 'x-api-key', { throttle }), (req, res) => {
    res.json({ method: node.principalOf(req)?.method });
  });
  const onError: ErrorRequestHandler = (error, _req, res, _next) => {
    const answer = answerOf(error);
    res.status(answer.status).set(answer.headers).json(answer.body);
  };
  app.use(onError);
  const server = createServer(app).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
};

const startNodeHttp: Start = async (verifier, throttle) => {
  const middleware = node.apiKey(verifier, 'x-api-key', { throttle });
  const server = createServer((req, res) => {
    middleware(req, res, (error) => {
      const answer =
        error === undefined
          ? { status: 200, headers: {}, body: { method: node.principalOf(req)?.method } }
          : answerOf(error);
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      res.end(JSON.stringify(answer.body));
    });
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
};

/** A GET over a fresh connection: status, headers, body. */
function get(
  base: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(new URL('/embed', base), { headers, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: JSON.parse(text) as Record<string, unknown>,
        }),
      );
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

describe.each([
  ['Fastify hooks', startFastify],
  ['Express 5 middleware', startExpress],
  ['node:http middleware', startNodeHttp],
] as const)('%s', (_name, start) => {
  it('answers 429 with Retry-After after N failures, and never reaches the key store again', async () => {
    const { verifier, calls } = counting();
    // Two instances of the service over one Redis keyspace: failures on one count on both.
    const keyspace = prefix();
    const throttles = [0, 1].map(() =>
      createFailureThrottle({ max: 3, windowSeconds: 60, store: store(keyspace) }),
    );
    const servers = [await start(verifier, throttles[0]!), await start(verifier, throttles[1]!)];
    const [one, other] = servers as [Server, Server];
    try {
      // A valid key counts nothing.
      expect((await get(one.url, { 'x-api-key': goodKey })).body).toEqual({ method: 'api_key' });
      // A missing key (401, no lookup) counts, and so do wrong ones (401 after a lookup).
      expect((await get(one.url)).status).toBe(401);
      const wrong = `ffk_${randomUUID().replaceAll('-', '')}_${'A'.repeat(43)}`;
      expect((await get(other.url, { 'x-api-key': wrong })).status).toBe(401);
      expect((await get(one.url, { 'x-api-key': wrong })).status).toBe(401);
      expect(calls()).toBe(3);
      // Now this client is over on both instances: 429 before any lookup, even with the right key.
      for (const server of [one, other]) {
        for (const headers of [{ 'x-api-key': wrong }, { 'x-api-key': goodKey }, {}]) {
          const answer = await get(server.url, headers);
          expect([answer.status, answer.body]).toEqual([429, { code: 'TOO_MANY_FAILURES' }]);
          const retryAfter = Number(answer.headers['retry-after']);
          expect(retryAfter).toBeGreaterThanOrEqual(1);
          expect(retryAfter).toBeLessThanOrEqual(60);
        }
      }
      expect(calls()).toBe(3);
    } finally {
      for (const server of servers) await server.close();
    }
  });

  it('a burst of wrong keys sent all at once reaches the key store at most max times', async () => {
    const { verifier, calls } = counting();
    const throttle = createFailureThrottle({ max: 3, windowSeconds: 60, store: store(prefix()) });
    const server = await start(verifier, throttle);
    try {
      const wrong = `ffk_${randomUUID().replaceAll('-', '')}_${'A'.repeat(43)}`;
      const answers = await Promise.all(
        Array.from({ length: 60 }, () => get(server.url, { 'x-api-key': wrong })),
      );
      const statuses = answers.map((answer) => answer.status);
      // Each attempt takes its point before the lookup: reading the count first let all 60 in.
      expect(statuses.filter((status) => status === 401)).toHaveLength(3);
      expect(statuses.filter((status) => status === 429)).toHaveLength(57);
      expect(calls()).toBe(3);
    } finally {
      await server.close();
    }
  });
});

describe('apiKey without a throttle option', () => {
  it('throttles anyway: 10 failures per 60 s in memory, per hook (Fastify)', async () => {
    const { verifier, calls } = counting();
    const app = Fastify();
    await app.register(fastifyHooks.fastifyAuth);
    app.setErrorHandler((error, _request, reply) => {
      const answer = answerOf(error);
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    });
    app.get('/embed', { onRequest: fastifyHooks.apiKey(verifier) }, () => ({ ok: true }));
    app.get(
      '/open',
      { onRequest: fastifyHooks.apiKey(verifier, 'x-api-key', { throttle: null }) },
      () => ({ ok: true }),
    );
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 11; i += 1) {
        statuses.push(
          (await app.inject({ url: '/embed', headers: { 'x-api-key': 'wrong' } })).statusCode,
        );
      }
      expect(statuses).toEqual([...Array<number>(10).fill(401), 429]);
      // throttle: null turns it off.
      for (let i = 0; i < 11; i += 1) {
        expect(
          (await app.inject({ url: '/open', headers: { 'x-api-key': 'wrong' } })).statusCode,
        ).toBe(401);
      }
      expect(calls()).toBe(21);
    } finally {
      await app.close();
    }
  });
});
