import type { RedisTopology } from '@flowforge/config';
import {
  backoffDelay,
  OptionChecks,
  type WholeNumberRange,
  describeValue,
} from '@flowforge/kernel';
import type { ClusterOptions, RedisOptions as IORedisOptions } from 'ioredis';
import { RedisError } from '../errors.js';
import type { RedisOptions, RetryOptions } from '../options.js';

/** ioredis options of one connection (no RESP3 reply mapping: the legacy shapes are what the view parses). */
export type NodeOptions = Omit<IORedisOptions, 'replyMapping'>;
/** ioredis Cluster options with node options as above. */
export type ClusterClientOptions = Omit<ClusterOptions, 'redisOptions'> & {
  readonly redisOptions: Omit<NonNullable<ClusterOptions['redisOptions']>, 'replyMapping'>;
};

/** The reconnect backoff after defaults. */
export type ResolvedRetry = Required<RetryOptions>;

/** The options of a handle after defaults and validation. */
export interface ResolvedOptions {
  readonly name: string;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retry: ResolvedRetry;
  readonly keyPrefix: string;
  readonly maxBlockingConnections: number;
}

/** Redis's reconnect backoff (the kernel's `backoffDelay` with these numbers). */
export const DEFAULT_RETRY: ResolvedRetry = {
  initialDelayMs: 100,
  maxDelayMs: 5_000,
  factor: 2,
  jitter: 0.5,
};

/** A delay in ms: Node fires a timer longer than 2^31 − 1 ms at once. */
const DELAY: WholeNumberRange = { min: 1, max: 2_147_483_647 };
/** Redis's default `maxclients`: more blocking connections could never all connect. */
const BLOCKING_CONNECTIONS: WholeNumberRange = { min: 1, max: 10_000 };

/** The reconnect backoff; records its problems on `checks`. */
function resolveRetry(checks: OptionChecks, retry: RetryOptions | undefined): ResolvedRetry {
  const resolved: ResolvedRetry = {
    initialDelayMs: checks.wholeNumber(
      'retry.initialDelayMs',
      retry?.initialDelayMs,
      DELAY,
      DEFAULT_RETRY.initialDelayMs,
    ),
    maxDelayMs: checks.wholeNumber(
      'retry.maxDelayMs',
      retry?.maxDelayMs,
      DELAY,
      DEFAULT_RETRY.maxDelayMs,
    ),
    factor: checks.number(
      'retry.factor',
      retry?.factor,
      { min: 1, max: Infinity },
      DEFAULT_RETRY.factor,
    ),
    jitter: checks.number('retry.jitter', retry?.jitter, { min: 0, max: 1 }, DEFAULT_RETRY.jitter),
  };
  if (resolved.maxDelayMs < resolved.initialDelayMs) {
    checks.problem(
      `retry.maxDelayMs: expected at least retry.initialDelayMs, ${resolved.initialDelayMs} (got ${resolved.maxDelayMs})`,
    );
  }
  return resolved;
}

/**
 * Fills in the defaults and checks every option, before anything connects.
 * @throws {RedisError} INVALID_OPTIONS naming every problem, e.g.
 *   `commandTimeoutMs: expected a positive whole number from 1 to 2147483647 (got 0)`.
 */
export function resolveOptions(options: RedisOptions): ResolvedOptions {
  const checks = new OptionChecks();
  // It labels metrics and names the connection (CLIENT SETNAME flowforge:<name>).
  const name = checks.handleName('name', options.name, 'main');
  const commandTimeoutMs = checks.wholeNumber(
    'commandTimeoutMs',
    options.commandTimeoutMs,
    DELAY,
    2_000,
  );
  const connectTimeoutMs = checks.wholeNumber(
    'connectTimeoutMs',
    options.connectTimeoutMs,
    DELAY,
    5_000,
  );
  const retry = resolveRetry(checks, options.retry);
  const keyPrefix: unknown = options.keyPrefix ?? '';
  if (typeof keyPrefix !== 'string' || /[*?[\]]/.test(keyPrefix)) {
    checks.problem(
      `keyPrefix: expected a string without * ? [ ] (got ${describeValue(keyPrefix)})`,
    );
  }
  const maxBlockingConnections = checks.wholeNumber(
    'maxBlockingConnections',
    options.maxBlockingConnections,
    BLOCKING_CONNECTIONS,
    4,
  );
  checks.throwIfAny((message) => new RedisError('INVALID_OPTIONS', message));
  return {
    name,
    commandTimeoutMs,
    connectTimeoutMs,
    retry,
    keyPrefix: keyPrefix as string,
    maxBlockingConnections,
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
