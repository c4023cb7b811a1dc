// Migrations on real PostgreSQL: order, idempotence, all-or-nothing runs, down,
// who may migrate, the role the core migration leaves behind, and the
// `flowforge-db migrate` CLI (bin/flowforge-db.js, which runs dist/cli.js, spawned:
// build it first with `npx tsup`). Sources composing (packages adopted before or
// after the app's migrations): test/sources.int.test.ts and @flowforge/auth's tests.
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  coreMigrations,
  createDatabase,
  DatabaseError,
  migrateDown,
  migrateToLatest,
  migrationStatus,
  type Database,
  type Migrations,
} from '../src/index.js';
import { createTestDatabase, testMigrations, type TestDatabase } from './support/postgres.js';

const CORE = Object.keys(coreMigrations().migrations);
const TEST = Object.keys(testMigrations);
const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The installed command (package.json `bin`), which imports dist/cli.js. */
const BIN = join(PACKAGE_DIR, 'bin', 'flowforge-db.js');
const BUILT_CLI = join(PACKAGE_DIR, 'dist', 'cli.js');
const CLI_MIGRATIONS = 'test/fixtures/cli-migrations.mjs';
const CLI_NAMES = ['2026-11-28-0001-cli-widgets', '2026-11-28-0002-cli-gadgets'];

/** Status entries as migrationStatus returns them: core's, then the app's. */
function states(
  core: readonly string[],
  app: readonly string[],
  executedAt: Date | null = null,
): { source: string; name: string; executedAt: Date | null }[] {
  return [
    ...core.map((name) => ({ source: 'flowforge_db', name, executedAt })),
    ...app.map((name) => ({ source: 'app', name, executedAt })),
  ];
}

const databases: TestDatabase[] = [];
const handles: Database<unknown>[] = [];

async function freshDatabase(prefix: string): Promise<TestDatabase> {
  const created = await createTestDatabase(prefix);
  databases.push(created);
  return created;
}

/** A handle that afterAll closes. */
function open(url: string): Kysely<unknown> {
  const handle = createDatabase<unknown>({ url, poolSize: 1 });
  handles.push(handle);
  return handle.db;
}

async function tableExists(db: Kysely<unknown>, table: string): Promise<boolean> {
  const { rows } = await sql<{
    oid: string | null;
  }>`select to_regclass(${table})::text as oid`.execute(db);
  return rows[0]?.oid != null;
}

/** The error `run` rejects with. */
async function rejectionOf(run: () => Promise<unknown>): Promise<DatabaseError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(DatabaseError);
    return error as DatabaseError;
  }
  throw new Error('expected a rejection, got none');
}

afterAll(async () => {
  await Promise.allSettled(handles.map((handle) => handle.close()));
  await Promise.allSettled(databases.map((database) => database.drop()));
});

