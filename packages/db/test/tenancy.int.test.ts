import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDatabase,
  disableTenantIsolation,
  enableTenantIsolation,
  tenantIsolationProblems,
  type Database,
  type DatabaseError,
} from '../src/index.js';
import {
  createTestDatabase,
  openMigrated,
  TENANT_A,
  TENANT_B,
  urlFor,
  type TestDatabase,
  type TestDB,
} from './support/postgres.js';

let testDb: TestDatabase;
let database: Database<TestDB>;
let owner: Database<unknown>;
/** The superuser without the role switch: sees every tenant, for fixtures and clean-up only. */
let admin: Database<unknown>;

beforeAll(async () => {
  testDb = await createTestDatabase('tenancy');
  database = await openMigrated(testDb);
  owner = createDatabase<unknown>({ url: testDb.ownerUrl, poolSize: 1, appRole: null });
  admin = createDatabase<unknown>({
    url: urlFor('postgres', testDb.name),
    poolSize: 1,
    appRole: null,
  });
});

afterAll(async () => {
  await database?.close();
  await owner?.close();
  await admin?.close();
  await testDb?.drop();
});

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = (await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (rejection: unknown) => rejection,
  )) as DatabaseError;
  return error.code;
}

const insertNote = (db: Database<TestDB>, tenant: string, title: string): Promise<string> =>
  db.withTenant(tenant, async (trx) => {
    const row = await trx
      .insertInto('notes')
      .values({ title })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  });

describe('the roles and the schema', () => {
  it('the login role and the app role are neither superuser nor BYPASSRLS, and own no tenant table', async () => {
    const { rows } = await sql<{
      rolname: string;
      rolsuper: boolean;
      rolbypassrls: boolean;
      owns: number;
    }>`
      select r.rolname, r.rolsuper, r.rolbypassrls,
             (select count(*)::int from pg_class c
                join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id'
               where c.relowner = r.oid) as owns
        from pg_roles r where r.rolname in ('flowforge', 'flowforge_app') order by 1`.execute(
      owner.db,
    );
    expect(rows).toEqual([
      { rolname: 'flowforge', rolsuper: false, rolbypassrls: false, owns: 0 },
      { rolname: 'flowforge_app', rolsuper: false, rolbypassrls: false, owns: 0 },
    ]);
  });

  it('every tenant table has NOT NULL tenant_id, its index, forced RLS and a tenant policy', async () => {
    const { rows } = await sql<{ relname: string; forced: boolean }>`
      select c.relname, c.relforcerowsecurity as forced from pg_class c
        join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id'
       where c.relnamespace = 'public'::regnamespace and c.relkind = 'r' order by 1`.execute(
      owner.db,
    );
    expect(rows).toEqual([
      { relname: 'notes', forced: true },
      { relname: 'tags', forced: true },
    ]);
    expect(await tenantIsolationProblems(owner.db)).toEqual([]);
  });

  it('the catalog walk fails for a table that gets isolation wrong', async () => {
    // Built and inspected inside a transaction that is rolled back, so nothing stays.
    const problems = await owner
      .withTransaction(async (trx) => {
        await sql`create table leaky (id uuid primary key, tenant_id uuid, title text unique)`.execute(
          trx,
        );
        await sql`create table opened (id uuid primary key default gen_random_uuid(), tenant_id uuid not null)`.execute(
          trx,
        );
        await sql`create index on opened (tenant_id)`.execute(trx);
        await sql`alter table opened enable row level security`.execute(trx);
        await sql`alter table opened force row level security`.execute(trx);
        await sql`create policy scoped on opened using (tenant_id = flowforge_current_tenant()) with check (tenant_id = flowforge_current_tenant())`.execute(
          trx,
        );
        await sql`create policy everyone on opened for select using (true)`.execute(trx);
        // Mentions the function, yet opens the table: `or true`.
        await sql`create table sneaky (id uuid primary key default gen_random_uuid(), tenant_id uuid not null)`.execute(
          trx,
        );
        await sql`create index on sneaky (tenant_id)`.execute(trx);
        await sql`alter table sneaky enable row level security`.execute(trx);
        await sql`alter table sneaky force row level security`.execute(trx);
        await sql`create policy scoped on sneaky using (tenant_id = flowforge_current_tenant() or true) with check (tenant_id = flowforge_current_tenant())`.execute(
          trx,
        );
        // A foreign key on the id alone: checked and cascaded across tenants.
        await sql`create table child (id uuid primary key default gen_random_uuid(), tenant_id uuid not null, note_id uuid references notes (id))`.execute(
          trx,
        );
        await sql`create index on child (tenant_id)`.execute(trx);
        await sql`alter table child enable row level security`.execute(trx);
        await sql`alter table child force row level security`.execute(trx);
        await sql`create policy tenant_isolation on child using (tenant_id = flowforge_current_tenant()) with check (tenant_id = flowforge_current_tenant())`.execute(
          trx,
        );
        await sql`create materialized view note_counts as select tenant_id, count(*) from notes group by tenant_id`.execute(
          trx,
        );
        await sql`create view note_titles as select tenant_id, title from notes`.execute(trx);
        const found = await tenantIsolationProblems(trx);
        throw Object.assign(new Error('rollback'), { found });
      })
      .catch((error: { found?: unknown }) => error.found);
    expect(problems).toEqual([
      {
        table: 'child',
        problem:
          'foreign key child_note_id_fkey does not pair tenant_id with the referenced tenant_id',
      },
      { table: 'leaky', problem: 'tenant_id is nullable' },
      { table: 'leaky', problem: 'row-level security is not enabled' },
      { table: 'leaky', problem: 'row-level security is not forced (the table owner bypasses it)' },
      { table: 'leaky', problem: 'no index led by tenant_id' },
      {
        table: 'leaky',
        problem: 'unique index leaky_pkey spans tenants (its 23505 leaks existence)',
      },
      {
        table: 'leaky',
        problem: 'unique index leaky_title_key spans tenants (its 23505 leaks existence)',
      },
      {
        table: 'leaky',
        problem:
          'no policy for all commands with USING and WITH CHECK exactly (tenant_id = flowforge_current_tenant())',
      },
      { table: 'opened', problem: 'permissive policy everyone is not exactly the tenant test' },
      {
        table: 'sneaky',
        problem:
          'no policy for all commands with USING and WITH CHECK exactly (tenant_id = flowforge_current_tenant())',
      },
      { table: 'sneaky', problem: 'permissive policy scoped is not exactly the tenant test' },
      {
        table: 'note_counts',
        problem: 'materialized view over tenant data has no row-level security',
      },
      {
        table: 'note_titles',
        problem: "view over tenant data runs with its owner's rights (make it security_invoker)",
      },
    ]);
    const { rows } =
      await sql`select 1 from pg_class where relname in ('leaky', 'opened', 'sneaky', 'child', 'note_counts', 'note_titles')`.execute(
        owner.db,
      );
    expect(rows).toEqual([]);
  });
});

