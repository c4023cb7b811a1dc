import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, isDatabaseError, withSavepoint, type Database } from '../src/index.js';
import {
  createTestDatabase,
  openMigrated,
  TENANT_A,
  TENANT_B,
  type TestDatabase,
  type TestDB,
} from './support/postgres.js';
import { rejectionOf } from './support/assert.js';

let testDb: TestDatabase;
let database: Database<TestDB>;

beforeAll(async () => {
  testDb = await createTestDatabase('trx');
  database = await openMigrated(testDb);
});

afterAll(async () => {
  await database?.close();
  await testDb?.drop();
});

const titles = (tenant: string): Promise<string[]> =>
  database
    .withTenant(tenant, (trx) => trx.selectFrom('notes').select('title').orderBy('title').execute())
    .then((rows) => rows.map((row) => row.title));

describe('transactions', () => {
  it('commit when fn resolves, and return its value', async () => {
    const id = await database.withTenant(TENANT_A, async (trx) => {
      const row = await trx
        .insertInto('notes')
        .values({ title: 'kept' })
        .returning('id')
        .executeTakeFirstOrThrow();
      return row.id;
    });
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await titles(TENANT_A)).toContain('kept');
  });

  it('roll back every write when fn throws, and rethrow the very same error', async () => {
    const failure = new Error('halfway');
    const thrown = await rejectionOf(
      database.withTenant(TENANT_A, async (trx) => {
        await trx.insertInto('notes').values({ title: 'partial-1' }).execute();
        await trx.insertInto('notes').values({ title: 'partial-2' }).execute();
        throw failure;
      }),
    );
    expect(thrown).toBe(failure);
    expect(await titles(TENANT_A)).not.toContain('partial-1');
    expect(await titles(TENANT_A)).not.toContain('partial-2');
  });

  it('roll back when a statement fails, with the typed error', async () => {
    const thrown = await rejectionOf(
      database.withTenant(TENANT_A, async (trx) => {
        await trx.insertInto('notes').values({ title: 'before-dup' }).execute();
        await trx.insertInto('notes').values({ title: 'dup' }).execute();
        await trx.insertInto('notes').values({ title: 'dup' }).execute();
      }),
    );
    expect(isDatabaseError(thrown, 'UNIQUE_VIOLATION')).toBe(true);
    expect(thrown).toMatchObject({
      sqlstate: '23505',
      constraint: 'notes_tenant_title_key',
      table: 'notes',
    });
    expect(await titles(TENANT_A)).not.toContain('before-dup');
  });

  it('refuse to commit after a failed statement was caught: TRANSACTION_ABORTED, nothing kept', async () => {
    const thrown = await rejectionOf(
      database.withTenant(TENANT_A, async (trx) => {
        await trx.insertInto('notes').values({ title: 'swallowed' }).execute();
        await sql`select 1/0`.execute(trx).catch(() => undefined);
      }),
    );
    expect(isDatabaseError(thrown, 'TRANSACTION_ABORTED')).toBe(true);
    expect(await titles(TENANT_A)).not.toContain('swallowed');
  });

  it('refuse to nest: NESTED_TRANSACTION, and the outer transaction still rolls back', async () => {
    const thrown = await rejectionOf(
      database.withTenant(TENANT_A, async (trx) => {
        await trx.insertInto('notes').values({ title: 'outer' }).execute();
        await database.withTenant(TENANT_B, () => Promise.resolve());
      }),
    );
    expect(isDatabaseError(thrown, 'NESTED_TRANSACTION')).toBe(true);
    const alsoNested = await rejectionOf(
      database.withTransaction(() => database.withTransaction(() => Promise.resolve())),
    );
    expect(isDatabaseError(alsoNested, 'NESTED_TRANSACTION')).toBe(true);
    expect(await titles(TENANT_A)).not.toContain('outer');
  });

  it('nest explicitly with withSavepoint: only the savepoint rolls back', async () => {
    await database.withTenant(TENANT_A, async (trx) => {
      await trx.insertInto('notes').values({ title: 'sp-outer' }).execute();
      const inner = await rejectionOf(
        withSavepoint(trx, async (sp) => {
          await sp.insertInto('notes').values({ title: 'sp-inner' }).execute();
          await sp.insertInto('notes').values({ title: 'sp-outer' }).execute(); // duplicate
        }),
      );
      expect(isDatabaseError(inner, 'UNIQUE_VIOLATION')).toBe(true);
      await withSavepoint(trx, (sp) =>
        sp.insertInto('notes').values({ title: 'sp-second' }).execute(),
      );
    });
    const kept = await titles(TENANT_A);
    expect(kept).toEqual(expect.arrayContaining(['sp-outer', 'sp-second']));
    expect(kept).not.toContain('sp-inner');
  });

  it('refuse a query outside trx inside an open transaction (it would need a second connection)', async () => {
    const thrown = await rejectionOf(
      database.withTenant(TENANT_A, async () => {
        await database.db.selectFrom('notes').select('id').execute();
      }),
    );
    expect(isDatabaseError(thrown, 'NESTED_TRANSACTION')).toBe(true);
  });

  it('a BEGIN whose settings fail leaves no aborted transaction on the pooled connection', async () => {
    // One connection, and a role the login `flowforge` may not switch to.
    const pool = new pg.Pool({ connectionString: testDb.appUrl, max: 1 });
    const handle = createDatabase<TestDB>({ pool, appRole: 'flowforge_owner' });
    try {
      const thrown = await rejectionOf(
        handle.withTenant(TENANT_A, (trx) => trx.selectFrom('notes').select('id').execute()),
      );
      expect(thrown).toMatchObject({ code: 'PERMISSION_DENIED', sqlstate: '42501' });
      // The same (only) connection works: not stuck in "current transaction is aborted".
      await expect(handle.health()).resolves.toMatchObject({ status: 'up' });
      await expect(
        handle.withTransaction((trx) => trx.selectFrom('notes').select('id').execute()),
      ).resolves.toEqual([]);
    } finally {
      await handle.close();
      await pool.end();
    }
  });

  it('a new transaction after one finished is not nested, even in the same async chain', async () => {
    await database.withTenant(TENANT_A, () => Promise.resolve());
    await expect(database.withTenant(TENANT_B, () => Promise.resolve('ok'))).resolves.toBe('ok');
  });

  it('passes isolation level and access mode to the server', async () => {
    const seen = await database.withTenant(
      TENANT_A,
      async (trx) => {
        const { rows } = await sql<{
          level: string;
          readOnly: string;
          tenant: string;
          role: string;
        }>`
          select current_setting('transaction_isolation') as level,
                 current_setting('transaction_read_only') as "readOnly",
                 current_setting('app.tenant_id') as tenant, current_user as role`.execute(trx);
        return rows[0];
      },
      { isolationLevel: 'serializable', accessMode: 'read only' },
    );
    expect(seen).toEqual({
      level: 'serializable',
      readOnly: 'on',
      tenant: TENANT_A,
      role: 'flowforge_app',
    });
    const refused = await rejectionOf(
      database.withTenant(
        TENANT_A,
        (trx) => trx.insertInto('notes').values({ title: 'ro' }).execute(),
        {
          accessMode: 'read only',
        },
      ),
    );
    expect(isDatabaseError(refused)).toBe(true);
    expect((refused as { sqlstate?: string }).sqlstate).toBe('25006');
  });

  it('maps bad input to INVALID_INPUT without losing the server detail', async () => {
    const thrown = await rejectionOf(
      database.withTenant(TENANT_A, (trx) =>
        trx.selectFrom('notes').selectAll().where('id', '=', 'not-a-uuid').execute(),
      ),
    );
    expect(thrown).toMatchObject({
      name: 'DatabaseError',
      code: 'INVALID_INPUT',
      sqlstate: '22P02',
    });
    expect((thrown as Error).cause).toBeInstanceOf(Error);
  });

  it('health() round-trips', async () => {
    const health = await database.health();
    expect(health.status).toBe('up');
    expect(health.latencyMs).toBeGreaterThanOrEqual(0);
  });
});

