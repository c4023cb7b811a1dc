// Decision record: docs/decisions/007-composable-migrations.md (each source of
// migrations — core, every package, the app — keeps its own history table).
import { sql, type CreateTableBuilder, type Kysely, type MigrationLockOptions } from 'kysely';
import {
  MIGRATION_LOCK_ID,
  Migrator,
  type Migration,
  type MigrationResultSet,
} from 'kysely/migration';
import { DatabaseError } from './errors.js';
import { toDatabaseError } from './internal/sqlstate.js';
import { assertRoleName, DEFAULT_APP_ROLE, TENANT_SETTING } from './tenant.js';

export type { Migration } from 'kysely/migration';

/** A set of migrations by name; names sort in the order they run. */
export type Migrations = Readonly<Record<string, Migration>>;

/**
 * A package's migrations, tracked apart from every other source's: their
 * history is the table `<name>_migration`, so adopting the package before or
 * after an app's own migrations never reorders anyone's history. Make one
 * with {@link defineMigrationSource}; pass it in {@link MigrateOptions.packages}.
 */
export interface MigrationSource {
  /** Lower-case identifier, e.g. `flowforge_auth`; the history table is `<name>_migration`. */
  readonly name: string;
  /** The migrations by name; within the source, names sort in the order they run. */
  readonly migrations: Migrations;
}

/** The label of the app's own migrations in {@link MigrationState.source}. */
export const APP_MIGRATION_SOURCE = 'app';
/**
 * The history table of the app's own migrations: Kysely's default, so the
 * history of an app that ran Kysely's Migrator (or an earlier release of this
 * package) carries over.
 */
export const APP_MIGRATION_TABLE = 'kysely_migration';
/** The one lock table every source's Migrator shares (PostgreSQL locks with an advisory lock). */
const LOCK_TABLE = 'kysely_migration_lock';
const CORE_SOURCE = 'flowforge_db';
const SOURCE_NAME = /^[a-z][a-z0-9_]{0,49}$/;
const RESERVED_SOURCES = new Set([APP_MIGRATION_SOURCE, 'kysely']);

function assertMigrations(migrations: unknown, owner: string): Migrations {
  if (migrations === null || typeof migrations !== 'object' || Array.isArray(migrations)) {
    throw new DatabaseError('INVALID_OPTIONS', `${owner} must be an object of migrations by name`);
  }
  for (const [name, migration] of Object.entries(migrations as Record<string, unknown>)) {
    const { up, down } = (migration ?? {}) as { up?: unknown; down?: unknown };
    if (typeof up !== 'function' || (down !== undefined && typeof down !== 'function')) {
      throw new DatabaseError(
        'INVALID_OPTIONS',
        `${owner}: ${JSON.stringify(name.slice(0, 80))} is not a migration ({ up, down? })` +
          (['name', 'migrations', 'packages'].includes(name)
            ? '; a package migration set (e.g. authMigrations) goes in `packages`, not spread into `migrations`'
            : ''),
      );
    }
  }
  return migrations as Migrations;
}

/**
 * Names a package's migrations as one {@link MigrationSource}, tracked in the
 * table `<name>_migration`. Use the package's name (`flowforge_auth`), never
 * change it once released, and never rename a released migration.
 *
 * @throws {DatabaseError} INVALID_OPTIONS when `name` is not a lower-case identifier (up to 50 characters), is `app` or `kysely`, or a migration has no `up` function.
 * @example
 * export const billingMigrations = defineMigrationSource('acme_billing', {
 *   '0001-invoices': { up: async (db) => { … }, down: async (db) => { … } },
 * });
 */
