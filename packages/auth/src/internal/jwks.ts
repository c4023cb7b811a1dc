import { setTimeout as delay } from 'node:timers/promises';
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
  /**
   * How much earlier than our last fetch a token's `iat` may be and still count as
   * "issued after we last looked" (the IdP's clock may run behind ours; iat is whole
   * seconds). The verifier passes its clock tolerance plus a second.
   */
  readonly issuedAfterSlackMs: number;
  /** Told when a fetch failed while older keys stay in use, or when none could be had. */
  readonly onFetchError?: (error: unknown, serving: 'stale' | 'none') => void;
}

type KeyLike = Awaited<ReturnType<LocalJWKSet>>;

/** What a health probe reads of the key set. */
export interface JwksState {
  /** When the keys in use were fetched (by `now`); null when there are none. */
  readonly keysFetchedAt: number | null;
  /** The latest fetch failed. */
  readonly lastFetchFailed: boolean;
  /** Why it failed, without the URL. */
  readonly lastError: string | undefined;
  /** A fetch is still waiting for the IdP. */
  readonly pending: boolean;
}

/**
 * The shortest spacing of fetches that a caller's token can cause when the cooldown does
 * not apply (no keys at all; an unknown kid in a token issued after our last fetch): an
 * anonymous caller must not make the service hammer its IdP, so at most one a second.
 */
const EARLY_FETCH_SPACING_MS = 1_000;

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
  #lastError: string | undefined;
  #generation = 0;
  #fetches = 0;
  /** Fetches started, successful or not: tells a caller whether one ran while it waited. */
  #attempts = 0;

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

  /**
   * For health checks: fetches when the last attempt (anyone's) is at least `spacingMs`
   * old, waits at most `waitMs` for a fetch in flight, and reports the state.
   */
  async probe(spacingMs: number, waitMs: number): Promise<JwksState> {
    if (!this.#inflight && this.#options.now() - this.#lastAttemptAt >= spacingMs) {
      void this.#refresh();
    }
    const inflight = this.#inflight;
    if (inflight) {
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, waitMs);
      });
      await Promise.race([inflight, waited]);
      clearTimeout(timer);
    }
    return {
      keysFetchedAt: this.#resolver ? this.#fetchedAt : null,
      lastFetchFailed: this.#lastFetchFailed,
      lastError: this.#lastError,
      pending: this.#inflight !== undefined,
    };
  }

  /** jose's key resolver contract: the key for this header, or a throw. */
  readonly resolve = async (
    header: JWSHeaderParameters,
    token: FlattenedJWSInput,
  ): Promise<KeyLike> => {
    // A fetch in flight (the first one, say) is waited for, not backed off from:
    // callers that arrive while it runs share its result. Not with keys still within
    // their max age: a background refresh (a readiness probe's) against a black-holed
    // IdP would otherwise hold every verification for its timeout.
    const attemptsOnArrival = this.#attempts - (this.#inflight ? 1 : 0);
    const fresh =
      this.#resolver !== undefined &&
      this.#options.now() - this.#fetchedAt <= this.#options.maxAgeMs;
    if (this.#inflight && !fresh) await this.#inflight;
    const now = this.#options.now();
    const sinceAttempt = now - this.#lastAttemptAt;
    if (!this.#resolver) {
      if (sinceAttempt >= Math.min(this.#options.cooldownMs, EARLY_FETCH_SPACING_MS)) {
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
      // Keycloak signs with a new key the moment it exists, so a token issued after our
      // last fetch gets one sooner: it waits for the next one-second slot (shared by every
      // such caller) rather than being refused; a forger claiming a fresh iat costs the IdP
      // at most one fetch a second. (docs/decisions/009-real-keycloak-in-tests.md)
      const sinceAttemptNow = this.#options.now() - this.#lastAttemptAt;
      if (sinceAttemptNow >= this.#options.cooldownMs) {
        await this.#refresh();
      } else if (
        // Not while the IdP is failing: then the cooldown spaces attempts (a blackholed IdP
        // makes every fetch wait for its timeout). Not when a fetch ran during this call: it
        // already looked.
        !this.#lastFetchFailed &&
        this.#attempts === attemptsOnArrival &&
        this.#issuedSinceLastFetch(token)
      ) {
        const attemptBefore = this.#attempts;
        // Bounded whatever the injected clock does (it may step back).
        const wait = Math.min(EARLY_FETCH_SPACING_MS, EARLY_FETCH_SPACING_MS - sinceAttemptNow);
        if (wait > 0) await delay(wait);
        // Another caller's fetch in the meantime answers for this one too.
        if (this.#attempts === attemptBefore) await this.#refresh();
      }
      // A fetch another caller started may still be running: its keys are the ones to try.
      if (this.#inflight) await this.#inflight;
      try {
        return await this.#current()(header, token);
      } catch (retryError) {
        throw this.#unknownKey(retryError);
      }
    }
  };

  /**
   * Whether the token says it was issued after our last successful fetch (its `iat`, not yet
   * verified: a forger can claim anything, which is why such refetches are spaced a second).
   */
  #issuedSinceLastFetch(token: FlattenedJWSInput): boolean {
    let iat: unknown;
    try {
      // jose hands the payload segment over as it is in the token: base64url text.
      const segment =
        typeof token.payload === 'string' ? token.payload : new TextDecoder().decode(token.payload);
      iat = (
        JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as { iat?: unknown } | null
      )?.iat;
    } catch {
      return false;
    }
    return (
      typeof iat === 'number' &&
      Number.isFinite(iat) &&
      iat * 1000 + this.#options.issuedAfterSlackMs > this.#fetchedAt
    );
  }

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
      { cause: error, failure: 'idp_unavailable' },
    );
  }

  #current(): LocalJWKSet {
    if (!this.#resolver) {
      throw new AuthError(
        'IDP_UNAVAILABLE',
        'the identity provider is unreachable: no signing keys to verify tokens with',
        { failure: 'idp_unavailable' },
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
    this.#attempts += 1;
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
      this.#lastError = describeFetchError(error);
      this.#options.onFetchError?.(error, this.#resolver ? 'stale' : 'none');
      return;
    }
    this.#lastFetchFailed = false;
    this.#lastError = undefined;
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

/** A fetch failure in a line for health reports: undici's "fetch failed" says nothing without its cause's code. */
function describeFetchError(error: unknown): string {
  // A parse error quotes the body it choked on: not for a report.
  if (error instanceof SyntaxError) return 'the JWKS answer is not JSON';
  const { message, cause } = (error ?? {}) as { message?: unknown; cause?: { code?: unknown } };
  const text = typeof message === 'string' && message !== '' ? message : 'the JWKS fetch failed';
  return typeof cause?.code === 'string' ? `${text} (${cause.code})` : text;
}
