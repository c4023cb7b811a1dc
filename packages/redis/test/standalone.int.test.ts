/**
 * The read API against the shared redis-server of `scripts/services` (6379):
 * data written by a plain ioredis client under this file's own key prefix
 * (deleted afterwards; the server itself is never flushed or reconfigured),
 * read back through `redis.data`; owned keyspaces; pub/sub; blocking reads;
 * errors; a client passed in; the process-wide handle.
 */
import { Redis as IORedis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeSharedRedis,
  createRedis,
  isRedisError,
  RedisError,
  sharedRedis,
  type ReadOnlyRedis,
  type Redis,
} from '../src/index.js';
import {
  deletePrefix,
  Handles,
  rejectionOf,
  SHARED_PORT,
  standaloneTopology,
  uniquePrefix,
  writerFor,
} from './support/handles.js';
import { waitFor } from './support/redis-servers.js';

const P = uniquePrefix('standalone');
const NAME = `standalone-${P.split(':')[3]}`;
const topology = standaloneTopology(SHARED_PORT);
const handles = new Handles();
let writer: IORedis;
let redis: Redis;
let data: ReadOnlyRedis;

beforeAll(async () => {
  writer = writerFor(SHARED_PORT);
  await writer.set(`${P}string`, 'hello');
  await writer.set(`${P}counter`, '42');
  await writer.set(`${P}expiring`, 'soon', 'EX', 600);
  await writer.hset(`${P}hash`, { name: 'Ada', role: 'admin' });
  await writer.rpush(`${P}list`, 'a', 'b', 'c');
  await writer.sadd(`${P}set`, 'x', 'y');
  await writer.zadd(`${P}zset`, 1, 'one', 2, 'two', 3, 'three', '+inf', 'top');
  await writer.zadd(`${P}lex`, 0, 'a', 0, 'b', 0, 'c', 0, 'd');
  await writer.xadd(`${P}stream`, '1-1', 'kind', 'created', 'id', '7');
  await writer.xadd(`${P}stream`, '2-1', 'kind', 'updated');
  // Unique: the blocking-read test finds this handle's connection in CLIENT LIST of a shared server.
  redis = handles.open({ topology, name: NAME });
  data = redis.data;
});

afterAll(async () => {
  await handles.closeAll();
  await deletePrefix(writer, P);
  writer.disconnect();
});

