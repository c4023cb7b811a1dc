/**
 * Sentinel: a private primary, its replica and three Sentinels (quorum 2, down
 * after 1 s). The handle finds the primary through the Sentinels, keeps
 * reading through the same handle after the primary dies and the replica is
 * promoted, and writes its owned keys to the new primary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisTopology } from '@flowforge/config';
import { isRedisError } from '../src/index.js';
import { Handles, rejectionOf, watchProcess, writerFor } from './support/handles.js';
import {
  freePort,
  HOST,
  RedisServers,
  waitFor,
  waitForReplicas,
  type SentinelGroup,
} from './support/redis-servers.js';

const servers = new RedisServers();
const handles = new Handles();
let group: SentinelGroup;
let topology: RedisTopology;

beforeAll(async () => {
  group = await servers.sentinelGroup();
  topology = {
    mode: 'sentinel',
    tls: false,
    sentinels: group.sentinels.map((sentinel) => ({ host: HOST, port: sentinel.port })),
    masterName: group.masterName,
    db: 0,
  };
  const writer = writerFor(group.primary.port);
  try {
    await writer.set('data:greeting', 'hello');
    await writer.hset('data:hash', { a: '1' });
    // WAIT: the replica has the data before anything is killed.
    await writer.wait(1, 5_000);
  } finally {
    writer.disconnect();
  }
}, 90_000);

afterAll(async () => {
  await handles.closeAll();
  await servers.stopAll();
});

describe('Redis Sentinel', () => {
  it('answers UNAVAILABLE when no Sentinel can be reached', async () => {
    const nobody = await freePort();
    const redis = handles.open({
      topology: { ...topology, sentinels: [{ host: HOST, port: nobody }] } as RedisTopology,
      name: 'no-sentinel',
      connectTimeoutMs: 1_000,
    });
    const error = await rejectionOf(redis.health());
    expect(isRedisError(error, 'UNAVAILABLE')).toBe(true);
    expect(isRedisError(await rejectionOf(redis.data.get('data:greeting')), 'UNAVAILABLE')).toBe(
      true,
    );
  });

  it('finds the primary through the Sentinels', async () => {
    const redis = handles.open({ topology, name: 'lookup' });
    expect(redis.mode).toBe('sentinel');
    expect(await redis.data.get('data:greeting')).toBe('hello');
    await expect(redis.health()).resolves.toMatchObject({ status: 'up' });
  });

  it('reads again through the same handle after a failover, and writes owned keys to the new primary', async () => {
    const watch = watchProcess();
    try {
      const redis = handles.open({
        topology,
        name: 'failover',
        retry: { initialDelayMs: 50, maxDelayMs: 500 },
      });
      const cache = redis.ownedKeyspace('cache:');
      expect(await redis.data.get('data:greeting')).toBe('hello');
      expect(await group.currentPrimaryPort()).toBe(group.primary.port);

      await waitForReplicas(group.primary);
      await group.primary.kill({ holdPort: true });
      // While the Sentinels have not promoted the replica, calls fail fast and typed.
      const during = await redis.data.get('data:greeting').catch((error: unknown) => error);
      if (during !== 'hello') {
        expect(isRedisError(during, 'UNAVAILABLE')).toBe(true);
      }

      await waitFor(
        'the Sentinels to promote the replica',
        async () => (await group.currentPrimaryPort()) === group.replica.port,
        30_000,
        200,
      );
      await waitFor(
        'a read through the same handle',
        async () => (await redis.data.get('data:greeting').catch(() => null)) === 'hello',
        30_000,
        100,
      );
      expect(await redis.data.hgetall('data:hash')).toEqual({ a: '1' });
      // A write succeeds only on a primary: the handle follows the promotion.
      await waitFor(
        'an owned write on the new primary',
        async () => (await cache.set('cache:after-failover', 'x').catch(() => false)) === true,
        30_000,
        100,
      );
      const check = writerFor(group.replica.port);
      try {
        expect(await check.get('cache:after-failover')).toBe('x');
        expect(await check.call('ROLE').then((role) => (role as string[])[0])).toBe('master');
      } finally {
        check.disconnect();
      }
    } finally {
      watch.stop();
    }
    expect(watch.problems).toEqual([]);
  }, 90_000);
});
