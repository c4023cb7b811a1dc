/**
 * The commands the read-only view may send through `call()`: Redis's `readonly`
 * commands that read data, and a few harmless ones without keys. Left out on
 * purpose: KEYS (blocks the server on a large keyspace: use `scan`), XREAD (a
 * blocking read would hold the shared connection: use `xread`), the script
 * commands (EVAL_RO and friends) and the new-module families this server
 * version does not have.
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

/**
 * Every Redis command that is not a read (from the command table of ioredis 6),
 * and the ioredis methods that send arbitrary commands. The read-only view
 * answers any of these names, cast past the types, with READ_ONLY instead of a
 * TypeError, so a write attempted at run time fails with the documented code.
 */
export const NOT_READ_NAMES: ReadonlySet<string> = new Set(
  (
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
    // ioredis methods that reach the connection
    'sendCommand callBuffer pipeline duplicate disconnect connect end'
  ).split(' '),
);

/** `setBuffer` → `set`: ioredis has a Buffer twin of every command method. */
export function commandNameOf(property: string): string {
  return property.endsWith('Buffer') ? property.slice(0, -'Buffer'.length) : property;
}