describe('reads', () => {
  it('strings and keys', async () => {
    expect(redis.mode).toBe('standalone');
    expect(await data.get(`${P}string`)).toBe('hello');
    expect(await data.get(`${P}missing`)).toBeNull();
    expect(await data.mget([`${P}string`, `${P}missing`, `${P}counter`])).toEqual([
      'hello',
      null,
      '42',
    ]);
    expect(await data.mget([])).toEqual([]);
    expect(await data.strlen(`${P}string`)).toBe(5);
    expect(await data.exists([`${P}string`, `${P}missing`, `${P}hash`])).toBe(2);
    expect(await data.exists(`${P}string`)).toBe(1);
    expect(await data.type(`${P}hash`)).toBe('hash');
    expect(await data.type(`${P}missing`)).toBe('none');
    expect(await data.ttl(`${P}string`)).toBe(-1);
    expect(await data.ttl(`${P}missing`)).toBe(-2);
    expect(await data.ttl(`${P}expiring`)).toBeGreaterThan(0);
    expect(await data.pttl(`${P}expiring`)).toBeGreaterThan(1000);
  });

  it('hashes', async () => {
    expect(await data.hget(`${P}hash`, 'name')).toBe('Ada');
    expect(await data.hget(`${P}hash`, 'nope')).toBeNull();
    expect(await data.hmget(`${P}hash`, ['role', 'nope', 'name'])).toEqual(['admin', null, 'Ada']);
    expect(await data.hmget(`${P}hash`, [])).toEqual([]);
    expect(await data.hgetall(`${P}hash`)).toEqual({ name: 'Ada', role: 'admin' });
    expect(await data.hgetall(`${P}missing`)).toEqual({});
    expect(await data.hlen(`${P}hash`)).toBe(2);
    expect(await data.hexists(`${P}hash`, 'name')).toBe(true);
    expect(await data.hexists(`${P}hash`, 'nope')).toBe(false);
    expect((await data.hkeys(`${P}hash`)).sort()).toEqual(['name', 'role']);
    expect((await data.hvals(`${P}hash`)).sort()).toEqual(['Ada', 'admin']);
  });

  it('lists and sets', async () => {
    expect(await data.lrange(`${P}list`, 0, -1)).toEqual(['a', 'b', 'c']);
    expect(await data.lrange(`${P}list`, -2, -1)).toEqual(['b', 'c']);
    expect(await data.llen(`${P}list`)).toBe(3);
    expect(await data.lindex(`${P}list`, 1)).toBe('b');
    expect(await data.lindex(`${P}list`, 9)).toBeNull();
    expect((await data.smembers(`${P}set`)).sort()).toEqual(['x', 'y']);
    expect(await data.sismember(`${P}set`, 'x')).toBe(true);
    expect(await data.sismember(`${P}set`, 'z')).toBe(false);
    expect(await data.scard(`${P}set`)).toBe(2);
  });

  it('sorted sets by rank, score and member', async () => {
    const key = `${P}zset`;
    expect(await data.zrange(key, 0, -1)).toEqual(['one', 'two', 'three', 'top']);
    expect(await data.zrange(key, 0, 1, { rev: true })).toEqual(['top', 'three']);
    expect(await data.zrange(key, '(1', 3, { by: 'score' })).toEqual(['two', 'three']);
    expect(
      await data.zrange(key, '+inf', '-inf', {
        by: 'score',
        rev: true,
        limit: { offset: 1, count: 2 },
      }),
    ).toEqual(['three', 'two']);
    // BYLEX is defined over members of one score.
    expect(await data.zrange(`${P}lex`, '[b', '(d', { by: 'lex' })).toEqual(['b', 'c']);
    expect(
      await data.zrange(`${P}lex`, '+', '-', {
        by: 'lex',
        rev: true,
        limit: { offset: 0, count: 1 },
      }),
    ).toEqual(['d']);
    expect(await data.zrangeWithScores(key, 0, -1)).toEqual([
      { member: 'one', score: 1 },
      { member: 'two', score: 2 },
      { member: 'three', score: 3 },
      { member: 'top', score: Infinity },
    ]);
    expect(await data.zscore(key, 'two')).toBe(2);
    expect(await data.zscore(key, 'top')).toBe(Infinity);
    expect(await data.zscore(key, 'nope')).toBeNull();
    expect(await data.zcard(key)).toBe(4);
    expect(await data.zcount(key, 2, '+inf')).toBe(3);
    expect(await data.zcount(key, '(2', 3)).toBe(1);
  });

  it('streams', async () => {
    const key = `${P}stream`;
    const created = { id: '1-1', fields: { kind: 'created', id: '7' } };
    const updated = { id: '2-1', fields: { kind: 'updated' } };
    expect(await data.xrange(key)).toEqual([created, updated]);
    expect(await data.xrange(key, { start: '2', count: 5 })).toEqual([updated]);
    expect(await data.xrange(key, { count: 1 })).toEqual([created]);
    expect(await data.xrevrange(key)).toEqual([updated, created]);
    expect(await data.xrevrange(key, { end: '1-1' })).toEqual([created]);
    expect(await data.xlen(key)).toBe(2);
    expect(await data.xread({ [key]: '0' }, { count: 1 })).toEqual([{ key, entries: [created] }]);
    expect(await data.xread([[key, '1-1']])).toEqual([{ key, entries: [updated] }]);
    expect(await data.xread({ [key]: '$' })).toEqual([]);
  });

  it('a blocking xread waits on its own connection and returns the entry written meanwhile', async () => {
    const key = `${P}live`;
    await writer.xadd(key, '1-1', 'n', '1');
    const read = data.xread({ [key]: '$' }, { blockMs: 5_000 });
    // The command connection is free meanwhile.
    expect(await data.get(`${P}string`)).toBe('hello');
    await waitFor('the blocking XREAD to be blocked', async () =>
      String(await writer.call('CLIENT', 'LIST'))
        .split('\n')
        .some(
          (line) => line.includes(`name=flowforge:${NAME}:blocking `) && line.includes('cmd=xread'),
        ),
    );
    await writer.xadd(key, '2-1', 'n', '2');
    expect(await read).toEqual([{ key, entries: [{ id: '2-1', fields: { n: '2' } }] }]);
    // A read that waits in vain resolves [].
    expect(await data.xread({ [key]: '$' }, { blockMs: 20 })).toEqual([]);
  });

  it('scan walks the keyspace with MATCH, TYPE and small COUNTs', async () => {
    const all: string[] = [];
    for await (const key of data.scan({ match: `${P}*`, count: 2 })) all.push(key);
    expect(new Set(all)).toEqual(
      new Set(
        [
          'string',
          'counter',
          'expiring',
          'hash',
          'list',
          'set',
          'zset',
          'lex',
          'stream',
          'live',
        ].map((name) => `${P}${name}`),
      ),
    );
    const hashes: string[] = [];
    for await (const key of data.scan({ match: `${P}*`, type: 'hash' })) hashes.push(key);
    expect(hashes).toEqual([`${P}hash`]);
    // Breaking out stops the iteration.
    const seen: string[] = [];
    for await (const key of data.scan({ match: `${P}*`, count: 1 })) {
      seen.push(key);
      break;
    }
    expect(seen).toHaveLength(1);
  });

  it('call() runs other read commands and refuses the rest with READ_ONLY', async () => {
    expect(await data.call('ZRANK', `${P}zset`, 'two')).toBe(1);
    expect(await data.call('object', 'encoding', `${P}hash`)).toBe('listpack');
    const refused = await rejectionOf(data.call('set', `${P}string`, 'changed'));
    expect(isRedisError(refused, 'READ_ONLY')).toBe(true);
    expect(isRedisError(await rejectionOf(data.call('keys', '*')), 'READ_ONLY')).toBe(true);
    expect(await writer.get(`${P}string`)).toBe('hello');
  });
});

