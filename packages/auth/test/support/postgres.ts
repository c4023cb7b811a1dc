// The PostgreSQL that `scripts/services` sets up (trust auth on loopback), as in
// @flowforge/db's test support: a fresh database per test or file, owned by the
// migration role; the app connects as its login role `flowforge`.
import { randomBytes } from 'node:crypto';
import { createDatabase, migrateToLatest, type Database } from '@flowforge/db';
import pg from 'pg';
import type { AuthDB } from '../../src/api-keys.js';
import { authMigrations } from '../../src/migrations.js';

const PG_HOST = '127.0.0.1:5432';
/** The role that owns the schema and runs migrations. */
export const OWNER = 'flowforge_owner';
/** The app's login role (tenant transactions switch to `flowforge_app`). */
export const APP_LOGIN = 'flowforge';

/** The URL of `database` as `user` (each test role's password is its name). */
export const urlFor = (user: string, database: string): string =>
  `postgres://${user}:${user}@${PG_HOST}/${database}`;

/** Runs one statement as the owner on the `postgres` database (create/drop database). */
export async function asOwner(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: urlFor(OWNER, 'postgres') });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** A fresh database with the auth migrations applied, as {@link createAuthTestDatabase} makes it. */
export interface AuthTestDatabase {
  /** The database's name (`ff_auth_…`). */
  readonly name: string;
  /** The schema owner: migrations and catalog checks. */
  readonly owner: Database<unknown>;
  /** What the app uses: the `flowforge` login, tenant transactions as `flowforge_app`. */
  readonly database: Database<AuthDB>;
  /** Closes both handles and drops the database. */
  close(): Promise<void>;
}

/** Creates a database of its own for a test file, owned by {@link OWNER}, migrated with authMigrations. */
export async function createAuthTestDatabase(): Promise<AuthTestDatabase> {
  const name = `ff_auth_${randomBytes(4).toString('hex')}`;
  await asOwner(`create database ${name}`);
  const owner = createDatabase<unknown>({ url: urlFor(OWNER, name), poolSize: 1, appRole: null });
  const database = createDatabase<AuthDB>({ url: urlFor(APP_LOGIN, name), poolSize: 4 });
  const close = async (): Promise<void> => {
    await database.close();
    await owner.close();
    await asOwner(`drop database if exists ${name} with (force)`);
  };
  try {
    await migrateToLatest(owner.db, { packages: [authMigrations] });
  } catch (error) {
    await close();
    throw error;
  }
  return { name, owner, database, close };
}
