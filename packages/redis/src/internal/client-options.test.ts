import { describe, expect, it } from 'vitest';
import type { RedisTopology } from '@flowforge/config';
import { backoffDelay } from '@flowforge/kernel';
import { isRedisError } from '../errors.js';
import type { RedisOptions } from '../options.js';
import {
  clusterClientOptions,
  DEFAULT_RETRY,
  redisClientOptions,
  resolveOptions,
} from './client-options.js';

const standalone: Extract<RedisTopology, { mode: 'standalone' }> = {
  mode: 'standalone',
  tls: false,
  node: { host: 'cache.internal', port: 6380 },
  db: 2,
};
const sentinel: Extract<RedisTopology, { mode: 'sentinel' }> = {
  mode: 'sentinel',
  tls: true,
  sentinels: [
    { host: 's1', port: 26379 },
    { host: 's2', port: 26380 },
  ],
  masterName: 'primary',
  db: 1,
};
const cluster: Extract<RedisTopology, { mode: 'cluster' }> = {
  mode: 'cluster',
  tls: false,
  nodes: [{ host: 'n1', port: 7000 }],
};

/** The INVALID_OPTIONS message `resolveOptions` throws for `options`; fails on anything else. */
function refusal(options: RedisOptions): string {
  try {
    resolveOptions(options);
  } catch (error) {
    if (isRedisError(error, 'INVALID_OPTIONS')) return error.message;
    throw error;
  }
  throw new Error('resolveOptions accepted the options');
}

const TIMER = 'expected a positive whole number from 1 to 2147483647';
const NAME = 'expected 1 to 64 letters, digits, _ . : or -';

describe('resolveOptions', () => {
  it('fills in the documented defaults', () => {
    expect(resolveOptions({})).toEqual({
      name: 'main',
      commandTimeoutMs: 2000,
      connectTimeoutMs: 5000,
      retry: { initialDelayMs: 100, maxDelayMs: 5000, factor: 2, jitter: 0.5 },
      keyPrefix: '',
      maxBlockingConnections: 4,
    });
    expect(resolveOptions({}).retry).toEqual(DEFAULT_RETRY);
  });

  it.each<[string, RedisOptions, string]>([
    ['commandTimeoutMs 0', { commandTimeoutMs: 0 }, `commandTimeoutMs: ${TIMER} (got 0)`],
    [
      'commandTimeoutMs NaN',
      { commandTimeoutMs: Number.NaN },
      `commandTimeoutMs: ${TIMER} (got NaN)`,
    ],
    [
      'a commandTimeoutMs Node would fire at once',
      { commandTimeoutMs: 2 ** 31 },
      `commandTimeoutMs: ${TIMER} (got 2147483648)`,
    ],
    [
      'connectTimeoutMs fractional',
      { connectTimeoutMs: 0.5 },
      `connectTimeoutMs: ${TIMER} (got 0.5)`,
    ],
    ['a name with a space', { name: 'a b' }, `name: ${NAME} (got "a b")`],
    ['an empty name', { name: '' }, `name: ${NAME} (got "")`],
    [
      'a keyPrefix with a glob',
      { keyPrefix: 'x?' },
      'keyPrefix: expected a string without * ? [ ] (got "x?")',
    ],
    [
      'jitter above 1',
      { retry: { jitter: 1.5 } },
      'retry.jitter: expected a number from 0 to 1 (got 1.5)',
    ],
    [
      'factor below 1',
      { retry: { factor: 0 } },
      'retry.factor: expected a finite number of at least 1 (got 0)',
    ],
    [
      'an infinite factor',
      { retry: { factor: Infinity } },
      'retry.factor: expected a finite number of at least 1 (got Infinity)',
    ],
    [
      'max below initial',
      { retry: { initialDelayMs: 10, maxDelayMs: 5 } },
      'retry.maxDelayMs: expected at least retry.initialDelayMs, 10 (got 5)',
    ],
    [
      'no blocking connections',
      { maxBlockingConnections: 0 },
      'maxBlockingConnections: expected a positive whole number from 1 to 10000 (got 0)',
    ],
  ])('refuses %s with INVALID_OPTIONS, in the kernel’s words', (_what, options, problem) => {
    expect(refusal(options)).toBe(`@flowforge/redis: ${problem}`);
  });

  it('names every problem in one error', () => {
    expect(
      refusal({ name: 'a b', commandTimeoutMs: -1, retry: { jitter: 2 }, keyPrefix: '*' }),
    ).toBe(
      `@flowforge/redis: name: ${NAME} (got "a b"); commandTimeoutMs: ${TIMER} (got -1); ` +
        'retry.jitter: expected a number from 0 to 1 (got 2); ' +
        'keyPrefix: expected a string without * ? [ ] (got "*")',
    );
  });

  it('spaces reconnects 100, 200, 400 … 5000 ms by default, less up to half at random', () => {
    const { retry } = resolveOptions({});
    const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => backoffDelay(attempt, retry, () => 0));
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    expect(backoffDelay(3, retry, () => 1)).toBe(200);
  });
});

