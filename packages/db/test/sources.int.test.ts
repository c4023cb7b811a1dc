// Migration sources on real PostgreSQL: core, packages and the app, each with
// its own history table, run in one locked transaction. The sequence
// with @flowforge/auth's real migrations is in packages/auth/test/migrations.int.test.ts.
// Decision record: docs/decisions/007-composable-migrations.md.
import { sql, type Kysely } from 'kysely';
import { Migrator } from 'kysely/migration';
import { afterAll, describe, expect, test } from 'vitest';
import {
  coreMigrations,
  createDatabase,
  DatabaseError,
  defineMigrationSource,
  migrateDown,
  migrateToLatest,
  migrationStatus,
  type Database,
  type Migrations,
  type MigrateOptions,
} from '../src/index.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

const CORE = Object.keys(coreMigrations().migrations);

const databases: TestDatabase[] = [];
const handles: Database<unknown>[] = [];

afterAll(async () => {
  await Promise.allSettled(handles.map((handle) => handle.close()));
  await Promise.allSettled(databases.map((database) => database.drop()));
});

async function ownerOfFresh(prefix: string, poolSize = 1): Promise<Kysely<unknown>> {
  const created = await createTestDatabase(prefix);
  databases.push(created);
  const handle = createDatabase<unknown>({ url: created.ownerUrl, poolSize });
  handles.push(handle);
  return handle.db;
}

function createTable(table: string, extra = ''): Migrations[string] {
  return {
    async up(db) {
      await sql.raw(`create table ${table} (id integer primary key${extra})`).execute(db);
    },
    async down(db) {
      await sql.raw(`drop table ${table}`).execute(db);
    },
  };
}

const ledger = defineMigrationSource('acme_ledger', {
  '0001-ledger': createTable('ledger'),
});
const audit = defineMigrationSource('acme_audit', {
  // Builds on the ledger package: listed after it.
  '0001-audit': createTable('audit', ', ledger_id integer references ledger (id)'),
});
const app: Migrations = {
  '2026-11-28-0001-entries': createTable('entries', ', ledger_id integer references ledger (id)'),
};

async function tableExists(db: Kysely<unknown>, table: string): Promise<boolean> {
  const { rows } = await sql<{ oid: string | null }>`
    select to_regclass(${table})::text as oid`.execute(db);
  return rows[0]?.oid != null;
}

async function rejectionOf(run: Promise<unknown>): Promise<DatabaseError> {
  const error = await run.then(
    () => undefined,
    (rejection: unknown) => rejection,
  );
  expect(error).toBeInstanceOf(DatabaseError);
  return error as DatabaseError;
}

describe('sources run in order, each with its own history', () => {
  test('core, then packages in the order given, then the app; down reverses that, one step at a time', async () => {
    const db = await ownerOfFresh('src_order');
    const options: MigrateOptions = { packages: [ledger, audit], migrations: app };
    expect(await migrateToLatest(db, options)).toEqual({
      direction: 'up',
      applied: [...CORE, '0001-ledger', '0001-audit', '2026-11-28-0001-entries'],
    });
    for (const [table, names] of [
      ['flowforge_db_migration', CORE],
      ['acme_ledger_migration', ['0001-ledger']],
      ['acme_audit_migration', ['0001-audit']],
      ['kysely_migration', ['2026-11-28-0001-entries']],
    ] as const) {
      const { rows } = await sql<{ name: string }>`select name from ${sql.table(table)}`.execute(
        db,
      );
      expect(rows.map((row) => row.name)).toEqual(names);
    }

    const reverted: string[] = [];
    for (let run = await migrateDown(db, options); run.applied.length > 0;) {
      reverted.push(...run.applied);
      run = await migrateDown(db, options);
    }
    expect(reverted).toEqual(['2026-11-28-0001-entries', '0001-audit', '0001-ledger', ...CORE]);
  });

  test('a package added later, with new migrations of the app that build on it, runs before them', async () => {
    const db = await ownerOfFresh('src_later');
    const mine: Migrations = { '2026-11-28-0000-notes': createTable('notes') };
    await migrateToLatest(db, { migrations: mine });
    const run = await migrateToLatest(db, { packages: [ledger], migrations: { ...mine, ...app } });
    expect(run.applied).toEqual(['0001-ledger', '2026-11-28-0001-entries']);
  });
});

