#!/usr/bin/env node
// flowforge-db migrate <up|down|status> [--migrations <module>]
//
// Runs as the schema owner: DATABASE_MIGRATION_URL, else DATABASE_URL; with
// neither in development, the embedded database at DATABASE_EMBEDDED_DIR.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { ConfigError, getSettings } from '@flowforge/config';
import { createDatabase } from './database.js';
import { DatabaseError } from './errors.js';
import { migrateDown, migrateToLatest, migrationStatus, type Migrations } from './migrations.js';

const USAGE = `usage: flowforge-db migrate <up|down|status> [--migrations <module>]

  up        apply every pending migration (one transaction: all or none)
  down      revert the latest applied migration
  status    list migrations and when each ran

  --migrations <module>  an ES module exporting \`migrations\` (or a default export):
                         the app's migrations, run after @flowforge/db's own

Connects with DATABASE_MIGRATION_URL, else DATABASE_URL (the schema owner's role).
Exit codes: 0 done, 1 a migration failed, 64 usage, 69 database unavailable, 78 configuration.
`;

const EXIT = { ok: 0, failed: 1, usage: 64, unavailable: 69, config: 78 } as const;

/** A command line that cannot run as given: exit 64 with the reason. */
class UsageError extends Error {}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function loadMigrations(path: string | undefined): Promise<Migrations> {
  if (path === undefined) return {};
  let module: { migrations?: Migrations; default?: Migrations };
  try {
    module = (await import(pathToFileURL(resolve(path)).href)) as typeof module;
  } catch (error) {
    throw new UsageError(`cannot load --migrations ${path}: ${(error as Error).message}`);
  }
  const migrations = module.migrations ?? module.default;
  if (!migrations || typeof migrations !== 'object') {
    throw new UsageError(`${path} exports neither \`migrations\` nor a default migration set`);
  }
  return migrations;
}

async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { migrations: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const [command, action, ...rest] = parsed.positionals;
  if (parsed.values.help) {
    out(USAGE);
    return EXIT.ok;
  }
  if (command !== 'migrate' || !['up', 'down', 'status'].includes(action ?? '') || rest.length) {
    process.stderr.write(USAGE);
    return EXIT.usage;
  }

  const settings = getSettings();
  const { migrationUrl, embeddedDir } = settings.database;
  if (migrationUrl === null && settings.app.env !== 'development') {
    process.stderr.write(
      'flowforge-db: set DATABASE_MIGRATION_URL or DATABASE_URL (the embedded database is for development only)\n',
    );
    return EXIT.config;
  }
  const migrations = await loadMigrations(parsed.values.migrations);
  const database = createDatabase<unknown>(
    migrationUrl === null
      ? { embedded: true, embeddedDir, applicationName: 'flowforge-db' }
      : {
          url: migrationUrl,
          poolSize: 1,
          applicationName: 'flowforge-db',
          ssl: settings.database.ssl,
          // A migration may build an index for minutes, or wait for another
          // deploy's migration lock: no statement_timeout.
          statementTimeoutMs: 0,
        },
  );
  try {
    if (action === 'status') {
      const states = await migrationStatus(database.db, { migrations });
      for (const state of states) {
        out(
          `${state.executedAt ? state.executedAt.toISOString() : 'pending                 '}  ${state.name}`,
        );
      }
      const pending = states.filter((state) => !state.executedAt).length;
      out(`${states.length - pending} applied, ${pending} pending`);
      return EXIT.ok;
    }
    const run =
      action === 'up'
        ? await migrateToLatest(database.db, { migrations })
        : await migrateDown(database.db, { migrations });
    for (const name of run.applied)
      out(`${run.direction === 'up' ? 'applied ' : 'reverted'}  ${name}`);
    out(
      run.applied.length === 0
        ? 'nothing to do'
        : `${run.applied.length} migration${run.applied.length === 1 ? '' : 's'} ${run.direction === 'up' ? 'applied' : 'reverted'}`,
    );
    return EXIT.ok;
  } finally {
    await database.close();
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError) {
    process.stderr.write(`flowforge-db: ${error.message}\n`);
    process.exitCode = EXIT.usage;
  } else if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = EXIT.config;
  } else if (error instanceof DatabaseError) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = error.code === 'UNAVAILABLE' ? EXIT.unavailable : EXIT.failed;
  } else {
    throw error;
  }
}
