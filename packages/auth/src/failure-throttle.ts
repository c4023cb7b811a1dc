/**
 * The throttle of failed API-key attempts, per client.
 *
 * Every attempt takes a point before the key is verified ({@link FailureThrottle.attempt},
 * one atomic increment), and a client past its limit is refused with 429 and
 * `Retry-After` without any database work; an attempt that turns out not to be a
 * failure gives its point back. Taking first is what bounds a client that sends
 * its guesses all at once: reading the count, verifying and counting afterwards
 * let every request of a burst read the same count. Counts live in a {@link CounterStore}
 * (Redis keys the app owns, so every instance sees every instance's failures) or,
 * without one, in this process's memory. When the store fails, the library's
 * insurance limiter counts in memory instead: throttling goes on per instance,
 * it neither opens up nor refuses everyone.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { OptionChecks } from '@flowforge/kernel';
import type { Logger, Metrics } from '@flowforge/observability';
import { createRequire } from 'node:module';
import {
  RateLimiterMemory,
  RateLimiterRes,
  type RateLimiterAbstract,
  type RateLimiterStoreAbstract as StoreAbstract,
} from 'rate-limiter-flexible';
import { AuthError } from './errors.js';
import { failureCounter, type FailureCounter } from './internal/metrics.js';
import { hasStoreShape } from './internal/store-shape.js';
import type { KeyspaceSetOptions, KeyspaceStore } from './keyspace-store.js';

// rate-limiter-flexible documents RateLimiterStoreAbstract as the base of every store-backed
// limiter and declares it in its types, but its index does not export it: the file is the seam.
const RateLimiterStoreAbstract = createRequire(import.meta.url)(
  'rate-limiter-flexible/lib/RateLimiterStoreAbstract.js',
) as typeof StoreAbstract;

/**
 * The prefix of the Redis keys an app hands {@link createFailureThrottle} as its
 * store (`redis.ownedKeyspace(FAILURE_THROTTLE_PREFIX)`): one keyspace, so every
 * app and instance of a deployment counts a client's wrong keys together.
 */
export const FAILURE_THROTTLE_PREFIX = 'flowforge:auth:failures:';

/** Options of {@link CounterStore.set}: the same as @flowforge/redis's `OwnedSetOptions`. */
export type CounterSetOptions = KeyspaceSetOptions;

/**
 * Where a {@link FailureThrottle} keeps its counts to share them between
 * instances: a {@link KeyspaceStore} that also counts. A structural type:
 * @flowforge/redis's `OwnedKeyspace` is one, so an app passes
 * `redis.ownedKeyspace(FAILURE_THROTTLE_PREFIX)` and this package needs no Redis client of
 * its own.
 */
export interface CounterStore extends KeyspaceStore {
  /** INCRBY: the value after it (a missing key counts from 0). */
  incr(key: string, by?: number): Promise<number>;
  /** PEXPIRE; false when the key does not exist. */
  expire(key: string, ttlMs: number): Promise<boolean>;
  /** PTTL in milliseconds: -1 for a key without expiry, -2 for none. */
  pttl(key: string): Promise<number>;
}

/**
 * Options of {@link createFailureThrottle}; `settings.auth.apiKeyFailures` from
 * @flowforge/config spreads in.
 */
export interface FailureThrottleOptions {
  /**
   * Failures one client may have in a window (AUTH_API_KEY_MAX_FAILURES), 1 to 100000;
   * its next attempt is refused until the window ends. @default 10
   */
  readonly max?: number;
  /**
   * The window, in seconds, counted from a client's first failure
   * (AUTH_API_KEY_FAILURE_WINDOW_SECONDS), 1 to 86400. @default 60
   */
  readonly windowSeconds?: number;
  /**
   * Shared counts (Redis keys the app owns). `null` or absent: this process's memory,
   * so each instance allows `max` on its own.
   * @default null
   */
  readonly store?: CounterStore | null;
  /** Gets a warning when a client reaches the limit and when the store fails (info when it is back). */
  readonly logger?: Logger;
  /** Counts refused attempts in `flowforge_auth_failures_total{reason="throttled"}`. */
  readonly metrics?: Metrics;
}

