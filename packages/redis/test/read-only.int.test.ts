/**
 * Proves on a private server that the read-only view sends nothing but reads:
 * MONITOR records every command the server receives; after every method of
 * the view ran (pub/sub and a blocking read included) and every write was
 * attempted past the types, the commands that came from the handle's
 * connections (recognised by their CLIENT SETNAME) carry no `write` flag in
 * the server's own COMMAND INFO, and the data is unchanged.
 */
import type { Redis as IORedis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRedisError, type ReadOnlyRedis } from '../src/index.js';
import { READ_COMMANDS, REFUSED_NAMES } from '../src/internal/commands.js';
import { Handles, rejectionOf, standaloneTopology, writerFor } from './support/handles.js';
import { RedisServers, waitFor, type RedisProcess } from './support/redis-servers.js';

const servers = new RedisServers();
const handles = new Handles();
let server: RedisProcess;
let writer: IORedis;
let monitor: IORedis;
/** [source address, command name (lower-case, with the subcommand of container commands)] */
const seen: [string, string][] = [];
const CONTAINERS = new Set(['client', 'object', 'xinfo', 'pubsub', 'config', 'command', 'cluster']);

beforeAll(async () => {
  server = await servers.standalone();
  writer = writerFor(server.port);
  await writer.set('s', 'v');
  await writer.hset('h', { f: '1' });
  await writer.rpush('l', 'a');
  await writer.sadd('set', 'm');
  await writer.zadd('z', 1, 'a');
  await writer.zadd('lex', 0, 'a', 0, 'b');
  await writer.xadd('x', '1-1', 'f', 'v');
  monitor = await writer.monitor();
  monitor.on('error', () => undefined);
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    const [name = '', sub = ''] = args.map((arg) => String(arg).toLowerCase());
    seen.push([source, CONTAINERS.has(name) ? `${name}|${sub}` : name]);
  });
});

afterAll(async () => {
  await handles.closeAll();
  monitor?.disconnect();
  writer?.disconnect();
  await servers.stopAll();
});

async function exerciseEveryMethod(data: ReadOnlyRedis): Promise<void> {
  await data.get('s');
  await data.mget(['s', 'h']);
  await data.strlen('s');
  await data.exists(['s', 'nope']);
  await data.type('h');
  await data.ttl('s');
  await data.pttl('s');
  await data.hget('h', 'f');
  await data.hmget('h', ['f']);
  await data.hgetall('h');
  await data.hlen('h');
  await data.hexists('h', 'f');
  await data.hkeys('h');
  await data.hvals('h');
  await data.lrange('l', 0, -1);
  await data.llen('l');
  await data.lindex('l', 0);
  await data.smembers('set');
  await data.sismember('set', 'm');
  await data.scard('set');
  await data.zrange('z', 0, -1);
  await data.zrange('lex', '-', '+', { by: 'lex', limit: { offset: 0, count: 1 } });
  await data.zrangeWithScores('z', '-inf', '+inf', { by: 'score', rev: false });
  await data.zscore('z', 'a');
  await data.zcard('z');
  await data.zcount('z', '-inf', '+inf');
  await data.xrange('x', { count: 10 });
  await data.xrevrange('x');
  await data.xlen('x');
  await data.xread({ x: '0' });
  await data.xread({ x: '$' }, { blockMs: 10 });
  const keys: string[] = [];
  for await (const key of data.scan({ match: '*', count: 10, type: 'string' })) keys.push(key);
  expect(keys).toEqual(['s']);
  const unsubscribe = await data.subscribe('chan', () => undefined);
  await unsubscribe();
  const punsubscribe = await data.psubscribe('chan:*', () => undefined);
  await punsubscribe();
  for (const command of ['zrandmember', 'hstrlen', 'ping', 'echo'] as const) {
    const args: Record<typeof command, string[]> = {
      zrandmember: ['z'],
      hstrlen: ['h', 'f'],
      ping: [],
      echo: ['hi'],
    };
    await data.call(command, ...args[command]);
  }
}

