import { exists, hasFlag, list } from '@ioredis/commands';
import { describe, expect, it } from 'vitest';
import { commandNameOf, READ_COMMANDS, REFUSED_NAMES } from './commands.js';

/**
 * The list the view refused while it was kept by hand (from the command table
 * of ioredis 6, before it was derived from @ioredis/commands): nothing on it
 * may be let through now.
 */
const HAND_KEPT_REFUSALS = (
  'acl append asking auth backup bgrewriteaof bgsave bitfield bitop blmove blmpop blpop ' +
  'brpop brpoplpush bzmpop bzpopmax bzpopmin client cluster command config copy debug ' +
  'decr decrby del discard eval evalsha exec expire expireat failover fcall flushall ' +
  'flushdb function geoadd georadius georadiusbymember geosearchstore getdel getex getset ' +
  'hdel hello hexpire hexpireat hgetdel hgetex hincrby hincrbyfloat hmset hpersist ' +
  'hpexpire hpexpireat hset hsetex hsetnx incr incrby incrbyfloat info lastsave latency ' +
  'linsert lmove lmpop lpop lpush lpushx lrem lset ltrim memory migrate module monitor ' +
  'move mset msetex msetnx multi persist pexpire pexpireat pfadd pfdebug pfmerge ' +
  'pfselftest psetex psync publish punsubscribe quit readonly readwrite rename renamenx ' +
  'replconf replicaof reset restore role rpop rpoplpush rpush rpushx sadd save script ' +
  'sdiffstore select set setbit setex setnx setrange shutdown sinterstore slaveof slowlog ' +
  'smove sort spop spublish srem ssubscribe sunionstore sunsubscribe swapdb sync ' +
  'unlink unsubscribe unwatch wait waitaof watch xack xadd xautoclaim xclaim xdel xgroup ' +
  'xreadgroup xsetid xtrim zadd zdiffstore zincrby zinterstore zmpop zpopmax zpopmin ' +
  'zrangestore zrem zremrangebylex zremrangebyrank zremrangebyscore zunionstore ' +
  'sendCommand callBuffer pipeline duplicate disconnect connect end'
).split(' ');

/** Allowed reads without the `readonly` flag: connection commands, and containers whose subcommands only inspect. */
const READS_WITHOUT_READONLY_FLAG = ['echo', 'object', 'ping', 'pubsub', 'time', 'xinfo'];

describe('the read allow-list (policy, kept by hand)', () => {
  it('exposes only commands @ioredis/commands knows and does not flag write', () => {
    for (const name of READ_COMMANDS) {
      expect(exists(name), name).toBe(true);
      expect(hasFlag(name, 'write'), name).toBe(false);
    }
  });

  it('exposes `readonly` commands, and six harmless ones without the flag', () => {
    const unflagged = [...READ_COMMANDS].filter((name) => !hasFlag(name, 'readonly'));
    expect(unflagged.sort()).toEqual(READS_WITHOUT_READONLY_FLAG);
  });

  it('leaves KEYS and XREAD out of call() (use scan and xread)', () => {
    expect(READ_COMMANDS.has('keys')).toBe(false);
    expect(READ_COMMANDS.has('xread')).toBe(false);
    expect(READ_COMMANDS.has('get')).toBe(true);
  });
});

describe('the refused names (derived from @ioredis/commands)', () => {
  it('never call a name both a read and refused', () => {
    for (const name of READ_COMMANDS) expect(REFUSED_NAMES.has(name), name).toBe(false);
  });

  it('refuse every command @ioredis/commands flags write', () => {
    const writes = list.filter((name) => hasFlag(name, 'write'));
    expect(writes.length).toBeGreaterThan(100);
    for (const name of writes) expect(REFUSED_NAMES.has(name), name).toBe(true);
  });

  it('refuse every command without the readonly flag but the allowed reads and the view’s own subscribe', () => {
    const expected = list.filter(
      (name) =>
        !hasFlag(name, 'readonly') &&
        !READS_WITHOUT_READONLY_FLAG.includes(name) &&
        name !== 'subscribe' &&
        name !== 'psubscribe',
    );
    const commands = [...REFUSED_NAMES].filter((name) => exists(name));
    expect(commands.sort()).toEqual(expected.sort());
  });

  it('match the hand-kept list, plus the commands newer than its table', () => {
    for (const name of HAND_KEPT_REFUSALS) expect(REFUSED_NAMES.has(name), name).toBe(true);
    const added = [...REFUSED_NAMES].filter((name) => !HAND_KEPT_REFUSALS.includes(name));
    // Each is a write, or a container with a subcommand that writes (HIMPORT) or administers (HOTKEYS).
    expect(added.sort()).toEqual([
      'ardel',
      'ardelrange',
      'arinsert',
      'armset',
      'arring',
      'arseek',
      'arset',
      'blmovem',
      'delex',
      'himport',
      'hotkeys',
      'increx',
      'lmovem',
      'restore-asking',
      'trimslots',
      'vadd',
      'vrem',
      'vsetattr',
      'xackdel',
      'xcfgset',
      'xdelex',
      'xidmprecord',
      'xnack',
    ]);
  });

  it('include the ioredis methods that send any command', () => {
    for (const name of ['sendCommand', 'callBuffer', 'pipeline', 'duplicate', 'connect']) {
      expect(REFUSED_NAMES.has(name), name).toBe(true);
    }
  });
});

describe('commandNameOf', () => {
  it('maps ioredis Buffer twins to the command', () => {
    expect(commandNameOf('setBuffer')).toBe('set');
    expect(commandNameOf('get')).toBe('get');
  });
});