describe('enableTenantIsolation and disableTenantIsolation (its down)', () => {
  it('scope an existing table, take the policy, RLS and grants back, and re-run', async () => {
    // Built and inspected inside a transaction that is rolled back, so nothing stays.
    const seen = await owner
      .withTransaction(async (trx) => {
        await sql`create table legacy (tenant_id uuid not null, id uuid not null, primary key (tenant_id, id))`.execute(
          trx,
        );
        const state = async (): Promise<unknown> => {
          const { rows } = await sql`
            select c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
                   (select array_agg(policyname::text) from pg_policies where tablename = 'legacy') as policies,
                   array(select p from unnest(array['select', 'insert', 'update', 'delete']) p
                          where has_table_privilege('flowforge_app', 'legacy', p)) as granted,
                   (select count(*)::int from pg_index where indrelid = c.oid) as indexes
              from pg_class c where c.relname = 'legacy'`.execute(trx);
          const problems = (await tenantIsolationProblems(trx)).filter(
            (problem) => problem.table === 'legacy',
          );
          return { ...(rows[0] as object), problems: problems.map((problem) => problem.problem) };
        };
        await enableTenantIsolation(trx, 'legacy');
        await enableTenantIsolation(trx, 'legacy');
        const enabled = await state();
        await disableTenantIsolation(trx, 'legacy');
        const disabled = await state();
        await disableTenantIsolation(trx, 'legacy');
        await enableTenantIsolation(trx, 'legacy');
        const again = await state();
        throw Object.assign(new Error('rollback'), { seen: { enabled, disabled, again } });
      })
      .catch((error: { seen?: unknown }) => error.seen);
    const scoped = {
      enabled: true,
      forced: true,
      policies: ['tenant_isolation'],
      granted: ['select', 'insert', 'update', 'delete'],
      // The primary key is led by tenant_id, so no index of its own is added.
      indexes: 1,
      problems: [],
    };
    expect(seen).toEqual({
      enabled: scoped,
      disabled: {
        enabled: false,
        forced: false,
        policies: null,
        granted: [],
        indexes: 1,
        problems: [
          'row-level security is not enabled',
          'row-level security is not forced (the table owner bypasses it)',
          'no policy for all commands with USING and WITH CHECK exactly (tenant_id = flowforge_current_tenant())',
        ],
      },
      again: scoped,
    });
  });

  it('refuse a table or role name that would need quoting', async () => {
    expect(await codeOf(disableTenantIsolation(owner.db, 'Legacy'))).toBe('INVALID_OPTIONS');
    expect(await codeOf(disableTenantIsolation(owner.db, 'notes', { appRole: 'none' }))).toBe(
      'INVALID_OPTIONS',
    );
  });
});

