// @flowforge/auth in one run, each result as a ratio to a baseline measured in the
// same round: (1) JWT verifications/s against raw jose, (2) an authenticated Fastify
// route against a bare hello-world, (3) API-key verification latency against the
// same lookup by hand, on the PostgreSQL of scripts/services. See ../README.md.
//
// Usage: node auth/run.ts [--rounds 3] [--jwt-duration 2] [--duration 5] [--warmup 2]
//                         [--alg ES256] [--ops 2000] [--concurrency 8] [--parts jwt,http,apikey]
//
// The same file is the HTTP server of part 2: run.ts starts itself as
// `node auth/run.ts serve MODE PORT ISSUER JWKS_URL CLIENT_ID` (prints "ready").
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { openSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Fastify, { LogController } from 'fastify';
import { jwtVerify } from 'jose';
import pg from 'pg';
import {
  authMigrations,
  createApiKey,
  createApiKeyVerifier,
  createAuth,
  createJwtVerifier,
  type AuthDB,
} from '@flowforge/auth';
import { bearer, fastifyAuth, requireRole } from '@flowforge/auth/fastify';
import { createDatabase, migrateToLatest, type Database } from '@flowforge/db';
import {
  createHttpObservability,
  createLogDestination,
  createLogger,
  createMetrics,
} from '@flowforge/observability';
import { fastifyObservability, genReqId } from '@flowforge/observability/fastify';
import {
  checkedLoad,
  cpuMicros,
  firstRequest,
  freePort,
  machineLoad,
  median,
  perRound,
  percentile,
  pidOf,
  positiveFlag,
  printTable,
  processCpu,
  range,
  recordOf,
  rotated,
  sleep,
  spread,
  startServer as startChild,
  stopServer,
  tearDownOnSignals,
  writeResults,
  type LoadSummary,
} from '../lib/harness.ts';
import {
  APP_LOGIN,
  OWNER,
  PG_HOST,
  SUPERUSER,
  adminQuery,
  appPool,
  dropDatabase,
  pgUrl,
  serverVersion,
} from '../lib/postgres.ts';
import { CLIENT_ID, TOKEN_AUDIENCE, startRealm, type Algorithm, type Realm } from '../lib/realm.ts';
import { serve, type Listener } from '../lib/serve.ts';

const SELF = fileURLToPath(import.meta.url);
const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));

const ALGORITHMS = ['RS256', 'ES256'] as const satisfies readonly Algorithm[];

const TARGETS = { jwtMiss: 0.9, route: 0.7, apiKeyP99Micros: 2_000 };

const JWT_BASELINE = 'jose';
const JWT_MODES = ['jose', 'verifier-miss', 'auth-miss', 'verifier-hit'] as const;
type JwtMode = (typeof JWT_MODES)[number];
const JWT_SLICES = 8;
const HTTP_BASELINE = 'bare';
const HTTP_MODES = ['bare', 'observability', 'auth', 'auth-verify-each'] as const;
type HttpMode = (typeof HTTP_MODES)[number];
const KEY_BASELINE = 'lookup';
const KEY_MODES = ['lookup', 'verify', 'verify-write-each'] as const;
type KeyMode = (typeof KEY_MODES)[number];
const KEY_SLICES = 8;
const PARTS = ['jwt', 'http', 'apikey'];

// As bench/observability: two cores shared by the server and the load generator.
const CONNECTIONS = 50;
const PIPELINING = 1;

const TENANTS = 10;
const KEYS_PER_TENANT = 10;
const FILLER_KEYS_PER_TENANT = 1_000;
const IDLE_TIMEOUT_MS = 120_000;

/** What the measuring parts read of the options. */
interface Settings {
  rounds: number;
  jwtDuration: number;
  jwtWarmup: number;
  duration: number;
  warmup: number;
  alg: Algorithm;
  ops: number;
  concurrency: number;
  connections: number;
  pipelining: number;
}

// ================================================================== part 2's server (child)

/** Where the servers of part 2 find the realm. */
interface Keycloak {
  issuer: string;
  jwksUrl: string;
  clientId: string;
}

/** A server of any mode, with its route. */
interface HelloServer extends Listener {
  get(path: string, handler: () => { hello: string }): unknown;
}

/**
 * The server of one HTTP mode. `GET /hello` → `{"hello":"world"}` in every mode;
 * every request carries the same `Authorization: Bearer <jwt>`, read or not.
 * - bare: `Fastify()`, nothing else (the baseline);
 * - observability: the stack of bench/observability's `flowforge` mode;
 * - auth: that stack plus `fastifyAuth`, `bearer(auth)` (token cache on, so a
 *   cache hit after the first request) and `requireRole('viewer')`, as
 *   apps/sample-api registers them;
 * - auth-verify-each: the same with `tokenCacheSize: 0`: a signature check per request.
 */
