// The PostgreSQL that `scripts/services` sets up (trust auth on loopback), as in
// @flowforge/db's and @flowforge/auth's test support: a fresh database per file,
// owned by the migration role; the app connects as its login role `flowforge`.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { createDatabase } from '@flowforge/db';

const PG_HOST = '127.0.0.1:5432';
/** The role that owns the schema and runs migrations. */
export const OWNER = 'flowforge_owner';
/** The app's login role (tenant transactions switch to `flowforge_app`). */
export const APP_LOGIN = 'flowforge';

/** The URL of `database` as `user` (each test role's password is its name). */
export const urlFor = (user: string, database: string): string =>
  `postgres://${user}:${user}@${PG_HOST}/${database}`;

/** Runs one statement as the owner on the `postgres` database (create/drop database). */
async function asOwner(statement: string): Promise<void> {
  const handle = createDatabase<unknown>({ url: urlFor(OWNER, 'postgres'), poolSize: 1 });
  try {
    // CREATE/DROP DATABASE cannot run in a transaction: the pool's handle, not withTransaction.
    await sql.raw(statement).execute(handle.db);
  } finally {
    await handle.close();
  }
}

/** A fresh, empty database owned by the migration role; `drop()` removes it. */
export async function createTestDatabase(prefix: string): Promise<{
  readonly name: string;
  readonly drop: () => Promise<void>;
}> {
  const name = `ff_${prefix}_${randomBytes(4).toString('hex')}`;
  await asOwner(`create database ${name}`);
  return { name, drop: () => asOwner(`drop database if exists ${name} with (force)`) };
}
