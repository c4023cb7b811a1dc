export { createRedis } from './redis.js';
export type { Redis, RedisHealth } from './redis.js';
export type { IoRedisClient, RedisOptions, RetryOptions } from './options.js';
export type {
  ReadOnlyRedis,
  RedisKeyType,
  ZRangeOptions,
  ScoredMember,
  StreamEntry,
  StreamRead,
  StreamRangeOptions,
  XReadOptions,
  ScanOptions,
  ChannelListener,
  PatternListener,
  Unsubscribe,
} from './read-only.js';
export type { OwnedKeyspace, OwnedSetOptions } from './owned-keyspace.js';
export { sharedRedis, closeSharedRedis } from './shared.js';
export { RedisError, isRedisError } from './errors.js';
export type { RedisErrorCode, RedisErrorDetails } from './errors.js';