describe('isolation, enforced by PostgreSQL', () => {
  let aNote: string;
  let bNote: string;

  beforeAll(async () => {
    aNote = await insertNote(database, TENANT_A, 'isolation-a');
    bNote = await insertNote(database, TENANT_B, 'isolation-b');
  });

  it('a query that forgets its tenant filter still sees only the current tenant', async () => {
    const rows = await database.withTenant(TENANT_A, (trx) =>
      trx.selectFrom('notes').select(['id', 'tenant_id']).execute(),
    );
    expect(rows.map((row) => row.id)).toContain(aNote);
    expect(rows.map((row) => row.id)).not.toContain(bNote);
    expect(new Set(rows.map((row) => row.tenant_id))).toEqual(new Set([TENANT_A]));
  });

  it('with no tenant set, it sees nothing and can write nothing (fails closed)', async () => {
    expect(await database.db.selectFrom('notes').selectAll().execute()).toEqual([]);
    expect(
      await database.withTransaction((trx) => trx.selectFrom('tags').selectAll().execute()),
    ).toEqual([]);
    // The tenant_id default is the current tenant, NULL here: the policy refuses the row
    // (PostgreSQL checks WITH CHECK before NOT NULL).
    expect(
      await codeOf(database.db.insertInto('notes').values({ title: 'orphan' }).execute()),
    ).toBe('TENANT_VIOLATION');
    expect(
      await codeOf(
        database.db.insertInto('notes').values({ title: 'forged', tenant_id: TENANT_A }).execute(),
      ),
    ).toBe('TENANT_VIOLATION');
  });

  it("tenant A cannot read, update or delete tenant B's row, even by its id", async () => {
    const [read, updated, deleted] = await database.withTenant(TENANT_A, async (trx) => [
      await trx.selectFrom('notes').selectAll().where('id', '=', bNote).executeTakeFirst(),
      await trx
        .updateTable('notes')
        .set({ title: 'hijacked' })
        .where('id', '=', bNote)
        .executeTakeFirst(),
      await trx.deleteFrom('notes').where('id', '=', bNote).executeTakeFirst(),
    ]);
    expect(read).toBeUndefined();
    expect(updated.numUpdatedRows).toBe(0n);
    expect(deleted.numDeletedRows).toBe(0n);
    const intact = await database.withTenant(TENANT_B, (trx) =>
      trx.selectFrom('notes').select('title').where('id', '=', bNote).executeTakeFirst(),
    );
    expect(intact).toEqual({ title: 'isolation-b' });
  });

  it('tenant A cannot write a row into B, nor move its own row to B', async () => {
    expect(
      await codeOf(
        database.withTenant(TENANT_A, (trx) =>
          trx.insertInto('notes').values({ title: 'planted', tenant_id: TENANT_B }).execute(),
        ),
      ),
    ).toBe('TENANT_VIOLATION');
    expect(
      await codeOf(
        database.withTenant(TENANT_A, (trx) =>
          trx.updateTable('notes').set({ tenant_id: TENANT_B }).where('id', '=', aNote).execute(),
        ),
      ),
    ).toBe('TENANT_VIOLATION');
  });

  it("a foreign key to B's row fails exactly like one to a row that does not exist", async () => {
    const tagFor = (noteId: string): Promise<string> =>
      codeOf(
        database.withTenant(TENANT_A, (trx) =>
          trx.insertInto('tags').values({ note_id: noteId, label: 'x' }).execute(),
        ),
      );
    expect(await tagFor(bNote)).toBe('FOREIGN_KEY_VIOLATION');
    expect(await tagFor(randomUUID())).toBe('FOREIGN_KEY_VIOLATION');
  });

  it('unique constraints are per tenant: a duplicate in another tenant reveals nothing', async () => {
    await insertNote(database, TENANT_A, 'same-title');
    await expect(insertNote(database, TENANT_B, 'same-title')).resolves.toMatch(/^[0-9a-f-]{36}$/);
    expect(await codeOf(insertNote(database, TENANT_A, 'same-title'))).toBe('UNIQUE_VIOLATION');
  });

  it('a tenant id that is not a UUID never reaches the server', async () => {
    for (const bad of [
      '',
      'tenant-a',
      "' or true --",
      `${TENANT_A}'; select 1; --`,
      `${TENANT_A} `,
    ]) {
      expect(await codeOf(database.withTenant(bad, () => Promise.resolve()))).toBe(
        'TENANT_INVALID',
      );
    }
    const upper = await database.withTenant(TENANT_A.toUpperCase(), (trx) =>
      trx.selectFrom('notes').select('id').where('id', '=', aNote).executeTakeFirst(),
    );
    expect(upper).toEqual({ id: aNote });
  });

  it('holds for a login that owns the tables (FORCE) and for a superuser (the role switch)', async () => {
    const asOwner = createDatabase<TestDB>({ url: testDb.ownerUrl, poolSize: 1, appRole: null });
    const asSuperuser = createDatabase<TestDB>({
      url: urlFor('postgres', testDb.name),
      poolSize: 1,
    });
    const unguarded = createDatabase<TestDB>({
      url: urlFor('postgres', testDb.name),
      poolSize: 1,
      appRole: null,
    });
    try {
      for (const handle of [asOwner, asSuperuser]) {
        const ids = await handle.withTenant(TENANT_A, (trx) =>
          trx.selectFrom('notes').select('id').execute(),
        );
        expect(ids.map((row) => row.id)).not.toContain(bNote);
        expect(ids.map((row) => row.id)).toContain(aNote);
      }
      // Why appRole defaults on: a superuser login without the switch bypasses every policy.
      const all = await unguarded.withTenant(TENANT_A, (trx) =>
        trx.selectFrom('notes').select('id').execute(),
      );
      expect(all.map((row) => row.id)).toContain(bNote);
    } finally {
      await Promise.all([asOwner.close(), asSuperuser.close(), unguarded.close()]);
    }
  });
});

