// Embedded PGlite: migrations, tenant isolation (row-level security through the
// flowforge_app role switch, since PGlite's only login is a superuser), and
// Kysely serialising transactions on PGlite's single session.
//
// One in-memory PGlite is shared by the whole file (it takes seconds and
// hundreds of MB to start); only the persisted-directory test opens its own.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  coreMigrations,
  createDatabase,
  DatabaseError,
  migrateToLatest,
  migrationStatus,
  type Database,
  type MigrationRun,
} from '../src/index.js';
import { testMigrations, TENANT_A, TENANT_B, type TestDB } from './support/postgres.js';

const ALL_MIGRATIONS = [
  ...Object.keys(coreMigrations().migrations),
  ...Object.keys(testMigrations),
];

let pglite: PGlite;
let database: Database<TestDB>;
let firstRun: MigrationRun;
let secondRun: MigrationRun;

function schemaDb(handle: Database<TestDB>): Kysely<unknown> {
  return handle.db as unknown as Kysely<unknown>;
}

/** The error `run` rejects with. */
async function errorOf(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error, got none');
}

async function titlesOf(tenantId: string): Promise<string[]> {
  const rows = await database.withTenant(tenantId, (trx) =>
    trx.selectFrom('notes').select(['title', 'tenant_id']).orderBy('title').execute(),
  );
  // Row-level security is what filters; the rows that come back are all the tenant's own.
  for (const row of rows) expect(row.tenant_id).toBe(tenantId);
  return rows.map((row) => row.title);
}

/** Who the session is outside any transaction, and what is left of the tenant setting. */
async function sessionState(): Promise<{
  user: string;
  superuser: boolean;
  tenant: string | null;
}> {
  const { rows } = await sql<{ user: string; superuser: boolean; tenant: string | null }>`
    select current_user as "user",
           (select rolsuper from pg_roles where rolname = current_user) as superuser,
           current_setting('app.tenant_id', true) as tenant`.execute(database.db);
  return rows[0]!;
}

beforeAll(async () => {
  pglite = await PGlite.create('memory://');
  database = createDatabase<TestDB>({ embedded: pglite });
  firstRun = await migrateToLatest(schemaDb(database), { migrations: testMigrations });
  secondRun = await migrateToLatest(schemaDb(database), { migrations: testMigrations });
  await database.withTenant(TENANT_A, (trx) =>
    trx
      .insertInto('notes')
      .values([{ title: 'a1' }, { title: 'a2', body: 'second' }])
      .execute(),
  );
  await database.withTenant(TENANT_B, (trx) =>
    trx.insertInto('notes').values({ title: 'b1' }).execute(),
  );
});

afterAll(async () => {
  await database?.close();
  await pglite?.close();
});

describe('pglite: handle and migrations', () => {
  test('kind is pglite', () => {
    expect(database.kind).toBe('pglite');
  });

  test('migrateToLatest applies core then test migrations in order; a second run applies nothing', async () => {
    expect(firstRun).toEqual({ direction: 'up', applied: ALL_MIGRATIONS });
    expect(secondRun).toEqual({ direction: 'up', applied: [] });
    const status = await migrationStatus(schemaDb(database), { migrations: testMigrations });
    expect(status.map((state) => state.name)).toEqual(ALL_MIGRATIONS);
    for (const state of status) expect(state.executedAt).toBeInstanceOf(Date);
  });

  test('closing a handle on a shared instance leaves the instance open', async () => {
    const other = createDatabase<TestDB>({ embedded: pglite });
    await expect(other.health()).resolves.toMatchObject({ status: 'up' });
    await other.close();
    expect(pglite.closed).toBe(false);
    await expect(other.health()).rejects.toMatchObject({ code: 'CLOSED' });
    // The first handle goes on working on the same instance.
    expect(await titlesOf(TENANT_A)).toEqual(['a1', 'a2']);
  });
});

