import { Cluster, Redis as IORedis } from 'ioredis';
import { RedisError } from './errors.js';
import { BlockingPool } from './internal/blocking.js';
import {
  clusterClientOptions,
  redisClientOptions,
  resolveOptions,
  type ClusterClientOptions,
  type NodeOptions,
  type ResolvedOptions,
} from './internal/client-options.js';
import { Connection, type Client, type ConnectionSettings } from './internal/connection.js';
import { createCore } from './internal/core.js';
import { createRedisInstruments } from './internal/metrics.js';
import { Subscriptions } from './internal/subscriptions.js';
import type { RedisOptions } from './options.js';
import { createOwnedKeyspace, type OwnedKeyspace } from './owned-keyspace.js';
import { createReadOnlyView, type ReadOnlyRedis } from './read-only.js';

/** What {@link Redis.health} reports when Redis answers. */
export interface RedisHealth {
  /** Always `up`: a Redis that does not answer makes `health()` throw instead. */
  readonly status: 'up';
  /** Round trip of PING (of the slowest primary on Cluster), connecting included. */
  readonly latencyMs: number;
}

/** A handle on one Redis deployment. Nothing connects until the first command or `health()`. */
export interface Redis {
  /** The read commands: the only way FlowForge reads Redis data. */
  readonly data: ReadOnlyRedis;
  /** Which kind of deployment the handle talks to. */
  readonly mode: 'standalone' | 'sentinel' | 'cluster';
  /** The `name` option: the `client` label of the metrics. */
  readonly name: string;
  /**
   * Read and write access to the keys under `prefix`, for infrastructure the
   * app owns (a cache): the one escape from read-only, limited to that prefix.
   * @throws {RedisError} INVALID_ARGUMENT for an empty prefix or one with `* ? [ ]`.
   * @example
   * const cache = redis.ownedKeyspace('flowforge:cache:widgets:');
   * await cache.set(`flowforge:cache:widgets:${id}`, json, { ttlMs: 30_000 });
   */
  ownedKeyspace(prefix: string): OwnedKeyspace;
  /**
   * PING (every primary of a Cluster), connecting first if needed.
   * @throws {RedisError} UNAVAILABLE, TIMEOUT, AUTH_FAILED, CLOSED
   */
  health(): Promise<RedisHealth>;
  /**
   * Closes every connection of the handle: QUIT (bounded by
   * `commandTimeoutMs`, then the socket is dropped). Commands still in flight
   * and every later call reject with CLOSED. A `client` passed in is left open.
   * Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Creates a handle. Connects lazily; standalone, Sentinel or Cluster follow
 * from `topology` (or the `client` passed in).
 *
 * @throws {RedisError} NOT_CONFIGURED when there is neither `topology` nor
 *   `client` (REDIS_URL is not set); INVALID_OPTIONS for an option out of range
 *   or a `name` already reporting to the same `metrics`.
 * @example
 * const redis = createRedis({ ...settings.redis, logger, metrics });
 * const name = await redis.data.hget(`user:${id}`, 'name');
 */
export function createRedis(options: RedisOptions): Redis {
  return openRedis(options, undefined);
}

/** {@link createRedis} with a hook that runs once the handle is closed (the shared handle uses it). */
export function openRedis(options: RedisOptions, onClosed: (() => void) | undefined): Redis {
  const resolved = resolveOptions(options);
  const { logger } = options;
  if (!options.client && !options.topology) {
    throw new RedisError(
      options.url ? 'INVALID_OPTIONS' : 'NOT_CONFIGURED',
      options.url
        ? '`url` was given without `topology`: pass settings.redis from @flowforge/config whole'
        : 'no Redis configured: set REDIS_URL (or pass `client`)',
    );
  }
  // Lazy: building the client opens nothing, so a name conflict below leaks nothing.
  const { client, mode } = buildClient(options, resolved);
  const instruments = options.metrics
    ? createRedisInstruments(options.metrics, resolved.name, () => client.status === 'ready')
    : undefined;
  const owned = !options.client;
  const settings = (role: ConnectionSettings['role']): ConnectionSettings => ({
    role,
    handle: resolved.name,
    owned: role === 'commands' ? owned : true,
    connectTimeoutMs: resolved.connectTimeoutMs,
    closeTimeoutMs: resolved.commandTimeoutMs,
    logger,
  });
  const connection = new Connection(client, {
    ...settings('commands'),
    ...(instruments ? { onReconnecting: () => instruments.reconnect() } : {}),
  });
  const core = createCore(connection, resolved.keyPrefix, instruments, resolved.commandTimeoutMs);
  const main: Client = client;
  const subscriptions = new Subscriptions(
    () => new Connection(duplicate(main, 'subscriber', resolved.name), settings('subscriber')),
    instruments,
    logger,
    resolved.commandTimeoutMs,
  );
  const blocking = new BlockingPool(
    () => new Connection(duplicate(main, 'blocking', resolved.name), settings('blocking')),
    resolved.maxBlockingConnections,
  );
  const data = createReadOnlyView({
    core,
    subscriptions,
    blocking,
    commandTimeoutMs: resolved.commandTimeoutMs,
    scanTargets: () => (main instanceof Cluster ? main.nodes('master') : [main]),
  });
  const ping = instruments?.tally('ping');

  let closed: Promise<void> | undefined;
  return {
    data,
    mode,
    name: resolved.name,
    ownedKeyspace: (prefix) => createOwnedKeyspace(core, prefix),
    async health() {
      const started = performance.now();
      if (main instanceof Cluster) {
        if (!connection.ready) {
          await connection.whenReady().catch((error: unknown) => {
            throw core.fail(error);
          });
        }
        const primaries = main.nodes('master');
        if (primaries.length === 0) {
          throw core.fail(new RedisError('UNAVAILABLE', 'the cluster has no primary'));
        }
        await Promise.all(primaries.map((node) => core.run(ping, 'ping', [], undefined, node)));
      } else {
        await core.run(ping, 'ping', []);
      }
      return { status: 'up', latencyMs: Math.round((performance.now() - started) * 100) / 100 };
    },
    close() {
      closed ??= (async () => {
        await Promise.all([connection.close(), subscriptions.close(), blocking.close()]);
        core.stop();
        instruments?.release();
        onClosed?.();
      })();
      return closed;
    },
  };
}

function buildClient(
  options: RedisOptions,
  resolved: ResolvedOptions,
): { client: Client; mode: Redis['mode'] } {
  if (options.client) {
    // Typed structurally in the public API (IoRedisClient); checked here instead.
    const client: unknown = options.client;
    if (client instanceof Cluster) return { client, mode: 'cluster' };
    if (client instanceof IORedis) {
      return { client, mode: client.options.sentinels ? 'sentinel' : 'standalone' };
    }
    throw new RedisError(
      'INVALID_OPTIONS',
      '`client` is not an ioredis Redis or Cluster of the ioredis that @flowforge/redis uses (two copies of ioredis installed?)',
    );
  }
  const topology = options.topology!;
  if (topology.mode === 'cluster') {
    const { nodes, options: clusterOptions } = clusterClientOptions(topology, options, resolved);
    return { client: new Cluster(nodes, clusterOptions), mode: 'cluster' };
  }
  return {
    client: new IORedis(redisClientOptions(topology, options, resolved)),
    mode: topology.mode,
  };
}

/**
 * A new connection with the options of `client` and the fail-fast ones: the
 * pub/sub connection and the blocking-read connections. A blocking read
 * bounds its own wait, so those get no command timeout.
 */
function duplicate(client: Client, role: 'subscriber' | 'blocking', name: string): Client {
  const connectionName = `flowforge:${name}:${role}`;
  const failFast: NodeOptions = {
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectionName,
    ...(role === 'blocking' ? { commandTimeout: undefined } : {}),
  };
  if (client instanceof Cluster) {
    const options: ClusterClientOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      redisOptions: { ...(client.options.redisOptions as NodeOptions | undefined), ...failFast },
    };
    return client.duplicate([], options);
  }
  return client.duplicate({ ...failFast, lazyConnect: true, enableOfflineQueue: false });
}