export function defineMigrationSource(name: string, migrations: Migrations): MigrationSource {
  if (typeof name !== 'string' || !SOURCE_NAME.test(name) || RESERVED_SOURCES.has(name)) {
    throw new DatabaseError(
      'INVALID_OPTIONS',
      `a migration source name must be a lower-case identifier of up to 50 characters, not app or kysely (got ${JSON.stringify(String(name).slice(0, 64))})`,
    );
  }
  return Object.freeze({
    name,
    migrations: Object.freeze({ ...assertMigrations(migrations, `migration source ${name}`) }),
  });
}

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
 * This package's own migrations, the source `flowforge_db` (history table
 * `flowforge_db_migration`): the app role and the current-tenant function that
 * tenant tables build on. {@link migrateToLatest} always runs them first.
 */
export function coreMigrations(options: TenantTableOptions = {}): MigrationSource {
  const role = sql.id(assertRoleName(options.appRole ?? DEFAULT_APP_ROLE));
  const roleName = sql.lit(assertRoleName(options.appRole ?? DEFAULT_APP_ROLE));
  return defineMigrationSource(CORE_SOURCE, {
    // Released names never change: databases record them (earlier releases in
    // the app's kysely_migration, from where adoptCombinedHistory moves them).
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
  });
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

/**
 * Undoes {@link enableTenantIsolation}, for the `down` of a migration whose
 * `up` called it: revokes the app role's grants, drops the tenant policy, and
 * turns row-level security off (FORCE too). The column and the index stay.
 * Re-runnable.
 *
 * @throws {DatabaseError} INVALID_OPTIONS for a table or role name that is not a lower-case identifier.
 * @example
 * export const migrations: Migrations = {
 *   '2026-12-01-0001-scope-reports': {
 *     up: (db) => enableTenantIsolation(db, 'reports'),
 *     down: (db) => disableTenantIsolation(db, 'reports'),
 *   },
 * };
 */
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
  /** Its source: `flowforge_db` (core), a package's name (`flowforge_auth`), or `app`. */
  readonly source: string;
  /** The migration's name (its key in {@link Migrations}). */
  readonly name: string;
  /** When it ran; `null` while pending. */
  readonly executedAt: Date | null;
}

/** One migration history table found in the database by {@link migrationHistories}. */
export interface MigrationHistory {
  /**
   * The source it belongs to: `app` for `kysely_migration`, else the table's
   * name without `_migration` (`flowforge_db`, `flowforge_auth`, …).
   */
  readonly source: string;
  /** The table, e.g. `flowforge_auth_migration`. */
  readonly table: string;
  /** The migrations it records as applied, in the order they ran. */
  readonly applied: readonly {
    /** The migration's name. */
    readonly name: string;
    /** When it ran. */
    readonly executedAt: Date;
  }[];
}

/** What a migration run did, in order. */
export interface MigrationRun {
  /** Names of the migrations that ran (or were reverted), in the order they ran. */
  readonly applied: readonly string[];
  /** `up` for {@link migrateToLatest}, `down` for {@link migrateDown}. */
  readonly direction: 'up' | 'down';
}

/**
 * Options of {@link migrateToLatest}, {@link migrateDown} and
 * {@link migrationStatus}. A module that exports `packages` and `migrations`
 * is itself a valid value (`migrateToLatest(db, await import('./migrations.js'))`);
 * it is what `flowforge-db migrate --migrations <module>` loads.
 *
 * Pass the same `packages` and `migrations` to every call: a source that is
 * left out is neither migrated nor checked.
 */
export interface MigrateOptions extends TenantTableOptions {
  /**
   * Packages' migration sets (e.g. `authMigrations` of @flowforge/auth), run
   * after {@link coreMigrations} and before `migrations`, in this order: list a
   * package before the packages that build on it. Each keeps its own history
   * table, so a package may be added at any time. @default []
   */
  readonly packages?: readonly MigrationSource[];
  /** The app's own migrations, run last, with their history in `kysely_migration`. @default {} */
  readonly migrations?: Migrations;
}

/** One source with its history table, in the order sources run up. */
interface PlannedSource extends MigrationSource {
  readonly table: string;
}

