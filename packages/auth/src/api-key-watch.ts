/**
 * The watch that ends an API key's long-lived requests (its streams) once the key is revoked.
 *
 * A key is checked when a request arrives, and a stream may run for hours after that. The watch
 * looks each watched key up again every `intervalMs`, however many streams wait on it (one
 * lookup per key, not per stream), and tells every waiter when a lookup finds the key revoked,
 * expired or gone. The lookup runs as the key's tenant, under row-level security, by the key's
 * id, straight from PostgreSQL: nothing is cached between lookups, so a revocation is seen by
 * the first lookup after it, within one interval.
 *
 * @module
 */
import { isTenantId, type Database } from '@flowforge/db';
import { OptionChecks, isUuid } from '@flowforge/kernel';
import type { Logger } from '@flowforge/observability';
import type { AuthDB } from './api-keys.js';
import { AuthError } from './errors.js';

/** Options of {@link createApiKeyWatch}. */
export interface ApiKeyWatchOptions {
  /**
   * Where the keys are: the `Database<AuthDB>` the API-key verifier uses (only its `withTenant`
   * is called). `null` (DATABASE_URL is not set: no key can authenticate) makes `until` reject
   * with NOT_CONFIGURED.
   */
  readonly database: Pick<Database<AuthDB>, 'withTenant'> | null;
  /**
   * How often each watched key is looked up, in milliseconds, 100 to 3600000: the longest a
   * revoked key's streams go on. @default 30000
   */
  readonly intervalMs?: number;
  /** Gets a warning when lookups start failing (streams go on meanwhile) and info when they work again. */
  readonly logger?: Logger;
  /** The clock, in epoch milliseconds: whether a key's `expires_at` is past. @default Date.now */
  readonly now?: () => number;
}

/** Why a watched key stopped working: revoked (or deleted: it will not come back), or past its `expires_at`. */
export type ApiKeyEnd = 'revoked' | 'expired';

/** The key to watch: an API-key principal has both fields. */
export interface WatchedApiKey {
  /** The key's tenant: the lookup runs as this tenant. */
  readonly tenantId: string;
  /** The key's id (`Principal.apiKeyId`). */
  readonly apiKeyId?: string | undefined;
}

/** Tells waiters when an API key stops working; see {@link createApiKeyWatch}. */
export interface ApiKeyWatch {
  /**
   * Resolves when a lookup after this call finds `key` revoked, deleted (`'revoked'`) or
   * expired (`'expired'`). A lookup that fails (PostgreSQL down) resolves nothing: the wait
   * goes on and the next interval looks again. Aborting `signal` stops the wait: the promise
   * rejects with `signal.reason`, and a key nobody waits on any more is no longer looked up.
   * After {@link ApiKeyWatch.close}, nothing is looked up and a wait ends only by its signal.
   * @throws {AuthError} INPUT_INVALID (rejects) when `key` names no API key (a principal of
   *   another method); NOT_CONFIGURED from a watch made without a database.
   * @example
   * watch.until(principal, request.signal).then(
   *   (end) => stream.end(end === 'revoked' ? 'revoked' : 'credential-expired'),
   *   () => {}, // aborted: the stream ended first
   * );
   */
  until(key: WatchedApiKey, signal: AbortSignal): Promise<ApiKeyEnd>;
  /** Keys being looked up now (each has at least one waiter). */
  readonly watching: number;
  /** How often each key is looked up, in milliseconds. */
  readonly intervalMs: number;
  /** Stops every lookup (waiting for one in flight). Idempotent. */
  close(): Promise<void>;
}

