import { storeNotConfigured, widgetNotQueryable } from '../errors.js';
import type { ClickHouse } from '@flowforge/clickhouse';
import type { Logger } from '@flowforge/observability';
import type { OwnedKeyspace } from '@flowforge/redis';
import type { WidgetKind } from '../db/schema.js';

/**
 * The ClickHouse table metric widgets read: written by the data pipeline (and by
 * the tests' writer), never by FlowForge. `tenant_id` leads the sort key, so a
 * tenant's rows are one range.
 *
 * ```sql
 * CREATE TABLE metric_points (tenant_id UUID, metric String, ts DateTime, value Float64)
 * ENGINE = MergeTree ORDER BY (tenant_id, metric, ts)
 * ```
 */
export const METRIC_POINTS_TABLE = 'metric_points';

/** What a metric widget's `config` asks for. */
interface MetricSelection {
  /** The `metric` column value. */
  readonly metric: string;
  /** Days back from today, today included. */
  readonly days: number;
}

/** One day of a metric. */
interface MetricPoint {
  readonly day: string;
  readonly value: number;
}

interface WidgetData extends MetricSelection {
  readonly points: readonly MetricPoint[];
  /** True when the points came from the Redis cache rather than from ClickHouse. */
  readonly cached: boolean;
}

/** A metric name as the schema of metric widgets allows it. */
export const METRIC_NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_.:-]{0,99}$';
const METRIC_NAME = new RegExp(METRIC_NAME_PATTERN);
const DEFAULT_DAYS = 7;
export const MAX_DAYS = 366;

/**
 * The selection a widget's stored config describes. Configs are validated when
 * written; this re-checks what is read, since a row may predate the rule.
 * @throws {AppError} WIDGET_NOT_QUERYABLE
 */
export function metricSelectionOf(
  kind: WidgetKind,
  config: Readonly<Record<string, unknown>>,
): MetricSelection {
  if (kind !== 'metric') {
    throw widgetNotQueryable(`A ${kind} widget has no data to read here; stream it instead.`);
  }
  const { metric, days = DEFAULT_DAYS } = config;
  if (typeof metric !== 'string' || !METRIC_NAME.test(metric)) {
    throw widgetNotQueryable('The widget has no valid `config.metric` to read.');
  }
  if (typeof days !== 'number' || !Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    throw widgetNotQueryable(`The widget's \`config.days\` must be 1–${MAX_DAYS}.`);
  }
  return { metric, days };
}

export interface WidgetDataOptions {
  /** `null`: CLICKHOUSE_URL is not set, and reads answer 503. */
  readonly clickhouse: ClickHouse | null;
  /** The cache's keyspace (Redis); `null` reads straight from ClickHouse. */
  readonly cache: OwnedKeyspace | null;
  /** How long a cached answer is served. @default 30_000 */
  readonly cacheTtlMs?: number;
  readonly logger: Logger;
}

export interface WidgetDataReader {
  /** The widget's points for `tenantId`, which must come from the verified principal. */
  read(
    tenantId: string,
    widget: { id: string; kind: WidgetKind; config: Readonly<Record<string, unknown>> },
  ): Promise<WidgetData>;
}

const SQL = `
SELECT toString(toDate(ts)) AS day, sum(value) AS value
FROM ${METRIC_POINTS_TABLE}
WHERE tenant_id = {tenant_id:UUID}
  AND metric = {metric:String}
  AND toDate(ts) > today() - {days:UInt16}
GROUP BY day
ORDER BY day`;

/**
 * Reads metric widgets' data from ClickHouse, always filtered by the tenant as a
 * bound parameter, through a short-lived Redis cache when one is configured. The
 * cache is an optimisation: when Redis fails, the read goes to ClickHouse.
 */
export function createWidgetDataReader(options: WidgetDataOptions): WidgetDataReader {
  const { clickhouse, cache, logger } = options;
  const ttlMs = options.cacheTtlMs ?? 30_000;

  async function fromCache(key: string): Promise<readonly MetricPoint[] | null> {
    if (!cache) return null;
    try {
      const hit = await cache.get(key);
      return hit === null ? null : (JSON.parse(hit) as MetricPoint[]);
    } catch (error) {
      logger.warn({ err: error }, 'widget cache read failed; reading ClickHouse');
      return null;
    }
  }

  async function toCache(key: string, points: readonly MetricPoint[]): Promise<void> {
    if (!cache) return;
    try {
      await cache.set(key, JSON.stringify(points), { ttlMs });
    } catch (error) {
      logger.warn({ err: error }, 'widget cache write failed');
    }
  }

  return {
    async read(tenantId, widget) {
      const selection = metricSelectionOf(widget.kind, widget.config);
      if (!clickhouse) throw storeNotConfigured('ClickHouse', 'CLICKHOUSE_URL');
      // The tenant leads the key: one tenant can never be served another's entry.
      const key = `${cache?.prefix ?? ''}${tenantId}:${widget.id}:${selection.days}:${selection.metric}`;
      const cached = await fromCache(key);
      if (cached) return { ...selection, points: cached, cached: true };
      const points = await clickhouse.queryForTenant<MetricPoint>(tenantId, SQL, {
        metric: selection.metric,
        days: selection.days,
      });
      await toCache(key, points);
      return { ...selection, points, cached: false };
    },
  };
}
