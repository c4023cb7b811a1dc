import type { Settings } from '@flowforge/config';
import { createClickHouse, type ClickHouse } from '@flowforge/clickhouse';
import type { Logger, Metrics } from '@flowforge/observability';
import { createMaterialize, type Materialize } from '@flowforge/materialize';
import { createRedis, type Redis } from '@flowforge/redis';

/** ClickHouse at CLICKHOUSE_URL (nothing connects yet); `null` when unset: data routes answer 503. */
export function openClickHouse(
  settings: Settings,
  logger: Logger,
  metrics: Metrics,
): ClickHouse | null {
  if (settings.clickhouse.url === null) {
    logger.info('CLICKHOUSE_URL is not set: widget data routes answer 503');
    return null;
  }
  return createClickHouse({ ...settings.clickhouse, logger, metrics });
}

/** Redis at REDIS_URL, the widget data cache (nothing connects yet); `null` when unset: no cache. */
export function openRedis(settings: Settings, logger: Logger, metrics: Metrics): Redis | null {
  if (settings.redis.url === null) {
    logger.info('REDIS_URL is not set: widget data is not cached');
    return null;
  }
  return createRedis({ ...settings.redis, logger, metrics });
}

/**
 * Materialize at MATERIALIZE_URL, started; `null` when unset: live widget streams
 * answer 503. It is optional: an unreachable server does not stop the app (its
 * status is `unavailable` and it keeps retrying in the background).
 */
export async function openMaterialize(
  settings: Settings,
  logger: Logger,
  metrics: Metrics,
): Promise<Materialize | null> {
  if (settings.materialize.url === null) {
    logger.info('MATERIALIZE_URL is not set: live widget streams answer 503');
    return null;
  }
  const materialize = createMaterialize({
    ...settings.materialize,
    logger,
    metrics,
    optional: true,
  });
  await materialize.start();
  return materialize;
}
