import { createHash } from 'node:crypto';
import type { Principal } from '../principal.js';

interface Entry {
  readonly principal: Principal;
  /** ms since the epoch: the token's exp. */
  readonly expiresAt: number;
  /** The key set it was verified under: a different one (a key removed or added) means verify again. */
  readonly generation: number;
}

/**
 * Verified tokens by SHA-256 of the token: a repeated token costs a hash and a
 * map lookup instead of a signature check. Bounded (least recently used goes
 * first); an entry never outlives its token's `exp`, nor the key set it was
 * verified under.
 */
export class TokenCache {
  readonly #max: number;
  readonly #entries = new Map<string, Entry>();

  constructor(max: number) {
    this.#max = max;
  }

  static keyOf(token: string): string {
    return createHash('sha256').update(token).digest('base64url');
  }

  get(key: string, now: number, generation = 0): Principal | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    if (entry.expiresAt <= now || entry.generation !== generation) return undefined;
    this.#entries.set(key, entry); // most recently used last
    return entry.principal;
  }

  set(key: string, principal: Principal, expiresAt: number, generation = 0): void {
    if (this.#max <= 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, { principal, expiresAt, generation });
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
