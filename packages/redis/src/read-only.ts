import { RedisError } from './errors.js';
import type { BlockingPool } from './internal/blocking.js';
import { commandNameOf, READ_COMMANDS, REFUSED_NAMES } from './internal/commands.js';
import type { Redis as IORedis } from 'ioredis';
import type { Client } from './internal/connection.js';
import type { Core } from './internal/core.js';
import { observe, type CommandTally } from './internal/metrics.js';
import type { Subscriptions } from './internal/subscriptions.js';

/** What `TYPE` answers. */
export type RedisKeyType = 'none' | 'string' | 'list' | 'set' | 'zset' | 'hash' | 'stream';

/** Options of {@link ReadOnlyRedis.zrange}. */
export interface ZRangeOptions {
  /**
   * What `start`/`stop` are: ranks (0-based, negative from the end), scores
   * (`1`, `'(1'` exclusive, `'-inf'`, `'+inf'`) or members (`'[a'`, `'(a'`,
   * `'-'`, `'+'`). With `rev` they are given high first, as Redis wants.
   * @default 'rank'
   */
  readonly by?: 'rank' | 'score' | 'lex';
  /** Highest first. @default false */
  readonly rev?: boolean;
  /** Skip `offset` members and return at most `count` (only with `by: 'score' | 'lex'`). */
  readonly limit?: {
    /** Members skipped first. */
    readonly offset: number;
    /** Most members returned (a negative count: all the rest). */
    readonly count: number;
  };
}

/** A member of a sorted set with its score. */
export interface ScoredMember {
  /** The member. */
  readonly member: string;
  /** A number, or ±Infinity. */
  readonly score: number;
}

/** One entry of a stream. */
export interface StreamEntry {
  /** `<ms>-<seq>`. */
  readonly id: string;
  /** The entry's field-value pairs. */
  readonly fields: Readonly<Record<string, string>>;
}

/** Entries read from one stream by {@link ReadOnlyRedis.xread}. */
export interface StreamRead {
  /** The stream's key. */
  readonly key: string;
  /** The entries read from it, oldest first. */
  readonly entries: readonly StreamEntry[];
}

/** Options of {@link ReadOnlyRedis.xrange} and {@link ReadOnlyRedis.xrevrange}. */
export interface StreamRangeOptions {
  /** The lowest id (inclusive; `(id` exclusive). @default '-' */
  readonly start?: string;
  /** The highest id (inclusive; `(id` exclusive). @default '+' */
  readonly end?: string;
  /** Most entries returned. @default all */
  readonly count?: number;
}

/** Options of {@link ReadOnlyRedis.xread}. */
export interface XReadOptions {
  /** Most entries per stream. @default all */
  readonly count?: number;
  /**
   * Wait up to this many milliseconds for an entry when there is none yet.
   * A blocking read runs on a connection of its own (see
   * `maxBlockingConnections`) and rejects with TIMEOUT when no reply came
   * within `blockMs + commandTimeoutMs`. `0` (forever) is refused: loop with a
   * finite wait instead. @default undefined (do not block)
   */
  readonly blockMs?: number;
}

/** Options of {@link ReadOnlyRedis.scan}. */
export interface ScanOptions {
  /** A glob (`user:*`) over the keys, without the handle's `keyPrefix`. @default '*' */
  readonly match?: string;
  /** How many keys each SCAN call looks at: a hint, not a limit. @default 100 */
  readonly count?: number;
  /** Only keys of this type. */
  readonly type?: Exclude<RedisKeyType, 'none'>;
}

/** Gets each published message: `(message, channel)`. */
export type ChannelListener = (message: string, channel: string) => void;
/** Gets each message of a pattern subscription: `(message, channel, pattern)`. */
export type PatternListener = (message: string, channel: string, pattern: string) => void;
/** Removes a listener; sends UNSUBSCRIBE when it was a channel's last one. Never rejects. */
export type Unsubscribe = () => Promise<void>;

/**
 * The read commands of Redis, and nothing else: FlowForge never writes Redis
 * data. The view holds no reference to the client that a caller can reach, and
 * any write command called on it past the types (`(data as any).set(…)`)
 * rejects with READ_ONLY without sending anything.
 *
 * Every method rejects with a {@link RedisError}: UNAVAILABLE at once while
 * disconnected, TIMEOUT after `commandTimeoutMs`, WRONG_TYPE, CLOSED, …
 */
