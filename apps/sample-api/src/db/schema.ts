import type { ColumnType, Generated } from 'kysely';
import type { AuthDB } from '@flowforge/auth';
import type { TenantScoped } from '@flowforge/db';

/** Set by the server on insert, never by the app. */
type CreatedAt = ColumnType<Date, never, never>;
/** Set by the server on insert; updates set it to `now()`. */
type UpdatedAt = ColumnType<Date, never, Date>;

export interface DashboardTable {
  id: Generated<string>;
  name: string;
  description: string | null;
  created_by: string;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export type WidgetKind = 'metric' | 'live';

export interface WidgetTable {
  id: Generated<string>;
  dashboard_id: string;
  name: string;
  kind: WidgetKind;
  config: ColumnType<Record<string, unknown>, string, string>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

/** The sample app's tables (and auth's api_keys); every one is tenant-scoped. */
export interface AppDB extends AuthDB {
  dashboards: TenantScoped<DashboardTable>;
  widgets: TenantScoped<WidgetTable>;
}