describe('errors', () => {
  it('WRONG_TYPE for a key of another type', async () => {
    const error = await rejectionOf(data.get(`${P}hash`));
    expect(isRedisError(error, 'WRONG_TYPE')).toBe(true);
    expect((error as RedisError).reply).toBe('WRONGTYPE');
    expect((error as RedisError).retryable).toBe(false);
  });

  it('COMMAND_FAILED for any other error reply', async () => {
    const error = await rejectionOf(data.call('zrangebyscore', `${P}zset`, 'not-a-score', 2));
    expect(isRedisError(error, 'COMMAND_FAILED')).toBe(true);
    expect((error as RedisError).reply).toBe('ERR');
  });

  it('INVALID_ARGUMENT for arguments refused before sending', async () => {
    const invalid = [
      data.zrange(`${P}zset`, 0, 1, { limit: { offset: 0, count: 1 } }),
      data.zrange(`${P}zset`, 0, 1, { by: 'size' as 'rank' }),
      data.xread({}, {}),
      data.xread({ [`${P}stream`]: '0' }, { blockMs: 0 }),
      data.xread({ [`${P}stream`]: '0' }, { count: 0 }),
      data.xrange(`${P}stream`, { count: -1 }),
      data.xrevrange(`${P}stream`, { count: 1.5 }),
      data.subscribe([], () => undefined),
      data.psubscribe('', () => undefined),
    ];
    for (const call of invalid)
      expect(isRedisError(await rejectionOf(call), 'INVALID_ARGUMENT')).toBe(true);
    const scan = data.scan({ count: 0 });
    expect(isRedisError(await rejectionOf(scan.next()), 'INVALID_ARGUMENT')).toBe(true);
  });
});

describe('pub/sub', () => {
  it('delivers messages to every listener until it unsubscribes', async () => {
    const channel = `${P}events`;
    const first: string[] = [];
    const second: [string, string][] = [];
    const stopFirst = await data.subscribe(channel, (message) => first.push(message));
    const stopSecond = await data.subscribe([channel], (message, from) =>
      second.push([message, from]),
    );
    await writer.publish(channel, 'one');
    await waitFor('both listeners to get "one"', () => first.length === 1 && second.length === 1);
    expect(second).toEqual([['one', channel]]);

    await stopFirst();
    await stopFirst(); // idempotent
    await writer.publish(channel, 'two');
    await waitFor('the remaining listener to get "two"', () => second.length === 2);
    expect(first).toEqual(['one']);

    await stopSecond();
    // The last listener left: the server no longer counts a subscriber.
    await waitFor(
      'UNSUBSCRIBE to reach the server',
      async () => (await writer.publish(channel, 'three')) === 0,
    );
  });

  it('pattern subscriptions get the channel and the pattern; a throwing listener is contained', async () => {
    const received: [string, string, string][] = [];
    const stopThrowing = await data.psubscribe(`${P}topic:*`, () => {
      throw new Error('listener bug');
    });
    const stop = await data.psubscribe(`${P}topic:*`, (message, channel, pattern) =>
      received.push([message, channel, pattern]),
    );
    await writer.publish(`${P}topic:a`, 'hi');
    await waitFor('the pattern message', () => received.length === 1);
    expect(received).toEqual([['hi', `${P}topic:a`, `${P}topic:*`]]);
    await stop();
    await stopThrowing();
  });
});

