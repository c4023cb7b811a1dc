// The sample app's authenticated read route (GET /api/v1/dashboards: a Keycloak-
// shaped JWT, a tenant transaction on PostgreSQL, 20 dashboards of JSON) against a
// bare Fastify hello-world, in one run; the app's cheaper routes in between show
// where the time goes. Each result is a ratio to bare in the same round. See ../README.md.
//
// Usage: node app/run.ts [--rounds 3] [--duration 10] [--warmup 2] [--connections 50]
//                         [--modes bare,live,me,dashboards]
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  checkedLoad,
  entryOf,
  firstRequest,
  freePort,
  isRecord,
  machineLoad,
  median,
  oneMinuteLoad,
  perRound,
  pidOf,
  positiveFlag,
  printTable,
  processCpu,
  range,
  recordOf,
  rotated,
  spread,
  startServer,
  stopServer,
  tearDownOnSignals,
  writeResults,
  type LoadSummary,
} from '../lib/harness.ts';
import { SUPERUSER, adminQuery } from '../lib/postgres.ts';
import { startRealm, type Realm } from '../lib/realm.ts';
import {
  APP_MAIN,
  appEnvironment,
  createSeededDatabase,
  requireBuiltApp,
  startApp,
  type SeededDatabase,
} from './common.ts';

const BASELINE = 'bare';
/** What each mode serves; `app: true` is the built sample app (dist/main.js). */
const MODES: Record<string, { path: string; app: boolean; what: string }> = {
  bare: { path: '/hello', app: false, what: 'Fastify() hello-world (the baseline)' },
  live: { path: '/health/live', app: true, what: 'the app, no auth, no I/O' },
  me: { path: '/api/v1/me', app: true, what: 'the app, bearer JWT (cache hit), no I/O' },
  dashboards: {
    path: '/api/v1/dashboards',
    app: true,
    what: 'the app, bearer JWT, withTenant select of 20 rows on PostgreSQL',
  },
};
const TARGET_MODE = 'dashboards';
const TENANT = '7d3f5a2e-4b1c-4e8d-9a6f-00000000b0b0';
const APP_NAME = 'flowforge-bench';

const SERVER = fileURLToPath(new URL('./bare-server.ts', import.meta.url));
const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));

const USAGE = `Usage: node app/run.ts [options]

GET /api/v1/dashboards of the built sample app (apps/sample-api/dist/main.js,
APP_ENV=production, a Keycloak-shaped RS256 token, PostgreSQL of scripts/services)
against a bare Fastify hello-world, and the app's /health/live and /api/v1/me in
between. Creates a database ff_bench_<random> and drops it at the end.

Options:
  --rounds N        measurements per mode; medians are reported        (3)
  --duration S      seconds of each measured autocannon run            (10)
  --warmup S        seconds of the discarded warm-up before each one   (2)
  --connections N   autocannon connections (no pipelining)             (50)
  --modes a,b,...   ${Object.keys(MODES).join(', ')} (bare is always added)   (all)
  --help            this text
`;

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    modes: { type: 'string', default: Object.keys(MODES).join(',') },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const settings = {
  rounds: positiveFlag(flags, 'rounds', { integer: true }),
  duration: positiveFlag(flags, 'duration'),
  warmup: positiveFlag(flags, 'warmup'),
  connections: positiveFlag(flags, 'connections', { integer: true }),
  pipelining: 1,
};
const modes = flags.modes.split(',').filter(Boolean);
for (const mode of modes) {
  if (!(mode in MODES))
    throw new Error(`unknown mode "${mode}" (${Object.keys(MODES).join(', ')})`);
}
if (!modes.includes(BASELINE)) modes.unshift(BASELINE);
/** The route of a mode (every mode of `modes` is one of MODES). */
const pathOf = (mode: string): string => entryOf(MODES, mode).path;
requireBuiltApp();

// ------------------------------------------------------------------ clean-up

const children = new Set<ChildProcess>();
const cleanups: (() => Promise<unknown>)[] = [];
let tearingDown: Promise<void> | undefined;
function teardown(): Promise<void> {
  tearingDown ??= (async () => {
    for (const child of children) child.kill('SIGKILL');
    for (const cleanup of cleanups.reverse()) await cleanup().catch(console.error);
  })();
  return tearingDown;
}
tearDownOnSignals('stopping servers, dropping the bench database', teardown);

// ------------------------------------------------------------------ measuring

