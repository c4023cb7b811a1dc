#!/usr/bin/env node
// flowforge-db migrate <up|down|status> [--migrations <module>] [--embedded]
//
// Runs as the schema owner: DATABASE_MIGRATION_URL, else DATABASE_URL. Reads
// only APP_ENV and the DATABASE_* variables (loadDatabaseSettings of
// @flowforge/config): a migration job needs no SECRET_KEY, Keycloak or store
// settings. The installed command is bin/flowforge-db.js, which imports this.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { ConfigError, getDatabaseSettings } from '@flowforge/config';
import { createDatabase } from './database.js';
import { DatabaseError } from './errors.js';
import {
  migrateDown,
  migrateToLatest,
  migrationStatus,
  type MigrateOptions,
  type Migrations,
  type MigrationSource,
} from './migrations.js';

const USAGE = `usage: flowforge-db migrate <up|down|status> [--migrations <module>] [--embedded]

  up        apply every pending migration (one transaction: all or none)
  down      revert one migration: the app's latest, then each package's (last
            package first), @flowforge/db's own last
  status    list every migration by source, and when it ran

  --migrations <module>  path of an ES module (relative to the current directory)
                         with named exports:
                           migrations  the app's own migrations, { '<name>': { up, down } }
                                       (a default export of that object works too)
                           packages    optional: package migration sets, run before the
                                       app's in this order, e.g. [authMigrations]
                         @flowforge/db's own migrations always run first.
  --embedded             migrate the embedded PGlite database at DATABASE_EMBEDDED_DIR
                         (only with APP_ENV=development)
  -h, --help             this text

Connects with DATABASE_MIGRATION_URL, else DATABASE_URL (the schema owner's role).
Reads APP_ENV and DATABASE_* only.
Exit codes: 0 done, 1 a migration failed, 64 usage, 69 database unavailable, 78 configuration.
`;

const EXIT = { ok: 0, failed: 1, usage: 64, unavailable: 69, config: 78 } as const;

/** A command line that cannot run as given: exit 64 with the reason. */
class UsageError extends Error {}
/** Settings that do not allow the run: exit 78 with the reason. */
class SetupError extends Error {}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** What the `--migrations` module exports, as migrateToLatest's options. */
async function loadMigrations(
  path: string | undefined,
): Promise<Pick<MigrateOptions, 'migrations' | 'packages'>> {
  if (path === undefined) return {};
  let module: { migrations?: Migrations; packages?: readonly MigrationSource[]; default?: unknown };
  try {
    module = (await import(pathToFileURL(resolve(path)).href)) as typeof module;
  } catch (error) {
    throw new UsageError(`cannot load --migrations ${path}: ${(error as Error).message}`);
  }
  const { migrations, packages } = module;
  if (migrations === undefined && packages === undefined) {
    if (module.default === undefined || module.default === null) {
      throw new UsageError(
        `${path} exports neither \`migrations\` nor \`packages\` (nor a default export of migrations)`,
      );
    }
    return { migrations: module.default as Migrations };
  }
  return {
    ...(migrations === undefined ? {} : { migrations }),
    ...(packages === undefined ? {} : { packages }),
  };
}

async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        migrations: { type: 'string' },
        embedded: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
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

  const settings = getDatabaseSettings();
  const { migrationUrl, embeddedDir } = settings.database;
  const embedded = parsed.values.embedded === true;
  if (embedded && settings.app.env !== 'development') {
    throw new SetupError(
      `--embedded needs APP_ENV=development (it is ${settings.app.env}): the embedded database is for development only`,
    );
  }
  if (!embedded && migrationUrl === null) {
    throw new SetupError(
      'DATABASE_URL is not set: set DATABASE_URL (or DATABASE_MIGRATION_URL, the schema owner, when the app logs in as another role) to the PostgreSQL database to migrate',
    );
  }
  const options = await loadMigrations(parsed.values.migrations);
  const database = createDatabase<unknown>(
    embedded || migrationUrl === null
      ? { embedded: true, embeddedDir, applicationName: 'flowforge-db' }
      : {
          url: migrationUrl,
          poolSize: 1,
          applicationName: 'flowforge-db',
          ssl: settings.database.ssl,
          connectTimeoutMs: settings.database.connectTimeoutMs,
          // A migration may build an index for minutes, or wait for another
          // deploy's migration lock: no statement_timeout.
          statementTimeoutMs: 0,
        },
  );
  try {
    if (action === 'status') {
      const states = await migrationStatus(database.db, options);
      const width = Math.max(0, ...states.map((state) => state.source.length));
      for (const state of states) {
        const when = state.executedAt ? state.executedAt.toISOString() : 'pending'.padEnd(24);
        out(`${when}  ${state.source.padEnd(width)}  ${state.name}`);
      }
      const pending = states.filter((state) => !state.executedAt).length;
      out(`${states.length - pending} applied, ${pending} pending`);
      return EXIT.ok;
    }
    const run =
      action === 'up'
        ? await migrateToLatest(database.db, options)
        : await migrateDown(database.db, options);
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
  } else if (error instanceof SetupError) {
    process.stderr.write(`flowforge-db: ${error.message}\n`);
    process.exitCode = EXIT.config;
  } else if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = EXIT.config;
  } else if (error instanceof DatabaseError) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode =
      error.code === 'INVALID_OPTIONS'
        ? EXIT.usage
        : error.code === 'UNAVAILABLE'
          ? EXIT.unavailable
          : error.code === 'NOT_CONFIGURED'
            ? EXIT.config
            : EXIT.failed;
  } else {
    throw error;
  }
}
