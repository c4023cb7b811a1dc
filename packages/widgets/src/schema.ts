import type { ColumnType, Generated } from 'kysely';
import type { AuthDB } from '@flowforge/auth';
import type { TenantScoped } from '@flowforge/db';

/**
 * The `dashboards` table (tenant-scoped: `tenant_id` comes from
 * {@link TenantScoped}). `name` is 1 to 200 characters and `description` at
 * most 2,000, checked by the database.
 */
export interface DashboardTable {
  /** A UUID the database generates. */
  id: Generated<string>;
  /** 1 to 200 characters. */
  name: string;
  /** At most 2,000 characters; `null` when there is none. */
  description: string | null;
  /** The user id of the principal that created it. */
  created_by: string;
  /** Set by the database on insert, never by the app. */
  created_at: ColumnType<Date, never, never>;
  /** Set by the database on insert; an update sets it to `now()`. */
  updated_at: ColumnType<Date, never, Date>;
}

/**
 * What a widget shows: `metric` reads a metric's daily points from ClickHouse
 * ({@link createWidgetDataReader}); `live` streams a Materialize view
 * ({@link liveViewOf}).
 */
export type WidgetKind = 'metric' | 'live';

/** Every {@link WidgetKind}, as the database's check constraint and the body schemas list them. */
export const WIDGET_KINDS: readonly WidgetKind[] = Object.freeze(['metric', 'live']);

/**
 * The `widgets` table (tenant-scoped). A widget belongs to a dashboard of the
 * same tenant: the foreign key includes `tenant_id`, so it can never point at
 * another tenant's dashboard.
 */
export interface WidgetTable {
  /** A UUID the database generates. */
  id: Generated<string>;
  /** The dashboard it is on (same tenant); deleting the dashboard deletes it. */
  dashboard_id: string;
  /** 1 to 200 characters. */
  name: string;
  /** What it shows. */
  kind: WidgetKind;
  /**
   * What it reads (see {@link widgetConfigSchemas}) plus whatever the UI keeps;
   * `jsonb`, written as a JSON string.
   */
  config: ColumnType<Record<string, unknown>, string, string>;
  /** Set by the database on insert, never by the app. */
  created_at: ColumnType<Date, never, never>;
  /** Set by the database on insert; an update sets it to `now()`. */
  updated_at: ColumnType<Date, never, Date>;
}

/**
 * The tables of FlowForge's data model, for `Database<WidgetsDB>` of
 * @flowforge/db: `dashboards` and `widgets` ({@link widgetMigrations}) and
 * auth's `api_keys`. Every one is tenant-scoped. An app with tables of its own
 * extends it.
 */
export interface WidgetsDB extends AuthDB {
  /** See {@link DashboardTable}. */
  dashboards: TenantScoped<DashboardTable>;
  /** See {@link WidgetTable}. */
  widgets: TenantScoped<WidgetTable>;
}
