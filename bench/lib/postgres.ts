// The PostgreSQL of scripts/services as the benchmarks use it: its roles (trust auth
// on loopback, password = role name), one-off statements, bench databases and their
// clean-up, and pools set up the way @flowforge/db sets up its own.
import pg from 'pg';
import { sleep } from './harness.ts';

/** host:port of the PostgreSQL of scripts/services. */
export const PG_HOST = '127.0.0.1:5432';
/** Bypasses the forced row-level security: seeds the tables. */
export const SUPERUSER = 'postgres';
/** Owns the bench databases and migrates them. */
export const OWNER = 'flowforge_owner';
/** The app's login role. */
export const APP_LOGIN = 'flowforge';
/** The role the app's transactions switch to. */
export const APP_ROLE = 'flowforge_app';

/** The URL of `database` as `user`; `options` become the connection's startup options. */
export function pgUrl(user: string, database: string, options?: string): string {
  return (
    `postgres://${user}:${user}@${PG_HOST}/${database}` +
    (options ? `?options=${encodeURIComponent(options)}` : '')
  );
}

/** Who runs a one-off statement, and where. */
export interface AdminTarget {
  /** the login role */
  as: string;
  /** @default 'postgres' */
  database?: string;
}

/** Runs one statement on its own connection and closes it. */
export async function adminQuery<Row extends pg.QueryResultRow = pg.QueryResultRow>(
  { as, database = 'postgres' }: AdminTarget,
  text: string,
  values?: unknown[],
): Promise<pg.QueryResult<Row>> {
  const client = new pg.Client({ connectionString: pgUrl(as, database) });
  await client.connect();
  try {
    return await client.query<Row>(text, values);
  } finally {
    await client.end();
  }
}

/**
 * Drops a bench database as `as`. A backend whose client just left may still be
 * exiting, and `force` cannot end it then (42501 for one of another role): tries
 * again for a few seconds.
 */
export async function dropDatabase(as: string, name: string): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await adminQuery({ as }, `drop database if exists ${name} with (force)`);
      break;
    } catch (error) {
      if (attempt >= 10) {
        console.error(`could not drop database ${name}: drop it by hand`);
        throw error;
      }
      await sleep(300);
    }
  }
  console.log(`dropped database ${name}`);
}

/** The server's version (`show server_version`) over `client`. */
export async function serverVersion(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{ server_version: string }>('show server_version');
  const version = rows[0]?.server_version;
  if (version === undefined) throw new Error('show server_version returned no row');
  return version;
}

/** node-postgres crashes the process on a client error nobody listens to. */
export function quiet(pool: pg.Pool): pg.Pool {
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/**
 * A pool of `max` connections to `url` with the settings createDatabase gives its own,
 * for a baseline written by hand (or a handle of its own) that differs from the
 * package's only in what is measured.
 */
export function appPool(url: string, max: number, idleTimeoutMillis: number): pg.Pool {
  return quiet(
    new pg.Pool({
      connectionString: url,
      max,
      idleTimeoutMillis,
      connectionTimeoutMillis: 5_000,
      application_name: 'flowforge',
      statement_timeout: 30_000,
      keepAlive: true,
    }),
  );
}