describe('migrations as the schema owner', () => {
  let test_: TestDatabase;
  let db: Kysely<unknown>;
  beforeAll(async () => {
    test_ = await freshDatabase('migr');
    db = open(test_.ownerUrl);
  });

  test('migrateToLatest applies core then the given migrations, in order; a second run applies nothing', async () => {
    const before = await migrationStatus(db, { migrations: testMigrations });
    expect(before).toEqual(states(CORE, TEST));

    const first = await migrateToLatest(db, { migrations: testMigrations });
    expect(first).toEqual({ direction: 'up', applied: [...CORE, ...TEST] });
    expect(await tableExists(db, 'notes')).toBe(true);
    expect(await tableExists(db, 'tags')).toBe(true);

    const second = await migrateToLatest(db, { migrations: testMigrations });
    expect(second).toEqual({ direction: 'up', applied: [] });

    const status = await migrationStatus(db, { migrations: testMigrations });
    expect(status.map((state) => state.name)).toEqual([...CORE, ...TEST]);
    for (const state of status) {
      expect(state.executedAt).toBeInstanceOf(Date);
      expect(Number.isNaN(state.executedAt!.getTime())).toBe(false);
    }
  });

  test('the core migration leaves flowforge_app a role that cannot log in or bypass row-level security', async () => {
    const { rows: roles } = await sql<{
      rolsuper: boolean;
      rolbypassrls: boolean;
      rolcanlogin: boolean;
      rolcreaterole: boolean;
      rolcreatedb: boolean;
    }>`select rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, rolcreatedb
         from pg_roles where rolname = 'flowforge_app'`.execute(db);
    expect(roles).toEqual([
      {
        rolsuper: false,
        rolbypassrls: false,
        rolcanlogin: false,
        rolcreaterole: false,
        rolcreatedb: false,
      },
    ]);

    const { rows: grants } = await sql<{ usage: boolean; fn: string | null; notes: boolean }>`
      select has_schema_privilege('flowforge_app', 'public', 'USAGE') as usage,
             to_regprocedure('flowforge_current_tenant()')::text as fn,
             has_table_privilege('flowforge_app', 'notes', 'SELECT, INSERT, UPDATE, DELETE') as notes`.execute(
      db,
    );
    expect(grants).toEqual([{ usage: true, fn: 'flowforge_current_tenant()', notes: true }]);

    const { rows: tables } = await sql<{ relname: string; rls: boolean; forced: boolean }>`
      select relname, relrowsecurity as rls, relforcerowsecurity as forced
        from pg_class where relname in ('notes', 'tags') and relkind = 'r' order by relname`.execute(
      db,
    );
    expect(tables).toEqual([
      { relname: 'notes', rls: true, forced: true },
      { relname: 'tags', rls: true, forced: true },
    ]);
  });

  test('the app login role cannot run migrations, and its attempt changes nothing', async () => {
    const extra: Migrations = {
      ...testMigrations,
      '2026-11-28-0002-app-made': {
        async up(trx) {
          await sql`create table app_made (id integer)`.execute(trx);
        },
      },
    };
    const error = await rejectionOf(() =>
      migrateToLatest(open(test_.appUrl), { migrations: extra }),
    );
    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.sqlstate).toBe('42501');
    expect(error.cause).toMatchObject({ code: 'PERMISSION_DENIED', sqlstate: '42501' });

    expect(await tableExists(db, 'app_made')).toBe(false);
    const status = await migrationStatus(db, { migrations: extra });
    expect(status.at(-1)).toEqual({
      source: 'app',
      name: '2026-11-28-0002-app-made',
      executedAt: null,
    });
  });

  test('migrateDown reverts the latest migration only; migrating up again re-applies it', async () => {
    const down = await migrateDown(db, { migrations: testMigrations });
    expect(down).toEqual({ direction: 'down', applied: TEST });
    expect(await tableExists(db, 'notes')).toBe(false);
    expect(await tableExists(db, 'tags')).toBe(false);
    const status = await migrationStatus(db, { migrations: testMigrations });
    expect(status.map((state) => [state.name, state.executedAt !== null])).toEqual([
      ...CORE.map((name) => [name, true]),
      ...TEST.map((name) => [name, false]),
    ]);

    const up = await migrateToLatest(db, { migrations: testMigrations });
    expect(up).toEqual({ direction: 'up', applied: TEST });
    expect(await tableExists(db, 'notes')).toBe(true);
    expect(await tableExists(db, 'tags')).toBe(true);
  });
});

describe('a refused migration says what to do', () => {
  test('creating a role without CREATEROLE names CREATEROLE, not the schema owner', async () => {
    const test_ = await freshDatabase('migr_role');
    // flowforge_owner owns the database but has no CREATEROLE (scripts/services).
    const error = await rejectionOf(() =>
      migrateToLatest(open(test_.ownerUrl), {
        migrations: {
          '2026-11-28-0001-a-role': {
            async up(trx) {
              await sql`create role ff_never_created nologin`.execute(trx);
            },
          },
        },
      }),
    );
    expect(error).toMatchObject({ code: 'MIGRATION_FAILED', sqlstate: '42501' });
    expect(error.message).toMatch(
      /^@flowforge\/db: migration 2026-11-28-0001-a-role failed, nothing of this run was applied: permission denied to create role/,
    );
    expect(error.message).toContain('creating a role needs CREATEROLE');
    expect(error.message).not.toContain('DATABASE_MIGRATION_URL');
  });
});