export interface ReadOnlyRedis {
  /** GET. `null` when the key does not exist. */
  get(key: string): Promise<string | null>;
  /** MGET, in the order of `keys`; on Cluster split per slot and put back together. */
  mget(keys: readonly string[]): Promise<(string | null)[]>;
  /** STRLEN. */
  strlen(key: string): Promise<number>;
  /** EXISTS: how many of `keys` exist (a key named twice counts twice); split per slot on Cluster. */
  exists(keys: string | readonly string[]): Promise<number>;
  /** TYPE. */
  type(key: string): Promise<RedisKeyType>;
  /** TTL in seconds: -1 without expiry, -2 when the key does not exist. */
  ttl(key: string): Promise<number>;
  /** PTTL in milliseconds: -1 without expiry, -2 when the key does not exist. */
  pttl(key: string): Promise<number>;
  /** HGET. */
  hget(key: string, field: string): Promise<string | null>;
  /** HMGET, in the order of `fields`. */
  hmget(key: string, fields: readonly string[]): Promise<(string | null)[]>;
  /** HGETALL; `{}` when the key does not exist. */
  hgetall(key: string): Promise<Record<string, string>>;
  /** HLEN. */
  hlen(key: string): Promise<number>;
  /** HEXISTS. */
  hexists(key: string, field: string): Promise<boolean>;
  /** HKEYS. */
  hkeys(key: string): Promise<string[]>;
  /** HVALS. */
  hvals(key: string): Promise<string[]>;
  /** LRANGE (inclusive, negative from the end). */
  lrange(key: string, start: number, stop: number): Promise<string[]>;
  /** LLEN. */
  llen(key: string): Promise<number>;
  /** LINDEX. */
  lindex(key: string, index: number): Promise<string | null>;
  /** SMEMBERS. */
  smembers(key: string): Promise<string[]>;
  /** SISMEMBER. */
  sismember(key: string, member: string): Promise<boolean>;
  /** SCARD. */
  scard(key: string): Promise<number>;
  /**
   * ZRANGE (Redis ≥ 6.2 syntax): by rank, score or member, optionally reversed and limited.
   * @example
   * await data.zrange('leaderboard', '+inf', 100, { by: 'score', rev: true, limit: { offset: 0, count: 10 } });
   */
  zrange(
    key: string,
    start: number | string,
    stop: number | string,
    options?: ZRangeOptions,
  ): Promise<string[]>;
  /** ZRANGE … WITHSCORES: the same selection as {@link ReadOnlyRedis.zrange}, with scores. */
  zrangeWithScores(
    key: string,
    start: number | string,
    stop: number | string,
    options?: ZRangeOptions,
  ): Promise<ScoredMember[]>;
  /** ZSCORE; `null` when the member (or the key) does not exist. */
  zscore(key: string, member: string): Promise<number | null>;
  /** ZCARD. */
  zcard(key: string): Promise<number>;
  /** ZCOUNT between two scores (`'-inf'`, `'(5'` exclusive, …). */
  zcount(key: string, min: number | string, max: number | string): Promise<number>;
  /** XRANGE, oldest first. */
  xrange(key: string, options?: StreamRangeOptions): Promise<StreamEntry[]>;
  /** XREVRANGE, newest first. */
  xrevrange(key: string, options?: StreamRangeOptions): Promise<StreamEntry[]>;
  /** XLEN. */
  xlen(key: string): Promise<number>;
  /**
   * XREAD: entries after the given id of each stream (`'$'`: only new ones,
   * with `blockMs`). `[]` when there are none (also when a blocking read
   * waited in vain). On Cluster all streams of one call must share a slot.
   * @example
   * let last = '$';
   * for (;;) {
   *   const [read] = await data.xread({ events: last }, { blockMs: 5000, count: 100 });
   *   for (const entry of read?.entries ?? []) { handle(entry); last = entry.id; }
   * }
   */
  xread(
    streams: Readonly<Record<string, string>> | readonly (readonly [key: string, id: string])[],
    options?: XReadOptions,
  ): Promise<StreamRead[]>;
  /**
   * SCAN over the whole keyspace (every primary of a Cluster), as an async
   * iterator of keys. Like SCAN: a key present throughout is returned at
   * least once, possibly more than once; breaking out of the loop stops it.
   * @example
   * for await (const key of data.scan({ match: 'session:*', type: 'hash' })) { … }
   */
  scan(options?: ScanOptions): AsyncIterableIterator<string>;
  /**
   * SUBSCRIBE on the handle's pub/sub connection (opened on first use). Resolves
   * once the server confirmed; listener errors are logged, not thrown.
   */
  subscribe(channels: string | readonly string[], listener: ChannelListener): Promise<Unsubscribe>;
  /** PSUBSCRIBE: like {@link ReadOnlyRedis.subscribe}, for glob patterns of channels. */
  psubscribe(patterns: string | readonly string[], listener: PatternListener): Promise<Unsubscribe>;
  /**
   * Any other read command (ZRANDMEMBER, GEOSEARCH, HSCAN, OBJECT ENCODING, …),
   * with ioredis's reply shape. A name outside the read list rejects with
   * READ_ONLY, before anything is sent.
   */
  call(command: string, ...args: (string | number)[]): Promise<unknown>;
}

