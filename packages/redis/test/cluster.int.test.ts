/**
 * Redis Cluster: six private nodes (three primaries, three replicas) made with
 * `redis-cli --cluster create`. Reads of keys in different slots, MGET/EXISTS
 * split per slot, SCAN over every primary, owned keys across slots, pub/sub and
 * blocking reads on their own cluster connections, and a primary lost and
 * replaced by its replica (through a Cluster client passed in as `client`).
 */
import calculateSlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisTopology } from '@flowforge/config';
import { isRedisError, type Redis } from '../src/index.js';
import { clusterClientOptions, resolveOptions } from '../src/internal/client-options.js';
import { keySlot } from '../src/internal/slot.js';
import { Handles, rejectionOf, watchProcess } from './support/handles.js';
import {
  HOST,
  rawCommand,
  RedisServers,
  waitFor,
  waitForReplicas,
  type ClusterGroup,
} from './support/redis-servers.js';

const servers = new RedisServers();
const handles = new Handles();
let group: ClusterGroup;
let writer: Cluster;
let topology: RedisTopology;

/** Keys that land in different slots (and so, with three primaries, on different nodes). */
const KEYS = Array.from({ length: 24 }, (_unused, index) => `data:key:${index}`);

beforeAll(async () => {
  group = await servers.cluster();
  topology = {
    mode: 'cluster',
    tls: false,
    nodes: group.nodes.slice(0, 2).map((node) => ({ host: HOST, port: node.port })),
  };
  writer = new Cluster([{ host: HOST, port: group.nodes[0]!.port }]);
  writer.on('error', () => undefined);
  for (const key of KEYS) await writer.set(key, `value of ${key}`);
  await writer.hset('data:hash', { a: '1', b: '2' });
  await writer.xadd('data:stream', '1-1', 'field', 'one');
}, 120_000);

/** Clients passed to handles: the handles leave them open. */
const injected: Cluster[] = [];

afterAll(async () => {
  await handles.closeAll();
  for (const client of injected) client.disconnect();
  writer?.disconnect();
  await servers.stopAll();
});

function open(name: string): Redis {
  return handles.open({ topology, name, commandTimeoutMs: 2_000 });
}

