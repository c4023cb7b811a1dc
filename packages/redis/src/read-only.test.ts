import { describe, expectTypeOf, it } from 'vitest';
import type { OwnedKeyspace, ReadOnlyRedis, Redis } from './index.js';

describe('the read-only view, at the type level', () => {
  it('has no write command', () => {
    expectTypeOf<ReadOnlyRedis>().not.toHaveProperty('set');
    expectTypeOf<ReadOnlyRedis>().not.toHaveProperty('del');
    expectTypeOf<ReadOnlyRedis>().not.toHaveProperty('hset');
    expectTypeOf<ReadOnlyRedis>().not.toHaveProperty('xadd');
    expectTypeOf<ReadOnlyRedis>().not.toHaveProperty('publish');
    expectTypeOf<ReadOnlyRedis>().not.toHaveProperty('pipeline');
    expectTypeOf<ReadOnlyRedis>().not.toHaveProperty('sendCommand');
    expectTypeOf<ReadOnlyRedis>().toHaveProperty('get');
    expectTypeOf<Redis['data']>().toEqualTypeOf<ReadOnlyRedis>();
  });

  it('does not compile a write through the view', () => {
    const check = (redis: Redis): void => {
      // @ts-expect-error -- the view has no set
      const set: unknown = redis.data.set;
      // @ts-expect-error -- nor del
      const del: unknown = redis.data.del;
      // @ts-expect-error -- nor the client behind it
      const client: unknown = redis.data.client;
      void [set, del, client];
    };
    expectTypeOf(check).toBeFunction();
  });

  it('gives typed replies', () => {
    expectTypeOf<ReturnType<ReadOnlyRedis['get']>>().toEqualTypeOf<Promise<string | null>>();
    expectTypeOf<ReturnType<ReadOnlyRedis['hgetall']>>().toEqualTypeOf<
      Promise<Record<string, string>>
    >();
    expectTypeOf<ReturnType<ReadOnlyRedis['hexists']>>().toEqualTypeOf<Promise<boolean>>();
    expectTypeOf<ReturnType<OwnedKeyspace['set']>>().toEqualTypeOf<Promise<boolean>>();
  });
});
