/**
 * A private PostgreSQL cluster for the tests that stop and restart the server
 * under load: the shared one on 5432 (scripts/services) serves other suites at
 * the same time and is never touched that way.
 *
 * `initdb` in a temp dir owned by the `postgres` user (the server refuses to
 * run as root), trust auth on loopback, a free port, the roles scripts/services
 * creates (flowforge, flowforge_owner, the NOLOGIN flowforge_app) and one
 * database migrated with the app's migrations by its owner, as
 * test/support/postgres.ts does on the shared server.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createDatabase, migrateToLatest } from '@flowforge/db';
import { migrations, packages } from '../../src/db/migrations.js';
import { freePort } from '../../../../packages/redis/test/support/redis-servers.js';

const RUNUSER = '/usr/sbin/runuser';
const RUN_AS = 'postgres';
const DATABASE = 'flowforge';

async function binDir(): Promise<string> {
  const versions = (await readdir('/usr/lib/postgresql')).sort(
    (a, b) => Number(b) - Number(a), // the newest installed major
  );
  if (versions.length === 0) throw new Error('no PostgreSQL under /usr/lib/postgresql');
  return `/usr/lib/postgresql/${versions[0]!}/bin`;
}

/** Runs a PostgreSQL binary as the `postgres` user; rejects with its output on a non-zero exit. */
async function runAsPostgres(cwd: string, binary: string, args: readonly string[]): Promise<void> {
  const child = spawn(RUNUSER, ['-u', RUN_AS, '--', binary, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) {
    throw new Error(
      `${path.basename(binary)} ${args.join(' ')} exited ${String(code)}:\n${output}`,
    );
  }
}

async function uidOf(user: string): Promise<{ uid: number; gid: number }> {
  const child = spawn('id', [user], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await once(child, 'exit');
  const uid = /uid=(\d+)/.exec(out)?.[1];
  const gid = /gid=(\d+)/.exec(out)?.[1];
  if (uid === undefined || gid === undefined) throw new Error(`no system user "${user}"`);
  return { uid: Number(uid), gid: Number(gid) };
}

export class PrivatePostgres {
  readonly dir: string;
  readonly port: number;
  readonly #bin: string;
  #running = false;

  private constructor(dir: string, port: number, bin: string) {
    this.dir = dir;
    this.port = port;
    this.#bin = bin;
  }

  /** initdb, start, roles, and the `flowforge` database with the app's migrations. */
  static async start(): Promise<PrivatePostgres> {
    const bin = await binDir();
    const dir = await mkdtemp(path.join(tmpdir(), 'ff-postgres-'));
    const { uid, gid } = await uidOf(RUN_AS);
    await chown(dir, uid, gid);
    const server = new PrivatePostgres(dir, await freePort(), bin);
    try {
      await runAsPostgres(dir, `${bin}/initdb`, [
        '--pgdata',
        path.join(dir, 'data'),
        '--auth',
        'trust',
        '--username',
        'postgres',
        '--encoding',
        'UTF8',
        '--no-sync',
      ]);
      await server.restart();
      await server.superuser(
        `create role flowforge_owner login createdb password 'flowforge_owner';
         create role flowforge login password 'flowforge';
         create role flowforge_app nologin nosuperuser nobypassrls;
         grant flowforge_app to flowforge;`,
        [],
        'postgres',
      );
      // Not in the batch above: CREATE DATABASE refuses to run inside a transaction block.
      await server.superuser(`create database ${DATABASE} owner flowforge_owner`, [], 'postgres');
      const owner = createDatabase<unknown>({ url: server.url('flowforge_owner'), poolSize: 1 });
      try {
        await migrateToLatest(owner.db, { packages, migrations });
      } finally {
        await owner.close();
      }
    } catch (error) {
      await server.destroy();
      throw error;
    }
    return server;
  }

  /** `postgres://user:user@127.0.0.1:port/flowforge` (trust auth: the password is decoration). */
  url(user: string, database: string = DATABASE): string {
    return `postgres://${user}:${user}@127.0.0.1:${this.port}/${database}`;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Runs SQL as the superuser (row-level security does not apply to it). */
  async superuser<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values: readonly unknown[] = [],
    database: string = DATABASE,
  ): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url('postgres', database) });
    client.on('error', () => undefined);
    await client.connect();
    try {
      if (values.length === 0) {
        // The simple protocol: several statements in one text are allowed.
        const result: unknown = await client.query(text);
        return Array.isArray(result) ? [] : (result as pg.QueryResult<R>).rows;
      }
      return (await client.query<R>(text, values as unknown[])).rows;
    } finally {
      await client.end();
    }
  }

  /** Starts the server (again) on the same port and data; resolves once it accepts connections. */
  async restart(): Promise<void> {
    if (this.#running) return;
    await runAsPostgres(this.dir, `${this.#bin}/pg_ctl`, [
      'start',
      '--wait',
      '--timeout=30',
      '--pgdata',
      path.join(this.dir, 'data'),
      '--log',
      path.join(this.dir, 'server.log'),
      '-o',
      [
        `-p ${this.port}`,
        `-k ${this.dir}`,
        '-c listen_addresses=127.0.0.1',
        '-c fsync=off',
        '-c max_connections=60',
        '-c shared_buffers=16MB',
      ].join(' '),
    ]);
    this.#running = true;
  }

  /**
   * Stops the server: `immediate` is a crash as far as clients can tell (backends
   * die without a goodbye; WAL replay on the next start), `fast` a clean stop
   * (clients get 57P01 admin_shutdown).
   */
  async stop(mode: 'immediate' | 'fast' = 'immediate'): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    await runAsPostgres(this.dir, `${this.#bin}/pg_ctl`, [
      'stop',
      '--wait',
      '--pgdata',
      path.join(this.dir, 'data'),
      '--mode',
      mode,
    ]);
  }

  /** Stops the server if it runs and removes its dir. Safe in any state. */
  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}
