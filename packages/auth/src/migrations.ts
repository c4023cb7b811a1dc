import { sql } from 'kysely';
import { createTenantTable, defineMigrationSource, type MigrationSource } from '@flowforge/db';

/**
 * The migrations of @flowforge/auth, the migration source `flowforge_auth`
 * (history table `flowforge_auth_migration`): the tenant-scoped `api_keys` table.
 *
 * Pass them in `packages`, next to your own migrations:
 * `migrateToLatest(db, { packages: [authMigrations], migrations: yours })`.
 * They run after @flowforge/db's core migrations (the app role and
 * `flowforge_current_tenant()` they build on) and before yours, whether you
 * adopt them before or after your own (docs/decisions/007-composable-migrations.md).
 *
 * No plaintext key is ever stored: only its SHA-256 (`key_hash`) and a short
 * `prefix` for people to recognise a key by.
 */
export const authMigrations: MigrationSource = defineMigrationSource('flowforge_auth', {
  // Released names never change: databases record them (and earlier releases
  // recorded them in the app's kysely_migration, from where they are moved).
  '0001-flowforge-auth-0001-api-keys': {
    async up(db) {
      await createTenantTable(db, 'api_keys', (table) =>
        table
          .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
          .addColumn('name', 'text', (col) =>
            col.notNull().check(sql`length(name) between 1 and 200`),
          )
          // SHA-256 of the whole key string: 32 bytes, never the key itself.
          .addColumn('key_hash', 'bytea', (col) => col.notNull().check(sql`length(key_hash) = 32`))
          // `ffk_` + the first 8 characters of the secret: 12 characters, no more.
          .addColumn('prefix', 'text', (col) => col.notNull().check(sql`length(prefix) = 12`))
          .addColumn('widget_ids', sql`uuid[]`, (col) => col.notNull().defaultTo(sql`'{}'`))
          .addColumn('created_by', 'uuid', (col) => col.notNull())
          .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
          // null: never expires.
          .addColumn('expires_at', 'timestamptz')
          .addColumn('revoked_at', 'timestamptz')
          .addColumn('last_used_at', 'timestamptz')
          // Per tenant, never across tenants (a shared unique index would tell one
          // tenant, through 23505, that another holds a value). Led by tenant_id, it
          // is also the tenant index and serves the verifier's lookup exactly.
          .addUniqueConstraint('api_keys_tenant_key_hash_key', ['tenant_id', 'key_hash']),
      );
    },
    async down(db) {
      await db.schema.dropTable('api_keys').execute();
    },
  },
});