/** What the view needs beyond the command core. */
export interface ReadOnlyParts {
  readonly core: Core;
  readonly subscriptions: Subscriptions;
  readonly blocking: BlockingPool;
  readonly commandTimeoutMs: number;
  /** The nodes SCAN walks: the one client, or every Cluster primary right now. */
  readonly scanTargets: () => Client[];
}

function toBoolean(reply: number): boolean {
  return reply === 1;
}

function parseScore(value: string): number {
  if (value === 'inf' || value === '+inf') return Infinity;
  if (value === '-inf') return -Infinity;
  return Number(value);
}

function toScored(reply: string[]): ScoredMember[] {
  const members: ScoredMember[] = [];
  for (let index = 0; index + 1 < reply.length; index += 2) {
    members.push({ member: reply[index] as string, score: parseScore(reply[index + 1] as string) });
  }
  return members;
}

function toFields(flat: readonly string[]): Record<string, string> {
  const fields: Record<string, string> = {};
  for (let index = 0; index + 1 < flat.length; index += 2) {
    fields[flat[index] as string] = flat[index + 1] as string;
  }
  return fields;
}

type RawEntry = [id: string, fields: string[] | null];

function toEntries(reply: readonly RawEntry[]): StreamEntry[] {
  return reply.map(([id, fields]) => ({ id, fields: toFields(fields ?? []) }));
}

function isWholeNumber(value: unknown, min: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min;
}

function zrangeArguments(
  key: string,
  start: number | string,
  stop: number | string,
  options: ZRangeOptions | undefined,
): (string | number)[] | string {
  const by = options?.by ?? 'rank';
  const args: (string | number)[] = [key, start, stop];
  if (by === 'score') args.push('BYSCORE');
  else if (by === 'lex') args.push('BYLEX');
  else if (by !== 'rank') return "zrange: `by` must be 'rank', 'score' or 'lex'";
  if (options?.rev) args.push('REV');
  if (options?.limit) {
    if (by === 'rank') return "zrange: `limit` needs `by: 'score'` or `by: 'lex'`";
    const { offset, count } = options.limit;
    if (!isWholeNumber(offset, 0) || !Number.isInteger(count)) {
      return 'zrange: limit.offset must be a whole number ≥ 0 and limit.count a whole number';
    }
    args.push('LIMIT', offset, count);
  }
  return args;
}

/** The tally of every method, looked up once when the view is built. */
function methodTallies(tally: (command: string) => CommandTally | undefined) {
  return {
    get: tally('get'),
    mget: tally('mget'),
    strlen: tally('strlen'),
    exists: tally('exists'),
    type: tally('type'),
    ttl: tally('ttl'),
    pttl: tally('pttl'),
    hget: tally('hget'),
    hmget: tally('hmget'),
    hgetall: tally('hgetall'),
    hlen: tally('hlen'),
    hexists: tally('hexists'),
    hkeys: tally('hkeys'),
    hvals: tally('hvals'),
    lrange: tally('lrange'),
    llen: tally('llen'),
    lindex: tally('lindex'),
    smembers: tally('smembers'),
    sismember: tally('sismember'),
    scard: tally('scard'),
    zrange: tally('zrange'),
    zscore: tally('zscore'),
    zcard: tally('zcard'),
    zcount: tally('zcount'),
    xrange: tally('xrange'),
    xrevrange: tally('xrevrange'),
    xlen: tally('xlen'),
    xread: tally('xread'),
    xreadBlock: tally('xread_block'),
    scan: tally('scan'),
  };
}

