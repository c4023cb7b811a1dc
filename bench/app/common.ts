// What bench/app/run.ts and bench/app/soak.ts share: the built sample app as a
// child process and a migrated, seeded PostgreSQL database. The Keycloak stand-in
// is lib/realm.ts (RS256, Keycloak's default).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createDatabase, migrateToLatest, type MigrateOptions } from '@flowforge/db';
import { sleep } from '../lib/harness.ts';
import {
  APP_LOGIN,
  OWNER,
  SUPERUSER,
  adminQuery,
  dropDatabase,
  pgUrl,
  serverVersion,
} from '../lib/postgres.ts';
import { CLIENT_ID, REALM } from '../lib/realm.ts';

/** The app as `pnpm start` runs it (built by `pnpm exec turbo run build --filter=@flowforge/sample-api...`). */
export const APP_MAIN: string = fileURLToPath(
  new URL('../../apps/sample-api/dist/main.js', import.meta.url),
);
/** The app's migrations as a deploy applies them. */
const APP_MIGRATIONS = new URL('../../apps/sample-api/dist/migrations.js', import.meta.url);

/** Fails early, with the command to run, when the app is not built. */
export function requireBuiltApp(): void {
  if (!existsSync(APP_MAIN) || !existsSync(fileURLToPath(APP_MIGRATIONS))) {
    throw new Error(
      `${APP_MAIN} is missing: build it with \`pnpm exec turbo run build --filter=@flowforge/sample-api...\``,
    );
  }
}

// ------------------------------------------------------------------ PostgreSQL

/**
 * A module that exports `packages` and `migrations` is what migrateToLatest takes
 * (and checks, source by source): only the shape of the module is checked here.
 */
function isMigrationModule(value: unknown): value is MigrateOptions {
  return (
    typeof value === 'object' &&
    value !== null &&
    'packages' in value &&
    Array.isArray(value.packages) &&
    'migrations' in value &&
    typeof value.migrations === 'object' &&
    value.migrations !== null
  );
}

/** A seeded bench database; `drop()` removes it. */
export interface SeededDatabase {
  name: string;
  /** DATABASE_URL of the app (its login role). */
  appUrl: string;
  serverVersion: string;
  drop: () => Promise<void>;
}

/**
 * A fresh database `ff_bench_<random>` owned by flowforge_owner, migrated by it with
 * the app's built migrations, then seeded as the superuser (it bypasses the forced
 * row-level security): `dashboardsPerTenant` dashboards (and `widgetsPerDashboard`
 * metric widgets each) for every tenant of `tenants` and for `fillerTenants` more,
 * so that each tenant's reads run against a table of realistic size.
 * `drop()` removes it (also after a failure).
 */
export async function createSeededDatabase({
  tenants,
  fillerTenants = 50,
  dashboardsPerTenant = 20,
  widgetsPerDashboard = 0,
}: {
  tenants: readonly string[];
  fillerTenants?: number;
  dashboardsPerTenant?: number;
  widgetsPerDashboard?: number;
}): Promise<SeededDatabase> {
  const name = `ff_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery({ as: SUPERUSER }, `create database ${name} owner ${OWNER}`);
  const drop = () => dropDatabase(SUPERUSER, name);
  try {
    const appMigrations: unknown = await import(APP_MIGRATIONS.href);
    if (!isMigrationModule(appMigrations)) {
      throw new Error(`${APP_MIGRATIONS.href} exports no packages and migrations`);
    }
    const owner = createDatabase({ url: pgUrl(OWNER, name), poolSize: 1 });
    try {
      await migrateToLatest(owner.db, appMigrations);
    } finally {
      await owner.close();
    }
    const all = [...tenants, ...Array.from({ length: fillerTenants }, () => randomUUID())];
    const client = new pg.Client({ connectionString: pgUrl(SUPERUSER, name) });
    await client.connect();
    try {
      await client.query(
        `insert into dashboards (tenant_id, name, description, created_by, created_at, updated_at)
         select t.id, 'Dashboard ' || g, 'Seeded by bench/app: orders, visits and revenue of region ' || g,
                gen_random_uuid(), now() - g * interval '1 hour', now() - g * interval '1 hour'
         from unnest($1::uuid[]) as t(id), generate_series(1, $2::int) as g`,
        [all, dashboardsPerTenant],
      );
      if (widgetsPerDashboard > 0) {
        await client.query(
          `insert into widgets (tenant_id, dashboard_id, name, kind, config)
           select d.tenant_id, d.id, 'Widget ' || g, 'metric',
                  jsonb_build_object('metric', case when g % 2 = 0 then 'orders' else 'visits' end,
                                     'days', 7 + g)
           from dashboards d, generate_series(1, $1::int) as g`,
          [widgetsPerDashboard],
        );
      }
      await client.query('vacuum (analyze)');
      await client.query('checkpoint');
      const version = await serverVersion(client);
      return { name, appUrl: pgUrl(APP_LOGIN, name), serverVersion: version, drop };
    } finally {
      await client.end();
    }
  } catch (error) {
    await drop().catch(() => undefined);
    throw error;
  }
}

// ------------------------------------------------------------------ the app

/** The environment of the app: its variables by name, PORT among them. */
export interface AppEnvironment {
  PORT: string;
  [name: string]: string;
}

/**
 * The environment of the app in production mode: exactly these variables,
 * nothing inherited. `extra` adds or overrides (store URLs, METRICS_TOKEN…).
 */
export function appEnvironment({
  port,
  databaseUrl,
  keycloakUrl,
  extra = {},
}: {
  port: number;
  databaseUrl: string;
  keycloakUrl: string;
  extra?: Record<string, string>;
}): AppEnvironment {
  return {
    APP_ENV: 'production',
    APP_NAME: 'flowforge-bench',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'json',
    SECRET_KEY: randomBytes(32).toString('hex'),
    METRICS_TOKEN: randomBytes(16).toString('hex'),
    DATABASE_URL: databaseUrl,
    KEYCLOAK_URL: keycloakUrl,
    KEYCLOAK_REALM: REALM,
    KEYCLOAK_CLIENT_ID: CLIENT_ID,
    ...extra,
  };
}

/** A started app. */
export interface RunningApp {
  child: ChildProcess;
  /** http://127.0.0.1:PORT */
  base: string;
  /** The last 4,000 characters of its stderr. */
  stderr: () => string;
}

/**
 * Starts the built app (`node dist/main.js`) with `env`, its log lines (stdout) to
 * `stdout` (a file descriptor or 'ignore'), and resolves once GET /health/ready
 * answers 200 (30 s at most). Rejects with the app's stderr when it exits first.
 */
export async function startApp(
  env: AppEnvironment,
  { stdout = 'ignore' }: { stdout?: number | 'ignore' } = {},
): Promise<RunningApp> {
  const child = spawn(process.execPath, [APP_MAIN], { env, stdio: ['ignore', stdout, 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const base = `http://127.0.0.1:${env.PORT}`;
  const deadline = performance.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `the app exited before it was ready (code ${child.exitCode}, signal ${child.signalCode}): ${stderr}`,
      );
    }
    try {
      const response = await fetch(`${base}/health/ready`);
      await response.arrayBuffer();
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the app was not ready after 30 s: ${stderr}`);
    }
    await sleep(100);
  }
  return { child, base, stderr: () => stderr };
}

/** The RSS of a process in bytes (VmRSS of /proc/PID/status). */
export async function processRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kilobytes = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kilobytes === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kilobytes) * 1024;
}
