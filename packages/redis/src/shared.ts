import { RedisError } from './errors.js';
import type { RedisOptions } from './options.js';
import { openRedis, type Redis } from './redis.js';

let shared: { readonly handle: Redis; readonly options: RedisOptions } | undefined;

/** The options as values (objects by identity), to tell "the same options" from "other options". */
function sameOptions(a: RedisOptions, b: RedisOptions): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as (keyof RedisOptions)[]);
  for (const key of keys) {
    const left: unknown = a[key];
    const right: unknown = b[key];
    if (left === right) continue;
    // Plain data (topology, retry, tls) compares by content; logger, metrics and client by identity.
    if (key === 'logger' || key === 'metrics' || key === 'client') return false;
    if (JSON.stringify(left) !== JSON.stringify(right)) return false;
  }
  return true;
}

/**
 * The process-wide handle, as the original `redis.py` had: created by the first
 * call, returned by every later one. Tests never need it: use
 * {@link createRedis}.
 *
 * @throws {RedisError} INVALID_OPTIONS when called again with other options
 *   than the handle was created with; the errors of {@link createRedis}.
 * @example
 * const redis = sharedRedis({ ...settings.redis, logger, metrics });
 */
export function sharedRedis(options: RedisOptions): Redis {
  if (shared) {
    if (!sameOptions(shared.options, options)) {
      throw new RedisError(
        'INVALID_OPTIONS',
        'sharedRedis was already created with other options: pass the same ones, or closeSharedRedis() first',
      );
    }
    return shared.handle;
  }
  const handle = openRedis(options, () => {
    if (shared?.handle === handle) shared = undefined;
  });
  shared = { handle, options: { ...options } };
  return handle;
}

/** Closes the process-wide handle, if there is one; the next {@link sharedRedis} creates a new one. */
export async function closeSharedRedis(): Promise<void> {
  await shared?.handle.close();
}