/** What the groups of methods below share. */
interface ViewContext {
  readonly parts: ReadOnlyParts;
  readonly core: Core;
  readonly t: ReturnType<typeof methodTallies>;
  /** The tally of any command (`call`), looked up once per name. */
  readonly tally: (command: string) => CommandTally | undefined;
  /** A key as the caller named it: without the handle's `keyPrefix`. */
  readonly unprefix: (key: string) => string;
  readonly rejectClosed: () => Promise<never>;
}

/** Strings, keys, hashes, lists and sets. */
function plainReads({
  core,
  t,
}: ViewContext): Omit<
  ReadOnlyRedis,
  | 'zrange'
  | 'zrangeWithScores'
  | 'zscore'
  | 'zcard'
  | 'zcount'
  | 'xrange'
  | 'xrevrange'
  | 'xlen'
  | 'xread'
  | 'scan'
  | 'subscribe'
  | 'psubscribe'
  | 'call'
> {
  return {
    get: (key) => core.run(t.get, 'get', [key]),
    mget: async (keys) => {
      if (keys.length === 0) return [];
      const parts = await core.perSlot(keys, (group) =>
        core.run<(string | null)[]>(t.mget, 'mget', group),
      );
      if (parts.length === 1) return (parts[0] as { reply: (string | null)[] }).reply;
      const values = new Array<string | null>(keys.length).fill(null);
      for (const { positions, reply } of parts) {
        positions.forEach((position, index) => {
          values[position] = reply[index] ?? null;
        });
      }
      return values;
    },
    strlen: (key) => core.run(t.strlen, 'strlen', [key]),
    exists: async (keys) => {
      const list = typeof keys === 'string' ? [keys] : keys;
      if (list.length === 0) return 0;
      const parts = await core.perSlot(list, (group) =>
        core.run<number>(t.exists, 'exists', group),
      );
      return parts.reduce((sum, part) => sum + part.reply, 0);
    },
    type: (key) => core.run(t.type, 'type', [key]),
    ttl: (key) => core.run(t.ttl, 'ttl', [key]),
    pttl: (key) => core.run(t.pttl, 'pttl', [key]),
    hget: (key, field) => core.run(t.hget, 'hget', [key, field]),
    hmget: (key, fields) =>
      fields.length === 0 ? Promise.resolve([]) : core.run(t.hmget, 'hmget', [key, ...fields]),
    hgetall: (key) => core.run(t.hgetall, 'hgetall', [key]),
    hlen: (key) => core.run(t.hlen, 'hlen', [key]),
    hexists: (key, field) => core.run(t.hexists, 'hexists', [key, field], toBoolean),
    hkeys: (key) => core.run(t.hkeys, 'hkeys', [key]),
    hvals: (key) => core.run(t.hvals, 'hvals', [key]),
    lrange: (key, start, stop) => core.run(t.lrange, 'lrange', [key, start, stop]),
    llen: (key) => core.run(t.llen, 'llen', [key]),
    lindex: (key, index) => core.run(t.lindex, 'lindex', [key, index]),
    smembers: (key) => core.run(t.smembers, 'smembers', [key]),
    sismember: (key, member) => core.run(t.sismember, 'sismember', [key, member], toBoolean),
    scard: (key) => core.run(t.scard, 'scard', [key]),
  };
}

/** Sorted sets. */
function sortedSetReads({
  core,
  t,
}: ViewContext): Pick<
  ReadOnlyRedis,
  'zrange' | 'zrangeWithScores' | 'zscore' | 'zcard' | 'zcount'
> {
  return {
    zrange: (key, start, stop, options) => {
      const args = zrangeArguments(key, start, stop, options);
      if (typeof args === 'string') return core.invalid(args);
      return core.run(t.zrange, 'zrange', args);
    },
    zrangeWithScores: (key, start, stop, options) => {
      const args = zrangeArguments(key, start, stop, options);
      if (typeof args === 'string') return core.invalid(args);
      args.push('WITHSCORES');
      return core.run(t.zrange, 'zrange', args, toScored);
    },
    zscore: (key, member) =>
      core.run(t.zscore, 'zscore', [key, member], (reply: string | null) =>
        reply === null ? null : parseScore(reply),
      ),
    zcard: (key) => core.run(t.zcard, 'zcard', [key]),
    zcount: (key, min, max) => core.run(t.zcount, 'zcount', [key, min, max]),
  };
}

/**
 * XREAD BLOCK on a connection of the blocking pool, bounded by `blockMs +
 * commandTimeoutMs`; a connection whose read timed out is dropped (it may
 * still be blocked).
 */