/** Core, the packages, then the app: the order `up` runs them in (`down` reverses it). */
function planOf(options: MigrateOptions): readonly PlannedSource[] {
  const packages: unknown = options.packages ?? [];
  if (!Array.isArray(packages)) {
    throw new DatabaseError(
      'INVALID_OPTIONS',
      '`packages` must be an array of migration sources (e.g. [authMigrations])',
    );
  }
  const sources: MigrationSource[] = [coreMigrations(options)];
  for (const source of packages as unknown[]) {
    const { name, migrations } = (source ?? {}) as Partial<MigrationSource>;
    // Re-checked: a plain object literal may stand in for defineMigrationSource's result.
    const checked = defineMigrationSource(name as string, migrations as Migrations);
    if (sources.some((other) => other.name === checked.name)) {
      throw new DatabaseError(
        'INVALID_OPTIONS',
        `the migration source ${checked.name} is given twice (or is @flowforge/db's own)`,
      );
    }
    sources.push(checked);
  }
  const planned: PlannedSource[] = sources.map((source) => ({
    ...source,
    table: `${source.name}_migration`,
  }));
  planned.push({
    name: APP_MIGRATION_SOURCE,
    table: APP_MIGRATION_TABLE,
    migrations: assertMigrations(options.migrations ?? {}, '`migrations`'),
  });
  // Names are unique across sources: that is how a history kept in one table
  // by earlier releases is split up (see adoptCombinedHistory).
  const owners = new Map<string, string>();
  for (const source of planned) {
    for (const name of Object.keys(source.migrations)) {
      const owner = owners.get(name);
      if (owner !== undefined) {
        throw new DatabaseError(
          'INVALID_OPTIONS',
          `the migration ${name} is in both ${owner} and ${source.name}: names must be unique across sources`,
        );
      }
      owners.set(name, source.name);
    }
  }
  return planned;
}

/**
 * Runs one migration step in a savepoint. The Migrator works inside the run's
 * transaction and, after a step fails, still records and releases its lock
 * there: rolled back to the savepoint, the transaction can take those
 * statements, and the step's own error is what the caller sees. The run's
 * failure then rolls the whole transaction back.
 */
async function inSavepoint(
  db: Kysely<unknown>,
  step: (db: Kysely<unknown>) => Promise<void>,
): Promise<void> {
  await sql`savepoint flowforge_migration`.execute(db);
  try {
    await step(db);
  } catch (error) {
    await sql`rollback to savepoint flowforge_migration`.execute(db).catch(() => undefined);
    throw error;
  }
  await sql`release savepoint flowforge_migration`.execute(db);
}

function guarded(migrations: Migrations): Record<string, Migration> {
  return Object.fromEntries(
    Object.entries(migrations).map(([name, migration]) => [
      name,
      {
        up: (db: Kysely<unknown>) => inSavepoint(db, (trx) => migration.up(trx)),
        ...(migration.down
          ? { down: (db: Kysely<unknown>) => inSavepoint(db, (trx) => migration.down!(trx)) }
          : {}),
      },
    ]),
  );
}

function migratorFor(db: Kysely<unknown>, source: PlannedSource): Migrator {
  return new Migrator({
    db,
    provider: { getMigrations: () => Promise.resolve(guarded(source.migrations)) },
    migrationTableName: source.table,
    migrationLockTableName: LOCK_TABLE,
  });
}

/** A history row as Kysely writes it (`timestamp` is an ISO string). */
interface HistoryRow {
  readonly name: string;
  readonly timestamp: string;
}

async function existingTables(
  db: Kysely<unknown>,
  tables: readonly string[],
): Promise<Set<string>> {
  // to_regclass resolves unqualified names through search_path, as Kysely's Migrator does.
  const { rows } = await sql<{ name: string }>`
    select name from (values ${sql.join(tables.map((table) => sql`(${sql.lit(table)})`))}) as t(name)
     where to_regclass(name) is not null`.execute(db);
  return new Set(rows.map((row) => row.name));
}

