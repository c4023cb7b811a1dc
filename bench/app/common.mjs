// What bench/app/run.mjs and bench/app/soak.mjs share: the built sample app as a
// child process, a realm that serves a JWKS at Keycloak's path and signs access
// tokens shaped like Keycloak's, and a migrated, seeded PostgreSQL database.
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import pg from 'pg';
import { createDatabase, migrateToLatest } from '@flowforge/db';
import { dropDatabase } from '../lib/harness.mjs';

/** The app as `pnpm start` runs it (built by `pnpm exec turbo run build --filter=@flowforge/sample-api...`). */
export const APP_MAIN = fileURLToPath(
  new URL('../../apps/sample-api/dist/main.js', import.meta.url),
);
/** The app's migrations as a deploy applies them. */
const APP_MIGRATIONS = new URL('../../apps/sample-api/dist/migrations.js', import.meta.url);

const CLIENT_ID = 'flowforge-api';
const REALM = 'bench';
/** Keycloak's default `aud` of an access token; the client id is in `azp`. */
const TOKEN_AUDIENCE = 'account';
/** Keycloak's default signature algorithm. */
const ALG = 'RS256';

const PG_HOST = '127.0.0.1:5432';
const SUPERUSER = 'postgres';
const OWNER = 'flowforge_owner';
const APP_LOGIN = 'flowforge';
const pgUrl = (user, database) => `postgres://${user}:${user}@${PG_HOST}/${database}`;

/** Fails early, with the command to run, when the app is not built. */
export function requireBuiltApp() {
  if (!existsSync(APP_MAIN) || !existsSync(fileURLToPath(APP_MIGRATIONS))) {
    throw new Error(
      `${APP_MAIN} is missing: build it with \`pnpm exec turbo run build --filter=@flowforge/sample-api...\``,
    );
  }
}

// ------------------------------------------------------------------ realm

/** The Keycloak stand-in of the benchmarks: an RS256 key, its JWKS served on loopback. */
export async function startRealm() {
  const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
  const kid = `bench-${ALG.toLowerCase()}`;
  const body = JSON.stringify({
    keys: [{ ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' }],
  });
  let fetches = 0;
  const server = createHttpServer((request, response) => {
    if (request.url === `/realms/${REALM}/protocol/openid-connect/certs`) {
      fetches += 1;
      response.writeHead(200, { 'content-type': 'application/json' }).end(body);
    } else {
      response.writeHead(404).end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${server.address().port}`;
  const issuer = `${url}/realms/${REALM}`;
  return {
    /** KEYCLOAK_URL of the app. */
    url,
    fetches: () => fetches,
    /** A Keycloak-shaped access token for `tenantId` with realm `roles`, valid for an hour. */
    async token(tenantId, roles, userId = randomUUID()) {
      return new SignJWT({
        typ: 'Bearer',
        azp: CLIENT_ID,
        tenant_id: tenantId,
        sid: randomUUID(),
        scope: 'openid profile email',
        email_verified: true,
        preferred_username: 'bench-user',
        realm_access: { roles },
        resource_access: { account: { roles: ['manage-account', 'view-profile'] } },
      })
        .setProtectedHeader({ alg: ALG, kid, typ: 'JWT' })
        .setIssuer(issuer)
        .setAudience(TOKEN_AUDIENCE)
        .setSubject(userId)
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(privateKey);
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// ------------------------------------------------------------------ PostgreSQL

/** Runs one statement on `database` as the superuser (trust on loopback). */
export async function adminQuery(text, values, database = 'postgres') {
  const client = new pg.Client({ connectionString: pgUrl(SUPERUSER, database) });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
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
}) {
  const name = `ff_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create database ${name} owner ${OWNER}`);
  const drop = () => dropDatabase((text) => adminQuery(text), name);
  try {
    const { packages, migrations } = await import(APP_MIGRATIONS.href);
    const owner = createDatabase({ url: pgUrl(OWNER, name), poolSize: 1 });
    try {
      await migrateToLatest(owner.db, { packages, migrations });
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
      const { server_version: version } = (await client.query('show server_version')).rows[0];
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

/**
 * The environment of the app in production mode: exactly these variables,
 * nothing inherited. `extra` adds or overrides (store URLs, METRICS_TOKEN…).
 */
export function appEnvironment({ port, databaseUrl, keycloakUrl, extra = {} }) {
  return {
    APP_ENV: 'production',
    APP_NAME: 'flowforge-bench',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'json',
    SECRET_KEY: randomBytes(32).toString('hex'),
    DATABASE_URL: databaseUrl,
    KEYCLOAK_URL: keycloakUrl,
    KEYCLOAK_REALM: REALM,
    KEYCLOAK_CLIENT_ID: CLIENT_ID,
    ...extra,
  };
}

/**
 * Starts the built app (`node dist/main.js`) with `env`, its log lines (stdout) to
 * `stdout` (a file descriptor or 'ignore'), and resolves once GET /health/ready
 * answers 200 (30 s at most). Rejects with the app's stderr when it exits first.
 */
export async function startApp(env, { stdout = 'ignore' } = {}) {
  const child = spawn(process.execPath, [APP_MAIN], { env, stdio: ['ignore', stdout, 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  let exit;
  child.once('exit', (code, signal) => (exit = { code, signal }));
  const base = `http://127.0.0.1:${env.PORT}`;
  const deadline = performance.now() + 30_000;
  for (;;) {
    if (exit) {
      throw new Error(
        `the app exited before it was ready (code ${exit.code}, signal ${exit.signal}): ${stderr}`,
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
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, base, stderr: () => stderr };
}

/** The RSS of a process in bytes (VmRSS of /proc/PID/status). */
export async function processRss(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}
