/**
 * What a handle does when its server misbehaves, on private redis-server
 * processes (the shared server is never stopped): killed and restarted on the
 * same port, a server that accepts and never answers, refused credentials,
 * paused clients (TIMEOUT). Nothing may crash the process, print ioredis's
 * "Unhandled error event", wait out ioredis's retry loop, or run later.
 */
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, createMetrics } from '@flowforge/observability';
import { isRedisError, type RedisError } from '../src/index.js';
import {
  Handles,
  rejectionOf,
  standaloneTopology,
  watchProcess,
  writerFor,
} from './support/handles.js';
import type { Redis as IORedis } from 'ioredis';
import { rawCommand, RedisServers, waitFor, type RedisProcess } from './support/redis-servers.js';

const servers = new RedisServers();
const handles = new Handles();
let server: RedisProcess;

beforeAll(async () => {
  server = await servers.standalone(['--enable-debug-command', 'yes']);
});

afterAll(async () => {
  await handles.closeAll();
  await servers.stopAll();
});

let watch: ReturnType<typeof watchProcess>;
beforeEach(() => {
  watch = watchProcess();
});
afterEach(() => {
  watch.stop();
  expect(watch.problems).toEqual([]);
});

/** Settles to 'resolved' or 'rejected', and remembers which, for "did it ever resolve?". */
function track(promise: Promise<unknown>): {
  state: 'pending' | 'resolved' | 'rejected';
  error?: unknown;
} {
  const tracked: { state: 'pending' | 'resolved' | 'rejected'; error?: unknown } = {
    state: 'pending',
  };
  promise.then(
    () => {
      tracked.state = 'resolved';
    },
    (error: unknown) => {
      tracked.state = 'rejected';
      tracked.error = error;
    },
  );
  return tracked;
}

describe('a server that dies and comes back', () => {
  it('fails fast while it is down, replays nothing, and reads again once it is back', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: 'debug',
      destination: {
        write(line: string) {
          lines.push(JSON.parse(line) as Record<string, unknown>);
          return true;
        },
      },
    });
    const metrics = createMetrics({ defaultMetrics: false });
    const redis = handles.open({
      topology: standaloneTopology(server.port),
      name: 'outage',
      logger,
      metrics,
      retry: { initialDelayMs: 50, maxDelayMs: 200 },
    });
    const writer = writerFor(server.port);
    try {
      await writer.set('data:key', 'before');
      expect(await redis.data.get('data:key')).toBe('before');
      await expect(redis.health()).resolves.toMatchObject({ status: 'up' });

      await server.kill();
      const health = await rejectionOf(redis.health());
      expect(isRedisError(health, 'UNAVAILABLE')).toBe(true);
      expect((health as RedisError).retryable).toBe(true);

      // Several calls during the outage: each rejects at once with UNAVAILABLE.
      const cache = redis.ownedKeyspace('cache:');
      const during = [
        track(redis.data.get('data:key')),
        track(redis.data.hgetall('data:hash')),
        // A write: if anything were queued and replayed, this counter would exist afterwards.
        track(cache.incr('cache:replayed')),
      ];
      await waitFor('the calls made during the outage to settle', () =>
        during.every((call) => call.state !== 'pending'),
      );
      for (const call of during) {
        expect(call.state).toBe('rejected');
        expect(isRedisError(call.error, 'UNAVAILABLE')).toBe(true);
      }

      await server.restart();
      await waitFor(
        'health to be up again on the same handle',
        async () => (await redis.health().catch(() => null))?.status === 'up',
        15_000,
        50,
      );
      await writer.set('data:key', 'after');
      expect(await redis.data.get('data:key')).toBe('after');
      // Nothing issued during the outage was sent later.
      expect(await writer.exists('cache:replayed')).toBe(0);
      for (const call of during) expect(call.state).toBe('rejected');

      const text = await metrics.render();
      expect(text).toMatch(
        /flowforge_redis_errors_total\{client="outage",code="UNAVAILABLE"\} [1-9]/,
      );
      expect(text).toMatch(/flowforge_redis_reconnects_total\{client="outage"\} [1-9]/);
      expect(text).toContain('flowforge_redis_connected{client="outage"} 1');
      // One warning for the outage (its first error or the lost connection), not one per retry.
      const warnings = lines.filter((line) => line.level === 'warn' || line.level === 40);
      expect(warnings).toHaveLength(1);
      expect([
        'redis connection lost; reconnecting in the background',
        'redis connection error',
      ]).toContain(warnings[0]?.msg);
      expect(
        lines.filter((line) => line.msg === 'redis reconnect scheduled').length,
      ).toBeGreaterThan(1);
      expect(lines.some((line) => line.msg === 'redis connection restored')).toBe(true);
    } finally {
      writer.disconnect();
    }
  });

  it('rejects a command in flight when the server dies (UNAVAILABLE, not after a timeout)', async () => {
    const redis = handles.open({
      topology: standaloneTopology(server.port),
      name: 'in-flight',
      commandTimeoutMs: 20_000,
    });
    expect(await redis.data.get('data:key')).not.toBeUndefined();
    const admin = writerFor(server.port);
    try {
      await blockServer(admin, server, 10);
      // Written to the socket at once (the connection is ready); the server cannot answer.
      const pending = track(redis.data.get('data:key'));
      await server.kill();
      await waitFor('the in-flight GET to settle', () => pending.state !== 'pending', 5_000, 10);
      expect(pending.state).toBe('rejected');
      expect(isRedisError(pending.error, 'UNAVAILABLE')).toBe(true);
    } finally {
      admin.disconnect();
      await server.restart();
    }
  });
});

