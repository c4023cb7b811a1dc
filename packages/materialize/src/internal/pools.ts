import { Pool, type PoolClient } from 'pg';
import type { ResolvedOptions } from './options.js';

/** Resolves true when `promise` settles within `ms`, false otherwise (never rejects). */
export function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const settled = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    promise.then(settled, settled);
  });
}

/** The connections of one handle. */
export interface Pools {
  /** Subscriptions: each live one holds a connection of it. */
  readonly pool: Pool;
  /**
   * start() and health(): with every pooled connection held by a
   * subscription, a busy handle must not look like a server that is down.
   */
  readonly checkPool: Pool;
  /** Ends both pools, destroying the sockets of what has not ended after `timeoutMs`. */
  end(timeoutMs: number): Promise<void>;
}

/**
 * The two pools of a handle. Lazy: nothing connects here, so a handle refused
 * afterwards (a name conflict) leaks nothing.
 * @param onIdleError - an idle pooled connection broke (the pool drops it)
 */
export function openPools(resolved: ResolvedOptions, onIdleError: (error: unknown) => void): Pools {
  const poolOf = (max: number): Pool =>
    new Pool({
      connectionString: resolved.url,
      max,
      connectionTimeoutMillis: resolved.connectTimeoutMs,
      idleTimeoutMillis: 10_000,
      // Idle connections do not keep the process alive.
      allowExitOnIdle: true,
      keepAlive: true,
      application_name: `flowforge-${resolved.name}`,
    });
  const pool = poolOf(resolved.poolSize);
  const checkPool = poolOf(1);
  const clients = new Set<PoolClient>();
  for (const each of [pool, checkPool]) {
    each.on('connect', (client) => clients.add(client));
    each.on('remove', (client) => clients.delete(client));
    // Without an 'error' listener, an idle connection that breaks would end the process.
    each.on('error', onIdleError);
  }
  return {
    pool,
    checkPool,
    async end(timeoutMs) {
      const ended = Promise.all([pool.end(), checkPool.end()]);
      if (!(await settlesWithin(ended, timeoutMs))) {
        // A statement that does not end (a hung server): drop the sockets.
        for (const client of clients) client.connection.stream.destroy();
        await settlesWithin(ended, timeoutMs);
      }
    },
  };
}
