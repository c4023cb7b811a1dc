import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { sql, type Kysely } from 'kysely';
import {
  createDatabase,
  createTenantTable,
  migrateToLatest,
  type Database,
  type DatabaseOptions,
  type Migrations,
  type TenantScoped,
} from '../../src/index.js';
import type { Generated } from 'kysely';

/** The server and roles `scripts/services` sets up (trust auth on loopback). */
export const PG_HOST = '127.0.0.1:5432';
export const OWNER = 'flowforge_owner';
export const APP_LOGIN = 'flowforge';

export function urlFor(user: string, database: string): string {
  return `postgres://${user}:${user}@${PG_HOST}/${database}`;
}

/** A fresh database per test file (owned by the migration role), dropped by `drop()`. */
export interface TestDatabase {
  readonly name: string;
  /** As the owner: migrations, fixtures, catalog checks. */
  readonly ownerUrl: string;
  /** As the app's login role: what the app uses. */
  readonly appUrl: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  const name = `ff_${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: urlFor(OWNER, 'postgres') });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  return {
    name,
    ownerUrl: urlFor(OWNER, name),
    appUrl: urlFor(APP_LOGIN, name),
    async drop() {
      const client = new pg.Client({ connectionString: urlFor(OWNER, 'postgres') });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** The tables the db tests use: two tenant-scoped ones with a tenant-safe foreign key. */
export interface NoteTable {
  id: Generated<string>;
  title: string;
  body: string | null;
  created_at: Generated<Date>;
}
export interface TagTable {
  id: Generated<string>;
  note_id: string;
  label: string;
}
export interface TestDB {
  notes: TenantScoped<NoteTable>;
  tags: TenantScoped<TagTable>;
}

export const testMigrations: Migrations = {
  '2026-11-28-0001-notes': {
    async up(db: Kysely<unknown>) {
      await createTenantTable(db, 'notes', (table) =>
        table
          .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
          .addColumn('title', 'text', (col) => col.notNull())
          .addColumn('body', 'text')
          .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
          // Unique per tenant, never across tenants (a shared one leaks existence through 23505).
          .addUniqueConstraint('notes_tenant_title_key', ['tenant_id', 'title'])
          .addUniqueConstraint('notes_tenant_id_key', ['tenant_id', 'id']),
      );
      await createTenantTable(db, 'tags', (table) =>
        table
          .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
          .addColumn('note_id', 'uuid', (col) => col.notNull())
          .addColumn('label', 'text', (col) => col.notNull())
          // The foreign key includes tenant_id: a tag can only point at its own tenant's note.
          .addForeignKeyConstraint(
            'tags_note_fkey',
            ['tenant_id', 'note_id'],
            'notes',
            ['tenant_id', 'id'],
            (fk) => fk.onDelete('cascade'),
          ),
      );
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('tags').execute();
      await db.schema.dropTable('notes').execute();
    },
  },
};

/** Migrates `test` as its owner, then opens the app's handle as the login role. */
export async function openMigrated(
  test: TestDatabase,
  options: Partial<DatabaseOptions> = {},
): Promise<Database<TestDB>> {
  const ownerDb = createDatabase<unknown>({ url: test.ownerUrl, poolSize: 1 });
  try {
    await migrateToLatest(ownerDb.db, { migrations: testMigrations });
  } finally {
    await ownerDb.close();
  }
  return createDatabase<TestDB>({ url: test.appUrl, poolSize: 4, ...options });
}

export const TENANT_A = '0b5cbb2e-6c3e-4a56-9d0e-3f1b1c1a0a01';
export const TENANT_B = '0b5cbb2e-6c3e-4a56-9d0e-3f1b1c1a0b02';