/**
 * DEBUG SLEEP on `server` (not awaited: the server itself stops answering),
 * then waits until a PING goes unanswered.
 */
async function blockServer(admin: IORedis, target: RedisProcess, seconds: number): Promise<void> {
  void admin.call('DEBUG', 'SLEEP', String(seconds)).catch(() => undefined);
  await waitFor('the server to stop answering', async () => {
    try {
      await rawCommand(target.port, ['PING'], 100);
      return false;
    } catch {
      return true;
    }
  });
}

describe('timeouts', () => {
  it('rejects with TIMEOUT while the server does not answer, and recovers afterwards', async () => {
    const redis = handles.open({
      topology: standaloneTopology(server.port),
      name: 'timeout',
      commandTimeoutMs: 200,
    });
    const admin = writerFor(server.port);
    try {
      expect(await redis.data.get('data:key')).not.toBeUndefined();
      // Opens the blocking-read connection before the server stops answering.
      await expect(redis.data.xread({ 'data:stream': '0' }, { blockMs: 10 })).resolves.toEqual([]);
      await blockServer(admin, server, 2);
      const error = await rejectionOf(redis.data.get('data:key'));
      expect(isRedisError(error, 'TIMEOUT')).toBe(true);
      expect((error as RedisError).retryable).toBe(true);
      // A blocking read has its own bound: blockMs + commandTimeoutMs.
      const blocked = await rejectionOf(redis.data.xread({ 'data:stream': '$' }, { blockMs: 100 }));
      expect(isRedisError(blocked, 'TIMEOUT')).toBe(true);
      await waitFor(
        'the handle to answer again after the sleep',
        async () => (await redis.data.get('data:key').catch(() => 'failed')) !== 'failed',
        10_000,
        100,
      );
      await expect(redis.health()).resolves.toMatchObject({ status: 'up' });
      await expect(redis.data.xread({ 'data:stream': '0' }, { blockMs: 50 })).resolves.toEqual([]);
    } finally {
      admin.disconnect();
    }
  });

  it('gives up on a server that accepts and never answers after connectTimeoutMs (UNAVAILABLE)', async () => {
    const silent = net.createServer(() => undefined);
    const sockets: net.Socket[] = [];
    silent.on('connection', (socket) => sockets.push(socket));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const { port } = silent.address() as AddressInfo;
      const redis = handles.open({
        topology: standaloneTopology(port),
        name: 'silent',
        connectTimeoutMs: 300,
        commandTimeoutMs: 300,
      });
      const error = await rejectionOf(redis.data.get('data:key'));
      expect(isRedisError(error, 'UNAVAILABLE')).toBe(true);
      expect(isRedisError(await rejectionOf(redis.health()), 'UNAVAILABLE')).toBe(true);
      await redis.close();
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });
});

describe('credentials', () => {
  let secured: RedisProcess;
  const PASSWORD = 's3cret-pa55word';

  beforeAll(async () => {
    secured = await servers.standalone(['--requirepass', PASSWORD]);
  });

  it('connects with the right password', async () => {
    const redis = handles.open({
      topology: standaloneTopology(secured.port),
      password: PASSWORD,
      name: 'auth-ok',
    });
    await expect(redis.health()).resolves.toMatchObject({ status: 'up' });
  });

  it('answers AUTH_FAILED for a wrong or missing password, never echoing it', async () => {
    const wrong = handles.open({
      topology: standaloneTopology(secured.port),
      password: 'not-the-password',
      name: 'auth-wrong',
    });
    const health = await rejectionOf(wrong.health());
    expect(isRedisError(health, 'AUTH_FAILED')).toBe(true);
    expect((health as RedisError).reply).toBe('WRONGPASS');
    const command = await rejectionOf(wrong.data.get('data:key'));
    expect(isRedisError(command, 'AUTH_FAILED')).toBe(true);
    expect(everythingOf(health)).not.toContain('not-the-password');
    expect(everythingOf(command)).not.toContain('not-the-password');

    const missing = handles.open({ topology: standaloneTopology(secured.port), name: 'auth-none' });
    const noAuth = await rejectionOf(missing.data.get('data:key'));
    expect(isRedisError(noAuth, 'AUTH_FAILED')).toBe(true);
    expect((noAuth as RedisError).reply).toBe('NOAUTH');
  });

  /** The error, its cause chain and its properties, as one string. */
  function everythingOf(error: unknown): string {
    const parts: string[] = [];
    let current: unknown = error;
    while (current instanceof Error) {
      parts.push(current.message, current.stack ?? '', JSON.stringify(current));
      current = current.cause;
    }
    return parts.join('\n');
  }
});