describe('a migration run is all or nothing', () => {
  test('when the second migration fails, the first one (and core) is not kept either', async () => {
    const test_ = await freshDatabase('migr_fail');
    const db = open(test_.ownerUrl);
    const first = '2026-11-28-0001-first';
    const second = '2026-11-28-0002-second';
    const failing: Migrations = {
      [first]: {
        async up(trx) {
          await sql`create table first_table (id integer)`.execute(trx);
        },
      },
      [second]: {
        async up(trx) {
          await sql`select 1/0`.execute(trx);
        },
      },
    };

    const error = await rejectionOf(() => migrateToLatest(db, { migrations: failing }));
    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.message).toContain(`migration ${second} failed`);
    expect(error.sqlstate).toBe('22012');
    expect(error.cause).toMatchObject({ code: 'INVALID_INPUT', sqlstate: '22012' });

    expect(await tableExists(db, 'first_table')).toBe(false);
    const status = await migrationStatus(db, { migrations: failing });
    expect(status).toEqual(states(CORE, [first, second]));

    // Nothing was left half-done or locked: the corrected set applies in full.
    const fixed: Migrations = {
      ...failing,
      [second]: { up: (trx) => sql`select 1`.execute(trx).then(() => undefined) },
    };
    const run = await migrateToLatest(db, { migrations: fixed });
    expect(run.applied).toEqual([...CORE, first, second]);
    expect(await tableExists(db, 'first_table')).toBe(true);
  });

  test('the app login role cannot migrate a fresh database either', async () => {
    const test_ = await freshDatabase('migr_app');
    const error = await rejectionOf(() =>
      migrateToLatest(open(test_.appUrl), { migrations: testMigrations }),
    );
    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.sqlstate).toBe('42501');
    expect(error.cause).toMatchObject({ code: 'PERMISSION_DENIED' });
    // The package's prefix once, the server's reason, then what to do.
    expect(error.message).toMatch(
      /^@flowforge\/db: migrations did not run: permission denied for schema public \(SQLSTATE 42501\): /,
    );
    expect(error.message.match(/@flowforge\/db:/g)).toHaveLength(1);
    expect(error.message).toContain('run migrations as the role that owns the schema');
    expect(error.message).toContain('DATABASE_MIGRATION_URL');
    const owner = open(test_.ownerUrl);
    expect(await tableExists(owner, 'notes')).toBe(false);
    expect(await tableExists(owner, 'kysely_migration')).toBe(false);
    expect(await tableExists(owner, 'flowforge_db_migration')).toBe(false);
  });
});

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The test process's environment without any setting @flowforge/config reads. */
function cleanEnv(): NodeJS.ProcessEnv {
  // eslint-disable-next-line no-restricted-properties -- the spawned CLI needs PATH etc.; the settings are set per test
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^(APP_|DATABASE_|AUTH_|KEYCLOAK_|CLICKHOUSE_|MATERIALIZE_|REDIS_|LOG_)/.test(key))
      delete env[key];
    if (['SECRET_KEY', 'METRICS_TOKEN', 'PORT', 'HOST'].includes(key)) delete env[key];
  }
  return env;
}