async function historyOf(db: Kysely<unknown>, table: string): Promise<readonly HistoryRow[]> {
  const { rows } = await sql<HistoryRow>`
    select name, timestamp from ${sql.table(table)}`.execute(db);
  return rows;
}

/**
 * Creates, in the run's transaction, the tables Kysely's Migrator would create
 * (same columns): the shared lock table and, with `histories`, the history
 * table of every source that has migrations. Done here so that a refusal (no
 * CREATE privilege) surfaces as the server's error rather than as the
 * Migrator's retry in an aborted transaction. Returns the tables that exist.
 */
async function prepareTables(
  db: Kysely<unknown>,
  sources: readonly PlannedSource[],
  histories: boolean,
): Promise<Set<string>> {
  const existing = await existingTables(db, [LOCK_TABLE, ...sources.map((source) => source.table)]);
  if (!existing.has(LOCK_TABLE)) {
    await sql`create table ${sql.table(LOCK_TABLE)} (
      id varchar(255) not null primary key, is_locked integer not null default 0)`.execute(db);
    await sql`insert into ${sql.table(LOCK_TABLE)} (id, is_locked)
      values (${sql.lit(MIGRATION_LOCK_ID)}, 0)`.execute(db);
    existing.add(LOCK_TABLE);
  }
  if (histories) {
    for (const source of sources) {
      if (Object.keys(source.migrations).length > 0) await createHistory(db, source, existing);
    }
  }
  return existing;
}

async function createHistory(
  db: Kysely<unknown>,
  source: PlannedSource,
  existing: Set<string>,
): Promise<void> {
  if (existing.has(source.table)) return;
  await sql`create table ${sql.table(source.table)} (
    name varchar(255) not null primary key, timestamp varchar(255) not null)`.execute(db);
  existing.add(source.table);
}

/**
 * Earlier releases kept every source's history in `kysely_migration`. Rows
 * there that name a migration of core or of a given package move to that
 * source's table (timestamps kept), so a database migrated that way upgrades
 * in place. Idempotent: once moved, nothing matches.
 */
async function adoptCombinedHistory(
  db: Kysely<unknown>,
  sources: readonly PlannedSource[],
  existing: Set<string>,
): Promise<void> {
  if (!existing.has(APP_MIGRATION_TABLE)) return;
  const combined = await historyOf(db, APP_MIGRATION_TABLE);
  for (const source of sources) {
    if (source.table === APP_MIGRATION_TABLE) continue;
    const names = combined.map((row) => row.name).filter((name) => name in source.migrations);
    if (names.length === 0) continue;
    await createHistory(db, source, existing);
    const list = sql.join(names.map((name) => sql.lit(name)));
    await sql`insert into ${sql.table(source.table)} (name, timestamp)
      select name, timestamp from ${sql.table(APP_MIGRATION_TABLE)} where name in (${list})
      on conflict (name) do nothing`.execute(db);
    await sql`delete from ${sql.table(APP_MIGRATION_TABLE)} where name in (${list})`.execute(db);
  }
}

const LOCK: MigrationLockOptions = { lockTable: LOCK_TABLE, lockRowId: MIGRATION_LOCK_ID };
/** The advisory lock key Kysely's PostgresAdapter takes (not exported by Kysely). */
const KYSELY_ADVISORY_LOCK_ID = 3853314791062309107n;

/**
 * Runs `work` holding the migration lock (PostgreSQL: Kysely's advisory lock,
 * so this waits for another deploy's run) in one transaction: every source's
 * Migrator gets that transaction, so a run applies all of its migrations or none.
 * In a transaction the caller passes, the lock is transaction-level: held
 * until the caller commits or rolls back, so no other run sees this run's
 * migrations as pending before they are committed.
 */
