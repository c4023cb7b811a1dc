import type { KeyspaceSetOptions, KeyspaceStore } from '../keyspace-store.js';

interface Entry {
  readonly value: string;
  /** By the store's clock; `Infinity` for a key set without a TTL. */
  readonly expiresAt: number;
}

/**
 * A {@link KeyspaceStore} in this process's memory, holding at most `max` live keys: what the
 * stream tickets use without Redis. Keys are kept in the order they were set; with one TTL for
 * every key (the tickets' case) that is also the order they expire in, so each `set` drops the
 * expired keys at the head and no timer is needed. Past `max` live keys a `set` throws
 * `full(ms until the oldest expires)`, rather than forget a key someone still holds.
 */
export class MemoryKeyspace implements KeyspaceStore {
  readonly prefix: string;
  readonly #entries = new Map<string, Entry>();
  readonly #max: number;
  readonly #now: () => number;
  readonly #full: (retryAfterMs: number) => Error;

  constructor(
    prefix: string,
    max: number,
    now: () => number,
    full: (retryAfterMs: number) => Error,
  ) {
    this.prefix = prefix;
    this.#max = max;
    this.#now = now;
    this.#full = full;
  }

  get(key: string): Promise<string | null> {
    const entry = this.#entries.get(key);
    if (entry === undefined) return Promise.resolve(null);
    if (entry.expiresAt <= this.#now()) {
      this.#entries.delete(key);
      return Promise.resolve(null);
    }
    return Promise.resolve(entry.value);
  }

  set(key: string, value: string, options: KeyspaceSetOptions = {}): Promise<boolean> {
    const now = this.#now();
    this.#sweep(now);
    const existing = this.#entries.get(key);
    if (existing !== undefined && existing.expiresAt > now) {
      if (options.onlyIfAbsent) return Promise.resolve(false);
    } else if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.values().next().value;
      return Promise.reject(this.#full(oldest === undefined ? 0 : oldest.expiresAt - now));
    }
    // Deleted first so that the key moves to the end: the map stays in expiry order.
    this.#entries.delete(key);
    this.#entries.set(key, {
      value,
      expiresAt: options.ttlMs === undefined ? Infinity : now + options.ttlMs,
    });
    return Promise.resolve(true);
  }

  del(key: string): Promise<number> {
    const entry = this.#entries.get(key);
    if (entry === undefined) return Promise.resolve(0);
    this.#entries.delete(key);
    return Promise.resolve(entry.expiresAt > this.#now() ? 1 : 0);
  }

  /** Drops the expired keys at the head (the oldest), stopping at the first live one. */
  #sweep(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt > now) return;
      this.#entries.delete(key);
    }
  }
}
