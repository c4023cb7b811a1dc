/**
 * The structural Redis keyspace this package keeps shared state in (failure counts, stream
 * tickets) without a Redis client of its own: @flowforge/redis's `OwnedKeyspace` is one, so an
 * app passes `redis.ownedKeyspace(PREFIX)`.
 *
 * @module
 */

/** Options of {@link KeyspaceStore.set}: the same as @flowforge/redis's `OwnedSetOptions`. */
export interface KeyspaceSetOptions {
  /** Expire the key after this many milliseconds (PX), a whole number ≥ 1. */
  readonly ttlMs?: number;
  /** Only set the key when it does not exist yet (NX). */
  readonly onlyIfAbsent?: boolean;
}

/**
 * Keys under one prefix that the app owns, with GET, SET (PX, NX) and DEL: what
 * {@link createStreamTickets} needs, and the base of the failure throttle's `CounterStore`.
 * @flowforge/redis's `OwnedKeyspace` is one.
 */
export interface KeyspaceStore {
  /** Every key used starts with this. */
  readonly prefix: string;
  /** GET: the value, or null when the key does not exist. */
  get(key: string): Promise<string | null>;
  /** SET, with PX and NX as `options` say; false when NX found the key. */
  set(key: string, value: string, options?: KeyspaceSetOptions): Promise<boolean>;
  /** DEL: how many keys existed (0 or 1 for one key). */
  del(key: string): Promise<number>;
}