async function buildServer(mode: HttpMode, keycloak: Keycloak): Promise<HelloServer> {
  if (mode === 'bare') {
    const app = Fastify();
    app.get('/hello', () => ({ hello: 'world' }));
    return app;
  }
  const logger = createLogger({
    level: 'info',
    format: 'json',
    service: 'bench',
    destination: createLogDestination(openSync('/dev/null', 'w')),
  });
  const metrics = createMetrics();
  const app = Fastify({
    genReqId,
    logController: new LogController({ disableRequestLogging: true }),
    loggerInstance: logger,
    childLoggerFactory: (parent) => parent,
  });
  await app.register(fastifyObservability, {
    http: createHttpObservability({ logger, metrics }),
    metricsEndpoint: { metrics },
  });
  if (mode === 'observability') {
    app.get('/hello', () => ({ hello: 'world' }));
    return app;
  }
  const auth = createAuth(
    {
      appEnv: 'production',
      keycloak,
      algorithms: ALGORITHMS,
      ...(mode === 'auth-verify-each' ? { tokenCacheSize: 0 } : {}),
    },
    { logger, metrics },
  );
  await app.register(fastifyAuth);
  void app.register((api, _options, done) => {
    api.addHook('onRequest', bearer(auth));
    api.get('/hello', { onRequest: requireRole('viewer') }, () => ({ hello: 'world' }));
    done();
  });
  return app;
}

const isHttpMode = (name: string | undefined): name is HttpMode =>
  HTTP_MODES.some((mode) => mode === name);

async function serveMode([mode, portArgument, issuer, jwksUrl, clientId]: string[]): Promise<void> {
  const port = Number(portArgument);
  if (
    !isHttpMode(mode) ||
    !Number.isInteger(port) ||
    port <= 0 ||
    !issuer ||
    !jwksUrl ||
    !clientId
  ) {
    process.stderr.write(
      `usage: node auth/run.ts serve <${HTTP_MODES.join('|')}> <port> <issuer> <jwks url> <client id>\n`,
    );
    process.exit(2);
  }
  const app = await buildServer(mode, { issuer, jwksUrl, clientId });
  await serve(app, port);
}

// ================================================================== shared helpers

/** Per-mode lists, for the modes of a part. */
const listsOf = <Mode extends string, T>(modes: readonly Mode[]) => recordOf(modes, (): T[] => []);

// ================================================================== keys, tokens, JWKS

/** An access token shaped like Keycloak's (header typ JWT, claim typ Bearer, aud account, azp). */
async function signToken(realm: Realm, alg: Algorithm) {
  const sub = randomUUID();
  const tenantId = randomUUID();
  const token = await realm.token({ alg, tenantId, roles: ['viewer'], userId: sub });
  return { token, sub, tenantId };
}

// ================================================================== part 1: JWT verification

/** One verification; resolves to the token's subject. */
type Verification = () => Promise<string | undefined>;

/** The operations of every JWT mode for one algorithm's token; each resolves to its `sub`. */
function jwtOperations(realm: Realm, token: string): Record<JwtMode, Verification> {
  const keycloak = { issuer: realm.issuer, jwksUrl: realm.jwksUrl, clientId: CLIENT_ID };
  const verifierOptions = {
    issuer: realm.issuer,
    jwksUrl: realm.jwksUrl,
    audience: CLIENT_ID,
    algorithms: ALGORITHMS,
  };
  const miss = createJwtVerifier({ ...verifierOptions, cacheSize: 0 });
  const hit = createJwtVerifier(verifierOptions);
  const auth = createAuth(
    { appEnv: 'production', keycloak, algorithms: ALGORITHMS, tokenCacheSize: 0 },
    { metrics: createMetrics() },
  );
  const header = `Bearer ${token}`;
  const joseOptions = {
    issuer: realm.issuer,
    audience: TOKEN_AUDIENCE,
    algorithms: [...ALGORITHMS],
  };
  return {
    jose: async () => (await jwtVerify(token, realm.localJwks, joseOptions)).payload.sub,
    'verifier-miss': async () => (await miss.verify(token)).userId,
    'auth-miss': async () => (await auth.authenticateBearer(header)).userId,
    'verifier-hit': async () => (await hit.verify(token)).userId,
  };
}

/** `op` back to back, one at a time, for `seconds`. */
async function loop(op: Verification, sub: string, seconds: number) {
  let ops = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const cpuBefore = process.cpuUsage();
  while (performance.now() < deadline) {
    for (let i = 0; i < 16; i += 1) {
      if ((await op()) !== sub) throw new Error('wrong subject; the numbers are void');
    }
    ops += 16;
  }
  return {
    ops,
    seconds: (performance.now() - started) / 1000,
    // The whole process's CPU: WebCrypto runs the signature check on libuv's pool.
    cpu: cpuMicros(process.cpuUsage(cpuBefore)),
  };
}

/** One JWT measurement. */
interface JwtRun {
  ops: number;
  opsPerSecond: number;
  /** µs */
  cpuPerOp: number;
}

