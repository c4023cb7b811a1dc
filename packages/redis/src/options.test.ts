import { describe, expect, expectTypeOf, it } from 'vitest';
import type { RedisSettings } from '@flowforge/config';
import type { Logger, Metrics } from '@flowforge/observability';
import { Redis as IORedis, type Cluster } from 'ioredis';
import { createRedis, isRedisError, type IoRedisClient, type RedisOptions } from './index.js';

describe('RedisOptions', () => {
  it('takes settings.redis of @flowforge/config spread in, with a logger and metrics', () => {
    expectTypeOf<
      RedisSettings & { readonly logger: Logger; readonly metrics: Metrics }
    >().toExtend<RedisOptions>();
  });

  it('takes an ioredis Redis or Cluster as `client` without naming ioredis in its types', () => {
    expectTypeOf<IORedis>().toExtend<IoRedisClient>();
    expectTypeOf<Cluster>().toExtend<IoRedisClient>();
  });

  it('refuses a `client` that only looks like an ioredis client', () => {
    const lookalike: IoRedisClient = { status: 'ready', options: {}, duplicate: () => lookalike };
    expect(() => createRedis({ client: lookalike })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTIONS' }),
    );
    try {
      createRedis({ client: lookalike });
    } catch (error) {
      expect(isRedisError(error, 'INVALID_OPTIONS')).toBe(true);
      expect((error as Error).message).toMatch(/two copies of ioredis/);
    }
  });

  it('accepts an ioredis client and never connects it before use', async () => {
    const client = new IORedis({ lazyConnect: true, port: 1 });
    const redis = createRedis({ client });
    expect(redis.mode).toBe('standalone');
    expect(client.status).toBe('wait');
    await redis.close();
    client.disconnect();
  });
});