/** One watched key and everyone waiting on it. */
interface Watched {
  readonly id: string;
  readonly tenantId: string;
  readonly apiKeyId: string;
  readonly waiters: Set<(end: ApiKeyEnd) => void>;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Makes the watch of revoked API keys. Make one per process: waiters on one key share its
 * lookups only within one watch.
 *
 * @throws {AuthError} INVALID_OPTIONS for an `intervalMs` out of range.
 * @example
 * const watch = createApiKeyWatch({ database, logger });
 * const end = await watch.until(principal, signal); // 'revoked' | 'expired'
 * await watch.close(); // on shutdown
 */
export function createApiKeyWatch(options: ApiKeyWatchOptions): ApiKeyWatch {
  const checks = new OptionChecks();
  const intervalMs = checks.wholeNumber(
    'intervalMs',
    options.intervalMs,
    { min: 100, max: 3_600_000 },
    30_000,
  );
  const database = options.database;
  if (
    database !== null &&
    (typeof database !== 'object' || typeof database.withTenant !== 'function')
  ) {
    checks.problem('database: expected a Database of @flowforge/db, or null');
  }
  checks.throwIfAny((message) => new AuthError('INVALID_OPTIONS', message));
  const { logger } = options;
  const now = options.now ?? Date.now;

  const watched = new Map<string, Watched>();
  const inflight = new Set<Promise<void>>();
  let closed = false;
  let failing = false;

  function schedule(entry: Watched): void {
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      const run = check(entry);
      inflight.add(run);
      void run.finally(() => inflight.delete(run));
    }, intervalMs);
    // The streams that wait keep the process alive; the watch alone must not.
    entry.timer.unref();
  }

  function forget(entry: Watched): void {
    if (watched.get(entry.id) !== entry) return;
    watched.delete(entry.id);
    clearTimeout(entry.timer);
  }

  /** Looks the key up; null while it works (or the lookup failed). */
  async function lookup(entry: Watched): Promise<ApiKeyEnd | null> {
    const row = await database!.withTenant(
      entry.tenantId,
      (trx) =>
        trx
          .selectFrom('api_keys')
          .select(['revoked_at', 'expires_at'])
          .where('id', '=', entry.apiKeyId)
          .executeTakeFirst(),
      { accessMode: 'read only' },
    );
    if (row === undefined || row.revoked_at !== null) return 'revoked';
    if (row.expires_at !== null && row.expires_at.getTime() <= now()) return 'expired';
    return null;
  }

  async function check(entry: Watched): Promise<void> {
    let end: ApiKeyEnd | null = null;
    try {
      end = await lookup(entry);
      if (failing && !closed) {
        failing = false;
        logger?.info('API key watch: lookups work again');
      }
    } catch (error) {
      // An outage ends no stream: the key may well be live. One line per outage, not per key.
      if (!failing && !closed) {
        failing = true;
        logger?.warn(
          { err: error, interval_ms: intervalMs },
          'API key watch: a lookup failed; streams go on and every interval looks again',
        );
      }
    }
    // Forgotten meanwhile (its last waiter left, or the watch closed): nobody to tell.
    if (watched.get(entry.id) !== entry) return;
    if (end === null) {
      schedule(entry);
      return;
    }
    watched.delete(entry.id);
    for (const tell of entry.waiters) tell(end);
  }

  return {
    intervalMs,
    get watching() {
      return watched.size;
    },

    until(key, signal) {
      const { tenantId, apiKeyId } = key;
      if (!isTenantId(tenantId) || !isUuid(apiKeyId)) {
        return Promise.reject(
          new AuthError('INPUT_INVALID', 'only an API key (tenant and key id) can be watched'),
        );
      }
      if (database === null) {
        return Promise.reject(
          new AuthError('NOT_CONFIGURED', 'API keys cannot be watched: set DATABASE_URL.'),
        );
      }
      if (signal.aborted) return Promise.reject(signal.reason as Error);
      const id = `${tenantId.toLowerCase()}/${apiKeyId.toLowerCase()}`;
      return new Promise<ApiKeyEnd>((resolve, reject) => {
        const onAbort = (): void => {
          const entry = watched.get(id);
          if (entry?.waiters.delete(tell) === true && entry.waiters.size === 0) forget(entry);
          reject(signal.reason as Error);
        };
        const tell = (end: ApiKeyEnd): void => {
          signal.removeEventListener('abort', onAbort);
          resolve(end);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        // A closed watch looks nothing up: the wait ends by its signal only.
        if (closed) return;
        let entry = watched.get(id);
        if (entry === undefined) {
          entry = {
            id,
            tenantId,
            apiKeyId,
            waiters: new Set(),
            timer: undefined,
          };
          watched.set(id, entry);
          schedule(entry);
        }
        entry.waiters.add(tell);
      });
    },

    async close() {
      closed = true;
      for (const entry of [...watched.values()]) forget(entry);
      await Promise.allSettled([...inflight]);
    },
  };
}