async function runJwt(realm: Realm, settings: Settings) {
  const algorithms = [];
  for (const alg of ALGORITHMS) {
    const signed = await signToken(realm, alg);
    const operations = jwtOperations(realm, signed.token);
    const runs = listsOf<JwtMode, JwtRun>(JWT_MODES);
    for (const mode of JWT_MODES) {
      // The first call fetches the JWKS; then JIT warm-up (discarded).
      if ((await operations[mode]()) !== signed.sub) {
        throw new Error(`${alg}/${mode}: wrong subject; the numbers are void`);
      }
      await loop(operations[mode], signed.sub, 0.3);
    }
    algorithms.push({ alg, ...signed, operations, runs });
  }
  console.log(
    `tokens: ${algorithms.map(({ alg, token }) => `${alg} ${token.length} characters`).join(', ')}`,
  );
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const { alg, sub, operations, runs } of algorithms) {
      for (const mode of rotated(JWT_MODES, round)) {
        await loop(operations[mode], sub, settings.jwtWarmup);
      }
      // A mode's measurement is JWT_SLICES slices, interleaved with the other modes'
      // (rotated each time): the modes of a round share the same seconds of the VM.
      const totals = recordOf(JWT_MODES, () => ({ ops: 0, seconds: 0, cpu: 0 }));
      for (let slice = 0; slice < JWT_SLICES; slice += 1) {
        for (const mode of rotated(JWT_MODES, round + slice)) {
          const part = await loop(operations[mode], sub, settings.jwtDuration / JWT_SLICES);
          totals[mode].ops += part.ops;
          totals[mode].seconds += part.seconds;
          totals[mode].cpu += part.cpu;
        }
      }
      for (const mode of JWT_MODES) {
        const { ops, seconds, cpu } = totals[mode];
        const run = { ops, opsPerSecond: ops / seconds, cpuPerOp: cpu / ops };
        runs[mode].push(run);
        console.log(
          `round ${round + 1}/${settings.rounds}  jwt ${alg} ${mode.padEnd(13)} ` +
            `${Math.round(run.opsPerSecond).toString().padStart(7)} verifications/s  ` +
            `CPU ${run.cpuPerOp.toFixed(1)} µs/op`,
        );
      }
    }
  }
  const summary = algorithms.flatMap(({ alg, runs }) =>
    JWT_MODES.map((mode) => {
      const list = runs[mode];
      // Within each round, then the median over rounds (the VM's speed drifts).
      const ratios = perRound(
        list,
        runs[JWT_BASELINE],
        (base, run) => run.opsPerSecond / base.opsPerSecond,
      );
      return {
        alg,
        mode,
        opsPerSecond: median(list.map((run) => run.opsPerSecond)),
        spread: spread(list.map((run) => run.opsPerSecond)),
        ratio: median(ratios),
        ratioRange: range(ratios),
        microsPerOp: 1e6 / median(list.map((run) => run.opsPerSecond)),
        cpuPerOp: median(list.map((run) => run.cpuPerOp)),
      };
    }),
  );
  return {
    summary,
    runs: Object.fromEntries(algorithms.map(({ alg, runs }) => [alg, runs])),
    tokenLength: algorithms.find(({ alg }) => alg === 'ES256')?.token.length,
  };
}

function printJwt({ summary }: Awaited<ReturnType<typeof runJwt>>): void {
  console.log(
    '\n1. JWT verification, one at a time: median over the rounds; ratio = median over the rounds\n' +
      '   of (verifications/s ÷ raw jose verifications/s in the same round, same algorithm)\n',
  );
  printTable(
    ['alg', 'mode', 'verif/s', 'spread', 'ratio', 'ratio range', 'µs/op', 'CPU µs/op'],
    summary.flatMap((row, index) => [
      ...(index > 0 && row.mode === JWT_BASELINE ? [null] : []),
      [
        row.alg,
        row.mode,
        Math.round(row.opsPerSecond).toString(),
        `${Math.round(row.spread * 100)} %`,
        `${row.ratio.toFixed(2)}×`,
        `${row.ratioRange[0].toFixed(2)}–${row.ratioRange[1].toFixed(2)}×`,
        row.microsPerOp.toFixed(1),
        row.cpuPerOp.toFixed(1),
      ],
    ]),
    2,
  );
}

// ================================================================== part 2: authenticated route

const children = new Set<ChildProcess>();

