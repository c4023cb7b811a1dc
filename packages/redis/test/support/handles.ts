import { randomBytes } from 'node:crypto';
import type { RedisTopology } from '@flowforge/config';
import { Redis as IORedis } from 'ioredis';
import { createRedis, type Redis, type RedisOptions } from '../../src/index.js';
import { redisClientOptions, resolveOptions } from '../../src/internal/client-options.js';
import { Connection } from '../../src/internal/connection.js';

/** The shared server of `scripts/services`: reads and harmless writes under a per-file prefix only. */
export const SHARED_PORT = 6379;

/** The error `promise` rejects with; fails the test when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** A key prefix no other test file (or run) uses. */
export function uniquePrefix(file: string): string {
  return `ff:test:${file}:${randomBytes(4).toString('hex')}:`;
}

export function standaloneTopology(port: number, db = 0): RedisTopology {
  return { mode: 'standalone', tls: false, node: { host: '127.0.0.1', port }, db };
}

/**
 * The command connection `createRedis` builds, on the shared server, for tests
 * of what lies below the handle; `commandTimeout` adds ioredis's own timeout
 * (the handle never sets it). Not connected yet; close it when done.
 */
export function commandConnection(
  name: string,
  options: { readonly keyPrefix?: string; readonly commandTimeout?: number } = {},
): Connection {
  const topology = standaloneTopology(SHARED_PORT);
  if (topology.mode === 'cluster') throw new Error('standalone only');
  const keyPrefix = options.keyPrefix ?? '';
  const resolved = resolveOptions({ name, keyPrefix });
  const clientOptions = redisClientOptions(topology, { keyPrefix }, resolved);
  const client = new IORedis(
    options.commandTimeout === undefined
      ? clientOptions
      : { ...clientOptions, commandTimeout: options.commandTimeout },
  );
  return new Connection(client, {
    role: 'commands',
    handle: name,
    owned: true,
    connectTimeoutMs: resolved.connectTimeoutMs,
    closeTimeoutMs: resolved.commandTimeoutMs,
    logger: undefined,
  });
}

/** A plain ioredis client that writes the data the tests read (never the package under test). */
export function writerFor(port: number): IORedis {
  const writer = new IORedis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  });
  writer.on('error', () => undefined);
  return writer;
}

/** Deletes every key under `prefix` on the writer's server. */
export async function deletePrefix(writer: IORedis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await writer.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await writer.del(...keys);
  } while (cursor !== '0');
}

/** Opens handles and closes them all in afterAll, even after a failed test. */
export class Handles {
  readonly #open: Redis[] = [];

  open(options: RedisOptions): Redis {
    const handle = createRedis(options);
    this.#open.push(handle);
    return handle;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.#open.splice(0).map((handle) => handle.close()));
  }
}

/**
 * Records what must never happen while a handle lives through an outage:
 * uncaught exceptions, unhandled rejections and ioredis's "Unhandled error
 * event" lines (it prints those when an 'error' event has no listener).
 */
export function watchProcess(): { readonly problems: unknown[]; stop(): void } {
  const problems: unknown[] = [];
  const record = (error: unknown): void => {
    problems.push(error);
  };
  const originalError = console.error;
  console.error = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('[ioredis] Unhandled error event')) {
      problems.push(args.join(' '));
    }
    originalError(...args);
  };
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  return {
    problems,
    stop() {
      console.error = originalError;
      process.off('uncaughtException', record);
      process.off('unhandledRejection', record);
    },
  };
}