describe('redisClientOptions', () => {
  it('builds a lazy, fail-fast standalone client from the topology', () => {
    const options = redisClientOptions(
      standalone,
      { username: 'app', password: 'pw', keyPrefix: 'ff:' },
      resolveOptions({
        commandTimeoutMs: 750,
        connectTimeoutMs: 900,
        name: 'cache',
        keyPrefix: 'ff:',
      }),
    );
    expect(options).toMatchObject({
      host: 'cache.internal',
      port: 6380,
      db: 2,
      username: 'app',
      password: 'pw',
      connectTimeout: 900,
      connectionName: 'flowforge:cache',
      keyPrefix: 'ff:',
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    });
    expect(options.tls).toBeUndefined();
    // The handle times commands out itself (one timer per connection, not per command).
    expect(options.commandTimeout).toBeUndefined();
    // Reconnects forever, with the backoff.
    const retry = options.retryStrategy as (attempt: number) => number;
    expect(typeof retry(1)).toBe('number');
    expect(typeof retry(10_000)).toBe('number');
    expect(
      options.reconnectOnError?.(
        new Error("READONLY You can't write against a read only replica."),
      ),
    ).toBe(true);
    expect(options.reconnectOnError?.(new Error('WRONGTYPE x'))).toBe(false);
  });

  it('sends no credentials when there are none (null user, empty password)', () => {
    const options = redisClientOptions(
      standalone,
      { username: null, password: '' },
      resolveOptions({}),
    );
    expect(options.username).toBeUndefined();
    expect(options.password).toBeUndefined();
  });

  it('turns TLS on for rediss or when tls options are given', () => {
    const withCa = redisClientOptions(standalone, { tls: { ca: 'PEM' } }, resolveOptions({}));
    expect(withCa.tls).toEqual({ ca: 'PEM' });
    const viaTopology = redisClientOptions({ ...standalone, tls: true }, {}, resolveOptions({}));
    expect(viaTopology.tls).toEqual({});
  });

  it('asks the Sentinels for the primary, with a command timeout for them too', () => {
    const options = redisClientOptions(
      sentinel,
      { password: 'pw' },
      resolveOptions({ commandTimeoutMs: 300 }),
    );
    expect(options).toMatchObject({
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      name: 'primary',
      role: 'master',
      db: 1,
      sentinelCommandTimeout: 300,
      enableTLSForSentinelMode: true,
      tls: {},
    });
    expect(options).not.toHaveProperty('host');
    expect(typeof options.sentinelRetryStrategy).toBe('function');
  });
});

describe('clusterClientOptions', () => {
  it('puts the connection options on the nodes and the gate on the cluster', () => {
    const { nodes, options } = clusterClientOptions(
      cluster,
      { password: 'pw', keyPrefix: '{t}:' },
      resolveOptions({ commandTimeoutMs: 400, keyPrefix: '{t}:' }),
    );
    expect(nodes).toEqual([{ host: 'n1', port: 7000 }]);
    expect(options).toMatchObject({
      enableOfflineQueue: false,
      lazyConnect: true,
      keyPrefix: '{t}:',
      slotsRefreshTimeout: 400,
      redisOptions: { password: 'pw', maxRetriesPerRequest: 0 },
    });
    expect(options.redisOptions).not.toHaveProperty('keyPrefix');
    expect(options.redisOptions).not.toHaveProperty('enableOfflineQueue');
    expect(typeof options.clusterRetryStrategy).toBe('function');
  });
});