/** Starts `run.ts serve mode port …` and resolves once it prints "ready". */
async function startServer(mode: HttpMode, port: number, realm: Realm): Promise<ChildProcess> {
  const child = await startChild(mode, [
    SELF,
    'serve',
    mode,
    String(port),
    realm.issuer,
    realm.jwksUrl,
    CLIENT_ID,
  ]);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** One autocannon run; throws when any response was not 2xx or any request failed. */
async function load(
  mode: HttpMode,
  port: number,
  seconds: number,
  authorization: string,
): Promise<LoadSummary> {
  const { summary } = await checkedLoad(mode, {
    url: `http://127.0.0.1:${port}/hello`,
    connections: CONNECTIONS,
    pipelining: PIPELINING,
    duration: seconds,
    headers: { authorization },
  });
  return summary;
}

/** One measurement of one HTTP mode. */
interface HttpRun extends LoadSummary {
  /** µs */
  cpuPerRequest: number;
  jwksFetches: number;
}

async function measureHttp(
  mode: HttpMode,
  realm: Realm,
  authorization: string,
  settings: Settings,
): Promise<HttpRun> {
  const port = await freePort();
  const child = await startServer(mode, port, realm);
  try {
    const fetchesBefore = realm.fetches();
    // One request alone first: the auth modes fetch the JWKS here, not under load.
    await firstRequest(mode, `http://127.0.0.1:${port}/hello`, authorization);
    await load(mode, port, settings.warmup, authorization); // JIT warm-up, discarded
    const pid = pidOf(child);
    const cpuBefore = await processCpu(pid);
    const run = await load(mode, port, settings.duration, authorization);
    return {
      ...run,
      cpuPerRequest: ((await processCpu(pid)) - cpuBefore) / run.requests,
      jwksFetches: realm.fetches() - fetchesBefore,
    };
  } finally {
    await stopServer(child);
  }
}

async function runHttp(realm: Realm, settings: Settings) {
  const { token } = await signToken(realm, settings.alg);
  const authorization = `Bearer ${token}`;
  const runs = listsOf<HttpMode, HttpRun>(HTTP_MODES);
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const mode of rotated(HTTP_MODES, round)) {
      const run = await measureHttp(mode, realm, authorization, settings);
      runs[mode].push(run);
      console.log(
        `round ${round + 1}/${settings.rounds}  http ${mode.padEnd(16)} ` +
          `${Math.round(run.requestsPerSecond).toString().padStart(6)} req/s  p50 ${run.p50} ms  ` +
          `p99 ${run.p99} ms  ${run.cpuPerRequest.toFixed(1)} µs CPU/req`,
      );
    }
  }
  const summary = HTTP_MODES.map((mode) => {
    const list = runs[mode];
    const against = (baseline: readonly HttpRun[], pick: (base: HttpRun, run: HttpRun) => number) =>
      median(perRound(list, baseline, pick));
    const ratios = perRound(
      list,
      runs[HTTP_BASELINE],
      (base, run) => run.requestsPerSecond / base.requestsPerSecond,
    );
    return {
      mode,
      requestsPerSecond: median(list.map((run) => run.requestsPerSecond)),
      spread: spread(list.map((run) => run.requestsPerSecond)),
      ratio: median(ratios),
      ratioRange: range(ratios),
      p50: median(list.map((run) => run.p50)),
      p99: median(list.map((run) => run.p99)),
      cpuPerRequest: median(list.map((run) => run.cpuPerRequest)),
      cpuRatio: against(runs[HTTP_BASELINE], (base, run) => base.cpuPerRequest / run.cpuPerRequest),
      // What auth costs on top of the observability stack, in the same round.
      vsObservability: against(
        runs.observability,
        (base, run) => run.requestsPerSecond / base.requestsPerSecond,
      ),
      extraCpuVsObservability: against(
        runs.observability,
        (base, run) => run.cpuPerRequest - base.cpuPerRequest,
      ),
    };
  });
  return { alg: settings.alg, summary, runs };
}

function printHttp({ alg, summary }: Awaited<ReturnType<typeof runHttp>>): void {
  console.log(
    `\n2. GET /hello under autocannon (${CONNECTIONS} connections), ${alg} token on every request:\n` +
      '   median over the rounds; ratio = median over the rounds of (req/s ÷ bare req/s in the same\n' +
      "   round); CPU ratio likewise, bare's server CPU per request ÷ this mode's; vs obs. and\n" +
      "   +CPU µs = req/s ÷ and CPU per request − the observability mode's in the same round\n",
  );
  printTable(
    [
      'mode',
      'req/s',
      'spread',
      'ratio',
      'ratio range',
      'p50 ms',
      'p99 ms',
      'CPU µs/req',
      'CPU ratio',
      'vs obs.',
      '+CPU µs',
    ],
    summary.map((row) => [
      row.mode,
      Math.round(row.requestsPerSecond).toString(),
      `${Math.round(row.spread * 100)} %`,
      `${row.ratio.toFixed(2)}×`,
      `${row.ratioRange[0].toFixed(2)}–${row.ratioRange[1].toFixed(2)}×`,
      String(row.p50),
      String(row.p99),
      row.cpuPerRequest.toFixed(1),
      `${row.cpuRatio.toFixed(2)}×`,
      row.mode === HTTP_BASELINE ? '–' : `${row.vsObservability.toFixed(2)}×`,
      row.mode === HTTP_BASELINE ? '–' : row.extraCpuVsObservability.toFixed(1),
    ]),
  );
}

// ================================================================== part 3: API keys

const handles: (() => Promise<unknown>)[] = [];
let databaseName: string | undefined;
let dropping: Promise<void> | undefined;

/** Closes every handle (bounded), stops child servers and drops the bench database; once. */
function teardown(): Promise<void> {
  dropping ??= (async () => {
    for (const child of children) child.kill('SIGKILL');
    const closing = Promise.allSettled(handles.map((close) => close()));
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 3_000).unref())]);
    // As the owner, who created it.
    if (databaseName) await dropDatabase(OWNER, databaseName);
  })();
  return dropping;
}

/** A key made by createApiKey, and its tenant. */
interface BenchKey {
  key: string;
  tenantId: string;
  id: string;
}

