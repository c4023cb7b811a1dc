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
  APP_MIGRATION_SOURCE,
  coreMigrations,
  migrateDown,
  migrateToLatest,
  migrationHistories,
  migrationStatus,
  type MigrateOptions,
  type MigrationHistory,
  type Migrations,
  type MigrationSource,
  type MigrationState,
} from './migrations.js';

const USAGE = `usage: flowforge-db migrate <up|down|status> [--migrations <module>] [--embedded]

  up        apply every pending migration (one transaction: all or none)
  down      revert one migration: the app's latest, then each package's (last
            package first), @flowforge/db's own last
  status    list every migration by source, and when it ran; without
            --migrations, the histories found in the database (what is pending
            is then known for @flowforge/db's own migrations only)

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
Exit codes: 0 done, 1 failed (a migration, or the database refused; nothing
of the run kept), 64 usage, 69 database unavailable, 70 the package is not
built or a dependency (the kysely peer) is missing, 78 configuration.
`;

// sysexits.h: EX_USAGE 64, EX_UNAVAILABLE 69, EX_CONFIG 78 (and EX_SOFTWARE 70,
// which bin/flowforge-db.js exits with when this module cannot be loaded).
const EXIT = { ok: 0, failed: 1, usage: 64, unavailable: 69, config: 78 } as const;
const ACTIONS = ['up', 'down', 'status'] as const;

/** A command line that cannot run as given: exit 64 with the reason (and, with `usage`, the usage). */
class UsageError extends Error {
  constructor(
    message: string,
    readonly usage = false,
  ) {
    super(message);
  }
}
/** Settings that do not allow the run: exit 78 with the reason. */
class SetupError extends Error {}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/**
 * Which variable the run connected with, for the advice on a refusal: set once
 * the settings are read.
 */
let connectedWith: 'DATABASE_MIGRATION_URL' | 'DATABASE_URL' | 'embedded' | undefined;

/** Why a command line is not `migrate <up|down|status>`, or undefined when it is. */
function commandProblem(positionals: readonly string[]): string | undefined {
  const [command, action, ...rest] = positionals;
  if (command === undefined) return 'no command given: expected migrate';
  if (command !== 'migrate') return `unknown command ${JSON.stringify(command)}: expected migrate`;
  if (action === undefined) return 'migrate needs a command: up, down or status';
  if (!(ACTIONS as readonly string[]).includes(action)) {
    return `unknown command ${JSON.stringify(`migrate ${action}`)}: expected up, down or status`;
  }
  if (rest.length > 0) {
    return `unexpected argument ${JSON.stringify(rest[0])} after migrate ${action}`;
  }
  return undefined;
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

/**
 * Prints `status`: the given migrations (migrationStatus), then whatever else
 * the database's history tables record, each line `<when|pending> <source>
 * <name>`, and a last line that counts them and says what it cannot know: what
 * is pending for a source it was not given.
 */
function printStatus(
  states: readonly MigrationState[],
  histories: readonly MigrationHistory[],
  options: Pick<MigrateOptions, 'migrations' | 'packages'>,
  module: string | undefined,
): void {
  const given = [
    coreMigrations().name,
    ...(options.packages ?? []).map((source) => source.name),
    ...(options.migrations === undefined ? [] : [APP_MIGRATION_SOURCE]),
  ];
  const shown = new Set(states.map((state) => state.name));
  const rows: MigrationState[] = [...states];
  // Recorded but not given: sources left out (or migrations a given source no
  // longer has). Placed after their source's given ones, app last.
  for (const history of histories) {
    for (const { name, executedAt } of history.applied) {
      if (shown.has(name)) continue;
      shown.add(name);
      const at = rows.findLastIndex((row) => row.source === history.source);
      const row = { source: history.source, name, executedAt };
      if (at >= 0) rows.splice(at + 1, 0, row);
      else if (history.source === APP_MIGRATION_SOURCE) rows.push(row);
      else {
        const app = rows.findIndex((other) => other.source === APP_MIGRATION_SOURCE);
        rows.splice(app < 0 ? rows.length : app, 0, row);
      }
    }
  }
  const width = Math.max(0, ...rows.map((row) => row.source.length));
  for (const row of rows) {
    const when = row.executedAt ? row.executedAt.toISOString() : 'pending'.padEnd(24);
    out(`${when}  ${row.source.padEnd(width)}  ${row.name}`);
  }
  const pending = rows.filter((row) => !row.executedAt).length;
  let summary = `${rows.length - pending} applied, ${pending} pending`;
  const unknown = histories
    .map((history) => history.source)
    .filter((source) => !given.includes(source));
  const found = `${unknown.join(', ')} (found in the database)`;
  if (module === undefined) {
    summary +=
      `; without --migrations only ${coreMigrations().name}'s migrations are known: ` +
      `what is pending for ${unknown.length > 0 ? found : 'the app and its packages'} cannot be told ` +
      '(pass --migrations <module>)';
  } else if (unknown.length > 0) {
    summary += `; ${found} ${unknown.length === 1 ? 'is' : 'are'} not in ${module}: what is pending there cannot be told`;
  }
  out(summary);
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
    throw new UsageError((error as Error).message, true);
  }
  if (parsed.values.help) {
    out(USAGE);
    return EXIT.ok;
  }
  const problem = commandProblem(parsed.positionals);
  if (problem !== undefined) throw new UsageError(problem, true);
  const action = parsed.positionals[1] as (typeof ACTIONS)[number];

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
      'DATABASE_URL is not set: set DATABASE_URL (or DATABASE_MIGRATION_URL, the schema owner, when the app logs in as another role) to the PostgreSQL database to migrate' +
        // Only development may use the embedded database: only there is it offered.
        (settings.app.env === 'development'
          ? ', or pass --embedded to migrate the embedded database at DATABASE_EMBEDDED_DIR'
          : ''),
    );
  }
  connectedWith = embedded
    ? 'embedded'
    : migrationUrl === settings.database.url
      ? 'DATABASE_URL'
      : 'DATABASE_MIGRATION_URL';
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
      const histories = await migrationHistories(database.db);
      printStatus(states, histories, options, parsed.values.migrations);
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
    process.stderr.write(`flowforge-db: ${error.message}\n${error.usage ? `\n${USAGE}` : ''}`);
    process.exitCode = EXIT.usage;
  } else if (error instanceof SetupError) {
    process.stderr.write(`flowforge-db: ${error.message}\n`);
    process.exitCode = EXIT.config;
  } else if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = EXIT.config;
  } else if (error instanceof DatabaseError) {
    process.stderr.write(`${error.message}\n`);
    // A refusal when DATABASE_MIGRATION_URL is not set: the run used the app's
    // login, most likely. The error above says what to do; this says why.
    if (error.sqlstate === '42501' && connectedWith === 'DATABASE_URL') {
      process.stderr.write(
        'flowforge-db: this ran as the DATABASE_URL role, since DATABASE_MIGRATION_URL is not set ' +
          '(or is the same URL)\n',
      );
    }
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
