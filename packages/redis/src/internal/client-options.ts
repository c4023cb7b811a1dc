import type { RedisTopology } from '@flowforge/config';
import type { ClusterOptions, RedisOptions as IORedisOptions } from 'ioredis';
import { RedisError } from '../errors.js';
import type { RedisOptions } from '../options.js';
import { backoffDelay, DEFAULT_RETRY, type ResolvedRetry } from './backoff.js';

/** ioredis options of one connection (no RESP3 reply mapping: the legacy shapes are what the view parses). */
export type NodeOptions = Omit<IORedisOptions, 'replyMapping'>;
/** ioredis Cluster options with node options as above. */
export type ClusterClientOptions = Omit<ClusterOptions, 'redisOptions'> & {
  readonly redisOptions: Omit<NonNullable<ClusterOptions['redisOptions']>, 'replyMapping'>;
};

/** The options of a handle after defaults and validation. */
export interface ResolvedOptions {
  readonly name: string;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retry: ResolvedRetry;
  readonly keyPrefix: string;
  readonly maxBlockingConnections: number;
}

const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const chosen = value ?? fallback;
  if (!Number.isInteger(chosen) || chosen <= 0) {
    throw new RedisError('INVALID_OPTIONS', `${name} must be a whole number above 0`);
  }
  return chosen;
}

/** @throws {RedisError} INVALID_OPTIONS */
export function resolveOptions(options: RedisOptions): ResolvedOptions {
  const name = options.name ?? 'main';
  if (!NAME.test(name)) {
    throw new RedisError(
      'INVALID_OPTIONS',
      'name must be 1–64 letters, digits or _ . : - (it is a metrics label and the connection name)',
    );
  }
  const retry: ResolvedRetry = {
    initialDelayMs: positiveInteger(
      'retry.initialDelayMs',
      options.retry?.initialDelayMs,
      DEFAULT_RETRY.initialDelayMs,
    ),
    maxDelayMs: positiveInteger(
      'retry.maxDelayMs',
      options.retry?.maxDelayMs,
      DEFAULT_RETRY.maxDelayMs,
    ),
    factor: options.retry?.factor ?? DEFAULT_RETRY.factor,
    jitter: options.retry?.jitter ?? DEFAULT_RETRY.jitter,
  };
  if (!(retry.factor >= 1) || !Number.isFinite(retry.factor)) {
    throw new RedisError('INVALID_OPTIONS', 'retry.factor must be a finite number of at least 1');
  }
  if (!(retry.jitter >= 0 && retry.jitter <= 1)) {
    throw new RedisError('INVALID_OPTIONS', 'retry.jitter must be between 0 and 1');
  }
  if (retry.maxDelayMs < retry.initialDelayMs) {
    throw new RedisError('INVALID_OPTIONS', 'retry.maxDelayMs must be at least initialDelayMs');
  }
  const keyPrefix = options.keyPrefix ?? '';
  if (typeof keyPrefix !== 'string' || /[*?[\]]/.test(keyPrefix)) {
    throw new RedisError('INVALID_OPTIONS', 'keyPrefix must be a string without * ? [ ]');
  }
  return {
    name,
    commandTimeoutMs: positiveInteger('commandTimeoutMs', options.commandTimeoutMs, 2_000),
    connectTimeoutMs: positiveInteger('connectTimeoutMs', options.connectTimeoutMs, 5_000),
    retry,
    keyPrefix,
    maxBlockingConnections: positiveInteger(
      'maxBlockingConnections',
      options.maxBlockingConnections,
      4,
    ),
  };
}

/**
 * What every connection of a handle shares. The fail-fast part: no offline
 * queue (a command while disconnected rejects at once instead of waiting for a
 * reconnect), `maxRetriesPerRequest: 0` (a command in flight when the
 * connection drops rejects at once: ioredis 6's default waits through 20
 * reconnects, 73.6 s measured) and no resending of unanswered commands after a
 * reconnect (a caller that got an error must not see its command run later).
 */
function commonOptions(
  options: RedisOptions,
  resolved: ResolvedOptions,
  tls: boolean,
): NodeOptions {
  return {
    username: options.username ?? undefined,
    password: options.password === '' ? undefined : options.password,
    connectTimeout: resolved.connectTimeoutMs,
    // No `commandTimeout`: it arms a timer per command; the handle times commands out itself (core.ts).
    connectionName: `flowforge:${resolved.name}`,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableOfflineQueue: false,
    lazyConnect: true,
    ...(resolved.keyPrefix === '' ? {} : { keyPrefix: resolved.keyPrefix }),
    ...(tls || options.tls ? { tls: { ...options.tls } } : {}),
    // After a Sentinel failover a connection can still reach the demoted
    // primary: reconnect (through the Sentinels) when a write meets READONLY.
    reconnectOnError: (error) => error.message.startsWith('READONLY'),
  };
}

/** ioredis options of a standalone or Sentinel-backed connection. */
export function redisClientOptions(
  topology: Exclude<RedisTopology, { mode: 'cluster' }>,
  options: RedisOptions,
  resolved: ResolvedOptions,
): NodeOptions {
  const retryStrategy = (attempt: number): number => backoffDelay(attempt, resolved.retry);
  const common = commonOptions(options, resolved, topology.tls);
  if (topology.mode === 'standalone') {
    return {
      ...common,
      host: topology.node.host,
      port: topology.node.port,
      db: topology.db,
      retryStrategy,
    };
  }
  return {
    ...common,
    sentinels: topology.sentinels.map((node) => ({ host: node.host, port: node.port })),
    name: topology.masterName,
    role: 'master',
    db: topology.db,
    retryStrategy,
    // Inside one connect attempt ioredis cycles through the Sentinels; without
    // a command timeout a Sentinel that accepts and never answers hangs it.
    sentinelRetryStrategy: retryStrategy,
    sentinelCommandTimeout: resolved.commandTimeoutMs,
    enableTLSForSentinelMode: topology.tls,
    ...(topology.tls && options.tls ? { sentinelTLS: { ...options.tls } } : {}),
  };
}

/** ioredis startup nodes and options of a Cluster connection. */
export function clusterClientOptions(
  topology: Extract<RedisTopology, { mode: 'cluster' }>,
  options: RedisOptions,
  resolved: ResolvedOptions,
): { nodes: { host: string; port: number }[]; options: ClusterClientOptions } {
  const { keyPrefix, enableOfflineQueue, lazyConnect, ...node } = commonOptions(
    options,
    resolved,
    topology.tls,
  );
  return {
    nodes: topology.nodes.map((entry) => ({ host: entry.host, port: entry.port })),
    options: {
      // Node connections always keep an offline queue in ioredis; the cluster's
      // own gate (this option) is what rejects while a node is not ready.
      enableOfflineQueue,
      lazyConnect,
      ...(keyPrefix === undefined ? {} : { keyPrefix }),
      redisOptions: node,
      clusterRetryStrategy: (attempt: number) => backoffDelay(attempt, resolved.retry),
      slotsRefreshTimeout: resolved.commandTimeoutMs,
    },
  };
}
