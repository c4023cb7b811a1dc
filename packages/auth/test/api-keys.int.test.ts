import { randomBytes, randomUUID } from 'node:crypto';
import {
  createDatabase,
  migrateDown,
  migrateToLatest,
  tenantIsolationProblems,
  type Database,
} from '@flowforge/db';
import type { Logger } from '@flowforge/observability';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createApiKey,
  createApiKeyVerifier,
  listApiKeys,
  parseApiKey,
  revokeApiKey,
  type AuthDB,
} from '../src/api-keys.js';
import { AuthError } from '../src/errors.js';
import { authMigrations } from '../src/migrations.js';
import {
  APP_LOGIN,
  createAuthTestDatabase,
  urlFor,
  type AuthTestDatabase,
} from './support/postgres.js';

const TENANT_A = randomUUID();
const TENANT_B = randomUUID();
const USER = randomUUID();
const WIDGET_1 = randomUUID();
const WIDGET_2 = randomUUID();

let store: AuthTestDatabase | undefined;
let dbName: string | undefined;
/** The schema owner: migrations and the catalog check. */
let owner: Database<unknown>;
/** What the app uses: the `flowforge` login, tenant transactions as `flowforge_app`. */
let database: Database<AuthDB>;
/** The superuser without the role switch: bypasses row-level security, for fixtures and scans only. */
let admin: Database<AuthDB>;

beforeAll(async () => {
  store = await createAuthTestDatabase();
  ({ name: dbName, owner, database } = store);
  admin = createDatabase<AuthDB>({ url: urlFor('postgres', dbName), poolSize: 1, appRole: null });
});

afterAll(async () => {
  await admin?.close();
  await store?.close();
});

async function rejectionOf(promise: Promise<unknown>): Promise<AuthError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (rejection: unknown) => rejection,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

const newKey = (
  tenant = TENANT_A,
  extra: { expiresAt?: Date | null; widgetIds?: string[] } = {},
): ReturnType<typeof createApiKey> =>
  createApiKey(database, tenant, {
    name: 'Wallboard',
    widgetIds: extra.widgetIds ?? [WIDGET_1, WIDGET_2],
    createdBy: USER,
    ...(extra.expiresAt === undefined ? {} : { expiresAt: extra.expiresAt }),
  });

