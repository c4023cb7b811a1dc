// authMigrations composed with an app's own migrations on real PostgreSQL, in
// either order of adoption, up and all the way down, and a database migrated
// by the releases that kept every source's history in one table (kysely_migration).
// Decision record: docs/decisions/007-composable-migrations.md.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  coreMigrations,
  createDatabase,
  createTenantTable,
  migrateDown,
  migrateToLatest,
  migrationStatus,
  tenantIsolationProblems,
  type Database,
  type Migrations,
  type MigrateOptions,
  type TenantScoped,
} from '@flowforge/db';
import { sql, type Generated, type Kysely } from 'kysely';
import { Migrator } from 'kysely/migration';
import { afterAll, describe, expect, it } from 'vitest';
import { createApiKey, listApiKeys, type AuthDB } from '../src/api-keys.js';
import { authMigrations } from '../src/migrations.js';
import { APP_LOGIN, OWNER, asOwner, urlFor } from './support/postgres.js';

const CORE = '0000-flowforge-db-0001-tenancy';
const AUTH = '0001-flowforge-auth-0001-api-keys';
const TENANT = randomUUID();
const USER = randomUUID();

interface AppDB extends AuthDB {
  dashboards: TenantScoped<{ id: Generated<string>; name: string }>;
}

/** An app's own migrations, named `<prefix>dashboards` (the name with the timestamp prefix). */
function appMigrations(prefix: string): Migrations {
  return {
    [`${prefix}dashboards`]: {
      async up(db) {
        await createTenantTable(db, 'dashboards', (table) =>
          table
            .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
            .addColumn('name', 'text', (col) => col.notNull()),
        );
      },
      async down(db) {
        await db.schema.dropTable('dashboards').execute();
      },
    },
  };
}

interface Fixture {
  readonly owner: Kysely<unknown>;
  readonly app: Database<AppDB>;
}

const opened: Database<unknown>[] = [];
const created: string[] = [];

afterAll(async () => {
  await Promise.allSettled(opened.map((handle) => handle.close()));
  for (const name of created) await asOwner(`drop database if exists ${name} with (force)`);
});

/** A fresh database: the owner's handle (migrations) and the app login's (data). */
async function freshDatabase(): Promise<Fixture> {
  const name = `ff_auth_migr_${randomBytes(4).toString('hex')}`;
  await asOwner(`create database ${name}`);
  created.push(name);
  const owner = createDatabase<unknown>({ url: urlFor(OWNER, name), poolSize: 1 });
  const app = createDatabase<AppDB>({ url: urlFor(APP_LOGIN, name), poolSize: 2 });
  opened.push(owner, app as Database<unknown>);
  return { owner: owner.db, app };
}

async function tableExists(db: Kysely<unknown>, table: string): Promise<boolean> {
  const { rows } = await sql<{ oid: string | null }>`
    select to_regclass(${table})::text as oid`.execute(db);
  return rows[0]?.oid != null;
}