async function inLockedTransaction<T>(
  db: Kysely<unknown>,
  work: (trx: Kysely<unknown>) => Promise<T>,
): Promise<T> {
  const adapter = db.getExecutor().adapter;
  if (db.isTransaction) {
    // Same key as the session lock the Migrators take (re-entrant on this
    // session); released by PostgreSQL at the end of the caller's transaction.
    await sql`select pg_advisory_xact_lock(${sql.lit(KYSELY_ADVISORY_LOCK_ID)})`.execute(db);
    return work(db);
  }
  // Each Migrator takes the lock again inside (re-entrant on the same session).
  return db.connection().execute(async (connection) => {
    await adapter.acquireMigrationLock(connection, LOCK);
    try {
      return await connection.transaction().execute(work);
    } finally {
      await adapter.releaseMigrationLock(connection, LOCK);
    }
  });
}

/**
 * Runs a migration job; any error becomes the one DatabaseError the caller
 * sees, its message led by `failed` (what did not happen: "migrations did not
 * run", "cannot read the migration history").
 */
async function runJob<T>(
  failed: string,
  job: (fail: (error: DatabaseError) => never) => Promise<T>,
): Promise<T> {
  const failures = new WeakSet<DatabaseError>();
  const fail = (error: DatabaseError): never => {
    failures.add(error);
    throw error;
  };
  try {
    return await job(fail);
  } catch (error) {
    if (error instanceof DatabaseError && failures.has(error)) throw error;
    if (error instanceof DatabaseError && error.code === 'INVALID_OPTIONS') throw error;
    throw failureOf(error, failed);
  }
}

/** PostgreSQL's refusal to create a role (the core migration creates the app role). */
const CREATE_ROLE_REFUSED = /permission denied to create role/;

/**
 * What to do about a refusal (42501) during a migration: the usual cause is
 * running as the app's login rather than as the schema owner.
 */
function permissionHint(cause: DatabaseError): string {
  if (CREATE_ROLE_REFUSED.test(cause.message)) {
    return (
      'creating a role needs CREATEROLE (the core migration creates the app role when it does not exist): ' +
      'create the role once as a superuser (README of @flowforge/db, Role setup), ' +
      'or grant CREATEROLE to the role that runs migrations'
    );
  }
  return (
    'run migrations as the role that owns the schema, not as the app login: ' +
    'flowforge-db connects with DATABASE_MIGRATION_URL (else DATABASE_URL), ' +
    "so set DATABASE_MIGRATION_URL to the owner's URL"
  );
}

function failureOf(error: unknown, prefix: string, failed?: string): DatabaseError {
  const cause = toDatabaseError(error);
  // The cause's own words without its "@flowforge/db: ": the prefix appears once.
  const reason =
    cause.reason + (cause.code === 'PERMISSION_DENIED' ? `: ${permissionHint(cause)}` : '');
  return new DatabaseError(
    cause.code === 'UNAVAILABLE' ? 'UNAVAILABLE' : 'MIGRATION_FAILED',
    failed
      ? `migration ${failed} failed, nothing of this run was applied: ${reason}`
      : `${prefix}: ${reason}`,
    { cause: error, ...(cause.sqlstate ? { sqlstate: cause.sqlstate } : {}) },
  );
}

/** The names one Migrator call ran, or the run's failure (which rolls the whole run back). */
function outcome(
  source: PlannedSource,
  { error, results }: MigrationResultSet,
  fail: (error: DatabaseError) => never,
): string[] {
  if (error !== undefined) {
    const failed = results?.find((result) => result.status === 'Error')?.migrationName;
    fail(
      failureOf(
        error,
        `migrations of ${source.name} (table ${source.table}) did not run, nothing of this run was applied`,
        failed,
      ),
    );
  }
  return (results ?? [])
    .filter((result) => result.status === 'Success')
    .map((result) => result.migrationName);
}

