import { hasFlag, list } from '@ioredis/commands';

/**
 * The commands the read-only view may send through `call()`: policy, kept by
 * hand. Redis's `readonly` commands that read data, and a few harmless ones
 * without keys (ECHO, PING, TIME; OBJECT, XINFO and PUBSUB, whose
 * subcommands only inspect). Left out on purpose: KEYS (blocks the server on a
 * large keyspace: use `scan`), XREAD (a blocking read would hold the shared
 * connection: use `xread`), the script commands (EVAL_RO and friends) and the
 * families newer servers or modules add (arrays `ar…`, vector sets `v…`, hash
 * field TTLs) until someone needs one.
 */
export const READ_COMMANDS: ReadonlySet<string> = new Set(
  (
    'bitcount bitfield_ro bitpos dbsize dump exists expiretime geodist geohash geopos ' +
    'georadius_ro georadiusbymember_ro geosearch get getbit getrange hexists hget hgetall ' +
    'hkeys hlen hmget hrandfield hscan hstrlen hvals lcs lindex llen lpos lrange mget ' +
    'pexpiretime pfcount pttl randomkey scan scard sdiff sinter sintercard sismember ' +
    'smembers smismember sort_ro srandmember sscan strlen substr sunion ttl type xlen ' +
    'xpending xrange xrevrange zcard zcount zdiff zinter zintercard zlexcount zmscore ' +
    'zrandmember zrange zrangebylex zrangebyscore zrank zrevrange zrevrangebylex ' +
    'zrevrangebyscore zrevrank zscan zscore zunion echo ping time xinfo object pubsub'
  ).split(' '),
);

/** Not-`readonly` commands the view has as methods of its own (on a connection of their own). */
const VIEW_METHODS: ReadonlySet<string> = new Set(['subscribe', 'psubscribe']);

/** The ioredis methods that reach the connection with any command. */
const CLIENT_METHODS = [
  'sendCommand',
  'callBuffer',
  'pipeline',
  'duplicate',
  'disconnect',
  'connect',
  'end',
] as const;

/**
 * The names the read-only view refuses: every command in ioredis's own table
 * (@ioredis/commands) without the `readonly` flag (the writes, and what
 * changes the server or the connection: admin, scripting, transactions,
 * PUBLISH), less the read list above, and the ioredis methods that send any
 * command. The view answers any of these names, cast past the types, with
 * READ_ONLY instead of a TypeError, so a write attempted at run time fails
 * with the documented code. Derived, so a command ioredis learns is refused
 * without an edit here.
 */
export const REFUSED_NAMES: ReadonlySet<string> = new Set([
  ...list.filter(
    (name) => !hasFlag(name, 'readonly') && !READ_COMMANDS.has(name) && !VIEW_METHODS.has(name),
  ),
  ...CLIENT_METHODS,
]);

/** `setBuffer` → `set`: ioredis has a Buffer twin of every command method. */
export function commandNameOf(property: string): string {
  return property.endsWith('Buffer') ? property.slice(0, -'Buffer'.length) : property;
}