async function blockingRead(
  { parts, core, t, unprefix }: ViewContext,
  args: (string | number)[],
  blockMs: number,
): Promise<StreamRead[]> {
  const { blocking, commandTimeoutMs } = parts;
  const connection = await blocking.acquire().catch((error: unknown) => {
    throw core.fail(error);
  });
  let discard = false;
  const started = performance.now();
  try {
    if (!connection.ready) await connection.whenReady();
    const client = connection.client as unknown as IORedis;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        discard = true;
        reject(
          new RedisError(
            'TIMEOUT',
            `no reply to a blocking XREAD within blockMs + commandTimeoutMs`,
          ),
        );
      }, blockMs + commandTimeoutMs);
    });
    try {
      const reply = (await Promise.race([client.call('xread', ...args), timeout])) as
        [string, RawEntry[]][] | null;
      return toStreamReads(reply, unprefix);
    } finally {
      clearTimeout(timer);
    }
  } catch (error) {
    if (core.connection.closing) throw core.fail(error);
    const mapped = connection.error(error);
    core.instruments?.error(mapped.code);
    throw mapped;
  } finally {
    if (t.xreadBlock) observe(t.xreadBlock, performance.now() - started);
    blocking.release(connection, discard);
  }
}

function toStreamReads(
  reply: [string, RawEntry[]][] | null,
  unprefix: (key: string) => string,
): StreamRead[] {
  if (reply === null) return [];
  return reply.map(([key, entries]) => ({ key: unprefix(key), entries: toEntries(entries) }));
}

/** Streams. */
function streamReads(
  context: ViewContext,
): Pick<ReadOnlyRedis, 'xrange' | 'xrevrange' | 'xlen' | 'xread'> {
  const { core, t, unprefix, rejectClosed } = context;
  const toReads = (reply: [string, RawEntry[]][] | null): StreamRead[] =>
    toStreamReads(reply, unprefix);
  /** XRANGE or XREVRANGE: `first` and `last` in the order the command takes them. */
  const range = (
    command: 'xrange' | 'xrevrange',
    tally: CommandTally | undefined,
    key: string,
    first: string,
    last: string,
    count: number | undefined,
  ): Promise<StreamEntry[]> => {
    if (count !== undefined && !isWholeNumber(count, 1)) {
      return core.invalid(`${command}: count must be a whole number ≥ 1`);
    }
    const args: (string | number)[] = [key, first, last];
    if (count !== undefined) args.push('COUNT', count);
    return core.run(tally, command, args, toEntries);
  };
  return {
    xrange: (key, options) =>
      range('xrange', t.xrange, key, options?.start ?? '-', options?.end ?? '+', options?.count),
    xrevrange: (key, options) =>
      range(
        'xrevrange',
        t.xrevrange,
        key,
        options?.end ?? '+',
        options?.start ?? '-',
        options?.count,
      ),
    xlen: (key) => core.run(t.xlen, 'xlen', [key]),
    xread: (streams, options) => {
      const pairs: readonly (readonly [string, string])[] = Array.isArray(streams)
        ? (streams as readonly (readonly [string, string])[])
        : Object.entries(streams);
      if (pairs.length === 0) return core.invalid('xread: name at least one stream');
      const count = options?.count;
      const blockMs = options?.blockMs;
      if (count !== undefined && !isWholeNumber(count, 1)) {
        return core.invalid('xread: count must be a whole number ≥ 1');
      }
      if (blockMs !== undefined && !isWholeNumber(blockMs, 1)) {
        return core.invalid(
          'xread: blockMs must be a whole number ≥ 1 (blocking forever is not supported: loop)',
        );
      }
      const args: (string | number)[] = [];
      if (count !== undefined) args.push('COUNT', count);
      if (blockMs !== undefined) args.push('BLOCK', blockMs);
      args.push('STREAMS', ...pairs.map(([key]) => key), ...pairs.map(([, id]) => id));
      if (blockMs !== undefined) {
        if (core.connection.closing) return rejectClosed();
        return blockingRead(context, args, blockMs);
      }
      return core.run(t.xread, 'xread', args, toReads);
    },
  };
}