/** CPU time of the app's PostgreSQL backends (by pid, from /proc), in µs. */
async function backendCpu(database: string): Promise<Map<number, number>> {
  const { rows } = await adminQuery<{ pid: number }>(
    { as: SUPERUSER },
    'select pid from pg_stat_activity where datname = $1 and application_name = $2',
    [database, APP_NAME],
  );
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      cpu.set(pid, await processCpu(pid));
    } catch {
      // the backend just exited
    }
  }
  return cpu;
}

/** CPU used between two backendCpu() readings by the backends present in both. */
function backendCpuUsed(before: Map<number, number>, after: Map<number, number>): number {
  let used = 0;
  for (const [pid, cpu] of after) {
    const start = before.get(pid);
    if (start !== undefined) used += cpu - start;
  }
  return used;
}

/** One measurement of one mode. */
interface Run extends LoadSummary {
  bytesPerResponse: number;
  /** the server process's CPU, µs */
  cpuPerRequest: number;
  /** its PostgreSQL backends' CPU, µs */
  pgCpuPerRequest: number;
  pgBackends: number;
}

/** What every measurement needs. */
interface Context {
  realm: Realm;
  database: SeededDatabase;
  dashboards: number;
  authorization: string;
}

/** One autocannon run; throws when any response was not 2xx or any request failed. */
async function load(mode: string, base: string, seconds: number, authorization: string) {
  const { summary, result } = await checkedLoad(mode, {
    url: `${base}${pathOf(mode)}`,
    connections: settings.connections,
    pipelining: settings.pipelining,
    duration: seconds,
    headers: { authorization },
  });
  return { ...summary, bytesPerResponse: result.throughput.total / result.requests.total };
}

async function start(
  mode: string,
  context: Context,
): Promise<{ child: ChildProcess; base: string }> {
  const port = await freePort();
  if (!entryOf(MODES, mode).app) {
    const child = await startServer(mode, [SERVER, String(port)]);
    return { child, base: `http://127.0.0.1:${port}` };
  }
  const app = await startApp(
    appEnvironment({
      port,
      databaseUrl: context.database.appUrl,
      keycloakUrl: context.realm.url,
    }),
  );
  return app;
}

/** How many dashboards a list answer holds (undefined when it is not one). */
function itemCount(body: string): number | undefined {
  const parsed: unknown = JSON.parse(body);
  return isRecord(parsed) && Array.isArray(parsed.items) ? parsed.items.length : undefined;
}

async function measure(mode: string, context: Context): Promise<Run> {
  const { child, base } = await start(mode, context);
  children.add(child);
  try {
    // One request alone first: the app fetches the JWKS here, not under load.
    const firstBody = await firstRequest(mode, `${base}${pathOf(mode)}`, context.authorization);
    if (mode === TARGET_MODE && itemCount(firstBody) !== context.dashboards) {
      throw new Error(`"${mode}": expected ${context.dashboards} dashboards: ${firstBody}`);
    }
    await load(mode, base, settings.warmup, context.authorization); // JIT, pool: discarded
    const pid = pidOf(child);
    const pgBefore = await backendCpu(context.database.name);
    const cpuBefore = await processCpu(pid);
    const run = await load(mode, base, settings.duration, context.authorization);
    const cpuPerRequest = ((await processCpu(pid)) - cpuBefore) / run.requests;
    const pgAfter = await backendCpu(context.database.name);
    return {
      ...run,
      cpuPerRequest,
      pgCpuPerRequest: backendCpuUsed(pgBefore, pgAfter) / run.requests,
      pgBackends: pgAfter.size,
    };
  } finally {
    await stopServer(child);
    children.delete(child);
  }
}

// ------------------------------------------------------------------ the run

const distBytes = await readFile(APP_MAIN);
const dist = {
  sha256: createHash('sha256').update(distBytes).digest('hex').slice(0, 12),
  built: (await stat(APP_MAIN)).mtime.toISOString(),
};
const loadBefore = os.loadavg();
const minutes = (settings.rounds * modes.length * (settings.duration + settings.warmup + 1.5)) / 60;
console.log(
  `app bench: ${modes.length} modes × ${settings.rounds} rounds × (${settings.warmup} s warm-up + ` +
    `${settings.duration} s), ${settings.connections} connections; about ${minutes.toFixed(1)} min; ` +
    `${machineLoad(loadBefore)}; Node ${process.version}; ` +
    `sample-api dist ${dist.sha256} built ${dist.built}\n`,
);

