// The PostgreSQL that `scripts/services` sets up (trust auth on loopback), as in
// @flowforge/db's test support: a fresh database per test or file, owned by the
// migration role; the app connects as its login role `flowforge`.
import pg from 'pg';

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