/** Counts failed attempts per client and refuses a client over its limit; see {@link createFailureThrottle}. */
export interface FailureThrottle {
  /**
   * Resolves when `client` may try; call it before verifying anything.
   * @throws {AuthError} TOO_MANY_FAILURES (429) with `retryAfterSeconds`, the time left in
   *   the client's window, when it has `max` failures in it
   */
  assertAllowed(client: string): Promise<void>;
  /** Counts one failure of `client`. Never rejects: a store that fails counts in memory. */
  recordFailure(client: string): Promise<void>;
  /**
   * Takes a point for an attempt of `client` before anything is verified: a burst
   * of attempts sent at once cannot all pass a limit read before any of them counted.
   * Give the point back with {@link FailureThrottle.forgive} when the attempt turns
   * out not to be a failure.
   * @throws {AuthError} TOO_MANY_FAILURES (429) with `retryAfterSeconds` when the
   *   client is past its limit
   */
  attempt(client: string): Promise<void>;
  /** Gives back the point of an {@link FailureThrottle.attempt} that was no failure. Never rejects. */
  forgive(client: string): Promise<void>;
  /** Forgets `client`'s failures (an operator lifting a block). Never rejects. */
  reset(client: string): Promise<void>;
  /** Failures allowed per window. */
  readonly max: number;
  /** The window, in seconds. */
  readonly windowSeconds: number;
  /** Where the counts live: `store` (shared; memory while it fails) or `memory` (this process). */
  readonly backend: 'store' | 'memory';
}

/** A counter reading as the store limiter hands it to rate-limiter-flexible: [consumed, ttl ms]. */
type StoreResult = [consumed: number, ttlMs: number];

/**
 * A rate-limiter-flexible store over a {@link CounterStore}, through the seam the library
 * documents for stores (`_upsert`, `_get`, `_delete`, `_getRateLimiterRes`). INCRBY alone
 * makes the count atomic (one round trip on the hot path); the first point of a window sets
 * the expiry, and a count read past the limit without one (the expiry was lost between the
 * two commands) gets it back there, so no client can stay blocked for good.
 */
class CounterStoreLimiter extends RateLimiterStoreAbstract {
  readonly #store: CounterStore;
  readonly #observe: (error: unknown) => void;

  constructor(
    store: CounterStore,
    options: { points: number; duration: number; insuranceLimiter: RateLimiterAbstract },
    observe: (error: unknown) => void,
  ) {
    // No keyPrefix: the store's own prefix starts every key.
    super({ ...options, storeClient: store, keyPrefix: '' });
    this.#store = store;
    this.#observe = observe;
  }