describe('the read-only view at run time', () => {
  it('sends only commands without the write flag, and writes attempted past the types fail with READ_ONLY', async () => {
    const redis = handles.open({ topology: standaloneTopology(server.port), name: 'ro' });
    await redis.health();
    await exerciseEveryMethod(redis.data);

    const loose = redis.data as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const attempts: [string, unknown[]][] = [
      ['set', ['s', 'changed']],
      ['setBuffer', ['s', 'changed']],
      ['del', ['s']],
      ['unlink', ['s']],
      ['hset', ['h', 'f', '2']],
      ['lpush', ['l', 'b']],
      ['sadd', ['set', 'n']],
      ['zadd', ['z', '2', 'b']],
      ['xadd', ['x', '*', 'f', 'w']],
      ['expire', ['s', '1']],
      ['incr', ['s']],
      ['flushall', []],
      ['flushdb', []],
      ['publish', ['chan', 'msg']],
      ['eval', ['return 1', '0']],
      ['config', ['set', 'maxmemory', '1']],
      ['client', ['kill', 'type', 'normal']],
      ['sendCommand', []],
      ['pipeline', []],
      ['multi', []],
      ['duplicate', []],
    ];
    for (const [method, args] of attempts) {
      expect(typeof loose[method], method).toBe('function');
      const error = await rejectionOf(loose[method]!(...args));
      expect(isRedisError(error, 'READ_ONLY'), method).toBe(true);
    }
    for (const command of ['set', 'DEL', 'flushall', 'eval', 'keys', 'xreadgroup', 'nonsense']) {
      const error = await rejectionOf(redis.data.call(command, 's', 'x'));
      expect(isRedisError(error, 'READ_ONLY'), command).toBe(true);
    }
    // Nothing on the view reaches the client.
    for (const property of ['redis', 'connection', 'options', 'stream', 'status', 'core']) {
      expect(loose[property], property).toBeUndefined();
    }
    expect(Object.isFrozen(redis.data)).toBe(true);

    await redis.close();
    // MONITOR shows a command after it ran: wait for the handle's QUIT to be seen.
    const ours = (): Set<string> =>
      new Set(seen.filter(([, name]) => name === 'client|setname').map(([source]) => source));
    await waitFor('the QUIT of the handle in the MONITOR stream', () =>
      seen.some(([source, name]) => ours().has(source) && name === 'quit'),
    );
    const sources = ours();
    // The command, pub/sub and blocking-read connections.
    expect(sources.size).toBe(3);
    const sent = new Set(seen.filter(([source]) => sources.has(source)).map(([, name]) => name));
    for (const command of [
      'get',
      'hgetall',
      'zrange',
      'xread',
      'scan',
      'subscribe',
      'psubscribe',
    ]) {
      expect(sent.has(command), command).toBe(true);
    }
    const writes: string[] = [];
    for (const name of sent) {
      const [command] = name.split('|');
      const info = (await writer.call('COMMAND', 'INFO', command!)) as [[string, number, string[]]];
      const flags = info[0]?.[2] ?? [];
      if (flags.includes('write')) writes.push(name);
    }
    expect(writes).toEqual([]);

    expect(await writer.get('s')).toBe('v');
    expect(await writer.hgetall('h')).toEqual({ f: '1' });
    expect(await writer.xlen('x')).toBe(1);
    expect(await writer.dbsize()).toBe(7);
  });

  it('allows call() no command the server flags write, and refuses every one it does', async () => {
    const table = (await writer.call('COMMAND')) as [string, number, string[]][];
    const flagged = new Map(table.map(([name, , flags]) => [name.toLowerCase(), flags]));
    for (const name of READ_COMMANDS) {
      expect(flagged.has(name), name).toBe(true);
      expect(flagged.get(name), name).not.toContain('write');
    }
    const writes = [...flagged].filter(([, flags]) => flags.includes('write'));
    expect(writes.length).toBeGreaterThan(50);
    for (const [name] of writes) expect(REFUSED_NAMES.has(name), name).toBe(true);
  });
});