/** The names a history table records, in the order they ran. */
async function history(db: Kysely<unknown>, table: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select name from ${sql.table(table)} order by timestamp, name`.execute(db);
  return rows.map((row) => row.name);
}

async function dashboardNames(app: Database<AppDB>): Promise<string[]> {
  const rows = await app.withTenant(TENANT, (trx) =>
    trx.selectFrom('dashboards').select('name').orderBy('name').execute(),
  );
  return rows.map((row) => row.name);
}

async function keyNames(app: Database<AppDB>): Promise<string[]> {
  return (await listApiKeys(app as unknown as Database<AuthDB>, TENANT)).map((key) => key.name);
}

/** migrateDown until nothing is left: the names reverted, in order. */
async function downAllTheWay(db: Kysely<unknown>, options: MigrateOptions): Promise<string[]> {
  const reverted: string[] = [];
  for (let step = 0; step < 10; step += 1) {
    const run = await migrateDown(db, options);
    if (run.applied.length === 0) return reverted;
    reverted.push(...run.applied);
  }
  throw new Error(`migrateDown did not finish: ${reverted.join(', ')}`);
}

async function expectEmpty(db: Kysely<unknown>): Promise<void> {
  for (const table of ['dashboards', 'api_keys']) expect(await tableExists(db, table)).toBe(false);
  const { rows } = await sql<{ fn: string | null }>`
    select to_regprocedure('flowforge_current_tenant()')::text as fn`.execute(db);
  expect(rows).toEqual([{ fn: null }]);
}

// Timestamps (the names) sort after auth's `0001-…`; plain sequence
// numbers (`0001-dashboards`) sort before it. Neither order may matter.
describe.each([
  ['timestamp-named', '2026-11-28-0001-'],
  ['sequence-named', '0001-'],
])('an app with %s migrations', (_kind, prefix) => {
  const app = appMigrations(prefix);
  const APP = `${prefix}dashboards`;

  it('adopts authMigrations after its own: up applies only api_keys, keeps its data; down goes app, auth, core', async () => {
    const { owner, app: appDb } = await freshDatabase();

    // The app alone, as it was before it adopted @flowforge/auth.
    expect(await migrateToLatest(owner, { migrations: app })).toEqual({
      direction: 'up',
      applied: [CORE, APP],
    });
    await appDb.withTenant(TENANT, (trx) =>
      trx.insertInto('dashboards').values({ name: 'Sales' }).execute(),
    );

    // Later: authMigrations added. Before the fix this was
    // "corrupted migrations: expected previously executed migration … to be at index 1".
    const options: MigrateOptions = { packages: [authMigrations], migrations: app };
    expect(await migrateToLatest(owner, options)).toEqual({ direction: 'up', applied: [AUTH] });
    expect(await dashboardNames(appDb)).toEqual(['Sales']);
    await createApiKey(appDb, TENANT, {
      name: 'Wallboard',
      widgetIds: [],
      createdBy: USER,
    });
    expect(await keyNames(appDb)).toEqual(['Wallboard']);
    expect(await tenantIsolationProblems(owner)).toEqual([]);

    // Each source's history in its own table; nothing reordered.
    expect(await history(owner, 'flowforge_db_migration')).toEqual([CORE]);
    expect(await history(owner, 'flowforge_auth_migration')).toEqual([AUTH]);
    expect(await history(owner, 'kysely_migration')).toEqual([APP]);
    const status = await migrationStatus(owner, options);
    expect(status.map(({ source, name }) => [source, name])).toEqual([
      ['flowforge_db', CORE],
      ['flowforge_auth', AUTH],
      ['app', APP],
    ]);
    expect(status.every((state) => state.executedAt instanceof Date)).toBe(true);
    expect(await migrateToLatest(owner, options)).toEqual({ direction: 'up', applied: [] });

    // Down all the way: the app first (it may build on the packages), core last.
    expect(await downAllTheWay(owner, options)).toEqual([APP, AUTH, CORE]);
    await expectEmpty(owner);

    // And up again from nothing: core, auth, the app.
    expect(await migrateToLatest(owner, options)).toEqual({
      direction: 'up',
      applied: [CORE, AUTH, APP],
    });
  });

  it('adopts its own migrations after authMigrations (the reverse order): the same history, the same way down', async () => {
    const { owner, app: appDb } = await freshDatabase();

    expect(await migrateToLatest(owner, { packages: [authMigrations] })).toEqual({
      direction: 'up',
      applied: [CORE, AUTH],
    });
    await createApiKey(appDb, TENANT, {
      name: 'Kiosk',
      widgetIds: [],
      createdBy: USER,
    });

    const options: MigrateOptions = { packages: [authMigrations], migrations: app };
    expect(await migrateToLatest(owner, options)).toEqual({ direction: 'up', applied: [APP] });
    expect(await keyNames(appDb)).toEqual(['Kiosk']);
    await appDb.withTenant(TENANT, (trx) =>
      trx.insertInto('dashboards').values({ name: 'Ops' }).execute(),
    );
    expect(await dashboardNames(appDb)).toEqual(['Ops']);
    expect(await history(owner, 'kysely_migration')).toEqual([APP]);
    expect(await history(owner, 'flowforge_auth_migration')).toEqual([AUTH]);

    expect(await downAllTheWay(owner, options)).toEqual([APP, AUTH, CORE]);
    await expectEmpty(owner);
  });
});

describe('a database migrated by earlier releases (every source in kysely_migration)', () => {
  const APP = '2026-11-28-0001-dashboards';
  const app = appMigrations('2026-11-28-0001-');

  /** What the earlier createMigrator did: core, auth and the app's as one list, one table. */
  async function migrateTheOldWay(db: Kysely<unknown>): Promise<void> {
    const combined = { ...coreMigrations().migrations, ...authMigrations.migrations, ...app };
    const { error } = await new Migrator({
      db,
      provider: { getMigrations: () => Promise.resolve(combined) },
    }).migrateToLatest();
    if (error !== undefined)
      throw new Error("the earlier releases' migration failed", { cause: error });
  }

  async function timestamps(db: Kysely<unknown>, table: string): Promise<Map<string, string>> {
    const { rows } = await sql<{ name: string; timestamp: string }>`
      select name, timestamp from ${sql.table(table)}`.execute(db);
    return new Map(rows.map((row) => [row.name, row.timestamp]));
  }

  it('upgrades in place: nothing re-runs, each history moves to its table with its times, data kept, then down and up work', async () => {
    const { owner, app: appDb } = await freshDatabase();
    await migrateTheOldWay(owner);
    expect(await history(owner, 'kysely_migration')).toEqual([CORE, AUTH, APP]);
    const before = await timestamps(owner, 'kysely_migration');
    await appDb.withTenant(TENANT, (trx) =>
      trx.insertInto('dashboards').values({ name: 'Legacy' }).execute(),
    );
    await createApiKey(appDb, TENANT, {
      name: 'Old key',
      widgetIds: [],
      createdBy: USER,
    });

    const options: MigrateOptions = { packages: [authMigrations], migrations: app };
    // Status reads the old table as it is, before any upgrade.
    const status = await migrationStatus(owner, options);
    expect(status.map((state) => [state.source, state.name, state.executedAt !== null])).toEqual([
      ['flowforge_db', CORE, true],
      ['flowforge_auth', AUTH, true],
      ['app', APP, true],
    ]);
    expect(await tableExists(owner, 'flowforge_db_migration')).toBe(false);

    expect(await migrateToLatest(owner, options)).toEqual({ direction: 'up', applied: [] });
    expect(await history(owner, 'kysely_migration')).toEqual([APP]);
    expect(await history(owner, 'flowforge_auth_migration')).toEqual([AUTH]);
    expect(await history(owner, 'flowforge_db_migration')).toEqual([CORE]);
    const after = new Map([
      ...(await timestamps(owner, 'flowforge_db_migration')),
      ...(await timestamps(owner, 'flowforge_auth_migration')),
      ...(await timestamps(owner, 'kysely_migration')),
    ]);
    expect(after).toEqual(before);
    expect(await dashboardNames(appDb)).toEqual(['Legacy']);
    expect(await keyNames(appDb)).toEqual(['Old key']);

    // The app goes on with a new migration of its own.
    const next: Migrations = {
      ...app,
      '2026-12-01-0001-dashboard-notes': {
        async up(db) {
          await sql`alter table dashboards add column notes text`.execute(db);
        },
        async down(db) {
          await sql`alter table dashboards drop column notes`.execute(db);
        },
      },
    };
    const nextOptions: MigrateOptions = { packages: [authMigrations], migrations: next };
    expect(await migrateToLatest(owner, nextOptions)).toEqual({
      direction: 'up',
      applied: ['2026-12-01-0001-dashboard-notes'],
    });
    expect(await dashboardNames(appDb)).toEqual(['Legacy']);

    expect(await downAllTheWay(owner, nextOptions)).toEqual([
      '2026-12-01-0001-dashboard-notes',
      APP,
      AUTH,
      CORE,
    ]);
    await expectEmpty(owner);
    expect(await migrateToLatest(owner, nextOptions)).toMatchObject({
      applied: [CORE, AUTH, APP, '2026-12-01-0001-dashboard-notes'],
    });
  });

  it('upgrades on a first migrateDown too (the old table is split before anything is reverted)', async () => {
    const { owner } = await freshDatabase();
    await migrateTheOldWay(owner);
    const options: MigrateOptions = { packages: [authMigrations], migrations: app };
    expect(await migrateDown(owner, options)).toEqual({ direction: 'down', applied: [APP] });
    expect(await history(owner, 'kysely_migration')).toEqual([]);
    expect(await history(owner, 'flowforge_auth_migration')).toEqual([AUTH]);
    expect(await downAllTheWay(owner, options)).toEqual([AUTH, CORE]);
  });
});