describe('round trips', () => {
  /** A pool whose clients count the messages they send: one client.query is one round trip. */
  function countingPool(): { pool: pg.Pool; sent: string[] } {
    const sent: string[] = [];
    const pool = new pg.Pool({ connectionString: testDb.appUrl, max: 1 });
    pool.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
        sent.push(typeof args[0] === 'string' ? args[0] : 'object');
        return query(...args);
      };
    });
    return { pool, sent };
  }

  it('withTenant costs BEGIN-with-settings and COMMIT around the query: two round trips', async () => {
    const { pool, sent } = countingPool();
    const counted = createDatabase<TestDB>({ pool });
    try {
      await counted.db.selectFrom('notes').select('id').execute(); // warm the connection
      sent.length = 0;
      await counted.db.selectFrom('notes').select('id').execute();
      expect(sent).toHaveLength(1);
      sent.length = 0;
      await counted.withTenant(TENANT_A, (trx) => trx.selectFrom('notes').select('id').execute());
      expect(sent).toHaveLength(3);
      expect(sent[0]).toBe(
        `begin; select set_config('app.tenant_id', '${TENANT_A}', true), set_config('role', 'flowforge_app', true)`,
      );
      expect(sent[2]).toBe('commit');
    } finally {
      await counted.close();
      await pool.end();
    }
  });
});