describe('one run is one transaction across sources', () => {
  test("an app migration that fails leaves nothing: not the package's table, not core, no history table", async () => {
    const db = await ownerOfFresh('src_fail');
    const failing: Migrations = {
      '2026-11-28-0001-broken': {
        async up(trx) {
          await sql`select 1/0`.execute(trx);
        },
      },
    };
    const error = await rejectionOf(
      migrateToLatest(db, { packages: [ledger], migrations: failing }),
    );
    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.message).toContain('migration 2026-11-28-0001-broken failed');
    expect(error.sqlstate).toBe('22012');
    for (const table of [
      'ledger',
      'flowforge_db_migration',
      'acme_ledger_migration',
      'kysely_migration',
      'kysely_migration_lock',
    ]) {
      expect(await tableExists(db, table), table).toBe(false);
    }
  });

  test('two deploys migrating at once: one applies everything, the other waits for its lock and finds nothing to do', async () => {
    const db = await ownerOfFresh('src_race', 2);
    const options: MigrateOptions = { packages: [ledger], migrations: app };
    const runs = await Promise.all([migrateToLatest(db, options), migrateToLatest(db, options)]);
    expect(runs.map((run) => run.applied.length).sort()).toEqual([0, CORE.length + 2]);
  });

  test('a migration run in a transaction the caller passes holds the lock until that transaction ends', async () => {
    const db = await ownerOfFresh('src_caller_trx', 2);
    const options: MigrateOptions = { packages: [ledger], migrations: app };
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let migrated!: () => void;
    const ran = new Promise<void>((resolve) => (migrated = resolve));
    const first = db.transaction().execute(async (trx) => {
      const run = await migrateToLatest(trx, options);
      migrated();
      await held;
      return run;
    });
    await ran;
    const second = migrateToLatest(db, options);
    let settled = false;
    void second.finally(() => (settled = true)).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(settled).toBe(false);
    release();
    expect((await first).applied).toEqual([...CORE, '0001-ledger', '2026-11-28-0001-entries']);
    expect(await second).toEqual({ direction: 'up', applied: [] });
  });
});

describe('down refuses what it cannot do safely', () => {
  test('a source with history left out of the options: nothing reverted underneath it', async () => {
    const db = await ownerOfFresh('src_omit');
    await migrateToLatest(db, { packages: [ledger], migrations: app });
    const error = await rejectionOf(migrateDown(db, { packages: [ledger] }));
    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.message).toContain('kysely_migration records 1 migration(s) of app');
    expect(await tableExists(db, 'entries')).toBe(true);
    expect(await tableExists(db, 'ledger')).toBe(true);
  });

  test('a package with history left out of the options: refused before anything is reverted', async () => {
    const db = await ownerOfFresh('src_omit_pkg');
    // The package's table depends on core's function, as a tenant table would.
    const tenantLedger = defineMigrationSource('acme_ledger', {
      '0001-ledger': createTable('ledger', ', tenant_id uuid default flowforge_current_tenant()'),
    });
    await migrateToLatest(db, { packages: [tenantLedger], migrations: app });
    const error = await rejectionOf(migrateDown(db, { migrations: app }));
    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.message).toContain(
      'acme_ledger_migration has migration history but was not passed in `packages`',
    );
    expect(await tableExists(db, 'entries')).toBe(true);
    expect(await tableExists(db, 'ledger')).toBe(true);
    const { rows } = await sql<{ n: number }>`
      select (select count(*) from kysely_migration)::int
           + (select count(*) from flowforge_db_migration)::int as n`.execute(db);
    expect(rows).toEqual([{ n: CORE.length + 1 }]);
    // Passing the package, down works from the app's migration on.
    expect(await migrateDown(db, { packages: [tenantLedger], migrations: app })).toEqual({
      direction: 'down',
      applied: ['2026-11-28-0001-entries'],
    });
  });

  test('a latest migration without down: MIGRATION_FAILED naming it', async () => {
    const db = await ownerOfFresh('src_nodown');
    const { up } = createTable('one_way') as { up: (db: Kysely<unknown>) => Promise<void> };
    const oneWay: Migrations = { '2026-11-28-0001-one-way': { up } };
    await migrateToLatest(db, { migrations: oneWay });
    const error = await rejectionOf(migrateDown(db, { migrations: oneWay }));
    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.message).toContain('2026-11-28-0001-one-way, has no down');
  });
});

describe('a history that earlier releases kept in kysely_migration', () => {
  async function migrateTheOldWay(db: Kysely<unknown>): Promise<void> {
    const combined = { ...coreMigrations().migrations, ...ledger.migrations, ...app };
    const { error } = await new Migrator({
      db,
      provider: { getMigrations: () => Promise.resolve(combined) },
    }).migrateToLatest();
    if (error !== undefined) throw new Error('the old-style migration failed', { cause: error });
  }

  test('is split by source on the next run, and nothing runs again', async () => {
    const db = await ownerOfFresh('src_legacy');
    await migrateTheOldWay(db);
    const options: MigrateOptions = { packages: [ledger], migrations: app };
    expect((await migrationStatus(db, options)).every((state) => state.executedAt)).toBe(true);
    expect(await migrateToLatest(db, options)).toEqual({ direction: 'up', applied: [] });
    const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(db);
    expect(rows).toEqual([{ name: '2026-11-28-0001-entries' }]);
  });

  test('with a package that recorded history there left out, the run fails naming it and changes nothing', async () => {
    const db = await ownerOfFresh('src_legacy_omit');
    await migrateTheOldWay(db);
    const error = await rejectionOf(migrateToLatest(db, { migrations: app }));
    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.message).toContain('previously executed migration 0001-ledger is missing');
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from kysely_migration`.execute(db);
    expect(rows).toEqual([{ n: CORE.length + 2 }]);
    expect(await tableExists(db, 'flowforge_db_migration')).toBe(false);
  });
});
