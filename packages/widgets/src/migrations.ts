// Decision record: docs/decisions/011-widgets-package.md (why the data model is a
// package) and docs/decisions/007-composable-migrations.md (sources and their histories).
import { sql, type Kysely } from 'kysely';
import { createTenantTable, defineMigrationSource, type MigrationSource } from '@flowforge/db';

/** The migration source's name; its history table is `flowforge_widgets_migration`. */
const SOURCE = 'flowforge_widgets';

/**
 * The migrations of FlowForge's data model, the migration source
 * `flowforge_widgets` (history table `flowforge_widgets_migration`): the
 * tenant-scoped `dashboards` and `widgets` tables ({@link WidgetsDB}), and
 * the indexes that serve their lists in `(created_at, id)` order.
 *
 * Pass them in `packages` after @flowforge/auth's:
 * `migrateToLatest(db, { packages: [authMigrations, widgetMigrations], migrations: yours })`.
 * They run after @flowforge/db's core migrations (the app role and
 * `flowforge_current_tenant()` they build on) and before the app's own.
 *
 * A database the sample app migrated before this package existed recorded
 * `2026-11-28-0001-dashboards-and-widgets` in the app's `kysely_migration`:
 * the name is unchanged, so @flowforge/db moves that row to this source's table
 * on the next run and nothing runs twice.
 */
export const widgetMigrations: MigrationSource = defineMigrationSource(SOURCE, {
  // Released names never change: databases record them (the sample app's in its
  // kysely_migration, from where @flowforge/db moves them). Later ones must sort after it.
  '2026-11-28-0001-dashboards-and-widgets': {
    async up(db: Kysely<unknown>) {
      await createTenantTable(db, 'dashboards', (table) =>
        table
          .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
          .addColumn('name', 'text', (col) =>
            col.notNull().check(sql`length(name) between 1 and 200`),
          )
          .addColumn('description', 'text', (col) => col.check(sql`length(description) <= 2000`))
          .addColumn('created_by', 'uuid', (col) => col.notNull())
          .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
          .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
          // The target of widgets' tenant-safe foreign key (and the tenant_id index).
          .addUniqueConstraint('dashboards_tenant_id_id_key', ['tenant_id', 'id']),
      );
      await createTenantTable(db, 'widgets', (table) =>
        table
          .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
          .addColumn('dashboard_id', 'uuid', (col) => col.notNull())
          .addColumn('name', 'text', (col) =>
            col.notNull().check(sql`length(name) between 1 and 200`),
          )
          .addColumn('kind', 'text', (col) => col.notNull().check(sql`kind in ('metric', 'live')`))
          .addColumn('config', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
          .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
          .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
          // Foreign keys skip row-level security: including tenant_id keeps a widget
          // from pointing at (and so probing for) another tenant's dashboard.
          .addForeignKeyConstraint(
            'widgets_dashboard_fkey',
            ['tenant_id', 'dashboard_id'],
            'dashboards',
            ['tenant_id', 'id'],
            (fk) => fk.onDelete('cascade'),
          ),
      );
      // Widgets are read by dashboard: this index serves that and replaces the plain tenant_id one.
      await sql`create index widgets_tenant_dashboard_idx on widgets (tenant_id, dashboard_id)`.execute(
        db,
      );
      await sql`drop index widgets_tenant_id_idx`.execute(db);
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('widgets').execute();
      await db.schema.dropTable('dashboards').execute();
    },
  },
  // Lists are pages in (created_at, id) order, resumed after the last row a page
  // showed (keyset): these indexes serve each page from its position, and the
  // widgets one replaces (tenant_id, dashboard_id), its prefix.
  '2026-12-07-0001-list-order-indexes': {
    async up(db: Kysely<unknown>) {
      await sql`create index dashboards_tenant_created_idx on dashboards (tenant_id, created_at, id)`.execute(
        db,
      );
      await sql`create index widgets_tenant_dashboard_created_idx on widgets (tenant_id, dashboard_id, created_at, id)`.execute(
        db,
      );
      await sql`drop index widgets_tenant_dashboard_idx`.execute(db);
    },
    async down(db: Kysely<unknown>) {
      await sql`create index widgets_tenant_dashboard_idx on widgets (tenant_id, dashboard_id)`.execute(
        db,
      );
      await sql`drop index widgets_tenant_dashboard_created_idx`.execute(db);
      await sql`drop index dashboards_tenant_created_idx`.execute(db);
    },
  },
  // checkWidgetConfig caps a config at 16 KiB of compact JSON in the app; this bounds every
  // writer, whatever its code. jsonb's text form adds a space after each `:` and `,`, which at
  // most doubles it, hence 32 KiB (2 × WIDGET_CONFIG_MAX_BYTES; a migration keeps its numbers). NOT VALID: rows written before are not checked (an
  // operator trims them, then runs VALIDATE CONSTRAINT); every new write is.
  '2026-12-07-0002-config-size-check': {
    async up(db: Kysely<unknown>) {
      await sql`alter table widgets add constraint widgets_config_size check (octet_length(config::text) <= 32768) not valid`.execute(
        db,
      );
    },
    async down(db: Kysely<unknown>) {
      await sql`alter table widgets drop constraint widgets_config_size`.execute(db);
    },
  },
});