/**
 * A fresh database with the api_keys table: TENANTS × KEYS_PER_TENANT keys made by
 * createApiKey (the ones verified), and FILLER_KEYS_PER_TENANT rows of random
 * hashes per tenant, so that the lookup runs against a table of realistic size.
 */
async function prepareDatabase() {
  const name = `ff_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery({ as: OWNER }, `create database ${name}`);
  databaseName = name;
  const ownerDb = createDatabase({ url: pgUrl(OWNER, name), poolSize: 1 });
  try {
    await migrateToLatest(ownerDb.db, { packages: [authMigrations] });
  } finally {
    await ownerDb.close();
  }
  const database = createDatabase<AuthDB>({
    url: pgUrl(APP_LOGIN, name),
    idleTimeoutMs: IDLE_TIMEOUT_MS,
  });
  const tenants = Array.from({ length: TENANTS }, () => randomUUID());
  const keys: BenchKey[] = [];
  for (const tenantId of tenants) {
    for (let i = 0; i < KEYS_PER_TENANT; i += 1) {
      const created = await createApiKey(database, tenantId, {
        name: `bench key ${i}`,
        widgetIds: [],
        createdBy: randomUUID(),
      });
      keys.push({ key: created.key, tenantId, id: created.id });
    }
  }
  await database.close();
  // As the superuser (it bypasses the forced row-level security).
  const client = new pg.Client({ connectionString: pgUrl(SUPERUSER, name) });
  await client.connect();
  let version: string;
  try {
    await client.query(
      `insert into api_keys (tenant_id, name, key_hash, prefix, created_by)
       select t.id, 'filler ' || g, sha256(convert_to(t.id::text || g, 'UTF8')),
              'ffk_' || substr(md5(t.id::text || g), 1, 8), gen_random_uuid()
       from unnest($1::uuid[]) as t(id), generate_series(1, $2::int) as g`,
      [tenants, FILLER_KEYS_PER_TENANT],
    );
    await client.query('vacuum (analyze) api_keys');
    // Written out now, not by a checkpoint during the first round.
    await client.query('checkpoint');
    version = await serverVersion(client);
  } finally {
    await client.end();
  }
  return { name, keys, serverVersion: version };
}

/** One verification of the key at an index of the keys; resolves to its tenant. */
type KeyOperation = (index: number) => Promise<string | undefined>;

/** The same lookup verify() makes, by hand: withTenant and the select, nothing else. */
function lookupOperation(database: Database<AuthDB>, keys: readonly BenchKey[]): KeyOperation {
  const parsed = keys.map(({ key, tenantId }) => ({
    tenantId,
    // SHA-256 of the key string, computed once here, so that it is not part of the baseline.
    hash: createHash('sha256').update(key, 'utf8').digest(),
  }));
  return async (index) => {
    const entry = parsed[index];
    if (entry === undefined) throw new Error(`no key ${index}`);
    const { tenantId, hash } = entry;
    const row = await database.withTenant(tenantId, (trx) =>
      trx
        .selectFrom('api_keys')
        .select(['id', 'tenant_id', 'widget_ids', 'created_by', 'expires_at', 'revoked_at'])
        .where('tenant_id', '=', tenantId)
        .where('key_hash', '=', hash)
        .executeTakeFirst(),
    );
    return row?.tenant_id;
  };
}

/** A mode's database handle, and how to wait for its pool to be idle. */
interface ModeDatabase {
  database: Database<AuthDB>;
  settle: () => Promise<void>;
}

/**
 * A database handle on a pool of its own, with the settings createDatabase gives its
 * own (poolSize 10), so that one mode's connections and queue never serve another.
 */
function modeDatabase(name: string): ModeDatabase {
  const pool = appPool(pgUrl(APP_LOGIN, name), 10, IDLE_TIMEOUT_MS);
  const database = createDatabase<AuthDB>({ pool });
  handles.push(async () => {
    await database.close();
    await pool.end();
  });
  /**
   * Resolves once the pool is idle: verify() records a key's use without waiting
   * for it, and those writes must not spill into the next measurement.
   */
  const settle = async () => {
    const deadline = performance.now() + 30_000;
    while (pool.waitingCount > 0 || pool.idleCount < pool.totalCount) {
      if (performance.now() > deadline) throw new Error('the pool did not settle in 30 s');
      await sleep(1);
    }
  };
  return { database, settle };
}

/** What one slice measured. */
interface KeySlice {
  /** µs, one per operation */
  latencies: Float64Array;
  seconds: number;
  /** µs */
  cpu: number;
}

/**
 * `callers` loops sharing `count` operations, cycling through the keys; latencies in
 * µs. The time counts until the mode's pool is idle again (its last_used_at writes done).
 */
async function drive(
  { op, settle }: { op: KeyOperation; settle: () => Promise<void> },
  keys: readonly BenchKey[],
  callers: number,
  count: number,
): Promise<KeySlice> {
  const latencies = new Float64Array(count);
  let next = 0;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const caller = async () => {
    while (next < count) {
      const index = next;
      next += 1;
      const key = index % keys.length;
      const t0 = performance.now();
      const tenantId = await op(key);
      latencies[index] = (performance.now() - t0) * 1000;
      if (tenantId !== keys[key]?.tenantId) {
        throw new Error(`key ${key}: wrong tenant ${tenantId}; the numbers are void`);
      }
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  await settle();
  return {
    latencies,
    seconds: (performance.now() - started) / 1000,
    cpu: cpuMicros(process.cpuUsage(cpuBefore)),
  };
}

/** One API-key measurement. */
interface KeyRun {
  ops: number;
  opsPerSecond: number;
  /** µs */
  p50: number;
  p99: number;
  max: number;
  cpuPerOp: number;
}

/** One measurement out of its slices: ops/s, nearest-rank p50/p99 and max (µs), CPU per op. */
function summarize(slices: readonly KeySlice[]): KeyRun {
  const latencies = new Float64Array(
    slices.reduce((sum, slice) => sum + slice.latencies.length, 0),
  );
  let offset = 0;
  for (const slice of slices) {
    latencies.set(slice.latencies, offset);
    offset += slice.latencies.length;
  }
  latencies.sort();
  const seconds = slices.reduce((sum, slice) => sum + slice.seconds, 0);
  const cpu = slices.reduce((sum, slice) => sum + slice.cpu, 0);
  return {
    ops: latencies.length,
    opsPerSecond: latencies.length / seconds,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    max: latencies.at(-1) ?? Number.NaN,
    cpuPerOp: cpu / latencies.length,
  };
}

async function runApiKeys(settings: Settings) {
  const { name, keys, serverVersion: version } = await prepareDatabase();
  console.log(
    `database ${name}: PostgreSQL ${version}; ${keys.length} keys in ${TENANTS} tenants ` +
      `(+ ${TENANTS * FILLER_KEYS_PER_TENANT} filler rows)`,
  );
  const handle = recordOf(KEY_MODES, () => modeDatabase(name));
  const verifier = createApiKeyVerifier(handle.verify.database);
  const writer = createApiKeyVerifier(handle['verify-write-each'].database, {
    lastUsedIntervalMs: 0,
  });
  const operations: Record<KeyMode, { op: KeyOperation; settle: () => Promise<void> }> = {
    lookup: { op: lookupOperation(handle.lookup.database, keys), settle: handle.lookup.settle },
    verify: {
      op: async (index) => (await verifier.verify(keys[index]?.key)).tenantId,
      settle: handle.verify.settle,
    },
    'verify-write-each': {
      op: async (index) => (await writer.verify(keys[index]?.key)).tenantId,
      settle: handle['verify-write-each'].settle,
    },
  };
  const loads = [
    { name: 'sequential', callers: 1 },
    { name: 'concurrent', callers: settings.concurrency },
  ] as const;
  // JIT and connections; verify's first use of each key writes its last_used_at
  // here, and not again for a minute (this part takes less: checked below).
  const firstUse = performance.now();
  const warmupOps = Math.max(keys.length * 2, Math.round(settings.ops / 4));
  for (const load of loads) {
    for (const mode of KEY_MODES) await drive(operations[mode], keys, load.callers, warmupOps);
  }
  const runs = recordOf(
    loads.map((load) => load.name),
    () => listsOf<KeyMode, KeyRun>(KEY_MODES),
  );
  const started = performance.now();
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const load of loads) {
      for (const mode of rotated(KEY_MODES, round)) {
        // Warm-up, discarded.
        await drive(operations[mode], keys, load.callers, Math.round(settings.ops / 10));
      }
      // A mode's measurement is KEY_SLICES slices, interleaved with the other modes'
      // (rotated each time): the modes of a round share the same seconds of the VM.
      const slices = listsOf<KeyMode, KeySlice>(KEY_MODES);
      for (let slice = 0; slice < KEY_SLICES; slice += 1) {
        for (const mode of rotated(KEY_MODES, round + slice)) {
          slices[mode].push(
            await drive(
              operations[mode],
              keys,
              load.callers,
              Math.round(settings.ops / KEY_SLICES),
            ),
          );
        }
      }
      for (const mode of KEY_MODES) {
        const run = summarize(slices[mode]);
        runs[load.name][mode].push(run);
        console.log(
          `round ${round + 1}/${settings.rounds}  api key ${load.name.padEnd(10)} ${mode.padEnd(17)} ` +
            `${Math.round(run.opsPerSecond).toString().padStart(6)} ops/s  p50 ${Math.round(run.p50)} µs  ` +
            `p99 ${Math.round(run.p99)} µs  max ${Math.round(run.max)} µs  CPU/op ${run.cpuPerOp.toFixed(0)} µs`,
        );
      }
    }
  }
  const measuredSeconds = (performance.now() - started) / 1000;
  const sinceFirstUse = (performance.now() - firstUse) / 1000;
  if (sinceFirstUse >= 60) {
    console.log(
      `note: ${sinceFirstUse.toFixed(0)} s since verify first used the keys: its later calls ` +
        'wrote last_used_at again (once a minute per key)',
    );
  }
  const summary = loads.flatMap((load) => {
    const group = runs[load.name];
    return KEY_MODES.map((mode) => {
      const list = group[mode];
      const byRound = (pick: (base: KeyRun, run: KeyRun) => number) =>
        median(perRound(list, group[KEY_BASELINE], pick));
      return {
        load: load.name,
        callers: load.callers,
        mode,
        opsPerSecond: median(list.map((run) => run.opsPerSecond)),
        spread: spread(list.map((run) => run.opsPerSecond)),
        p50: median(list.map((run) => run.p50)),
        p99: median(list.map((run) => run.p99)),
        p99Range: range(list.map((run) => run.p99)),
        p50Ratio: byRound((base, run) => run.p50 / base.p50),
        p50Extra: byRound((base, run) => run.p50 - base.p50),
        cpuPerOp: median(list.map((run) => run.cpuPerOp)),
      };
    });
  });
  return {
    serverVersion: version,
    keys: keys.length,
    measuredSeconds,
    sinceFirstUse,
    summary,
    runs,
  };
}

function printApiKeys({ summary, sinceFirstUse }: Awaited<ReturnType<typeof runApiKeys>>): void {
  console.log(
    `\n3. API-key verification against PostgreSQL: median over the rounds; p99 range = min–max of\n` +
      `   the rounds' p99; p50 ratio and +p50 = median over the rounds against lookup's p50 in the\n` +
      `   same round (lookup = the same withTenant select by hand). ${sinceFirstUse.toFixed(0)} s from\n` +
      `   verify's first use of the keys to the end (last_used_at is written once a minute per key)\n`,
  );
  printTable(
    [
      'load',
      'mode',
      'ops/s',
      'spread',
      'p50 µs',
      'p99 µs',
      'p99 range',
      'p50 ratio',
      '+p50 µs',
      'Node CPU µs/op',
    ],
    summary.flatMap((row, index) => [
      ...(index > 0 && row.mode === KEY_BASELINE ? [null] : []),
      [
        `${row.load} (${row.callers})`,
        row.mode,
        Math.round(row.opsPerSecond).toString(),
        `${Math.round(row.spread * 100)} %`,
        Math.round(row.p50).toString(),
        Math.round(row.p99).toString(),
        `${Math.round(row.p99Range[0])}–${Math.round(row.p99Range[1])}`,
        `${row.p50Ratio.toFixed(2)}×`,
        Math.round(row.p50Extra).toString(),
        row.cpuPerOp.toFixed(0),
      ],
    ]),
    2,
  );
}

