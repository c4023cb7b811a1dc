import {
  createLocalJWKSet,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type LocalJWKSet,
} from 'jose';
import { AuthError } from '../errors.js';

export interface JwksCacheOptions {
  readonly url: string;
  /** After a fetch (or a failed one), no refetch for an unknown kid or stale keys before this many ms. */
  readonly cooldownMs: number;
  /** Keys older than this are refreshed before use (kept when the refresh fails). */
  readonly maxAgeMs: number;
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;
  readonly now: () => number;
  /** Told when a fetch failed while older keys stay in use, or when none could be had. */
  readonly onFetchError?: (error: unknown, serving: 'stale' | 'none') => void;
}

type KeyLike = Awaited<ReturnType<LocalJWKSet>>;

/** With no keys at all, an anonymous caller's token must not trigger a fetch each: at most one a second. */
const NO_KEYS_BACKOFF_MS = 1_000;

/**
 * The realm's signing keys. Unlike jose's remote set, it keeps serving the last
 * good keys when a refresh fails (an IdP blip must not log everyone out), backs
 * off after a failure, and answers IDP_UNAVAILABLE (503) when it never had any
 * keys, or when a token's key is unknown while the IdP cannot be reached. `generation` changes whenever the set of keys does, so verdicts
 * cached under an older set can be recognised.
 */
export class JwksCache {
  readonly #options: JwksCacheOptions;
  #resolver: LocalJWKSet | undefined;
  #fingerprint: string | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<void> | undefined;
  /** The latest fetch failed: the IdP is unreachable (or answered nonsense) right now. */
  #lastFetchFailed = false;
  #generation = 0;
  #fetches = 0;

  constructor(options: JwksCacheOptions) {
    this.#options = options;
  }

  /** Changes whenever a fetch brings a different set of keys. */
  get generation(): number {
    return this.#generation;
  }

  /** Fetches that brought a usable key set. */
  get fetches(): number {
    return this.#fetches;
  }

  /** jose's key resolver contract: the key for this header, or a throw. */
  readonly resolve = async (
    header: JWSHeaderParameters,
    token: FlattenedJWSInput,
  ): Promise<KeyLike> => {
    // A fetch in flight (the first one, say) is waited for, not backed off from:
    // callers that arrive while it runs share its result.
    if (this.#inflight) await this.#inflight;
    const now = this.#options.now();
    const sinceAttempt = now - this.#lastAttemptAt;
    if (!this.#resolver) {
      if (sinceAttempt >= Math.min(this.#options.cooldownMs, NO_KEYS_BACKOFF_MS)) {
        await this.#refresh();
      }
    } else if (
      now - this.#fetchedAt > this.#options.maxAgeMs &&
      sinceAttempt >= this.#options.cooldownMs
    ) {
      await this.#refresh();
    }
    try {
      return await this.#current()(header, token);
    } catch (error) {
      if (!isNoMatchingKey(error)) throw error;
      // An unknown kid may be a rotation we have not seen yet: one refetch per cooldown.
      if (this.#options.now() - this.#lastAttemptAt >= this.#options.cooldownMs) {
        await this.#refresh();
      }
      try {
        return await this.#current()(header, token);
      } catch (retryError) {
        throw this.#unknownKey(retryError);
      }
    }
  };

  /**
   * A kid we have no key for. While the IdP is unreachable that may be a key it
   * rotated to, which we cannot fetch: 503 IDP_UNAVAILABLE (retry), not a 401
   * that makes clients throw a possibly valid token away.
   */
  #unknownKey(error: unknown): unknown {
    if (!isNoMatchingKey(error) || !this.#lastFetchFailed) return error;
    return new AuthError(
      'IDP_UNAVAILABLE',
      'the identity provider is unreachable: the key this token is signed with cannot be fetched',
      { cause: error },
    );
  }

  #current(): LocalJWKSet {
    if (!this.#resolver) {
      throw new AuthError(
        'IDP_UNAVAILABLE',
        'the identity provider is unreachable: no signing keys to verify tokens with',
      );
    }
    return this.#resolver;
  }

  #refresh(): Promise<void> {
    this.#inflight ??= this.#fetch().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #fetch(): Promise<void> {
    this.#lastAttemptAt = this.#options.now();
    let jwks: JSONWebKeySet;
    let resolver: LocalJWKSet;
    try {
      const response = await this.#options.fetch(this.#options.url, {
        headers: { accept: 'application/json' },
        redirect: 'error',
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
      if (!response.ok) throw new Error(`JWKS answered HTTP ${response.status}`);
      const body = (await response.json()) as { keys?: unknown };
      if (!Array.isArray(body.keys) || body.keys.length === 0) {
        throw new Error('JWKS has no keys');
      }
      jwks = { keys: body.keys as JSONWebKeySet['keys'] };
      resolver = createLocalJWKSet(jwks); // throws on a malformed set: keep the old one
    } catch (error) {
      this.#lastFetchFailed = true;
      this.#options.onFetchError?.(error, this.#resolver ? 'stale' : 'none');
      return;
    }
    this.#lastFetchFailed = false;
    this.#fetches += 1;
    this.#resolver = resolver;
    this.#fetchedAt = this.#options.now();
    const fingerprint = fingerprintOf(jwks);
    if (fingerprint !== this.#fingerprint) {
      this.#fingerprint = fingerprint;
      this.#generation += 1;
    }
  }
}

/** The key material of every key, order-independent: kids alone miss kid-less or reused-kid keys. */
function fingerprintOf(jwks: JSONWebKeySet): string {
  return jwks.keys
    .map((key) =>
      JSON.stringify([key.kid, key.kty, key.alg, key.use, key.crv, key.n, key.e, key.x, key.y]),
    )
    .sort()
    .join('\n');
}

function isNoMatchingKey(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ERR_JWKS_NO_MATCHING_KEY';
}
