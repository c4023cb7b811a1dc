import { RedisError } from './errors.js';
import type { Core } from './internal/core.js';

/** Options of {@link OwnedKeyspace.set}. */
export interface OwnedSetOptions {
  /** Expire the key after this many milliseconds (PX). @default no expiry */
  readonly ttlMs?: number;
  /** Only set when the key does not exist yet (NX); `set` then resolves `false` if it existed. @default false */
  readonly onlyIfAbsent?: boolean;
}

/**
 * The keys under one prefix that the app itself owns (its caches, its locks):
 * the only place this package writes. Every key must start with the prefix,
 * else the call rejects with INVALID_ARGUMENT before anything is sent. Data
 * keys stay read-only: read them through `redis.data`.
 */
export interface OwnedKeyspace {
  /** The prefix every key of this keyspace starts with. */
  readonly prefix: string;
  /** GET. */
  get(key: string): Promise<string | null>;
  /** SET, optionally with a TTL and only-if-absent; `false` when NX found the key. */
  set(key: string, value: string | number, options?: OwnedSetOptions): Promise<boolean>;
  /** DEL (split per slot on Cluster); how many keys existed. */
  del(keys: string | readonly string[]): Promise<number>;
  /** PEXPIRE; `false` when the key does not exist. */
  expire(key: string, ttlMs: number): Promise<boolean>;
  /** INCRBY (default 1); the value after it. */
  incr(key: string, by?: number): Promise<number>;
  /** PTTL in milliseconds: -1 without expiry, -2 when the key does not exist. */
  pttl(key: string): Promise<number>;
}

/**
 * @throws {RedisError} INVALID_ARGUMENT for an empty prefix or one with glob
 *   characters (`* ? [ ]`): it would own keys nobody meant to give it.
 */
export function createOwnedKeyspace(core: Core, prefix: string): OwnedKeyspace {
  if (typeof prefix !== 'string' || prefix === '' || /[*?[\]]/.test(prefix)) {
    throw new RedisError(
      'INVALID_ARGUMENT',
      'ownedKeyspace needs a non-empty prefix without * ? [ ] (e.g. "cache:widgets:")',
    );
  }
  const { instruments } = core;
  const t = {
    get: instruments?.tally('get'),
    set: instruments?.tally('set'),
    del: instruments?.tally('del'),
    pexpire: instruments?.tally('pexpire'),
    incrby: instruments?.tally('incrby'),
    pttl: instruments?.tally('pttl'),
  };
  const outside = (key: unknown): boolean => typeof key !== 'string' || !key.startsWith(prefix);
  const refuse = (): Promise<never> =>
    core.invalid(`the key is outside the owned prefix ${JSON.stringify(prefix)}`);
  const validTtl = (ttl: unknown): boolean =>
    typeof ttl === 'number' && Number.isInteger(ttl) && ttl > 0;

  return Object.freeze({
    prefix,
    get: (key: string) => (outside(key) ? refuse() : core.run<string | null>(t.get, 'get', [key])),
    set: (key: string, value: string | number, options?: OwnedSetOptions) => {
      if (outside(key)) return refuse();
      if (typeof value !== 'string' && typeof value !== 'number') {
        return core.invalid('set: the value must be a string or a number');
      }
      const args: (string | number)[] = [key, value];
      if (options?.ttlMs !== undefined) {
        if (!validTtl(options.ttlMs)) return core.invalid('set: ttlMs must be a whole number ≥ 1');
        args.push('PX', options.ttlMs);
      }
      if (options?.onlyIfAbsent) args.push('NX');
      return core.run(t.set, 'set', args, (reply: string | null) => reply === 'OK');
    },
    del: async (keys: string | readonly string[]) => {
      const list = typeof keys === 'string' ? [keys] : keys;
      if (list.some(outside)) return refuse();
      if (list.length === 0) return 0;
      const parts = await core.perSlot(list, (group) => core.run<number>(t.del, 'del', group));
      return parts.reduce((sum, part) => sum + part.reply, 0);
    },
    expire: (key: string, ttlMs: number) => {
      if (outside(key)) return refuse();
      if (!validTtl(ttlMs)) return core.invalid('expire: ttlMs must be a whole number ≥ 1');
      return core.run(t.pexpire, 'pexpire', [key, ttlMs], (reply: number) => reply === 1);
    },
    incr: (key: string, by = 1) => {
      if (outside(key)) return refuse();
      if (!Number.isSafeInteger(by)) return core.invalid('incr: by must be a whole number');
      return core.run<number>(t.incrby, 'incrby', [key, by]);
    },
    pttl: (key: string) => (outside(key) ? refuse() : core.run<number>(t.pttl, 'pttl', [key])),
  });
}
