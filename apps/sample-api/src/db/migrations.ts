import { authMigrations } from '@flowforge/auth';
import type { Migrations, MigrationSource } from '@flowforge/db';
import { widgetMigrations } from '@flowforge/widgets';

// This module is a MigrateOptions of @flowforge/db: deploys run it with
// `flowforge-db migrate up --migrations dist/migrations.js`; the embedded
// development database runs it at start-up (`migrateToLatest(db, { packages, migrations })`).

/**
 * The packages whose migrations run after @flowforge/db's core, in this order:
 * api_keys, then dashboards and widgets. The widgets migration was the app's own
 * until @flowforge/widgets (same name): @flowforge/db moves its history row from
 * kysely_migration to flowforge_widgets_migration on the next run.
 */
export const packages: readonly MigrationSource[] = [authMigrations, widgetMigrations];

/** The sample app's own migrations (history in `kysely_migration`): none, its data model is a package's. */
export const migrations: Migrations = {};