try {
  const realm = await startRealm(['RS256']);
  cleanups.push(() => realm.close());
  const dashboards = 20;
  const database = await createSeededDatabase({
    tenants: [TENANT],
    dashboardsPerTenant: dashboards,
    widgetsPerDashboard: 2,
  });
  cleanups.push(() => database.drop());
  console.log(
    `database ${database.name}: PostgreSQL ${database.serverVersion}; ${dashboards} dashboards ` +
      `per tenant in 51 tenants, 2 widgets each`,
  );
  const context: Context = {
    realm,
    database,
    dashboards,
    authorization: `Bearer ${await realm.token({ tenantId: TENANT, roles: ['viewer'] })}`,
  };

  const runs = recordOf(modes, (): Run[] => []);
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const mode of rotated(modes, round)) {
      const run = await measure(mode, context);
      entryOf(runs, mode).push(run);
      console.log(
        `round ${round + 1}/${settings.rounds}  ${mode.padEnd(10)} ` +
          `${Math.round(run.requestsPerSecond).toString().padStart(6)} req/s  p50 ${run.p50} ms  ` +
          `p99 ${run.p99} ms  CPU ${run.cpuPerRequest.toFixed(1)} µs/req (+ PostgreSQL ` +
          `${run.pgCpuPerRequest.toFixed(1)} µs/req, ${run.pgBackends} backends)`,
      );
    }
  }

  const serverCpu = (run: Run) => run.cpuPerRequest + run.pgCpuPerRequest;
  const summary = modes.map((mode) => {
    const list = entryOf(runs, mode);
    const byRound = (pick: (base: Run, run: Run) => number) =>
      perRound(list, entryOf(runs, BASELINE), pick);
    const ratios = byRound((base, run) => run.requestsPerSecond / base.requestsPerSecond);
    return {
      mode,
      path: pathOf(mode),
      requestsPerSecond: median(list.map((run) => run.requestsPerSecond)),
      spread: spread(list.map((run) => run.requestsPerSecond)),
      ratio: median(ratios),
      ratioRange: range(ratios),
      p50: median(list.map((run) => run.p50)),
      p99: median(list.map((run) => run.p99)),
      p99Range: range(list.map((run) => run.p99)),
      bytesPerResponse: median(list.map((run) => run.bytesPerResponse)),
      cpuPerRequest: median(list.map((run) => run.cpuPerRequest)),
      pgCpuPerRequest: median(list.map((run) => run.pgCpuPerRequest)),
      // Bare's server CPU per request ÷ this mode's (node + its PostgreSQL backends).
      cpuRatio: median(byRound((base, run) => serverCpu(base) / serverCpu(run))),
    };
  });

  console.log(
    `\nmedian of each column over the rounds; spread = (max − min) ÷ median req/s; ratio = median\n` +
      `over the rounds of (req/s ÷ bare req/s in the same round); CPU = the server process, PG = its\n` +
      `PostgreSQL backends; CPU ratio = bare's (CPU + PG) per request ÷ this mode's, same round\n`,
  );
  printTable(
    [
      'mode',
      'route',
      'req/s',
      'spread',
      'ratio',
      'ratio range',
      'p50 ms',
      'p99 ms',
      'p99 range',
      'bytes',
      'CPU µs/req',
      'PG µs/req',
      'CPU ratio',
    ],
    summary.map((row) => [
      row.mode,
      `GET ${row.path}`,
      Math.round(row.requestsPerSecond).toString(),
      `${Math.round(row.spread * 100)} %`,
      `${row.ratio.toFixed(2)}×`,
      `${row.ratioRange[0].toFixed(2)}–${row.ratioRange[1].toFixed(2)}×`,
      String(row.p50),
      String(row.p99),
      `${row.p99Range[0]}–${row.p99Range[1]}`,
      Math.round(row.bytesPerResponse).toString(),
      row.cpuPerRequest.toFixed(1),
      row.pgCpuPerRequest.toFixed(1),
      `${row.cpuRatio.toFixed(2)}×`,
    ]),
    2,
  );

  const target = summary.find((row) => row.mode === TARGET_MODE);
  if (target) {
    console.log(
      `\nGET /api/v1/dashboards ÷ bare hello-world: ${target.ratio.toFixed(2)}× req/s ` +
        `(p50 ${target.p50} ms, p99 ${target.p99} ms); by server CPU ${target.cpuRatio.toFixed(2)}×`,
    );
  }
  const loadAfter = os.loadavg();
  console.log(
    `load average ${oneMinuteLoad(loadBefore)} before, ${oneMinuteLoad(loadAfter)} after (1 min)`,
  );
  await writeResults(
    RESULTS,
    { loadBefore, servers: { postgres: database.serverVersion } },
    {
      appDist: dist,
      settings: { ...settings, modes, dashboards, routes: MODES },
      summary,
      runs,
    },
  );
  console.log(`results written to ${RESULTS}`);
} finally {
  await teardown();
}
