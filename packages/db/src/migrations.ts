import { sql, type CreateTableBuilder, type Kysely } from 'kysely';
import { Migrator, type Migration, type MigrationResult } from 'kysely/migration';
import { DatabaseError } from './errors.js';
import { toDatabaseError } from './internal/sqlstate.js';
import { assertRoleName, DEFAULT_APP_ROLE, TENANT_SETTING } from './tenant.js';

export type { Migration } from 'kysely/migration';

/** A set of migrations by name; names sort in the order they run. */
export type Migrations = Readonly<Record<string, Migration>>;

/** Options of the tenant migration helpers. */
export interface TenantTableOptions {
  /** The role granted SELECT, INSERT, UPDATE, DELETE. @default 'flowforge_app' */
  readonly appRole?: string;
}

const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

function assertTableName(table: string): string {
  if (!TABLE_NAME.test(table)) {
    throw new DatabaseError(
      'INVALID_OPTIONS',
      `table name must be a lower-case SQL identifier (got ${JSON.stringify(table.slice(0, 64))})`,
    );
  }
  return table;
}

/** The SQL function every tenant policy and `tenant_id` default calls. */
export const CURRENT_TENANT_FUNCTION = 'flowforge_current_tenant';

/**
 * This package's own migrations: the app role and the current-tenant function
 * that tenant tables build on. Names start with `0000-` so they sort before
 * every other package's (`0001-` auth) and app's (timestamps) migrations.
 */
export function coreMigrations(options: TenantTableOptions = {}): Migrations {
  const role = sql.id(assertRoleName(options.appRole ?? DEFAULT_APP_ROLE));
  const roleName = sql.lit(assertRoleName(options.appRole ?? DEFAULT_APP_ROLE));
  return {
    '0000-flowforge-db-0001-tenancy': {
      async up(db) {
        // Roles are cluster-wide: create it once (this needs CREATEROLE), and
        // refuse one that exists with the powers that bypass row-level security.
        await sql`
          do $$
          begin
            if not exists (select 1 from pg_roles where rolname = ${roleName}) then
              create role ${role} nologin nosuperuser nobypassrls nocreatedb nocreaterole;
            elsif exists (select 1 from pg_roles where rolname = ${roleName} and (rolsuper or rolbypassrls)) then
              raise exception 'role % exists with SUPERUSER or BYPASSRLS: tenant isolation would not apply', ${roleName};
            end if;
          end
          $$`.execute(db);
        // nullif: once set in an earlier transaction of the session, the setting
        // reads '' rather than NULL; '' must mean "no tenant", never a cast error.
        await sql`
          create or replace function ${sql.id(CURRENT_TENANT_FUNCTION)}() returns uuid
          language sql stable parallel safe
          as $$ select nullif(current_setting(${sql.lit(TENANT_SETTING)}, true), '')::uuid $$`.execute(
          db,
        );
        await sql`grant usage on schema public to ${role}`.execute(db);
      },
      async down(db) {
        await sql`revoke usage on schema public from ${role}`.execute(db);
        await sql`drop function if exists ${sql.id(CURRENT_TENANT_FUNCTION)}()`.execute(db);
      },
    },
  };
}

/**
 * Creates a tenant-scoped table: `tenant_id uuid NOT NULL` defaulting to the
 * current tenant, then {@link enableTenantIsolation} (index, forced row-level
 * security, policy, grants). The TenantMixin of the original design.
 *
 * @example
 * await createTenantTable(db, 'dashboards', (table) =>
 *   table
 *     .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
 *     .addColumn('name', 'text', (col) => col.notNull()),
 * );
 */
export async function createTenantTable(
  db: Kysely<unknown>,
  table: string,
  build: (table: CreateTableBuilder<string, 'tenant_id'>) => CreateTableBuilder<string, string>,
  options: TenantTableOptions = {},
): Promise<void> {
  const name = assertTableName(table);
  await build(
    db.schema
      .createTable(name)
      .addColumn('tenant_id', 'uuid', (col) =>
        col.notNull().defaultTo(sql`${sql.id(CURRENT_TENANT_FUNCTION)}()`),
      ),
  ).execute();
  await enableTenantIsolation(db, name, options);
}

/**
 * Makes an existing table with a `tenant_id uuid NOT NULL` column tenant-scoped:
 * an index led by `tenant_id` (unless one exists), ENABLE and FORCE row-level
 * security (FORCE: the owner obeys it too), one policy for every command on
 * `tenant_id = flowforge_current_tenant()`, and the app role's grants.
 * Re-runnable.
 */
