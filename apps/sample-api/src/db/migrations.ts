import { sql, type Kysely } from 'kysely';
import { authMigrations } from '@flowforge/auth';
import { createTenantTable, type Migrations, type MigrationSource } from '@flowforge/db';

// This module is a MigrateOptions of @flowforge/db: deploys run it with
// `flowforge-db migrate up --migrations dist/migrations.js`; the embedded
// development database runs it at start-up (`migrateToLatest(db, { packages, migrations })`).

/** The packages whose migrations run before the app's (after @flowforge/db's core): api_keys. */
export const packages: readonly MigrationSource[] = [authMigrations];

/** The sample app's own migrations, tracked in `kysely_migration`. */
export const migrations: Migrations = {
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
};