/**
 * Applies every pending migration: {@link coreMigrations}, then each of
 * `packages` in order, then the app's `migrations`, each source checked
 * against its own history table. One transaction under the migration lock:
 * all of it applies, or nothing. Re-runnable: nothing pending, nothing done.
 * A database whose history earlier releases kept in one table is upgraded in
 * the same transaction (see docs/decisions/007-composable-migrations.md).
 *
 * @throws {DatabaseError} MIGRATION_FAILED (the failing migration's error as `cause`), UNAVAILABLE, INVALID_OPTIONS (a bad source or a name used twice); nothing of the run is kept.
 * @example
 * import { authMigrations } from '@flowforge/auth';
 * await migrateToLatest(owner.db, { packages: [authMigrations], migrations: appMigrations });
 */
export async function migrateToLatest(
  db: Kysely<unknown>,
  options: MigrateOptions = {},
): Promise<MigrationRun> {
  const sources = planOf(options);
  return runJob('migrations did not run', (fail) =>
    inLockedTransaction(db, async (trx) => {
      const existing = await prepareTables(trx, sources, true);
      await adoptCombinedHistory(trx, sources, existing);
      const applied: string[] = [];
      for (const source of sources) {
        if (Object.keys(source.migrations).length === 0) continue;
        applied.push(...outcome(source, await migratorFor(trx, source).migrateToLatest(), fail));
      }
      return { direction: 'up', applied };
    }),
  );
}

/**
 * Reverts one migration: the app's latest, or once none of the app's is left,
 * the latest of the last package (in `packages` order) that has one, and core's
 * last of all. Sources build on the ones before them, so this order is safe
 * whatever order they were adopted in. Call it repeatedly to go further down.
 *
 * @throws {DatabaseError} MIGRATION_FAILED, also when a source with history was left out of the options (nothing is reverted then); UNAVAILABLE; INVALID_OPTIONS.
 */
export async function migrateDown(
  db: Kysely<unknown>,
  options: MigrateOptions = {},
): Promise<MigrationRun> {
  const sources = planOf(options);
  return runJob('nothing was reverted', (fail) =>
    inLockedTransaction(db, async (trx) => {
      const existing = await prepareTables(trx, sources, false);
      const planned = new Set(sources.map((source) => source.table));
      const omitted: string[] = [];
      for (const table of await historyTables(trx)) {
        const name = table.slice(0, -HISTORY_SUFFIX.length);
        // Only a table a source could own: other `*_migration` tables are not ours.
        if (planned.has(table) || !SOURCE_NAME.test(name) || RESERVED_SOURCES.has(name)) continue;
        if ((await historyOf(trx, table)).length > 0) omitted.push(table);
      }
      if (omitted.length > 0) {
        fail(
          new DatabaseError(
            'MIGRATION_FAILED',
            `nothing reverted: ${omitted.join(', ')} ${omitted.length === 1 ? 'has' : 'have'} migration history but ${omitted.length === 1 ? 'was' : 'were'} not passed in \`packages\`: pass the same packages as for up`,
          ),
        );
      }
      await adoptCombinedHistory(trx, sources, existing);
      for (const source of sources.toReversed()) {
        if (!existing.has(source.table)) continue;
        const history = await historyOf(trx, source.table);
        if (history.length === 0) continue;
        if (Object.keys(source.migrations).length === 0) {
          fail(
            new DatabaseError(
              'MIGRATION_FAILED',
              `nothing reverted: ${source.table} records ${history.length} migration(s) of ${source.name}, but none were given (pass the same packages and migrations as to migrateToLatest)`,
            ),
          );
        }
        const result = await migratorFor(trx, source).migrateDown();
        const reverted = outcome(source, result, fail);
        const kept = result.results?.find((entry) => entry.status === 'NotExecuted');
        if (reverted.length === 0 && kept) {
          fail(
            new DatabaseError(
              'MIGRATION_FAILED',
              `nothing reverted: the latest migration of ${source.name}, ${kept.migrationName}, has no down`,
            ),
          );
        }
        return { direction: 'down', applied: reverted };
      }
      return { direction: 'down', applied: [] };
    }),
  );
}

