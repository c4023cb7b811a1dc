import type { ClickHouse } from '@flowforge/clickhouse';
import { OptionChecks } from '@flowforge/kernel';
import type { Logger } from '@flowforge/observability';
import type { OwnedKeyspace } from '@flowforge/redis';
import { WidgetError, widgetNotQueryable } from './errors.js';
import type { WidgetKind } from './schema.js';
import type { Principal } from '@flowforge/auth';
import { requireWidget, type StoredWidget } from './find-widget.js';
import type { Database } from '@flowforge/db';
import type { WidgetsDB } from './schema.js';

/**
 * The ClickHouse table metric widgets read: written by the data pipeline (and by
 * tests' writers), never by FlowForge. `tenant_id` leads the sort key, so a
 * tenant's rows are one range.
 *
 * ```sql
 * CREATE TABLE metric_points (tenant_id UUID, metric String, ts DateTime, value Float64)
 * ENGINE = MergeTree ORDER BY (tenant_id, metric, ts)
 * ```
 */
export const METRIC_POINTS_TABLE = 'metric_points';

/**
 * The Redis keys of the widget data cache, for `redis.ownedKeyspace(…)`: one
 * keyspace for every app, so they share the cache (keys go on with the tenant).
 */
export const WIDGET_DATA_CACHE_PREFIX = 'flowforge:cache:widget-data:';

/** A metric name as metric widgets may name it (`config.metric`): the `metric` column's value. */
export const METRIC_NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_.:-]{0,99}$';
const METRIC_NAME = new RegExp(METRIC_NAME_PATTERN);
/** `config.days` when the config has none. */
const DEFAULT_DAYS = 7;
/** The most days back a metric widget may read (`config.days`). */
export const MAX_DAYS = 366;

/** What a metric widget's `config` asks for. */
export interface MetricSelection {
  /** The `metric` column value. */
  readonly metric: string;
  /** Days back from today, today included. */
  readonly days: number;
}

/** One day of a metric. */
export interface MetricPoint {
  /** The day, `YYYY-MM-DD` (ClickHouse's server time zone). */
  readonly day: string;
  /** The sum of the day's values. */
  readonly value: number;
}

/** What {@link WidgetDataReader.read} answers: the selection and its points, oldest day first. */
export interface WidgetData extends MetricSelection {
  /** One point per day that has data; days without data are absent. */
  readonly points: readonly MetricPoint[];
  /** True when the points came from the Redis cache rather than from ClickHouse. */
  readonly cached: boolean;
}

/**
 * The selection a metric widget's stored config describes. Configs are
 * validated when written ({@link widgetConfigSchemas}); this checks again what
 * is read, since a row may predate the rule.
 * @throws {WidgetError} WIDGET_NOT_QUERYABLE for a widget that is not `metric`,
 *   or a `config.metric` / `config.days` outside the rules
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

/** Options of {@link createWidgetDataReader}. */
export interface WidgetDataOptions {
  /** The ClickHouse handle; `null` when CLICKHOUSE_URL is not set: reads reject with `NOT_CONFIGURED`. */
  readonly clickhouse: ClickHouse | null;
  /** The cache's keyspace (Redis `ownedKeyspace`); `null` reads straight from ClickHouse. */
  readonly cache: OwnedKeyspace | null;
  /** How long a cached answer is served, 1 to 2147483647 ms. @default 30_000 */
  readonly cacheTtlMs?: number;
  /** Gets a warning when the cache fails (the read goes on to ClickHouse). */
  readonly logger: Logger;
}

/** Reads metric widgets' data; see {@link createWidgetDataReader}. */
export interface WidgetDataReader {
  /**
   * The widget's points for `tenantId`, which must come from the verified
   * principal (the widget must be that tenant's: `findWidget` in the same tenant).
   * @throws {WidgetError} WIDGET_NOT_QUERYABLE (409) for a widget that is not a valid metric widget; NOT_CONFIGURED (503) without ClickHouse
   * @throws {ClickHouseError} when ClickHouse fails (its `status`: 503 when it is down)
   */
  read(tenantId: string, widget: StoredWidget): Promise<WidgetData>;
}

const SQL = `
SELECT toString(toDate(ts)) AS day, sum(value) AS value
FROM ${METRIC_POINTS_TABLE}
WHERE tenant_id = {tenant_id:UUID}
  AND metric = {metric:String}
  AND toDate(ts) > today() - {days:UInt16}
GROUP BY day
ORDER BY day`;

/** Timers and Redis PX in this codebase stop here (Node's timer bound). */
const MAX_TTL_MS = 2_147_483_647;

/**
 * Reads metric widgets' data from ClickHouse's {@link METRIC_POINTS_TABLE},
 * always filtered by the tenant as a bound parameter, through a short-lived
 * Redis cache when one is given. The cache is an optimisation: when Redis
 * fails, the read goes to ClickHouse. Nothing connects here.
 *
 * @throws {WidgetError} INVALID_OPTIONS for a `cacheTtlMs` that is not a whole number from 1 to 2147483647
 * @example
 * const reader = createWidgetDataReader({ clickhouse, cache: redis.ownedKeyspace(WIDGET_DATA_CACHE_PREFIX), logger });
 * const widget = await requireWidget(database, principal, id); // 400, 403, 404 as errors
 * return reader.read(principal.tenantId, widget);
 */
export function createWidgetDataReader(options: WidgetDataOptions): WidgetDataReader {
  const { clickhouse, cache, logger } = options;
  const checks = new OptionChecks();
  const ttlMs = checks.wholeNumber(
    'cacheTtlMs',
    options.cacheTtlMs,
    { min: 1, max: MAX_TTL_MS },
    30_000,
  );
  checks.throwIfAny((message) => new WidgetError('INVALID_OPTIONS', message));

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
      if (!clickhouse) {
        throw new WidgetError(
          'NOT_CONFIGURED',
          'ClickHouse is not configured: set CLICKHOUSE_URL.',
        );
      }
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

/** The JSON body of `GET …/widgets/:id/data`, as every FlowForge app answers it (snake_case). */
export interface WidgetDataBody {
  /** The widget's UUID. */
  readonly widget_id: string;
  /** The metric its config names. */
  readonly metric: string;
  /** Days back from today, today included. */
  readonly days: number;
  /** One point per day that has data, oldest first. */
  readonly points: readonly MetricPoint[];
  /** True when the points came from the cache rather than from ClickHouse. */
  readonly cached: boolean;
}

/**
 * The data of widget `widgetId` as `principal` may read it, as the body a data
 * route answers: {@link requireWidget}, then {@link WidgetDataReader.read} in
 * the principal's tenant. Every error is one a route answers as it is.
 *
 * @throws what {@link requireWidget} and {@link WidgetDataReader.read} throw
 * @example
 * reply.send(await readWidgetData(database, reader, request.principal!, request.params.id));
 */
export async function readWidgetData(
  database: Database<WidgetsDB>,
  reader: WidgetDataReader,
  principal: Principal,
  widgetId: string,
): Promise<WidgetDataBody> {
  const widget = await requireWidget(database, principal, widgetId);
  const data = await reader.read(principal.tenantId, widget);
  return {
    widget_id: widget.id,
    metric: data.metric,
    days: data.days,
    points: data.points,
    cached: data.cached,
  };
}