  async #guard<T>(run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      this.#observe(undefined);
      return result;
    } catch (error) {
      this.#observe(error);
      throw error; // the library hands the call to the insurance limiter
    }
  }

  _getRateLimiterRes(_rlKey: string, changedPoints: number, [consumed, ttlMs]: StoreResult) {
    return new RateLimiterRes(
      Math.max(this.points - consumed, 0),
      ttlMs,
      consumed,
      consumed === changedPoints,
    );
  }

  _upsert(rlKey: string, points: number, msDuration: number, forceExpire = false) {
    const key = this.#store.prefix + rlKey;
    const ttlMs = Math.ceil(msDuration);
    return this.#guard(async (): Promise<StoreResult> => {
      if (forceExpire) {
        await this.#store.set(key, String(points), ttlMs > 0 ? { ttlMs } : {});
        return [points, ttlMs > 0 ? ttlMs : -1];
      }
      const consumed = await this.#store.incr(key, points);
      if (points < 0) {
        // A point given back (`reward`): a count back at zero is dropped rather than left
        // without the expiry a fresh key would need.
        if (consumed <= 0) await this.#store.del(key);
        return [Math.max(consumed, 0), 0];
      }
      // The first point of a window: the key is new and has no expiry yet.
      if (consumed === points && ttlMs > 0) {
        await this.#store.expire(key, ttlMs);
        return [consumed, ttlMs];
      }
      // Under the limit the time left is never read: spare the hot path a round trip.
      return consumed > this.points ? [consumed, await this.#timeLeft(key, ttlMs)] : [consumed, 0];
    });
  }

  /** The key's time left; a key that lost its expiry gets a full window again. */
  async #timeLeft(key: string, ttlMs: number): Promise<number> {
    const left = await this.#store.pttl(key);
    if (left === -1 && ttlMs > 0) {
      await this.#store.expire(key, ttlMs);
      return ttlMs;
    }
    return left === -2 ? ttlMs : left;
  }

  _get(rlKey: string) {
    const key = this.#store.prefix + rlKey;
    return this.#guard(async (): Promise<StoreResult | null> => {
      const value = await this.#store.get(key);
      if (value === null) return null;
      const consumed = Number(value);
      // Under the limit the time left is never read: spare the hot path a round trip.
      if (consumed < this.points) return [consumed, 0];
      const left = await this.#store.pttl(key);
      if (left === -2) return null;
      if (left === -1) {
        // Blocked with no end: a lost expiry. Give the key a window, or the client waits forever.
        await this.#store.expire(key, this.duration * 1000);
        return [consumed, this.duration * 1000];
      }
      return [consumed, left];
    });
  }

  _delete(rlKey: string) {
    return this.#guard(async () => (await this.#store.del(this.#store.prefix + rlKey)) > 0);
  }
}

/** A client id as a key part: addresses stay readable; anything else is hashed to a fixed size. */
function keyOf(client: string): string {
  return /^[0-9A-Za-z.:%_-]{1,64}$/.test(client)
    ? client
    : `sha256:${createHash('sha256').update(client, 'utf8').digest('hex')}`;
}

const invalidOptions = (message: string): AuthError => new AuthError('INVALID_OPTIONS', message);

/**
 * Makes the throttle of failed attempts that the `apiKey` hooks of
 * `@flowforge/auth/fastify` and `@flowforge/auth/node` take. Make one per process
 * and share it between routes: each throttle counts on its own.
 *
 * @throws {AuthError} INVALID_OPTIONS for a `max` or `windowSeconds` out of range, or a
 *   `store` without the counter methods.
 * @example
 * const throttle = createFailureThrottle({
 *   ...settings.auth.apiKeyFailures,
 *   store: redis?.ownedKeyspace(FAILURE_THROTTLE_PREFIX) ?? null,
 *   logger,
 *   metrics,
 * });
 * embed.addHook('onRequest', apiKey(apiKeys, settings.auth.apiKeyHeader, { throttle }));
 */