/** SCAN over every node `scanTargets` names, as one iterator of keys. */
async function* scanKeys(
  { parts, core, t, unprefix }: ViewContext,
  options: ScanOptions | undefined,
): AsyncGenerator<string, void, undefined> {
  const match = core.keyPrefix + (options?.match ?? '*');
  const count = options?.count ?? 100;
  if (!isWholeNumber(count, 1)) {
    await core.invalid('scan: count must be a whole number ≥ 1');
    return;
  }
  const extra: string[] = options?.type === undefined ? [] : ['TYPE', options.type];
  // The primaries of a Cluster are only known once it is ready.
  if (!core.connection.ready) {
    await core.connection.whenReady().catch((error: unknown) => {
      throw core.fail(error);
    });
  }
  for (const node of parts.scanTargets()) {
    let cursor = '0';
    do {
      // On Cluster each primary is asked directly (SCAN has no key to route by).
      const [next, keys] = await core.run<[string, string[]]>(
        t.scan,
        'scan',
        [cursor, 'MATCH', match, 'COUNT', count, ...extra],
        undefined,
        core.cluster ? node : undefined,
      );
      cursor = next;
      for (const key of keys) yield unprefix(key);
    } while (cursor !== '0');
  }
}

/** Pub/sub, and any other read command through `call`. */
function subscriptionsAndCall({
  parts,
  core,
  tally,
  rejectClosed,
}: ViewContext): Pick<ReadOnlyRedis, 'subscribe' | 'psubscribe' | 'call'> {
  const { subscriptions } = parts;
  return {
    subscribe: async (channels, listener) => {
      const names = typeof channels === 'string' ? [channels] : [...channels];
      if (names.length === 0 || names.some((name) => typeof name !== 'string' || name === '')) {
        return core.invalid('subscribe: name at least one channel, each a non-empty string');
      }
      if (core.connection.closing) return rejectClosed();
      return subscriptions.add('channel', names, listener);
    },
    psubscribe: async (patterns, listener) => {
      const names = typeof patterns === 'string' ? [patterns] : [...patterns];
      if (names.length === 0 || names.some((name) => typeof name !== 'string' || name === '')) {
        return core.invalid('psubscribe: name at least one pattern, each a non-empty string');
      }
      if (core.connection.closing) return rejectClosed();
      return subscriptions.add('pattern', names, (message, channel, pattern) =>
        listener(message, channel, pattern ?? ''),
      );
    },
    call: (command, ...args) => {
      const name = typeof command === 'string' ? command.toLowerCase() : '';
      if (!READ_COMMANDS.has(name)) {
        return Promise.reject(
          core.fail(
            new RedisError(
              'READ_ONLY',
              `${JSON.stringify(String(command))} is not a read command: FlowForge never writes Redis data`,
            ),
          ),
        );
      }
      return core.run(tally(name), name, args);
    },
  };
}

/**
 * Builds the view. Every method's tally is looked up once here, so a command
 * costs no map lookup; the prototype answers write names with READ_ONLY.
 */
export function createReadOnlyView(parts: ReadOnlyParts): ReadOnlyRedis {
  const { core } = parts;
  const { keyPrefix, instruments } = core;
  const tallies = new Map<string, CommandTally | undefined>();
  const tally = (command: string): CommandTally | undefined => {
    if (!tallies.has(command)) tallies.set(command, instruments?.tally(command));
    return tallies.get(command);
  };
  const context: ViewContext = {
    parts,
    core,
    t: methodTallies(tally),
    tally,
    unprefix:
      keyPrefix === ''
        ? (key) => key
        : (key) => (key.startsWith(keyPrefix) ? key.slice(keyPrefix.length) : key),
    rejectClosed: () =>
      Promise.reject(core.fail(new RedisError('CLOSED', 'the redis handle is closed'))),
  };
  const methods: ReadOnlyRedis = {
    ...plainReads(context),
    ...sortedSetReads(context),
    ...streamReads(context),
    scan: (options) => scanKeys(context, options),
    ...subscriptionsAndCall(context),
  };
  return Object.freeze(Object.assign(Object.create(refusingPrototype(core)) as object, methods));
}

/**
 * The view's prototype: a write command name that is not on the view (a cast
 * past the types, a JavaScript caller) gets a function that rejects with
 * READ_ONLY and sends nothing, instead of a TypeError.
 */
function refusingPrototype(core: Core): object {
  return new Proxy(
    {},
    {
      get(target, property, receiver) {
        if (typeof property === 'string' && REFUSED_NAMES.has(commandNameOf(property))) {
          return () =>
            Promise.reject(
              core.fail(
                new RedisError(
                  'READ_ONLY',
                  `${property} is not available: the view is read-only (FlowForge never writes Redis data); use ownedKeyspace(prefix) for keys the app owns`,
                ),
              ),
            );
        }
        return Reflect.get(target, property, receiver) as unknown;
      },
    },
  );
}