describe('pglite: tenant isolation', () => {
  test('a BEGIN whose role switch fails neither wedges nor poisons the single session', async () => {
    const broken = createDatabase<TestDB>({ embedded: pglite, appRole: 'no_such_role' });
    try {
      const thrown = await errorOf(() => broken.withTenant(TENANT_A, () => Promise.resolve()));
      expect(thrown).toMatchObject({ name: 'DatabaseError' });
      await expect(broken.health()).resolves.toMatchObject({ status: 'up' });
      await expect(database.withTenant(TENANT_A, () => Promise.resolve('ok'))).resolves.toBe('ok');
    } finally {
      await broken.close();
    }
  });

  test("transaction options reach PGlite too (it ignores Kysely's, so they are SET TRANSACTION)", async () => {
    const seen = await database.withTenant(
      TENANT_A,
      async (trx) =>
        (
          await sql<{
            level: string;
            ro: string;
          }>`select current_setting('transaction_isolation') as level,
            current_setting('transaction_read_only') as ro`.execute(trx)
        ).rows[0],
      { isolationLevel: 'serializable', accessMode: 'read only' },
    );
    expect(seen).toEqual({ level: 'serializable', ro: 'on' });
    const refused = await errorOf(() =>
      database.withTransaction(
        (trx) => trx.insertInto('notes').values({ title: 'ro', tenant_id: TENANT_A }).execute(),
        {
          accessMode: 'read only',
        },
      ),
    );
    expect(refused).toMatchObject({ name: 'DatabaseError', sqlstate: '25006' });
  });

  test("withTenant sees only its own tenant's rows", async () => {
    expect(await titlesOf(TENANT_A)).toEqual(['a1', 'a2']);
    expect(await titlesOf(TENANT_B)).toEqual(['b1']);
  });

  test("withTenant cannot update or delete another tenant's row, even by id", async () => {
    const [b1] = await database.withTenant(TENANT_B, (trx) =>
      trx.selectFrom('notes').select(['id', 'title', 'body']).execute(),
    );
    expect(b1).toMatchObject({ title: 'b1', body: null });
    const bId = b1!.id;

    const outcome = await database.withTenant(TENANT_A, async (trx) => ({
      read: await trx.selectFrom('notes').select('id').where('id', '=', bId).execute(),
      update: await trx
        .updateTable('notes')
        .set({ body: 'hijacked' })
        .where('id', '=', bId)
        .executeTakeFirst(),
      remove: await trx.deleteFrom('notes').where('id', '=', bId).executeTakeFirst(),
    }));
    expect(outcome.read).toEqual([]);
    expect(outcome.update.numUpdatedRows).toBe(0n);
    expect(outcome.remove.numDeletedRows).toBe(0n);

    const after = await database.withTenant(TENANT_B, (trx) =>
      trx.selectFrom('notes').select(['id', 'title', 'body']).execute(),
    );
    expect(after).toEqual([b1]);
  });

  test("an insert with another tenant's tenant_id fails with TENANT_VIOLATION", async () => {
    const error = await errorOf(() =>
      database.withTenant(TENANT_A, (trx) =>
        trx.insertInto('notes').values({ title: 'smuggled', tenant_id: TENANT_B }).execute(),
      ),
    );
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error).toMatchObject({ code: 'TENANT_VIOLATION', sqlstate: '42501' });
    expect(await titlesOf(TENANT_B)).toEqual(['b1']);
    expect(await titlesOf(TENANT_A)).toEqual(['a1', 'a2']);
  });

  test('moving a row to another tenant fails with TENANT_VIOLATION (the policy checks new rows too)', async () => {
    const error = await errorOf(() =>
      database.withTenant(TENANT_A, (trx) =>
        trx.updateTable('notes').set({ tenant_id: TENANT_B }).where('title', '=', 'a1').execute(),
      ),
    );
    expect(error).toMatchObject({ code: 'TENANT_VIOLATION', sqlstate: '42501' });
    expect(await titlesOf(TENANT_A)).toEqual(['a1', 'a2']);
  });

  test('inside withTenant the role is flowforge_app; afterwards the session is the superuser with no tenant', async () => {
    const before = await sessionState();
    expect(before.superuser).toBe(true);

    const inside = await database.withTenant(TENANT_A, async (trx) => {
      const { rows } = await sql<{ user: string; tenant: string }>`
        select current_user as "user", current_setting('app.tenant_id', true) as tenant`.execute(
        trx,
      );
      return rows[0]!;
    });
    expect(inside).toEqual({ user: 'flowforge_app', tenant: TENANT_A });

    const after = await sessionState();
    expect(after.user).toBe(before.user);
    expect(after.superuser).toBe(true);
    // Once set in an earlier transaction the placeholder setting reads '' (never set: null).
    expect(after.tenant ?? '').toBe('');
  });

  test('the role and tenant do not survive a withTenant that fails either', async () => {
    const before = await sessionState();
    await expect(
      database.withTenant(TENANT_B, () => Promise.reject(new Error('boom'))),
    ).rejects.toThrow('boom');
    await expect(
      database.withTenant(TENANT_B, (trx) => sql`select 1/0`.execute(trx)),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT', sqlstate: '22012' });
    const after = await sessionState();
    expect(after.user).toBe(before.user);
    expect(after.superuser).toBe(true);
    expect(after.tenant ?? '').toBe('');
  });

  test('20 concurrent withTenant calls for A and B run one at a time, each seeing only its own rows', async () => {
    const events: string[] = [];
    const runs = Array.from({ length: 20 }, (_, i) => {
      const tenant = i % 2 === 0 ? TENANT_A : TENANT_B;
      return database.withTenant(tenant, async (trx) => {
        events.push(`begin ${i}`);
        await trx
          .insertInto('notes')
          .values({ title: `concurrent-${i}` })
          .execute();
        // Give every other caller a chance to run while this transaction is open.
        await new Promise((resolve) => setTimeout(resolve, 2));
        const rows = await trx.selectFrom('notes').select(['title', 'tenant_id']).execute();
        const { rows: settings } = await sql<{ tenant: string; user: string }>`
          select current_setting('app.tenant_id') as tenant, current_user as "user"`.execute(trx);
        events.push(`end ${i}`);
        return { i, tenant, rows, setting: settings[0]! };
      });
    });
    try {
      const results = await Promise.all(runs);
      for (const { i, tenant, rows, setting } of results) {
        expect(setting).toEqual({ tenant, user: 'flowforge_app' });
        expect(rows.map((row) => row.title)).toContain(`concurrent-${i}`);
        for (const row of rows) expect(row.tenant_id).toBe(tenant);
      }
      // PGlite has one session: Kysely's connection mutex serialises the transactions,
      // so no transaction began while another was open.
      for (let k = 0; k < events.length; k += 2) {
        const index = events[k]!.split(' ')[1];
        expect([events[k], events[k + 1]]).toEqual([`begin ${index}`, `end ${index}`]);
      }
      expect(events).toHaveLength(40);
      const concurrentA = (await titlesOf(TENANT_A)).filter((title) =>
        title.startsWith('concurrent-'),
      );
      const concurrentB = (await titlesOf(TENANT_B)).filter((title) =>
        title.startsWith('concurrent-'),
      );
      expect(concurrentA).toHaveLength(10);
      expect(concurrentB).toHaveLength(10);
      for (const title of concurrentA) expect(Number(title.split('-')[1]) % 2).toBe(0);
      for (const title of concurrentB) expect(Number(title.split('-')[1]) % 2).toBe(1);
    } finally {
      await Promise.allSettled(runs);
      for (const tenant of [TENANT_A, TENANT_B]) {
        await database.withTenant(tenant, (trx) =>
          trx.deleteFrom('notes').where('title', 'like', 'concurrent-%').execute(),
        );
      }
    }
  });

  test('a callback that throws after an insert rolls the insert back and rethrows its error unchanged', async () => {
    const boom = new Error('boom');
    let seenInside: string[] = [];
    await expect(
      database.withTenant(TENANT_A, async (trx) => {
        await trx.insertInto('notes').values({ title: 'rolled-back' }).execute();
        seenInside = (await trx.selectFrom('notes').select('title').execute()).map(
          (row) => row.title,
        );
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(seenInside).toContain('rolled-back');
    expect(await titlesOf(TENANT_A)).toEqual(['a1', 'a2']);
    // Outside withTenant PGlite's superuser bypasses row-level security: the row is gone for everyone.
    const anywhere = await database.db
      .selectFrom('notes')
      .select('id')
      .where('title', '=', 'rolled-back')
      .execute();
    expect(anywhere).toEqual([]);
  });

  test('a tenant id that is not a UUID rejects with TENANT_INVALID and never runs the callback', async () => {
    let ran = false;
    for (const tenantId of [
      'not-a-uuid',
      '',
      `${TENANT_A}' or true --`,
      `{${TENANT_A}}`,
      TENANT_A.replaceAll('-', ''),
    ]) {
      // A rejected promise, like every other failure: calling withTenant itself does not throw.
      let pending: Promise<unknown> | undefined;
      expect(() => {
        pending = database.withTenant(tenantId, () => {
          ran = true;
          return Promise.resolve();
        });
      }).not.toThrow();
      const error = await errorOf(() => pending!);
      expect(error).toBeInstanceOf(DatabaseError);
      expect(error).toMatchObject({ code: 'TENANT_INVALID' });
    }
    expect(ran).toBe(false);
  });

  test('withTenant inside withTenant fails with NESTED_TRANSACTION (no deadlock) and the outer work is rolled back', async () => {
    const error = await errorOf(() =>
      database.withTenant(TENANT_A, async (trx) => {
        await trx.insertInto('notes').values({ title: 'outer' }).execute();
        await database.withTenant(TENANT_B, (inner) =>
          inner.selectFrom('notes').selectAll().execute(),
        );
      }),
    );
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error).toMatchObject({ code: 'NESTED_TRANSACTION' });
    await expect(
      database.withTenant(TENANT_A, () => database.withTransaction(() => Promise.resolve(1))),
    ).rejects.toMatchObject({ code: 'NESTED_TRANSACTION' });
    expect(await titlesOf(TENANT_A)).toEqual(['a1', 'a2']);
    expect(await titlesOf(TENANT_B)).toEqual(['b1']);
  });
});

describe('pglite: persisted data directory', () => {
  let dataDir: string | undefined;
  afterAll(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test(
    'rows written through one handle are there after reopening the directory',
    { timeout: 90_000 },
    async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'flowforge-pglite-'));

      const first = createDatabase<TestDB>({ embedded: true, embeddedDir: dataDir });
      try {
        expect(first.kind).toBe('pglite');
        const run = await migrateToLatest(schemaDb(first), { migrations: testMigrations });
        expect(run.applied).toEqual(ALL_MIGRATIONS);
        await first.withTenant(TENANT_A, (trx) =>
          trx.insertInto('notes').values({ title: 'persisted', body: 'kept' }).execute(),
        );
      } finally {
        await first.close();
      }

      const reopened = createDatabase<TestDB>({ embedded: true, embeddedDir: dataDir });
      try {
        const again = await migrateToLatest(schemaDb(reopened), { migrations: testMigrations });
        expect(again.applied).toEqual([]);
        const rowsA = await reopened.withTenant(TENANT_A, (trx) =>
          trx.selectFrom('notes').select(['title', 'body', 'tenant_id']).execute(),
        );
        expect(rowsA).toEqual([{ title: 'persisted', body: 'kept', tenant_id: TENANT_A }]);
        const rowsB = await reopened.withTenant(TENANT_B, (trx) =>
          trx.selectFrom('notes').select('title').execute(),
        );
        expect(rowsB).toEqual([]);
      } finally {
        await reopened.close();
      }
    },
  );
});