export function createFailureThrottle(options: FailureThrottleOptions = {}): FailureThrottle {
  const checks = new OptionChecks();
  const max = checks.wholeNumber('max', options.max, { min: 1, max: 100_000 }, 10);
  const windowSeconds = checks.wholeNumber(
    'windowSeconds',
    options.windowSeconds,
    { min: 1, max: 86_400 },
    60,
  );
  const store = options.store ?? null;
  if (store !== null && !hasStoreShape(store, ['get', 'set', 'incr', 'expire', 'pttl', 'del'])) {
    checks.problem('store: expected a CounterStore (prefix, get, set, incr, expire, pttl, del)');
  }
  checks.throwIfAny(invalidOptions);
  const { logger } = options;
  const refusals: FailureCounter | undefined = options.metrics
    ? failureCounter(options.metrics)
    : undefined;

  const memory = new RateLimiterMemory({ points: max, duration: windowSeconds, keyPrefix: '' });
  let storeFailing = false;
  const limiter: RateLimiterAbstract =
    store === null
      ? memory
      : new CounterStoreLimiter(
          store,
          { points: max, duration: windowSeconds, insuranceLimiter: memory },
          (error) => {
            // One line when the store starts failing and one when it is back, not one per request.
            if (error !== undefined && !storeFailing) {
              storeFailing = true;
              logger?.warn(
                { err: error },
                'API-key failure counts: the store failed; counting in this process until it is back',
              );
            } else if (error === undefined && storeFailing) {
              storeFailing = false;
              logger?.info('API-key failure counts: the store is back; counts are shared again');
            }
          },
        );

  /** Whole seconds, at least one, left in a window that ends in `ms` (-1: no expiry, a full window). */
  const secondsLeft = (ms: number): number =>
    ms < 0 ? windowSeconds : Math.max(1, Math.ceil(ms / 1000));

  /** The refusal of a client whose window ends in `ms`. */
  function refusal(ms: number): AuthError {
    const retryAfterSeconds = secondsLeft(ms);
    refusals?.inc({ reason: 'throttled' });
    return new AuthError(
      'TOO_MANY_FAILURES',
      `too many failed attempts from this client; try again in ${retryAfterSeconds} s`,
      { retryAfterSeconds },
    );
  }

  return {
    max,
    windowSeconds,
    backend: store === null ? 'memory' : 'store',
    async assertAllowed(client) {
      const current = await limiter.get(keyOf(client));
      if (current === null || current.consumedPoints < max) return;
      // A record past its end (memory sweeps on a timer) no longer counts; -1 is "no expiry".
      if (current.msBeforeNext === 0 || current.msBeforeNext < -1) return;
      throw refusal(current.msBeforeNext);
    },
    async attempt(client) {
      try {
        await limiter.consume(keyOf(client));
      } catch (rejection) {
        if (!(rejection instanceof RateLimiterRes)) {
          // Only the memory limiter is left when this happens, and it does not fail: let the
          // attempt through rather than refuse every client for a fault of ours.
          logger?.warn({ err: rejection }, 'API-key failure counts: an attempt was not counted');
          return;
        }
        if (rejection.consumedPoints === max + 1) {
          logger?.warn(
            { client, max, retry_after_s: secondsLeft(rejection.msBeforeNext) },
            'a client reached the limit of failed API-key attempts; refusing it until its window ends',
          );
        }
        throw refusal(rejection.msBeforeNext);
      }
    },
    async forgive(client) {
      try {
        await limiter.reward(keyOf(client), 1);
      } catch (error) {
        logger?.warn({ err: error }, 'API-key failure counts: a point was not given back');
      }
    },
    async recordFailure(client) {
      let result: RateLimiterRes;
      try {
        result = await limiter.consume(keyOf(client));
      } catch (rejection) {
        // Over the limit already (requests that raced past assertAllowed): nothing to add.
        if (rejection instanceof RateLimiterRes) return;
        logger?.warn({ err: rejection }, 'API-key failure counts: a failure was not counted');
        return;
      }
      if (result.consumedPoints === max) {
        logger?.warn(
          { client, max, retry_after_s: secondsLeft(result.msBeforeNext) },
          'a client reached the limit of failed API-key attempts; refusing it until its window ends',
        );
      }
    },
    async reset(client) {
      try {
        await limiter.delete(keyOf(client));
      } catch (error) {
        logger?.warn({ err: error }, 'API-key failure counts: a reset failed');
      }
    },
  };
}

/**
 * The client a request counts against, from its peer address: an IPv4-mapped IPv6
 * address as the IPv4 one, any other IPv6 address as its /64 (one host is usually given a
 * whole /64, so counting single addresses there would count nothing), `unknown` when the
 * socket has no address any more.
 *
 * @example clientOfAddress('2001:db8:1:2:3:4:5:6') // '2001:db8:1:2::/64'
 */
export function clientOfAddress(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const bare = address.split('%', 1)[0]!;
  // A trailing dotted IPv4 part stands for the last two groups.
  const dotted = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(bare);
  const groupsOf = (text: string): string[] => (text === '' ? [] : text.split(':'));
  let text = bare;
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${bare.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groups =
    tail === undefined
      ? groupsOf(head)
      : [
          ...groupsOf(head),
          ...Array<string>(8 - groupsOf(head).length - groupsOf(tail).length).fill('0'),
          ...groupsOf(tail),
        ];
  return `${groups
    .slice(0, 4)
    .map((group) => parseInt(group, 16).toString(16))
    .join(':')}::/64`;
}