/** The `last_used_at` of a key, read as superuser (bypassing row-level security). */
async function lastUsedAt(id: string): Promise<Date | null> {
  const row = await admin.db
    .selectFrom('api_keys')
    .select('last_used_at')
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return row.last_used_at;
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('schema', () => {
  it('api_keys passes the tenant isolation catalog check', async () => {
    const tables = await sql<{ n: number }>`
      select count(*)::int as n from pg_class where relname = 'api_keys' and relkind = 'r'`.execute(
      owner.db,
    );
    expect(tables.rows[0]?.n).toBe(1);
    expect(await tenantIsolationProblems(owner.db)).toEqual([]);
  });

  it('applies the auth migration after the core one, each recorded in its own history table', async () => {
    const { rows } = await sql<{ source: string; name: string }>`
      select 'flowforge_db' as source, name, timestamp from flowforge_db_migration
      union all
      select 'flowforge_auth', name, timestamp from flowforge_auth_migration
      order by timestamp`.execute(owner.db);
    expect(rows.map((row) => [row.source, row.name])).toEqual([
      ['flowforge_db', '0000-flowforge-db-0001-tenancy'],
      ['flowforge_auth', '0001-flowforge-auth-0001-api-keys'],
    ]);
  });
});

describe('create and verify', () => {
  it('gives the principal of the key: creator, tenant, widgets, key id', async () => {
    const created = await newKey();
    expect(created.key).toMatch(/^ffk_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$/);
    expect(created.prefix).toBe(`ffk_${created.key.slice(37, 45)}`);
    expect(created.widgetIds).toEqual([WIDGET_1, WIDGET_2]);
    expect(created.expiresAt).toBeNull();
    expect(created.createdAt).toBeInstanceOf(Date);

    const principal = await createApiKeyVerifier(database).verify(created.key);
    expect(principal).toEqual({
      userId: USER,
      tenantId: TENANT_A,
      roles: [],
      claims: {},
      method: 'api_key',
      widgetIds: [WIDGET_1, WIDGET_2],
      apiKeyId: created.id,
      expiresAt: null,
    });
  });

  it('stores an empty widget list and a future expiry', async () => {
    const expiresAt = new Date(Date.now() + 3_600_000);
    const created = await newKey(TENANT_A, { widgetIds: [], expiresAt });
    expect(created.widgetIds).toEqual([]);
    expect(created.expiresAt?.getTime()).toBe(expiresAt.getTime());
    const principal = await createApiKeyVerifier(database).verify(created.key);
    expect(principal.widgetIds).toEqual([]);
    // The stream it opens ends then (credentialExpiresAt).
    expect(principal.expiresAt?.getTime()).toBe(expiresAt.getTime());
  });

  it('refuses an expiry in the past and stores nothing', async () => {
    const before = await listApiKeys(database, TENANT_B);
    const error = await rejectionOf(newKey(TENANT_B, { expiresAt: new Date(Date.now() - 1) }));
    expect(error.code).toBe('INPUT_INVALID');
    expect(error.message).toMatch(/future/);
    expect(await listApiKeys(database, TENANT_B)).toHaveLength(before.length);
  });
});

describe('rejected keys', () => {
  it('a wrong secret for the same tenant: API_KEY_INVALID, saying nothing of the key', async () => {
    const { key } = await newKey();
    const last = key.at(-1) === 'A' ? 'E' : 'A';
    const wrong = `${key.slice(0, -1)}${last}`;
    const error = await rejectionOf(createApiKeyVerifier(database).verify(wrong));
    expect(error.code).toBe('API_KEY_INVALID');
    expect(error.message).not.toContain(wrong);
    expect(error.message).not.toContain(parseApiKey(wrong)!.hash.toString('hex'));
  });

  it('a key whose tenant part names another tenant: API_KEY_INVALID', async () => {
    const { key } = await newKey();
    const rewritten = key.replace(TENANT_A.replaceAll('-', ''), TENANT_B.replaceAll('-', ''));
    expect(parseApiKey(rewritten)?.tenantId).toBe(TENANT_B);
    const error = await rejectionOf(createApiKeyVerifier(database).verify(rewritten));
    expect(error.code).toBe('API_KEY_INVALID');
  });

  it("row-level security hides a matching hash in another tenant's rows", async () => {
    // The rewritten key's hash differs from the stored one anyway (the hash covers
    // the tenant part). To show it is the tenant scope that protects, plant a row
    // in tenant A whose hash IS the rewritten key's, as the superuser.
    const { id, key } = await newKey();
    const rewritten = key.replace(TENANT_A.replaceAll('-', ''), TENANT_B.replaceAll('-', ''));
    const { hash } = parseApiKey(rewritten)!;
    await admin.db.updateTable('api_keys').set({ key_hash: hash }).where('id', '=', id).execute();

    const error = await rejectionOf(createApiKeyVerifier(database).verify(rewritten));
    expect(error.code).toBe('API_KEY_INVALID');
    // The same lookup without any tenant filter of our own finds nothing in B: RLS does it.
    const inB = await database.withTenant(TENANT_B, (trx) =>
      trx.selectFrom('api_keys').select('id').where('key_hash', '=', hash).execute(),
    );
    expect(inB).toEqual([]);
    const inA = await database.withTenant(TENANT_A, (trx) =>
      trx.selectFrom('api_keys').select('id').where('key_hash', '=', hash).execute(),
    );
    expect(inA).toEqual([{ id }]);
    // And the app login outside withTenant sees no tenant's keys at all.
    expect(await database.db.selectFrom('api_keys').select('id').execute()).toEqual([]);
  });

  it('a revoked key: API_KEY_INVALID', async () => {
    const { id, key } = await newKey();
    const verifier = createApiKeyVerifier(database);
    await verifier.verify(key);
    expect(await revokeApiKey(database, TENANT_A, id)).toBe(true);
    expect((await rejectionOf(verifier.verify(key))).code).toBe('API_KEY_INVALID');
  });

  it('an expired key (expires_at moved into the past): API_KEY_INVALID', async () => {
    const { id, key } = await newKey(TENANT_A, { expiresAt: new Date(Date.now() + 60_000) });
    const verifier = createApiKeyVerifier(database);
    await verifier.verify(key);
    await admin.db
      .updateTable('api_keys')
      .set({ expires_at: sql<Date>`now() - interval '1 second'` })
      .where('id', '=', id)
      .execute();
    expect((await rejectionOf(verifier.verify(key))).code).toBe('API_KEY_INVALID');
  });

  it('an expired key (the clock moved past expires_at): API_KEY_INVALID', async () => {
    const expiresAt = new Date(Date.now() + 60_000);
    const { key } = await newKey(TENANT_A, { expiresAt });
    await createApiKeyVerifier(database, { now: () => expiresAt.getTime() - 1 }).verify(key);
    const atExpiry = createApiKeyVerifier(database, { now: () => expiresAt.getTime() });
    expect((await rejectionOf(atExpiry.verify(key))).code).toBe('API_KEY_INVALID');
  });

  it('unknown, revoked and expired keys get the very same answer', async () => {
    const verifier = createApiKeyVerifier(database);
    const revoked = await newKey();
    await revokeApiKey(database, TENANT_A, revoked.id);
    const expired = await newKey(TENANT_A, { expiresAt: new Date(Date.now() + 60_000) });
    await admin.db
      .updateTable('api_keys')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', expired.id)
      .execute();
    const unknown = `${revoked.key.slice(0, 37)}${randomBytes(32).toString('base64url')}`;
    const errors = await Promise.all(
      [unknown, revoked.key, expired.key, 'ffk_malformed'].map((key) =>
        rejectionOf(verifier.verify(key)),
      ),
    );
    const answers = errors.map((error) => [error.code, error.status, error.message]);
    expect(new Set(answers.map((answer) => JSON.stringify(answer))).size).toBe(1);
    // The kernel's prefix; `reason` is the words alone.
    expect(answers[0]).toEqual(['API_KEY_INVALID', 401, '@flowforge/auth: invalid API key']);
    expect(errors[0]?.reason).toBe('invalid API key');
  });
});

describe('storage', () => {
  it('holds no plaintext: neither the key nor its secret, in any column', async () => {
    const created = await newKey();
    const secret = created.key.slice(37);
    const secretBytes = Buffer.from(secret, 'base64url');

    const columns = await sql<{ column_name: string; data_type: string }>`
      select column_name, data_type from information_schema.columns
       where table_schema = 'public' and table_name = 'api_keys'
         and data_type in ('text', 'bytea', 'character varying', 'ARRAY', 'jsonb', 'json')`.execute(
      admin.db,
    );
    expect(columns.rows.map((column) => column.column_name).sort()).toEqual([
      'key_hash',
      'name',
      'prefix',
      'widget_ids',
    ]);
    for (const { column_name: column, data_type: type } of columns.rows) {
      const rows = await sql<{ value: Buffer | string | null }>`
        select ${sql.ref(column)} as value from api_keys`.execute(admin.db);
      for (const { value } of rows.rows) {
        const bytes = type === 'bytea' ? (value as Buffer) : Buffer.from(String(value));
        for (const needle of [created.key, secret]) {
          expect(bytes.includes(Buffer.from(needle)), `${column} holds the key`).toBe(false);
        }
        expect(bytes.includes(secretBytes), `${column} holds the secret's bytes`).toBe(false);
      }
    }
    // Belt and braces: every row rendered whole, bytea as hex.
    const whole = await sql<{ row: string }>`select t::text as row from api_keys t`.execute(
      admin.db,
    );
    expect(whole.rows.length).toBeGreaterThan(0);
    for (const { row } of whole.rows) {
      expect(row).not.toContain(created.key);
      expect(row).not.toContain(secret);
      expect(row).not.toContain(secretBytes.toString('hex'));
      expect(row).not.toContain(Buffer.from(created.key).toString('hex'));
    }
    // What is stored is the SHA-256 of the whole key.
    const stored = await admin.db
      .selectFrom('api_keys')
      .select(['key_hash', 'prefix', 'tenant_id'])
      .where('id', '=', created.id)
      .executeTakeFirstOrThrow();
    expect(stored.key_hash).toEqual(parseApiKey(created.key)!.hash);
    expect(stored.prefix).toBe(created.prefix);
    expect(stored.tenant_id).toBe(TENANT_A);
  });

  it('lists keys without the key or its hash', async () => {
    const created = await newKey(TENANT_B, { widgetIds: [WIDGET_2] });
    const listed = await listApiKeys(database, TENANT_B);
    const entry = listed.find((key) => key.id === created.id);
    expect(entry).toEqual({
      id: created.id,
      name: 'Wallboard',
      prefix: created.prefix,
      widgetIds: [WIDGET_2],
      createdBy: USER,
      createdAt: created.createdAt,
      expiresAt: null,
      revokedAt: null,
      lastUsedAt: null,
    });
    expect(JSON.stringify(listed)).not.toContain(created.key.slice(37));
    // Tenant A's list does not show tenant B's key.
    expect((await listApiKeys(database, TENANT_A)).map((key) => key.id)).not.toContain(created.id);
  });
});

describe('last_used_at', () => {
  it('is set after a verify, not rewritten on an immediate second one, and again after the interval', async () => {
    const { id, key } = await newKey();
    let clock = Date.now();
    const verifier = createApiKeyVerifier(database, {
      lastUsedIntervalMs: 60_000,
      now: () => clock,
    });
    expect(await lastUsedAt(id)).toBeNull();

    await verifier.verify(key);
    const first = await until(
      () => lastUsedAt(id),
      (value) => value !== null,
    );
    expect(first).toBeInstanceOf(Date);

    await sleep(20); // so that a second write would show a different now()
    await verifier.verify(key);
    await sleep(300);
    expect(await lastUsedAt(id)).toEqual(first);

    clock += 60_000;
    await verifier.verify(key);
    const third = await until(
      () => lastUsedAt(id),
      (value) => value !== null && value.getTime() !== first!.getTime(),
    );
    expect(third!.getTime()).toBeGreaterThan(first!.getTime());
  });

  it('a failing write is logged at warn and does not fail the request', async () => {
    const { key } = await newKey();
    const warnings: unknown[][] = [];
    const logger = { warn: (...args: unknown[]) => warnings.push(args) } as unknown as Logger;
    let calls = 0;
    // The lookup goes through; the last-used write (the second transaction) fails.
    const flaky: Database<AuthDB> = {
      ...database,
      withTenant: (tenantId, fn, options) => {
        calls += 1;
        return calls === 1
          ? database.withTenant(tenantId, fn, options)
          : Promise.reject(new Error('write failed'));
      },
    };
    const principal = await createApiKeyVerifier(flaky, { logger }).verify(key);
    expect(principal.tenantId).toBe(TENANT_A);
    await until(
      () => Promise.resolve(warnings.length),
      (count) => count > 0,
    );
    expect(warnings).toHaveLength(1);
    const [fields, message] = warnings[0]!;
    expect(fields).toMatchObject({ tenant_id: TENANT_A, api_key_id: principal.apiKeyId });
    expect(message).toMatch(/record the use of an API key/);
    expect(JSON.stringify(warnings)).not.toContain(key);
  });
});

describe('store down', () => {
  it('an unreachable server: STORE_UNAVAILABLE', async () => {
    const { key } = await newKey();
    const down = createDatabase<AuthDB>({
      url: 'postgres://flowforge@127.0.0.1:1/x',
      connectTimeoutMs: 500,
    });
    try {
      const error = await rejectionOf(createApiKeyVerifier(down).verify(key));
      expect(error.code).toBe('STORE_UNAVAILABLE');
      expect(error.status).toBe(503);
      expect(error.message).not.toContain(key);
    } finally {
      await down.close();
    }
  });

  it('a closed handle: STORE_UNAVAILABLE', async () => {
    const { key } = await newKey();
    const closed = createDatabase<AuthDB>({ url: urlFor(APP_LOGIN, dbName!), poolSize: 1 });
    await closed.close();
    expect((await rejectionOf(createApiKeyVerifier(closed).verify(key))).code).toBe(
      'STORE_UNAVAILABLE',
    );
  });
});

describe('revoke', () => {
  it('answers true once, then false', async () => {
    const { id } = await newKey();
    expect(await revokeApiKey(database, TENANT_A, id)).toBe(true);
    expect(await revokeApiKey(database, TENANT_A, id)).toBe(false);
    const entry = (await listApiKeys(database, TENANT_A)).find((key) => key.id === id);
    expect(entry?.revokedAt).toBeInstanceOf(Date);
  });

  it('answers false for an unknown id', async () => {
    expect(await revokeApiKey(database, TENANT_A, randomUUID())).toBe(false);
  });

  it('from another tenant answers false and leaves the key working', async () => {
    const { id, key } = await newKey();
    expect(await revokeApiKey(database, TENANT_B, id)).toBe(false);
    const principal = await createApiKeyVerifier(database).verify(key);
    expect(principal.apiKeyId).toBe(id);
    expect(await lastRevokedAt(id)).toBeNull();
  });
});

async function lastRevokedAt(id: string): Promise<Date | null> {
  const row = await admin.db
    .selectFrom('api_keys')
    .select('revoked_at')
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return row.revoked_at;
}

// Last in the file: it drops api_keys (and every key above) before re-creating it.
describe('migration down', () => {
  it('drops api_keys, and up re-creates it', async () => {
    const exists = async (): Promise<boolean> => {
      const { rows } = await sql<{ oid: string | null }>`
        select to_regclass('public.api_keys')::text as oid`.execute(owner.db);
      return rows[0]?.oid != null;
    };
    const down = await migrateDown(owner.db, { packages: [authMigrations] });
    expect(down.applied).toEqual(['0001-flowforge-auth-0001-api-keys']);
    expect(await exists()).toBe(false);
    await migrateToLatest(owner.db, { packages: [authMigrations] });
    expect(await exists()).toBe(true);
    expect(await tenantIsolationProblems(owner.db)).toEqual([]);
  });
});