describe('owned keyspaces', () => {
  it('reads and writes keys under the prefix only', async () => {
    const cache = redis.ownedKeyspace(`${P}cache:`);
    expect(cache.prefix).toBe(`${P}cache:`);
    const key = `${P}cache:widget:1`;
    expect(await cache.set(key, '{"v":1}', { ttlMs: 60_000 })).toBe(true);
    expect(await writer.get(key)).toBe('{"v":1}');
    expect(await cache.get(key)).toBe('{"v":1}');
    expect(await cache.pttl(key)).toBeGreaterThan(1_000);
    expect(await cache.set(key, 'other', { onlyIfAbsent: true })).toBe(false);
    expect(await cache.get(key)).toBe('{"v":1}');
    expect(await cache.expire(key, 1_000)).toBe(true);
    expect(await cache.pttl(key)).toBeLessThanOrEqual(1_000);
    expect(await cache.expire(`${P}cache:none`, 1_000)).toBe(false);
    expect(await cache.incr(`${P}cache:hits`)).toBe(1);
    expect(await cache.incr(`${P}cache:hits`, 5)).toBe(6);
    expect(await cache.set(`${P}cache:n`, 3)).toBe(true);
    expect(await cache.del([key, `${P}cache:hits`, `${P}cache:none`])).toBe(2);
    expect(await cache.del(`${P}cache:n`)).toBe(1);
    expect(await writer.exists(key)).toBe(0);
  });

  it('refuses keys outside the prefix and bad arguments with INVALID_ARGUMENT, writing nothing', async () => {
    const cache = redis.ownedKeyspace(`${P}cache:`);
    const outside = `${P}string`;
    const refused = [
      cache.get(outside),
      cache.set(outside, 'x'),
      cache.del([`${P}cache:ok`, outside]),
      cache.expire(outside, 1_000),
      cache.incr(outside),
      cache.pttl(outside),
      cache.set(`${P}cache:k`, 'x', { ttlMs: 0 }),
      cache.set(`${P}cache:k`, { an: 'object' } as unknown as string),
      cache.expire(`${P}cache:k`, -5),
      cache.incr(`${P}cache:k`, 0.5),
    ];
    for (const call of refused) {
      expect(isRedisError(await rejectionOf(call), 'INVALID_ARGUMENT')).toBe(true);
    }
    expect(await writer.get(outside)).toBe('hello');
    expect(await writer.exists(`${P}cache:k`)).toBe(0);
    for (const prefix of ['', '*', `${P}*`, 'a?b', '[ab]']) {
      expect(() => redis.ownedKeyspace(prefix)).toThrow(RedisError);
      try {
        redis.ownedKeyspace(prefix);
      } catch (error) {
        expect(isRedisError(error, 'INVALID_ARGUMENT')).toBe(true);
      }
    }
  });
});

describe('keyPrefix', () => {
  it('prefixes every key sent and strips it from keys returned', async () => {
    const prefixed = handles.open({ topology, name: 'prefixed', keyPrefix: P });
    expect(await prefixed.data.get('string')).toBe('hello');
    expect(await prefixed.data.mget(['string', 'counter'])).toEqual(['hello', '42']);
    expect(await prefixed.data.xread({ stream: '1-1' })).toEqual([
      { key: 'stream', entries: [{ id: '2-1', fields: { kind: 'updated' } }] },
    ]);
    const keys: string[] = [];
    for await (const key of prefixed.data.scan({ match: 'ha*' })) keys.push(key);
    expect(keys).toEqual(['hash']);
    const cache = prefixed.ownedKeyspace('cache:');
    await cache.set('cache:x', '1');
    expect(await writer.get(`${P}cache:x`)).toBe('1');
    await cache.del('cache:x');
  });
});