function runCli(
  args: readonly string[],
  env: Record<string, string>,
  bin: string = BIN,
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: PACKAGE_DIR,
      env: { ...cleanEnv(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // The --embedded case starts PGlite (seconds; more on a loaded machine).
    const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

function lines(output: string): string[] {
  return output.split('\n').filter((line) => line.trim() !== '');
}

/** `status` output: [when or 'pending', source, name] per migration. */
function statusRows(output: string): string[][] {
  return lines(output)
    .slice(0, -1)
    .map((line) => line.split(/\s+/));
}

describe('flowforge-db migrate (the CLI)', () => {
  let test_: TestDatabase;
  let owner: Kysely<unknown>;
  let env: Record<string, string>;

  beforeAll(async () => {
    if (!existsSync(BUILT_CLI))
      throw new Error(`${BUILT_CLI} is missing: run \`npx tsup\` in packages/db first`);
    const built = statSync(BUILT_CLI).mtimeMs;
    const sources = readdirSync(join(PACKAGE_DIR, 'src'), { recursive: true, encoding: 'utf8' });
    const stale = sources.filter(
      (file) => file.endsWith('.ts') && statSync(join(PACKAGE_DIR, 'src', file)).mtimeMs > built,
    );
    if (stale.length)
      throw new Error(
        `dist/cli.js is older than src (${stale.join(', ')}): run \`npx tsup\` first`,
      );

    test_ = await freshDatabase('migr_cli');
    owner = open(test_.ownerUrl);
    env = { APP_ENV: 'test', DATABASE_URL: test_.appUrl, DATABASE_MIGRATION_URL: test_.ownerUrl };
  });

  test('status lists every migration, by source, as pending on a fresh database', async () => {
    const result = await runCli(['migrate', 'status', '--migrations', CLI_MIGRATIONS], env);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(statusRows(result.stdout)).toEqual([
      ...CORE.map((name) => ['pending', 'flowforge_db', name]),
      ...CLI_NAMES.map((name) => ['pending', 'app', name]),
    ]);
    expect(lines(result.stdout).at(-1)).toBe(
      `0 applied, ${CORE.length + CLI_NAMES.length} pending`,
    );
  });

  test('up applies core and the module migrations as the DATABASE_MIGRATION_URL role; again: nothing to do', async () => {
    const result = await runCli(['migrate', 'up', '--migrations', CLI_MIGRATIONS], env);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const all = [...CORE, ...CLI_NAMES];
    expect(lines(result.stdout)).toEqual([
      ...all.map((name) => `applied   ${name}`),
      `${all.length} migrations applied`,
    ]);
    expect(await tableExists(owner, 'cli_widgets')).toBe(true);
    expect(await tableExists(owner, 'cli_gadgets')).toBe(true);
    // Made by the owner, not the app's login.
    const { rows } = await sql<{ owner: string }>`
      select pg_get_userbyid(relowner) as owner from pg_class where relname = 'cli_widgets'`.execute(
      owner,
    );
    expect(rows).toEqual([{ owner: 'flowforge_owner' }]);

    const again = await runCli(['migrate', 'up', '--migrations', CLI_MIGRATIONS], env);
    expect(again).toMatchObject({ code: 0, stderr: '' });
    expect(lines(again.stdout)).toEqual(['nothing to do']);

    const status = await runCli(['migrate', 'status', '--migrations', CLI_MIGRATIONS], env);
    expect(status.code).toBe(0);
    expect(lines(status.stdout).at(-1)).toBe(`${all.length} applied, 0 pending`);
    const rowsOut = statusRows(status.stdout);
    expect(rowsOut.map((row) => row.slice(1))).toEqual([
      ...CORE.map((name) => ['flowforge_db', name]),
      ...CLI_NAMES.map((name) => ['app', name]),
    ]);
    for (const [executedAt] of rowsOut) {
      expect(new Date(executedAt!).toISOString()).toBe(executedAt);
    }
  });

  test('down reverts only the latest migration', async () => {
    const result = await runCli(['migrate', 'down', '--migrations', CLI_MIGRATIONS], env);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(lines(result.stdout)).toEqual([`reverted  ${CLI_NAMES[1]}`, '1 migration reverted']);
    expect(await tableExists(owner, 'cli_gadgets')).toBe(false);
    expect(await tableExists(owner, 'cli_widgets')).toBe(true);

    const status = await runCli(['migrate', 'status', '--migrations', CLI_MIGRATIONS], env);
    expect(lines(status.stdout).at(-1)).toBe(`${CORE.length + 1} applied, 1 pending`);
  });

  test('without DATABASE_MIGRATION_URL it migrates as DATABASE_URL, which the app login cannot (exit 1)', async () => {
    const result = await runCli(['migrate', 'up', '--migrations', CLI_MIGRATIONS], {
      APP_ENV: 'test',
      DATABASE_URL: test_.appUrl,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('permission denied');
    expect(result.stderr.match(/@flowforge\/db:/g)).toHaveLength(1);
    expect(result.stderr).toContain(
      'this ran as the DATABASE_URL role, since DATABASE_MIGRATION_URL is not set',
    );
    expect(result.stderr).toContain('run migrations as the role that owns the schema');
    expect(result.stderr).not.toContain('flowforge:flowforge@');
    expect(await tableExists(owner, 'cli_gadgets')).toBe(false);
  });

  test('a production migration job needs DATABASE_* only: no SECRET_KEY or KEYCLOAK_URL, and bad unrelated settings do not stop it', async () => {
    for (const extra of [{}, { PORT: 'eighty', REDIS_URL: 'nope', LOG_LEVEL: 'chatty' }]) {
      const result = await runCli(['migrate', 'status', '--migrations', CLI_MIGRATIONS], {
        APP_ENV: 'production',
        DATABASE_MIGRATION_URL: test_.ownerUrl,
        ...extra,
      });
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect(lines(result.stdout).at(-1)).toBe(`${CORE.length + 1} applied, 1 pending`);
    }
  });

  test('status as a role that may not read the history says so, never "did not run" (exit 1)', async () => {
    const result = await runCli(['migrate', 'status', '--migrations', CLI_MIGRATIONS], {
      APP_ENV: 'test',
      DATABASE_URL: test_.appUrl,
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^@flowforge\/db: cannot read the migration history: permission denied for table /,
    );
    expect(result.stderr).not.toContain('did not run');
    expect(result.stderr).toContain('DATABASE_MIGRATION_URL');
  });

  test('a database setting that is invalid exits 78 with the variable named', async () => {
    const result = await runCli(['migrate', 'status'], {
      APP_ENV: 'test',
      DATABASE_MIGRATION_URL: test_.ownerUrl,
      DATABASE_CONNECT_TIMEOUT_MS: '0',
    });
    expect(result.code).toBe(78);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('DATABASE_CONNECT_TIMEOUT_MS');
  });

  test.each<[Record<string, string>]>([
    [{}],
    [{ APP_ENV: 'development' }],
    [{ APP_ENV: 'test' }],
    [{ APP_ENV: 'production' }],
  ])(
    'without DATABASE_URL or DATABASE_MIGRATION_URL (%j) it exits 78 naming DATABASE_URL, never trying the embedded database',
    async (settings) => {
      const result = await runCli(['migrate', 'status'], settings);
      expect(result.code).toBe(78);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^flowforge-db: DATABASE_URL is not set: /);
      expect(result.stderr).toContain('DATABASE_MIGRATION_URL');
      expect(result.stderr).not.toContain('pglite');
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      // Only development may migrate the embedded database: only there is it offered.
      if (settings.APP_ENV === 'development') {
        expect(result.stderr).toContain('or pass --embedded to migrate the embedded database');
      } else {
        expect(result.stderr).not.toContain('--embedded');
      }
    },
  );

  test('--help needs no settings at all', async () => {
    const result = await runCli(['--help'], {});
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('usage: flowforge-db migrate <up|down|status>');
    expect(result.stdout).toContain('packages');
    const codes = /Exit codes: (.*)/s.exec(result.stdout)?.[1] ?? '';
    for (const code of ['0 ', '1 ', '64 ', '69 ', '70 ', '78 ']) expect(codes).toContain(code);
  });

  test.each([
    [['frob'], 'flowforge-db: unknown command "frob": expected migrate'],
    [['migrate'], 'flowforge-db: migrate needs a command: up, down or status'],
    [
      ['migrate', 'upp'],
      'flowforge-db: unknown command "migrate upp": expected up, down or status',
    ],
    [
      ['migrate', 'sideways'],
      'flowforge-db: unknown command "migrate sideways": expected up, down or status',
    ],
    [['migrate', 'up', 'extra'], 'flowforge-db: unexpected argument "extra" after migrate up'],
    [['migrate', 'up', '--bogus'], "flowforge-db: Unknown option '--bogus'"],
  ])(
    'a bad command line %j exits 64 (EX_USAGE) naming the problem, then the usage',
    async (args, problem) => {
      const result = await runCli(args, env);
      expect(result.code).toBe(64);
      expect(result.stdout).toBe('');
      expect(result.stderr.split('\n')[0]).toContain(problem);
      expect(result.stderr).toContain('usage: flowforge-db migrate <up|down|status>');
    },
  );

  test('a --migrations module that cannot be loaded exits 64 with one line, not a stack trace', async () => {
    const result = await runCli(
      ['migrate', 'status', '--migrations', 'test/fixtures/missing.mjs'],
      env,
    );
    expect(result.code).toBe(64);
    expect(result.stderr).toMatch(
      /^flowforge-db: cannot load --migrations test\/fixtures\/missing\.mjs: /,
    );
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  test.each([
    ['cli-bad-exports.mjs', /exports neither `migrations` nor `packages`/],
    ['cli-bad-spread.mjs', /a package migration set .* goes in `packages`/],
    ['cli-bad-packages.mjs', /`packages` must be an array of migration sources/],
  ])(
    'a --migrations module of the wrong shape (%s) exits 64 saying what it must export',
    async (file, message) => {
      const result = await runCli(
        ['migrate', 'status', '--migrations', `test/fixtures/${file}`],
        env,
      );
      expect(result.code).toBe(64);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(message);
    },
  );

  test.each([['up'], ['status']])(
    'migrate %s on an unreachable server exits 69 without printing the password',
    async (action) => {
      const result = await runCli(['migrate', action, '--migrations', CLI_MIGRATIONS], {
        APP_ENV: 'test',
        DATABASE_MIGRATION_URL: 'postgres://u:s3cret-LEAK@127.0.0.1:1/x',
      });
      expect(result.code).toBe(69);
      expect(result.stderr).toContain('cannot reach PostgreSQL');
      expect(result.stderr.match(/@flowforge\/db:/g)).toHaveLength(1);
      if (action === 'status') {
        expect(result.stderr).toMatch(/^@flowforge\/db: cannot read the migration history: /);
        expect(result.stderr).not.toContain('did not run');
      }
      expect(result.stdout).not.toContain('s3cret-LEAK');
      expect(result.stderr).not.toContain('s3cret-LEAK');
    },
  );
});

describe('flowforge-db with a module that exports packages and migrations', () => {
  const MODULE = 'test/fixtures/cli-packages.mjs';

  test('packages run after core and before the app, each with its own history; down goes app first', async () => {
    const test_ = await freshDatabase('migr_cli_pkg');
    const owner = open(test_.ownerUrl);
    const env = { APP_ENV: 'test', DATABASE_MIGRATION_URL: test_.ownerUrl };

    const up = await runCli(['migrate', 'up', '--migrations', MODULE], env);
    expect(up).toMatchObject({ code: 0, stderr: '' });
    expect(lines(up.stdout)).toEqual([
      ...CORE.map((name) => `applied   ${name}`),
      'applied   0001-cli-ledger',
      'applied   2026-11-28-0001-cli-entries',
      `${CORE.length + 2} migrations applied`,
    ]);
    const status = await runCli(['migrate', 'status', '--migrations', MODULE], env);
    expect(statusRows(status.stdout).map((row) => row.slice(1))).toEqual([
      ...CORE.map((name) => ['flowforge_db', name]),
      ['cli_ledger', '0001-cli-ledger'],
      ['app', '2026-11-28-0001-cli-entries'],
    ]);
    const { rows } = await sql<{ name: string }>`
      select name from cli_ledger_migration`.execute(owner);
    expect(rows).toEqual([{ name: '0001-cli-ledger' }]);

    const reverted: string[] = [];
    for (;;) {
      const down = await runCli(['migrate', 'down', '--migrations', MODULE], env);
      expect(down).toMatchObject({ code: 0, stderr: '' });
      const [first] = lines(down.stdout);
      if (first === 'nothing to do') break;
      reverted.push(first!.replace(/^reverted\s+/, ''));
    }
    expect(reverted).toEqual([
      '2026-11-28-0001-cli-entries',
      '0001-cli-ledger',
      ...CORE.toReversed(),
    ]);
    expect(await tableExists(owner, 'cli_ledger')).toBe(false);
  });

  test('status without --migrations lists every history table it finds and says what it cannot tell', async () => {
    const test_ = await freshDatabase('migr_cli_hist');
    const env = { APP_ENV: 'test', DATABASE_MIGRATION_URL: test_.ownerUrl };

    const fresh = await runCli(['migrate', 'status'], env);
    expect(fresh).toMatchObject({ code: 0, stderr: '' });
    expect(statusRows(fresh.stdout)).toEqual(CORE.map((name) => ['pending', 'flowforge_db', name]));
    expect(lines(fresh.stdout).at(-1)).toBe(
      `0 applied, ${CORE.length} pending; without --migrations only flowforge_db's migrations are known: ` +
        'what is pending for the app and its packages cannot be told (pass --migrations <module>)',
    );

    expect((await runCli(['migrate', 'up', '--migrations', MODULE], env)).code).toBe(0);
    const all = [
      ...CORE.map((name) => ['flowforge_db', name]),
      ['cli_ledger', '0001-cli-ledger'],
      ['app', '2026-11-28-0001-cli-entries'],
    ];

    const bare = await runCli(['migrate', 'status'], env);
    expect(bare).toMatchObject({ code: 0, stderr: '' });
    const rows = statusRows(bare.stdout);
    expect(rows.map((row) => row.slice(1))).toEqual(all);
    for (const [executedAt] of rows) expect(new Date(executedAt!).toISOString()).toBe(executedAt);
    expect(lines(bare.stdout).at(-1)).toBe(
      `${all.length} applied, 0 pending; without --migrations only flowforge_db's migrations are known: ` +
        'what is pending for cli_ledger, app (found in the database) cannot be told (pass --migrations <module>)',
    );

    // A module that forgets a package: its history is still shown, and named.
    const appOnly = await runCli(
      ['migrate', 'status', '--migrations', 'test/fixtures/cli-app-only.mjs'],
      env,
    );
    expect(appOnly).toMatchObject({ code: 0, stderr: '' });
    expect(statusRows(appOnly.stdout).map((row) => row.slice(1))).toEqual(all);
    expect(lines(appOnly.stdout).at(-1)).toBe(
      `${all.length} applied, 0 pending; cli_ledger (found in the database) is not in ` +
        'test/fixtures/cli-app-only.mjs: what is pending there cannot be told',
    );

    // Given everything, nothing to add.
    const full = await runCli(['migrate', 'status', '--migrations', MODULE], env);
    expect(lines(full.stdout).at(-1)).toBe(`${all.length} applied, 0 pending`);
  });

  test('a default export is taken as the app migrations', async () => {
    const test_ = await freshDatabase('migr_cli_def');
    const result = await runCli(
      ['migrate', 'status', '--migrations', 'test/fixtures/cli-default-export.mjs'],
      { APP_ENV: 'test', DATABASE_MIGRATION_URL: test_.ownerUrl },
    );
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(statusRows(result.stdout).at(-1)).toEqual([
      'pending',
      'app',
      '2026-11-28-0001-cli-default',
    ]);
  });
});

describe('flowforge-db --embedded', () => {
  test('refuses outside APP_ENV=development (exit 78)', async () => {
    const result = await runCli(['migrate', 'status', '--embedded'], { APP_ENV: 'test' });
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('--embedded needs APP_ENV=development');
  });

  test('migrates the embedded PGlite database at DATABASE_EMBEDDED_DIR in development', async () => {
    const result = await runCli(['migrate', 'up', '--embedded', '--migrations', CLI_MIGRATIONS], {
      APP_ENV: 'development',
      DATABASE_EMBEDDED_DIR: 'memory://',
    });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(lines(result.stdout).at(-1)).toBe(
      `${CORE.length + CLI_NAMES.length} migrations applied`,
    );
  }, 120_000); // PGlite starts in the child: seconds, much more on a loaded machine.
});

describe('the flowforge-db command file (bin/flowforge-db.js)', () => {
  const KYSELY_RANGE = (
    JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as {
      peerDependencies: Record<string, string>;
    }
  ).peerDependencies.kysely!;

  test('exists before any build, so pnpm links it at install; without dist it says to build and exits 70', async () => {
    const pkg = JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
      files: string[];
    };
    expect(pkg.bin).toEqual({ 'flowforge-db': './bin/flowforge-db.js' });
    expect(pkg.files).toContain('bin');
    // A copy of the command beside no dist/: what a checkout has between install and build.
    const dir = mkdtempSync(join(tmpdir(), 'ff-bin-'));
    try {
      mkdirSync(join(dir, 'bin'));
      copyFileSync(BIN, join(dir, 'bin', 'flowforge-db.js'));
      const result = await runCli(['--help'], {}, join(dir, 'bin', 'flowforge-db.js'));
      expect(result.code).toBe(70);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(join(dir, 'dist', 'cli.js'));
      expect(result.stderr).toContain('build @flowforge/db first');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /**
   * An installed copy of the package (bin, package.json, the built dist) whose
   * node_modules has its dependencies but a `kysely` as `setUp` leaves it:
   * what an adopter has after `npm install @flowforge/db` without the peer.
   */
  async function installedWithout(
    setUp: (kyselyDir: string) => void,
    args: readonly string[] = ['--help'],
  ): Promise<CliResult> {
    const dir = mkdtempSync(join(tmpdir(), 'ff-peer-'));
    try {
      mkdirSync(join(dir, 'bin'));
      copyFileSync(BIN, join(dir, 'bin', 'flowforge-db.js'));
      copyFileSync(join(PACKAGE_DIR, 'package.json'), join(dir, 'package.json'));
      cpSync(join(PACKAGE_DIR, 'dist'), join(dir, 'dist'), { recursive: true });
      const modules = join(dir, 'node_modules');
      mkdirSync(join(modules, '@flowforge'), { recursive: true });
      for (const name of [
        '@flowforge/config',
        '@flowforge/kernel',
        '@flowforge/observability',
        'pg',
      ]) {
        symlinkSync(realpathSync(join(PACKAGE_DIR, 'node_modules', name)), join(modules, name));
      }
      setUp(join(modules, 'kysely'));
      return await runCli(args, {}, join(dir, 'bin', 'flowforge-db.js'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test('without the kysely peer it names kysely, says how to install it and exits 70, with no stack trace', async () => {
    const result = await installedWithout(() => undefined);
    expect(result.code).toBe(70);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^flowforge-db: cannot start: the package kysely is not installed/,
    );
    expect(result.stderr).toContain('kysely is a required peer dependency of @flowforge/db');
    // With the peer range: a bare `npm install kysely` would take the newest, maybe outside it.
    expect(result.stderr).toContain(`npm install "kysely@${KYSELY_RANGE}"`);
    expect(result.stderr).not.toContain('ERR_MODULE_NOT_FOUND');
    expect(result.stderr).not.toMatch(/^\s+at /m);
  });

  test.each([
    ['a kysely without the kysely/migration entry point', { '.': './index.js' }, 'export {};\n'],
    [
      'a kysely without the dialects it needs',
      { '.': './index.js', './migration': './index.js' },
      'export const sql = null;\n',
    ],
  ])(
    'with %s (an older kysely) it names the installed and the needed version and exits 70',
    async (_, exports, source) => {
      const result = await installedWithout((kysely) => {
        mkdirSync(kysely);
        writeFileSync(
          join(kysely, 'package.json'),
          JSON.stringify({ name: 'kysely', version: '0.27.6', type: 'module', exports }),
        );
        writeFileSync(join(kysely, 'index.js'), source);
      });
      expect(result.code).toBe(70);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^flowforge-db: cannot start: /);
      expect(result.stderr).toContain('kysely 0.27.6 is installed');
      expect(result.stderr).toContain(`@flowforge/db needs kysely ${KYSELY_RANGE}`);
      expect(result.stderr).toContain(`npm install "kysely@${KYSELY_RANGE}"`);
      expect(result.stderr).not.toMatch(/^\s+at /m);
    },
  );
});
