import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDatabase, migrateToLatest } from '@flowforge/db';
import { migrations, packages } from '../../src/db/migrations.js';

// The server and roles scripts/services sets up: flowforge_owner migrates, flowforge is the app.
const PG = '127.0.0.1:5432';

export const url = (user: string, database: string): string =>
  `postgres://${user}:${user}@${PG}/${database}`;

/** Runs SQL as the superuser (trust auth on loopback): creating and dropping test databases. */
export async function admin(sqlText: string, database = 'postgres'): Promise<void> {
  const client = new pg.Client({ connectionString: url('postgres', database) });
  await client.connect();
  try {
    await client.query(sqlText);
  } finally {
    await client.end();
  }
}

/** A fresh database with the app's migrations applied by its owner; `drop()` removes it. */
export async function createMigratedDatabase(prefix: string): Promise<{
  readonly name: string;
  readonly appUrl: string;
  readonly ownerUrl: string;
  drop(): Promise<void>;
}> {
  const name = `ff_${prefix}_${randomBytes(4).toString('hex')}`;
  await admin(`create database ${name} owner flowforge_owner`);
  const owner = createDatabase<unknown>({ url: url('flowforge_owner', name), poolSize: 1 });
  try {
    await migrateToLatest(owner.db, { packages, migrations });
  } finally {
    await owner.close();
  }
  return {
    name,
    appUrl: url('flowforge', name),
    ownerUrl: url('flowforge_owner', name),
    drop: () => admin(`drop database if exists ${name} with (force)`),
  };
}