describe('Redis Cluster', () => {
  it('computes the slots the server computes, and spreads the test keys over several', async () => {
    // A lone surrogate is sent as U+FFFD; '{}' with no } after it is no tag.
    for (const key of [...KEYS, '{tag}a', 'ünïcode', '', 'a\uD800b', '{}x', 'x{}', 'a{b}{}']) {
      expect(await writer.cluster('KEYSLOT', key), JSON.stringify(key)).toBe(keySlot(key));
    }
    const slots = new Set(KEYS.map((key) => keySlot(key)));
    expect(slots.size).toBeGreaterThan(3);
  });

  it('reads keys cluster-key-slot hashes unlike the server (`{}` then `}`) one by one', async () => {
    const odd = ['foo{}{bar}', 'baz{}{bar}'];
    // cluster-key-slot puts both in one slot; the server hashes each whole key, into two.
    expect(calculateSlot(odd[0]!)).toBe(calculateSlot(odd[1]!));
    expect(await writer.cluster('KEYSLOT', odd[0]!)).not.toBe(
      await writer.cluster('KEYSLOT', odd[1]!),
    );
    for (const key of odd) await writer.set(key, `value of ${key}`);
    const redis = open('odd-tags');
    expect(await redis.data.mget([...odd, KEYS[0]!])).toEqual([
      ...odd.map((key) => `value of ${key}`),
      `value of ${KEYS[0]}`,
    ]);
    expect(await redis.data.exists(odd)).toBe(2);
  });

  it('reads keys of every slot, and says it is a cluster', async () => {
    const redis = open('reads');
    expect(redis.mode).toBe('cluster');
    for (const key of KEYS) expect(await redis.data.get(key)).toBe(`value of ${key}`);
    expect(await redis.data.hgetall('data:hash')).toEqual({ a: '1', b: '2' });
    expect(await redis.data.xrange('data:stream')).toEqual([
      { id: '1-1', fields: { field: 'one' } },
    ]);
  });

  it('splits MGET and EXISTS per slot and keeps the order of the keys', async () => {
    const redis = open('mget');
    const asked = [...KEYS, 'data:missing', KEYS[0]!];
    const values = await redis.data.mget(asked);
    expect(values).toEqual([...KEYS.map((key) => `value of ${key}`), null, `value of ${KEYS[0]}`]);
    expect(await redis.data.exists(asked)).toBe(KEYS.length + 1);
  });

  it('passes a raw cross-slot call on and maps CROSSSLOT to INVALID_ARGUMENT', async () => {
    const redis = open('crossslot');
    const first = KEYS[0]!;
    const second = KEYS.find((key) => keySlot(key) !== keySlot(first))!;
    const error = await rejectionOf(redis.data.call('mget', first, second));
    expect(isRedisError(error, 'INVALID_ARGUMENT')).toBe(true);
    expect((error as { reply?: string }).reply).toBe('CROSSSLOT');
  });

  it('scans every primary', async () => {
    const redis = open('scan');
    const found = new Set<string>();
    for await (const key of redis.data.scan({ match: 'data:key:*', count: 5 })) found.add(key);
    expect([...found].sort()).toEqual([...KEYS].sort());
  });

  it('health pings every primary', async () => {
    const redis = open('health');
    await expect(redis.health()).resolves.toMatchObject({ status: 'up' });
  });

  it('writes and deletes owned keys across slots', async () => {
    const redis = open('owned');
    const cache = redis.ownedKeyspace('cache:');
    const keys = Array.from({ length: 10 }, (_unused, index) => `cache:${index}`);
    for (const key of keys) expect(await cache.set(key, 'x', { ttlMs: 60_000 })).toBe(true);
    expect(await writer.get('cache:3')).toBe('x');
    expect(await cache.del(keys)).toBe(keys.length);
    expect(await writer.exists(...keys.slice(0, 1))).toBe(0);
  });

  it('delivers pub/sub messages and blocking reads on their own connections', async () => {
    const redis = open('pubsub');
    const received: string[] = [];
    const unsubscribe = await redis.data.subscribe('news', (message) => received.push(message));
    await writer.publish('news', 'hello');
    await waitFor('the message', () => received.length === 1, 5_000, 20);
    await unsubscribe();

    const read = redis.data.xread({ 'data:stream': '$' }, { blockMs: 5_000 });
    // The blocking read is on its own connection: plain reads still answer meanwhile.
    expect(await redis.data.get(KEYS[0]!)).toBe(`value of ${KEYS[0]}`);
    await waitFor(
      'the blocking XREAD to be waiting on its node',
      async () => {
        const clients = (
          await Promise.all(group.nodes.map((node) => node.command('CLIENT', 'LIST')))
        ).join('\n');
        return clients.includes('cmd=xread');
      },
      5_000,
      20,
    );
    await writer.xadd('data:stream', '2-1', 'field', 'two');
    const [batch] = await read;
    expect(batch).toEqual({
      key: 'data:stream',
      entries: [{ id: '2-1', fields: { field: 'two' } }],
    });
  });

  it('keeps reading when a primary dies and its replica takes over', async () => {
    const watch = watchProcess();
    try {
      // The cluster client is built here (with the handle's own options) so that a
      // failure can report the state of every node connection.
      const built = clusterClientOptions(
        topology as Extract<RedisTopology, { mode: 'cluster' }>,
        {},
        resolveOptions({ name: 'failover' }),
      );
      const client = new Cluster(built.nodes, built.options);
      injected.push(client);
      const redis = handles.open({ client, name: 'failover' });
      for (const key of KEYS) expect(await redis.data.get(key)).toBe(`value of ${key}`);
      let lastRead: string | null | undefined;
      const victimKey = KEYS[0]!;
      const slot = keySlot(victimKey)!;
      const owner = group.nodes.find((node) => node.running && node.port === slotOwnerPort(slot));
      expect(owner).toBeDefined();
      await waitForReplicas(owner!);
      await owner!.kill({ holdPort: true });

      // Until the replica is promoted the slot is unserved: reads of it fail with a RedisError.
      const during = await redis.data.get(victimKey).catch((error: unknown) => error);
      if (during instanceof Error) {
        expect(isRedisError(during)).toBe(true);
      }
      try {
        await waitFor(
          'the replica to take over the slot, seen through the same handle',
          async () => {
            lastRead = await redis.data.get(victimKey);
            return lastRead === `value of ${victimKey}`;
          },
          30_000,
          200,
        );
      } catch (error) {
        throw new Error(
          `${String(error)}; last read ${String(lastRead)}; ${await clusterState(client, slot, victimKey)}`,
          { cause: error },
        );
      }
      for (const key of KEYS) expect(await redis.data.get(key)).toBe(`value of ${key}`);
      await expect(redis.health()).resolves.toMatchObject({ status: 'up' });
    } finally {
      watch.stop();
    }
    expect(watch.problems).toEqual([]);
  }, 60_000);
});

/**
 * What the client and the servers think, for a failure message: the last
 * error, every node connection of the client, the slot's owner and what a GET
 * straight on it answers, each server's cluster_state and CLUSTER NODES.
 */
async function clusterState(client: Cluster, slot: number, key: string): Promise<string> {
  const nodes = client
    .nodes('all')
    .map(
      (node) =>
        `${node.options.port} ${node.status} ${node.options.readOnly ? 'replica' : 'primary'}`,
    );
  const ownerPort = Number(client.slots[slot]?.[0]?.split(':')[1]);
  const onOwner = await rawCommand(ownerPort, ['GET', key]).catch(String);
  const running = group.nodes.filter((node) => node.running);
  const states = await Promise.all(
    running.map(async (node) => {
      const info = await node.command('CLUSTER', 'INFO');
      return `${node.port}: ${/cluster_state:(\w+)/.exec(info)?.[1]}`;
    }),
  );
  return (
    `client ${client.status}, slot ${slot} → ${ownerPort} (GET there: ${JSON.stringify(onOwner)}); ` +
    `connections ${nodes.join(', ')}; states ${states.join(', ')}\n` +
    (await running[0]!.command('CLUSTER', 'NODES'))
  );
}

/** The port of the primary serving `slot`, as the writer sees it now. */
function slotOwnerPort(slot: number): number | undefined {
  const owner = writer.slots[slot]?.[0];
  return owner === undefined ? undefined : Number(owner.split(':')[1]);
}