/**
 * Every known migration, in the order `up` runs them (core, packages, the
 * app), with when it ran (or `null`). Reads only: no lock, nothing created.
 *
 * @throws {DatabaseError} UNAVAILABLE, MIGRATION_FAILED (the history cannot be read), INVALID_OPTIONS.
 */
export async function migrationStatus(
  db: Kysely<unknown>,
  options: MigrateOptions = {},
): Promise<readonly MigrationState[]> {
  const sources = planOf(options);
  return runJob('cannot read the migration history', async () => {
    const existing = await existingTables(
      db,
      sources.map((source) => source.table),
    );
    const combined = existing.has(APP_MIGRATION_TABLE)
      ? await historyOf(db, APP_MIGRATION_TABLE)
      : [];
    const states: MigrationState[] = [];
    for (const source of sources) {
      // Rows not yet moved out of a combined history count where they belong.
      const history = [
        ...(existing.has(source.table) && source.table !== APP_MIGRATION_TABLE
          ? await historyOf(db, source.table)
          : []),
        ...combined,
      ];
      for (const name of Object.keys(source.migrations).sort()) {
        const row = history.find((entry) => entry.name === name);
        states.push({
          source: source.name,
          name,
          executedAt: row ? new Date(row.timestamp) : null,
        });
      }
    }
    return states;
  });
}

/** The history tables' suffix: Kysely's default table and `<source>_migration`. */
const HISTORY_SUFFIX = '_migration';

/**
 * Every visible `*_migration` table with Kysely's `name` and `timestamp`
 * columns, whatever sources the options name.
 */
async function historyTables(db: Kysely<unknown>): Promise<readonly string[]> {
  const { rows } = await sql<{ table: string }>`
    select c.relname as table
      from pg_catalog.pg_class c
     where c.relkind in ('r', 'p')
       and c.relname like ${`%\\${HISTORY_SUFFIX}`}
       and pg_catalog.pg_table_is_visible(c.oid)
       and (select count(*) from pg_catalog.pg_attribute a
             where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
               and a.attname in ('name', 'timestamp')) = 2`.execute(db);
  return rows.map((row) => row.table);
}

/**
 * Every migration history table in the database, whatever options the caller
 * knows of: `kysely_migration` (the app's) and each `<source>_migration` table
 * that Kysely's Migrator created (a table with its `name` and `timestamp`
 * columns, visible on the search path), with what each records. Core first,
 * then other sources by name, the app last. Reads only. Where
 * {@link migrationStatus} answers "what of these migrations ran", this answers
 * "what ran here", including sources left out of the options.
 *
 * @throws {DatabaseError} UNAVAILABLE, MIGRATION_FAILED (a history cannot be read).
 * @example
 * for (const history of await migrationHistories(owner.db)) {
 *   console.log(history.source, history.applied.length);
 * }
 */
export async function migrationHistories(
  db: Kysely<unknown>,
): Promise<readonly MigrationHistory[]> {
  return runJob('cannot read the migration history', async () => {
    const histories: MigrationHistory[] = [];
    for (const table of await historyTables(db)) {
      const prefix = table.slice(0, -HISTORY_SUFFIX.length);
      const source =
        table === APP_MIGRATION_TABLE
          ? APP_MIGRATION_SOURCE
          : RESERVED_SOURCES.has(prefix)
            ? table // not a source's: defineMigrationSource refuses these names
            : prefix;
      const applied = (await historyOf(db, table))
        .map((row) => ({ name: row.name, executedAt: new Date(row.timestamp) }))
        .sort(
          (a, b) => a.executedAt.getTime() - b.executedAt.getTime() || a.name.localeCompare(b.name),
        );
      histories.push({ source, table, applied });
    }
    const rank = (source: string): number =>
      source === CORE_SOURCE ? 0 : source === APP_MIGRATION_SOURCE ? 2 : 1;
    return histories.sort(
      (a, b) => rank(a.source) - rank(b.source) || a.source.localeCompare(b.source),
    );
  });
}
