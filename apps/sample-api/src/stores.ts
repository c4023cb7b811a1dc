import type { Settings } from '@flowforge/config';
import { createClickHouse, type ClickHouse } from '@flowforge/clickhouse';
import type { Logger, Metrics } from '@flowforge/observability';
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