describe('lifecycle', () => {
  it('creation without topology is NOT_CONFIGURED; bad options are INVALID_OPTIONS', () => {
    const codeOf = (make: () => unknown): string | undefined => {
      try {
        make();
      } catch (error) {
        return isRedisError(error) ? error.code : 'not a RedisError';
      }
      return undefined;
    };
    expect(codeOf(() => createRedis({ url: null, topology: null, password: '' }))).toBe(
      'NOT_CONFIGURED',
    );
    expect(codeOf(() => createRedis({}))).toBe('NOT_CONFIGURED');
    expect(codeOf(() => createRedis({ url: 'redis://x', topology: null }))).toBe('INVALID_OPTIONS');
    for (const bad of [
      { commandTimeoutMs: 0 },
      { connectTimeoutMs: -1 },
      { commandTimeoutMs: 1.5 },
      { name: 'has space' },
      { keyPrefix: 'a*' },
      { retry: { jitter: 2 } },
      { retry: { factor: 0.5 } },
      { retry: { initialDelayMs: 500, maxDelayMs: 100 } },
      { maxBlockingConnections: 0 },
    ]) {
      expect(codeOf(() => createRedis({ topology, ...bad }))).toBe('INVALID_OPTIONS');
    }
  });

  it('connects lazily, closes idempotently, and answers CLOSED afterwards', async () => {
    const name = `lazy-${Math.random().toString(36).slice(2, 8)}`;
    const handle = createRedis({ topology, name });
    const before = String(await writer.call('CLIENT', 'LIST'));
    expect(before).not.toContain(`name=flowforge:${name} `);
    expect(await handle.data.get(`${P}string`)).toBe('hello');
    expect(String(await writer.call('CLIENT', 'LIST'))).toContain(`name=flowforge:${name} `);
    await Promise.all([handle.close(), handle.close()]);
    await handle.close();
    const calls = [
      handle.data.get(`${P}string`),
      handle.health(),
      handle.data.xread({ [`${P}stream`]: '0' }, { blockMs: 10 }),
      handle.data.subscribe('x', () => undefined),
      handle.ownedKeyspace(`${P}cache:`).set(`${P}cache:y`, '1'),
    ];
    for (const call of calls) expect(isRedisError(await rejectionOf(call), 'CLOSED')).toBe(true);
    await expect(handle.data.scan().next()).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('a command in flight when close() is called still completes (QUIT waits for it)', async () => {
    const handle = createRedis({ topology, name: 'closing' });
    expect(await handle.data.get(`${P}string`)).toBe('hello');
    const pending = handle.data.get(`${P}string`);
    await handle.close();
    expect(await pending).toBe('hello');
  });

  it('shares a client passed in and leaves it open on close', async () => {
    const client = new IORedis({ host: '127.0.0.1', port: SHARED_PORT, lazyConnect: true });
    client.on('error', () => undefined);
    try {
      const handle = createRedis({ client, name: 'injected' });
      expect(handle.mode).toBe('standalone');
      expect(await handle.data.get(`${P}string`)).toBe('hello');
      await handle.close();
      expect(client.status).toBe('ready');
      expect(await client.get(`${P}string`)).toBe('hello');
      expect(isRedisError(await rejectionOf(handle.data.get(`${P}string`)), 'CLOSED')).toBe(true);
    } finally {
      client.disconnect();
    }
  });

  it('sharedRedis returns one handle per process until closeSharedRedis', async () => {
    const options = { topology, name: 'shared' };
    const first = sharedRedis(options);
    expect(sharedRedis({ topology, name: 'shared' })).toBe(first);
    let conflict: unknown;
    try {
      sharedRedis({ topology, name: 'other' });
    } catch (error) {
      conflict = error;
    }
    expect(isRedisError(conflict, 'INVALID_OPTIONS')).toBe(true);
    expect(await first.data.get(`${P}string`)).toBe('hello');
    await closeSharedRedis();
    await closeSharedRedis();
    const second = sharedRedis(options);
    expect(second).not.toBe(first);
    await second.close();
    // Closing the handle itself also frees the slot.
    const third = sharedRedis({ topology, name: 'shared-again' });
    expect(third).not.toBe(second);
    await closeSharedRedis();
  });
});