export async function enableTenantIsolation(
  db: Kysely<unknown>,
  table: string,
  options: TenantTableOptions = {},
): Promise<void> {
  const name = assertTableName(table);
  const id = sql.id(name);
  const role = sql.id(assertRoleName(options.appRole ?? DEFAULT_APP_ROLE));
  const current = sql`${sql.id(CURRENT_TENANT_FUNCTION)}()`;
  await sql`
    do $$
    begin
      if not exists (
        select 1 from pg_index i
        join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
        where i.indrelid = ${sql.lit(name)}::regclass and a.attname = 'tenant_id'
      ) then
        execute format('create index %I on %I (tenant_id)', ${sql.lit(`${name}_tenant_id_idx`)}, ${sql.lit(name)});
      end if;
    end
    $$`.execute(db);
  await sql`alter table ${id} enable row level security`.execute(db);
  await sql`alter table ${id} force row level security`.execute(db);
  await sql`drop policy if exists tenant_isolation on ${id}`.execute(db);
  await sql`
    create policy tenant_isolation on ${id}
      using (tenant_id = ${current})
      with check (tenant_id = ${current})`.execute(db);
  await sql`grant select, insert, update, delete on ${id} to ${role}`.execute(db);
}

/** Undoes {@link enableTenantIsolation} (for a migration's `down`); the column and index stay. */
export async function disableTenantIsolation(
  db: Kysely<unknown>,
  table: string,
  options: TenantTableOptions = {},
): Promise<void> {
  const id = sql.id(assertTableName(table));
  const role = sql.id(assertRoleName(options.appRole ?? DEFAULT_APP_ROLE));
  await sql`revoke select, insert, update, delete on ${id} from ${role}`.execute(db);
  await sql`drop policy if exists tenant_isolation on ${id}`.execute(db);
  await sql`alter table ${id} no force row level security`.execute(db);
  await sql`alter table ${id} disable row level security`.execute(db);
}

/** One migration's place in {@link migrationStatus}. */
export interface MigrationState {
  /** The migration's name (its key in {@link Migrations}). */
  readonly name: string;
  /** When it ran; `null` while pending. */
  readonly executedAt: Date | null;
}

/** What a migration run did, in order. */
export interface MigrationRun {
  /** Names of the migrations that ran (or were reverted), in the order they ran. */
  readonly applied: readonly string[];
  /** `up` for {@link migrateToLatest}, `down` for {@link migrateDown}. */
  readonly direction: 'up' | 'down';
}

/** Options of {@link createMigrator}, {@link migrateToLatest}, {@link migrateDown} and {@link migrationStatus}. */
export interface MigrateOptions extends TenantTableOptions {
  /** Migrations to run after {@link coreMigrations} (an app's, auth's). @default {} */
  readonly migrations?: Migrations;
}

/**
 * Kysely's Migrator over this package's core migrations plus `migrations`. On
 * PostgreSQL a run takes an advisory lock and is one transaction: it applies
 * every pending migration or, when one fails, none.
 */
export function createMigrator(db: Kysely<unknown>, options: MigrateOptions = {}): Migrator {
  const all: Migrations = { ...coreMigrations(options), ...options.migrations };
  return new Migrator({
    db,
    provider: { getMigrations: () => Promise.resolve({ ...all }) },
  });
}

/**
 * Applies every pending migration. Re-runnable: nothing pending, nothing done.
 * @throws {DatabaseError} MIGRATION_FAILED (the failing migration's error as `cause`); nothing of the run is kept.
 */
export async function migrateToLatest(
  db: Kysely<unknown>,
  options: MigrateOptions = {},
): Promise<MigrationRun> {
  const { error, results } = await createMigrator(db, options).migrateToLatest();
  return report('up', error, results);
}

/**
 * Reverts the latest applied migration.
 * @throws {DatabaseError} MIGRATION_FAILED
 */
export async function migrateDown(
  db: Kysely<unknown>,
  options: MigrateOptions = {},
): Promise<MigrationRun> {
  const { error, results } = await createMigrator(db, options).migrateDown();
  return report('down', error, results);
}

/** Every known migration, in order, with when it ran (or `null`). */
export async function migrationStatus(
  db: Kysely<unknown>,
  options: MigrateOptions = {},
): Promise<readonly MigrationState[]> {
  try {
    const migrations = await createMigrator(db, options).getMigrations();
    return migrations.map((migration) => ({
      name: migration.name,
      executedAt: migration.executedAt ?? null,
    }));
  } catch (error) {
    throw toDatabaseError(error);
  }
}

function report(
  direction: 'up' | 'down',
  error: unknown,
  results: readonly MigrationResult[] | undefined,
): MigrationRun {
  if (error !== undefined) {
    const failed = results?.find((result) => result.status === 'Error')?.migrationName;
    const cause = toDatabaseError(error);
    const reason = error instanceof Error ? error.message : cause.message;
    throw new DatabaseError(
      cause.code === 'UNAVAILABLE' ? 'UNAVAILABLE' : 'MIGRATION_FAILED',
      failed
        ? `migration ${failed} failed, nothing of this run was applied: ${reason}`
        : `migrations did not run: ${reason}`,
      { cause: error, ...(cause.sqlstate ? { sqlstate: cause.sqlstate } : {}) },
    );
  }
  return {
    direction,
    applied: (results ?? [])
      .filter((result) => result.status === 'Success')
      .map((result) => result.migrationName),
  };
}