describe('a login role that is not a member of the app role', () => {
  it('fails the first withTenant with PERMISSION_DENIED saying to GRANT the app role or log in as the app', async () => {
    // The schema owner is deliberately not a member of flowforge_app (scripts/services).
    const asOwner = createDatabase<TestDB>({ url: testDb.ownerUrl, poolSize: 1 });
    try {
      const error = (await asOwner
        .withTenant(TENANT_A, (trx) => trx.selectFrom('notes').select('id').execute())
        .then(
          () => {
            throw new Error('expected a rejection');
          },
          (rejection: unknown) => rejection,
        )) as DatabaseError;
      expect(error).toMatchObject({ code: 'PERMISSION_DENIED', sqlstate: '42501' });
      expect(error.message).toContain('permission denied to set role "flowforge_app"');
      expect(error.message).toContain('GRANT flowforge_app TO <login role>');
      expect(error.message).toContain("log in as the app's login role");
      // The connection went back clean: the same handle still works outside withTenant.
      expect(await asOwner.health()).toMatchObject({ status: 'up' });
    } finally {
      await asOwner.close();
    }
  });
});

describe('property: two tenants interleaved on one shared pool', () => {
  type Tenant = typeof TENANT_A | typeof TENANT_B;
  type Op =
    | { kind: 'insert'; tenant: Tenant }
    | { kind: 'insertThenFail'; tenant: Tenant }
    | { kind: 'get' | 'update' | 'delete'; tenant: Tenant; target: number }
    | { kind: 'list'; tenant: Tenant };

  const tenant = fc.constantFrom<Tenant>(TENANT_A, TENANT_B);
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('insert' as const), tenant }),
    fc.record({ kind: fc.constant('insertThenFail' as const), tenant }),
    fc.record({
      kind: fc.constantFrom('get' as const, 'update' as const, 'delete' as const),
      tenant,
      target: fc.nat(),
    }),
    fc.record({ kind: fc.constant('list' as const), tenant }),
  );

  it('no operation ever sees or changes the other tenant, and no pooled connection keeps a tenant', async () => {
    const pool = new pg.Pool({ connectionString: testDb.appUrl, max: 2 });
    const shared = createDatabase<TestDB>({ pool });
    let counter = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(op, { minLength: 1, maxLength: 4 }), { maxLength: 8 }),
          async (batches) => {
            // Each run starts empty. Only a superuser passes over forced RLS to clean up.
            await sql`delete from notes`.execute(admin.db);
            const model = new Map<string, { tenant: Tenant; title: string }>();
            const idsOf = (who: Tenant): string[] =>
              [...model].filter(([, row]) => row.tenant === who).map(([id]) => id);

            for (const batch of batches) {
              const known = [...model.keys()];
              const touched = new Set<string>();
              // Ops on one row within a batch would race each other; a second one becomes a list.
              const planned = batch.map((step): Op => {
                if ('target' in step) {
                  const id = known[step.target % Math.max(known.length, 1)];
                  if (id === undefined || touched.has(id))
                    return { kind: 'list', tenant: step.tenant };
                  touched.add(id);
                }
                return step;
              });
              const inserted = new Map<string, { tenant: Tenant; title: string }>();
              const removed = new Set<string>();
              const renamed = new Map<string, string>();
              await Promise.all(
                planned.map(async (step) => {
                  const own = (id: string): boolean => model.get(id)?.tenant === step.tenant;
                  switch (step.kind) {
                    case 'insert': {
                      const title = `t${(counter += 1)}`;
                      const id = await insertNote(shared, step.tenant, title);
                      inserted.set(id, { tenant: step.tenant, title });
                      return;
                    }
                    case 'insertThenFail': {
                      const title = `f${(counter += 1)}`;
                      const failure = new Error('rolled back on purpose');
                      const thrown = await shared
                        .withTenant(step.tenant, async (trx) => {
                          await trx.insertInto('notes').values({ title }).execute();
                          throw failure;
                        })
                        .catch((error: unknown) => error);
                      expect(thrown).toBe(failure);
                      return;
                    }
                    case 'list': {
                      const rows = await shared.withTenant(step.tenant, (trx) =>
                        trx.selectFrom('notes').select(['id', 'tenant_id']).execute(),
                      );
                      for (const row of rows) expect(row.tenant_id).toBe(step.tenant);
                      return;
                    }
                    case 'get':
                    case 'update':
                    case 'delete': {
                      const id = known[step.target % known.length]!;
                      const expected = own(id) ? 1n : 0n;
                      if (step.kind === 'get') {
                        const row = await shared.withTenant(step.tenant, (trx) =>
                          trx
                            .selectFrom('notes')
                            .select('title')
                            .where('id', '=', id)
                            .executeTakeFirst(),
                        );
                        expect(row?.title).toBe(own(id) ? model.get(id)!.title : undefined);
                      } else if (step.kind === 'update') {
                        const title = `u${(counter += 1)}`;
                        const result = await shared.withTenant(step.tenant, (trx) =>
                          trx
                            .updateTable('notes')
                            .set({ title })
                            .where('id', '=', id)
                            .executeTakeFirst(),
                        );
                        expect(result.numUpdatedRows).toBe(expected);
                        if (own(id)) renamed.set(id, title);
                      } else {
                        const result = await shared.withTenant(step.tenant, (trx) =>
                          trx.deleteFrom('notes').where('id', '=', id).executeTakeFirst(),
                        );
                        expect(result.numDeletedRows).toBe(expected);
                        if (own(id)) removed.add(id);
                      }
                      return;
                    }
                  }
                }),
              );
              for (const [id, row] of inserted) model.set(id, row);
              for (const [id, title] of renamed) model.set(id, { ...model.get(id)!, title });
              for (const id of removed) model.delete(id);

              for (const who of [TENANT_A, TENANT_B] as const) {
                const rows = await shared.withTenant(who, (trx) =>
                  trx.selectFrom('notes').select(['id', 'title']).execute(),
                );
                expect(new Map(rows.map((row) => [row.id, row.title]))).toEqual(
                  new Map(idsOf(who).map((id) => [id, model.get(id)!.title])),
                );
              }
            }
          },
        ),
        { numRuns: 25 },
      );

      // Check out every connection of the pool at once: none carries a tenant or the app role.
      const clients = await Promise.all([pool.connect(), pool.connect()]);
      try {
        const sessions = await Promise.all(
          clients.map(async (client) => {
            const { rows } = await client.query<{
              tenant: string | null;
              role: string;
              pid: number;
            }>(
              "select current_setting('app.tenant_id', true) as tenant, current_user as role, pg_backend_pid() as pid",
            );
            return rows[0]!;
          }),
        );
        expect(new Set(sessions.map((session) => session.pid)).size).toBe(2);
        for (const session of sessions) {
          expect(session.tenant ?? '').toBe('');
          expect(session.role).toBe('flowforge');
        }
      } finally {
        for (const client of clients) client.release();
      }
    } finally {
      await shared.close();
      await pool.end();
    }
  });
});
