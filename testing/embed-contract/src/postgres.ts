import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { authMigrations } from '@flowforge/auth';
import { createDatabase, migrateToLatest, type Database } from '@flowforge/db';
import { widgetMigrations, type WidgetsDB } from '@flowforge/widgets';

// The server and roles scripts/services sets up (trust auth on loopback):
// flowforge_owner migrates, flowforge is every app's role.
const SERVER = '127.0.0.1:5432';

/** The URL of `user` on `database` of the shared server. */
function postgresUrl(user: string, database: string): string {
  return `postgres://${user}:${user}@${SERVER}/${database}`;
}

/** Runs `run` on a superuser connection to `database`: what creating, dropping and inspecting need. */
async function asSuperuser<T>(
  database: string,
  run: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: postgresUrl('postgres', database) });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** A fresh database migrated as a deploy migrates it; see {@link createEmbedDatabase}. */
export interface EmbedDatabase {
  /** The database's name. */
  readonly name: string;
  /** DATABASE_URL of the app under test (the `flowforge` role, under row-level security). */
  readonly appUrl: string;
  /** A pool of the app's role, for seeding through the packages (`withTenant`, `createApiKey`). */
  readonly database: Database<WidgetsDB>;
  /** How many connections named `applicationName` (APP_NAME) the server holds now. */
  connectionsOf(applicationName: string): Promise<number>;
  /** Closes the seeding pool and drops the database, cutting whatever is still connected. */
  drop(): Promise<void>;
}

/**
 * A fresh database with the migrations every FlowForge app that serves widgets
 * runs, from the packages alone: @flowforge/auth's `api_keys`, then
 * @flowforge/widgets' `dashboards` and `widgets`, applied by their owner.
 */
export async function createEmbedDatabase(prefix: string): Promise<EmbedDatabase> {
  const name = `ff_${prefix}_${randomBytes(4).toString('hex')}`;
  await asSuperuser('postgres', (client) =>
    client.query(`create database ${name} owner flowforge_owner`),
  );
  const owner = createDatabase<unknown>({ url: postgresUrl('flowforge_owner', name), poolSize: 1 });
  try {
    await migrateToLatest(owner.db, { packages: [authMigrations, widgetMigrations] });
  } finally {
    await owner.close();
  }
  const appUrl = postgresUrl('flowforge', name);
  const database = createDatabase<WidgetsDB>({ url: appUrl, poolSize: 2 });
  return {
    name,
    appUrl,
    database,
    connectionsOf: (applicationName) =>
      asSuperuser(name, async (client) => {
        const { rows } = await client.query<{ n: string }>(
          'select count(*) as n from pg_stat_activity where datname = $1 and application_name = $2',
          [name, applicationName],
        );
        return Number(rows[0]?.n ?? 0);
      }),
    async drop() {
      try {
        await database.close();
      } finally {
        await asSuperuser('postgres', (client) =>
          client.query(`drop database if exists ${name} with (force)`),
        );
      }
    },
  };
}
