/**
 * FlowForge's shared data model, for every app that serves it (Canvas,
 * Dashboard, Embed): the `dashboards` and `widgets` tables (Kysely types and
 * their migration source), the tenant-scoped widget lookup, metric widget data
 * from ClickHouse through a Redis cache, and the Materialize view a live widget
 * streams. Routes and role policy stay in the apps
 * (docs/decisions/011-widgets-package.md).
 * @packageDocumentation
 */
export {
  WIDGET_KINDS,
  type DashboardTable,
  type WidgetKind,
  type WidgetTable,
  type WidgetsDB,
} from './schema.js';
export { widgetMigrations } from './migrations.js';
export {
  MAX_LIVE_WIDGETS,
  findWidget,
  requireLiveViews,
  requireWidget,
  type LiveWidgetView,
  type StoredWidget,
} from './find-widget.js';
export {
  MAX_DAYS,
  METRIC_NAME_PATTERN,
  METRIC_POINTS_TABLE,
  WIDGET_DATA_CACHE_PREFIX,
  createWidgetDataReader,
  metricSelectionOf,
  readWidgetData,
  type MetricPoint,
  type MetricSelection,
  type WidgetData,
  type WidgetDataBody,
  type WidgetDataOptions,
  type WidgetDataReader,
} from './widget-data.js';
export { TENANT_COLUMN, VIEW_NAME_PATTERN, liveViewOf } from './live-widgets.js';
export {
  widgetConfigSchemas,
  type LiveConfigSchema,
  type MetricConfigSchema,
  type WidgetConfigSchemas,
} from './config-schemas.js';
export {
  WIDGET_CONFIG_MAX_BYTES,
  WIDGET_CONFIG_MAX_DEPTH,
  checkWidgetConfig,
  type CheckedWidgetConfig,
} from './widget-config.js';
export { WidgetError, isWidgetError, type WidgetErrorCode } from './errors.js';