// ================================================================== the run

const USAGE = `Usage: node auth/run.ts [options]

@flowforge/auth in one run: (1) JWT verifications/s, ours (cache miss, cache hit)
against raw jose; (2) an authenticated Fastify route against a bare hello-world;
(3) API-key verification p50/p99 against the same lookup by hand. Part 3 creates a
database ff_bench_<random> on ${PG_HOST} as ${OWNER} and drops it at the end.

Options:
  --rounds N         rounds of every part; medians are reported              (3)
  --jwt-duration S   seconds of each JWT measurement                         (2)
  --duration S       seconds of each autocannon run                          (5)
  --warmup S         seconds of the discarded autocannon warm-up             (2)
  --alg A            algorithm of part 2's token: ES256 or RS256             (ES256)
  --ops N            API-key operations per measurement                      (2000)
  --concurrency N    callers of the concurrent API-key load                  (8)
  --parts a,b,...    ${PARTS.join(', ')}                                 (all)
  --help             this text
`;

const isAlgorithm = (name: string): name is Algorithm => ALGORITHMS.some((alg) => alg === name);

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      'jwt-duration': { type: 'string', default: '2' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      alg: { type: 'string', default: 'ES256' },
      ops: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '8' },
      parts: { type: 'string', default: PARTS.join(',') },
      help: { type: 'boolean', default: false },
    },
  });
  if (flags.help) {
    process.stdout.write(USAGE);
    return;
  }
  const rounds = positiveFlag(flags, 'rounds', { integer: true });
  const jwtDuration = positiveFlag(flags, 'jwt-duration');
  const duration = positiveFlag(flags, 'duration');
  const warmup = positiveFlag(flags, 'warmup');
  const ops = positiveFlag(flags, 'ops', { integer: true });
  const concurrency = positiveFlag(flags, 'concurrency', { integer: true });
  const { alg } = flags;
  if (!isAlgorithm(alg)) throw new Error(`--alg: ${ALGORITHMS.join(' or ')}`);
  const settings: Settings = {
    rounds,
    jwtDuration,
    jwtWarmup: 0.2,
    duration,
    warmup,
    alg,
    ops,
    concurrency,
    connections: CONNECTIONS,
    pipelining: PIPELINING,
  };
  const parts = flags.parts.split(',').filter(Boolean);
  for (const part of parts) {
    if (!PARTS.includes(part)) throw new Error(`unknown part "${part}" (${PARTS.join(', ')})`);
  }

  // The package is measured as built: which build, for the results.
  const distPath = fileURLToPath(import.meta.resolve('@flowforge/auth'));
  const dist = {
    sha256: createHash('sha256')
      .update(await readFile(distPath))
      .digest('hex')
      .slice(0, 12),
    built: (await stat(distPath)).mtime.toISOString(),
  };
  const loadBefore = os.loadavg();
  const seconds =
    (parts.includes('jwt')
      ? settings.rounds *
          ALGORITHMS.length *
          JWT_MODES.length *
          (settings.jwtDuration + settings.jwtWarmup) +
        3
      : 0) +
    (parts.includes('http')
      ? settings.rounds * HTTP_MODES.length * (settings.duration + settings.warmup + 0.7)
      : 0) +
    (parts.includes('apikey') ? 25 : 0);
  console.log(
    `auth bench: ${parts.join(', ')}; ${settings.rounds} rounds; about ${(seconds / 60).toFixed(1)} min; ` +
      `${machineLoad(loadBefore)}; Node ${process.version}; ` +
      `@flowforge/auth dist ${dist.sha256} built ${dist.built}\n`,
  );

  const realm = await startRealm(ALGORITHMS);
  handles.push(() => realm.close());
  // API keys first: run after the HTTP part (the process had just driven autocannon
  // for a minute and a half), their p99 came out several times higher.
  const apiKeys = parts.includes('apikey') ? await runApiKeys(settings) : undefined;
  const jwt = parts.includes('jwt') ? await runJwt(realm, settings) : undefined;
  const http = parts.includes('http') ? await runHttp(realm, settings) : undefined;

  if (jwt) printJwt(jwt);
  if (http) printHttp(http);
  if (apiKeys) printApiKeys(apiKeys);

  const verdict: Record<string, unknown> = {};
  const lines: string[] = [];
  const mark = (met: boolean) => (met ? 'met' : 'NOT MET');
  if (jwt) {
    const miss = recordOf(
      ALGORITHMS,
      (alg) =>
        jwt.summary.find((row) => row.alg === alg && row.mode === 'verifier-miss')?.ratio ??
        Number.NaN,
    );
    const met = Object.values(miss).every((ratio) => ratio >= TARGETS.jwtMiss);
    verdict.jwtMiss = { ratios: miss, target: TARGETS.jwtMiss, met };
    lines.push(
      `cache-miss verify/jose ${ALGORITHMS.map((alg) => `${alg} ${miss[alg].toFixed(2)}×`).join(', ')} ` +
        `(≥ ${TARGETS.jwtMiss.toFixed(2)}×) ${mark(met)}`,
    );
  }
  if (http) {
    const row = (mode: HttpMode) => {
      const found = http.summary.find((entry) => entry.mode === mode);
      if (!found) throw new Error(`no ${mode} row`);
      return found;
    };
    const auth = row('auth');
    const observability = row('observability');
    const met = auth.ratio >= TARGETS.route;
    verdict.route = { ratio: auth.ratio, cpuRatio: auth.cpuRatio, target: TARGETS.route, met };
    lines.push(
      `authenticated route/bare ${auth.ratio.toFixed(2)}× (≥ ${TARGETS.route.toFixed(2)}×; ` +
        `CPU ${auth.cpuRatio.toFixed(2)}×) ${mark(met)} [observability alone ` +
        `${observability.ratio.toFixed(2)}×; auth on top of it ${auth.vsObservability.toFixed(2)}×]`,
    );
  }
  if (apiKeys) {
    const row = (load: string, mode: KeyMode) => {
      const found = apiKeys.summary.find((entry) => entry.load === load && entry.mode === mode);
      if (!found) throw new Error(`no ${load}/${mode} row`);
      return found;
    };
    const apiKeyP99: Record<string, unknown> = { target: TARGETS.apiKeyP99Micros };
    verdict.apiKeyP99 = apiKeyP99;
    const byLoad = [];
    for (const load of ['sequential', 'concurrent']) {
      const verify = row(load, 'verify');
      const lookup = row(load, KEY_BASELINE);
      const met = verify.p99 < TARGETS.apiKeyP99Micros;
      apiKeyP99[load] = {
        callers: verify.callers,
        p99: verify.p99,
        lookupP99: lookup.p99,
        met,
      };
      byLoad.push(
        `${load} (${verify.callers}) ${(verify.p99 / 1000).toFixed(2)} ms ${mark(met)} ` +
          `[lookup by hand ${(lookup.p99 / 1000).toFixed(2)} ms]`,
      );
    }
    lines.push(`API key verify p99 < ${TARGETS.apiKeyP99Micros / 1000} ms: ${byLoad.join(', ')}`);
  }
  console.log(`\ntargets:\n${lines.map((line) => `  ${line}`).join('\n')}`);

  await writeResults(
    RESULTS,
    { loadBefore, servers: { postgres: apiKeys?.serverVersion } },
    {
      authDist: dist,
      settings: { ...settings, parts },
      verdict,
      ...(apiKeys ? { apiKeys } : {}),
      ...(jwt ? { jwt } : {}),
      ...(http ? { http } : {}),
    },
  );
  console.log(`results written to ${RESULTS}`);
}

if (process.argv[2] === 'serve') {
  await serveMode(process.argv.slice(3));
} else {
  tearDownOnSignals('stopping servers, dropping the bench database', teardown);
  try {
    await main();
  } finally {
    await teardown();
  }
}
