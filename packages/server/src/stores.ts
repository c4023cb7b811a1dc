import type { Settings } from '@flowforge/config';
import { createClickHouse, type ClickHouse } from '@flowforge/clickhouse';
import { createMaterialize, type Materialize } from '@flowforge/materialize';
import type { Logger, Metrics } from '@flowforge/observability';
import { createRedis, type Redis } from '@flowforge/redis';
import type { Closable, Lifecycle } from './lifecycle.js';
import type { HealthChecked, Readiness } from './readiness.js';

/** The stores a service may run without: each `null` when its URL is not set. */
export interface OptionalStores {
  /** ClickHouse at CLICKHOUSE_URL (nothing connects yet). */
  readonly clickhouse: ClickHouse | null;
  /** Redis at REDIS_URL (nothing connects yet). */
  readonly redis: Redis | null;
  /**
   * Materialize at MATERIALIZE_URL, started as optional: an unreachable server
   * does not stop the service (its status is `unavailable` and it keeps retrying).
   */
  readonly materialize: Materialize | null;
}

/** The stores {@link openOptionalStores} knows. */
export type OptionalStoreName = keyof OptionalStores;

/** What the stores report to. */
export interface StoreDependencies {
  /** Gets a line for each store left out, and the stores' own lines. */
  readonly logger: Logger;
  /** The registry the stores' metrics are declared in. */
  readonly metrics: Metrics;
}

/**
 * Opens the optional stores from `settings`, the same way in every service: a
 * store whose URL is unset is `null` (logged once; its routes answer 503 with
 * `storeNotConfigured` and readiness reports it `not_configured`), never a
 * stand-in. Hand them to a lifecycle (`closes`) and a readiness (`addStore`).
 *
 * @example
 * ```ts
 * const { clickhouse, redis, materialize } = await openOptionalStores(settings, { logger, metrics });
 * ```
 */
export async function openOptionalStores(
  settings: Pick<Settings, 'clickhouse' | 'redis' | 'materialize'>,
  dependencies: StoreDependencies,
  options: {
    /** The stores this service uses; the others stay `null` and are not logged. @default all three */
    readonly only?: readonly OptionalStoreName[];
  } = {},
): Promise<OptionalStores> {
  const { logger, metrics } = dependencies;
  const wanted = new Set<OptionalStoreName>(options.only ?? ['clickhouse', 'redis', 'materialize']);
  /** Whether to open `name`: wanted, and its URL set (else logged once and left out). */
  const opens = (name: OptionalStoreName, url: string | null, variable: string): boolean => {
    if (!wanted.has(name)) return false;
    if (url !== null) return true;
    logger.info({ variable }, `${variable} is not set: the routes that need it answer 503`);
    return false;
  };
  const clickhouse = opens('clickhouse', settings.clickhouse.url, 'CLICKHOUSE_URL')
    ? createClickHouse({ ...settings.clickhouse, logger, metrics })
    : null;
  const redis = opens('redis', settings.redis.url, 'REDIS_URL')
    ? createRedis({ ...settings.redis, logger, metrics })
    : null;
  let materialize: Materialize | null = null;
  if (opens('materialize', settings.materialize.url, 'MATERIALIZE_URL')) {
    materialize = createMaterialize({ ...settings.materialize, logger, metrics, optional: true });
    await materialize.start();
  }
  return { clickhouse, redis, materialize };
}

/** Options of {@link registerStore}. */
export interface RegisterStoreOptions {
  /** The variable that configures it, named by readiness and by 503s when it is `null`. */
  readonly variable: string;
  /** Whether the service can serve without it. @default false */
  readonly required?: boolean;
}

/**
 * Hands a store to the lifecycle (closed after the listener, in reverse order
 * of registration) and to readiness (checked through `health()`, or
 * `not_configured` naming `variable` when `null`). A check already added to
 * readiness under `name` is kept instead of the store's own. Returns the handle.
 *
 * @example
 * ```ts
 * const redis = registerStore(lifecycle, readiness, 'redis', stores.redis, { variable: 'REDIS_URL' });
 * ```
 */
export function registerStore<H extends (Closable & HealthChecked) | null>(
  lifecycle: Lifecycle,
  readiness: Readiness,
  name: string,
  handle: H,
  options: RegisterStoreOptions,
): H {
  lifecycle.closes(name, handle);
  if (!readiness.has(name)) readiness.addStore(name, handle, options);
  return handle;
}
