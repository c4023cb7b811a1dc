// Tenant-scoped reads through @flowforge/db's withTenant against the same query
// without a transaction, in one run; each result is reported as a ratio to bare.
// Needs the PostgreSQL of scripts/services (trust auth on loopback). See ../README.md.
//
// Usage: node db/run.ts [--rounds 5] [--duration 1.5] [--warmup 0.25] [--concurrency 8]
//                        [--pool 4] [--modes a,b,c] [--tenants 10] [--rows 1000] [--help]
import { randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  createDatabase,
  createTenantTable,
  migrateToLatest,
  type Database,
  type Migrations,
} from '@flowforge/db';
import { sql, type CompiledQuery, type Kysely } from 'kysely';
import pg from 'pg';
import {
  allNumbers,
  entryOf,
  machineLoad,
  median,
  perRound,
  percentile,
  positiveFlag,
  printTable,
  processCpu,
  recordOf,
  rotated,
  spread,
  tearDownOnSignals,
  writeResults,
} from '../lib/harness.ts';
import {
  APP_LOGIN,
  APP_ROLE,
  OWNER,
  PG_HOST,
  SUPERUSER,
  adminQuery,
  appPool,
  dropDatabase,
  pgUrl,
  quiet,
  serverVersion,
} from '../lib/postgres.ts';

const BASELINE = 'bare';
const MODES = ['bare', 'withTenant', 'manual', 'manual-kysely'] as const;
type Mode = (typeof MODES)[number];
const WORKLOADS = ['point', 'list'] as const;
type WorkloadName = (typeof WORKLOADS)[number];
const LIST_LIMIT = 20;
const TARGET_EXTRA_ROUND_TRIPS = 2;
// Pools are idle for most of a round (the other modes run): keep their
// connections, so that a measurement does not start by reconnecting.
const IDLE_TIMEOUT_MS = 120_000;

const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));

const USAGE = `Usage: node bench/db/run.ts [options]

A tenant-scoped read through withTenant of @flowforge/db against the same query on
the pool without a transaction (bare), and against hand-written transactions; each
mode's ops/s and p50 as a ratio to bare in the same round, median over the rounds.
Creates a database ff_bench_<random> on ${PG_HOST} as ${OWNER} and drops it at the end.

Options:
  --rounds N        measurements per mode and load; the median is reported   (5)
  --duration S      seconds of each measured run                             (1.5)
  --warmup S        seconds of the discarded warm-up before each one         (0.25)
  --concurrency N   callers of the concurrent load                           (8)
  --pool N          poolSize of every pool                                   (4)
  --modes a,b,...   ${MODES.join(', ')} (bare is always added)   (all)
  --tenants N       tenants seeded                                           (10)
  --rows N          rows seeded per tenant (at least ${LIST_LIMIT})                   (1000)
  --help            this text
`;

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '1.5' },
    warmup: { type: 'string', default: '0.25' },
    concurrency: { type: 'string', default: '8' },
    pool: { type: 'string', default: '4' },
    modes: { type: 'string', default: MODES.join(',') },
    tenants: { type: 'string', default: '10' },
    rows: { type: 'string', default: '1000' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const rounds = positiveFlag(flags, 'rounds', { integer: true });
const duration = positiveFlag(flags, 'duration');
const warmup = positiveFlag(flags, 'warmup', { min: -1 });
const concurrency = positiveFlag(flags, 'concurrency', { integer: true });
const poolSize = positiveFlag(flags, 'pool', { integer: true });
const tenantCount = positiveFlag(flags, 'tenants', { integer: true });
const rowsPerTenant = positiveFlag(flags, 'rows', { integer: true, min: LIST_LIMIT - 1 });
const isMode = (name: string): name is Mode => MODES.some((mode) => mode === name);
const modes = flags.modes
  .split(',')
  .filter(Boolean)
  .map((mode): Mode => {
    if (!isMode(mode)) throw new Error(`unknown mode "${mode}" (${MODES.join(', ')})`);
    return mode;
  });
if (!modes.includes(BASELINE)) modes.unshift(BASELINE);
const loads = [
  { name: 'sequential', callers: 1 },
  { name: 'concurrent', callers: concurrency },
];

// ------------------------------------------------------------------ the database

/** The bench's table, as Kysely sees it. */
interface Item {
  id: string;
  tenant_id: string;
  name: string;
  created_at: Date;
}
interface BenchDatabase {
  items: Item;
}

const migrations: Migrations = {
  '2026-11-28-0001-items': {
    async up(db) {
      await createTenantTable(db, 'items', (table) =>
        table
          .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
          .addColumn('name', 'text', (col) => col.notNull())
          .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
          .addUniqueConstraint('items_tenant_id_key', ['tenant_id', 'id']),
      );
      // What an app would have for its "latest items" list: the list read is an index scan.
      await db.schema
        .createIndex('items_tenant_created_idx')
        .on('items')
        .columns(['tenant_id', 'created_at'])
        .execute();
    },
  },
};

/** Seeds as the superuser (it bypasses the forced row-level security); returns the tenant ids. */
async function seed(name: string) {
  const tenants = Array.from({ length: tenantCount }, () => randomUUID());
  const client = new pg.Client({ connectionString: pgUrl(SUPERUSER, name) });
  await client.connect();
  try {
    await client.query(
      `insert into items (tenant_id, name, created_at)
       select t.id, 'item ' || g, now() - g * interval '1 second'
       from unnest($1::uuid[]) as t(id), generate_series(1, $2::int) as g`,
      [tenants, rowsPerTenant],
    );
    await client.query('vacuum (analyze) items');
    const { rows } = await client.query<{ id: string }>(
      'select id from items where tenant_id = $1 order by random()',
      [tenants[0]],
    );
    const ids = rows.map((row) => row.id);
    const [tenant] = tenants;
    const [firstId] = ids;
    if (tenant === undefined || firstId === undefined) throw new Error('nothing was seeded');
    // The reads are the first tenant's.
    return { tenant, ids, firstId, serverVersion: await serverVersion(client) };
  } finally {
    await client.end();
  }
}

// ------------------------------------------------------------------ the modes

/** A read: its query (on the pool or in a transaction) and how many rows it returns. */
interface Workload {
  build: (
    q: Kysely<BenchDatabase>,
    id: string,
  ) => { compile(): CompiledQuery; execute(): Promise<Item[]> };
  expected: number;
}

const workloads: Record<WorkloadName, Workload> = {
  point: {
    build: (q, id) => q.selectFrom('items').selectAll().where('id', '=', id),
    expected: 1,
  },
  list: {
    build: (q) => q.selectFrom('items').selectAll().orderBy('created_at', 'desc').limit(LIST_LIMIT),
    expected: LIST_LIMIT,
  },
};

/** One read of one mode, by item id; resolves to its rows. */
type Operation = (id: string) => Promise<readonly object[]>;
type Operations = Record<WorkloadName, Record<Mode, Operation>>;

/**
 * The operations of every mode over the given handles:
 * - bare: the query on the pool, no transaction (its connections have the tenant
 *   and role set for the session, so row-level security shows the same rows);
 * - withTenant: database.withTenant (BEGIN-with-settings, the query, COMMIT);
 * - manual: BEGIN / set_config / the query / COMMIT by hand on a pg client;
 * - manual-kysely: the same four round trips through database.withTransaction.
 */
function operations({
  bareDb,
  appDb,
  manualPool,
  tenant,
}: {
  bareDb: Database<BenchDatabase>;
  appDb: Database<BenchDatabase>;
  manualPool: pg.Pool;
  tenant: string;
}): Operations {
  const setTenant = `select set_config('app.tenant_id', $1, true), set_config('role', '${APP_ROLE}', true)`;
  const opsOf = (name: WorkloadName): Record<Mode, Operation> => {
    const workload = workloads[name];
    // The very SQL text Kysely sends, for the hand-written transaction.
    const { sql: text } = workload.build(appDb.db, randomUUID()).compile();
    const params: (id: string) => unknown[] = name === 'point' ? (id) => [id] : () => [LIST_LIMIT];
    return {
      bare: (id) => workload.build(bareDb.db, id).execute(),
      withTenant: (id) => appDb.withTenant(tenant, (trx) => workload.build(trx, id).execute()),
      async manual(id) {
        const client = await manualPool.connect();
        let failed: Error | undefined;
        try {
          await client.query('begin');
          await client.query(setTenant, [tenant]);
          const { rows } = await client.query<Item>(text, params(id));
          await client.query('commit');
          return rows;
        } catch (error) {
          // A client that failed mid-transaction is discarded rather than reused.
          failed = error instanceof Error ? error : new Error(String(error));
          await client.query('rollback').catch(() => undefined);
          throw error;
        } finally {
          client.release(failed);
        }
      },
      'manual-kysely': (id) =>
        appDb.withTransaction(async (trx) => {
          await sql`select set_config('app.tenant_id', ${tenant}, true), set_config('role', ${APP_ROLE}, true)`.execute(
            trx,
          );
          return workload.build(trx, id).execute();
        }),
    };
  };
  return { point: opsOf('point'), list: opsOf('list') };
}

/** The SQL text of a client.query() call's first argument. */
function statementText(first: unknown): string {
  if (typeof first === 'string') return first;
  if (typeof first === 'object' && first !== null && 'text' in first) {
    if (typeof first.text === 'string') return first.text;
  }
  return 'object';
}

/** A one-connection pool whose client counts what it sends: one client.query is one round trip. */
function countingPool(url: string): { pool: pg.Pool; sent: string[] } {
  const sent: string[] = [];
  const pool = quiet(new pg.Pool({ connectionString: url, max: 1 }));
  pool.on('connect', (client) => {
    const query: (...args: unknown[]) => unknown = client.query.bind(client);
    // An own property in place of the prototype's method, as an assignment would make it.
    Object.defineProperty(client, 'query', {
      value: (...args: unknown[]) => {
        sent.push(statementText(args[0]));
        return query(...args);
      },
      writable: true,
      enumerable: true,
      configurable: true,
    });
  });
  return { pool, sent };
}

/** Round trips per operation, counted once per mode and workload; also checks that all modes return the same rows. */
async function countRoundTrips(name: string, tenant: string, id: string) {
  const bare = countingPool(pgUrl(APP_LOGIN, name, sessionTenant(tenant)));
  const app = countingPool(pgUrl(APP_LOGIN, name));
  const manual = countingPool(pgUrl(APP_LOGIN, name));
  const bareDb = createDatabase<BenchDatabase>({ pool: bare.pool });
  const appDb = createDatabase<BenchDatabase>({ pool: app.pool });
  const counters = { bare, withTenant: app, 'manual-kysely': app, manual };
  const ops = operations({ bareDb, appDb, manualPool: manual.pool, tenant });
  const counted = recordOf(WORKLOADS, () => recordOf(MODES, () => 0));
  const statements = recordOf(WORKLOADS, () => recordOf(MODES, (): string[] => []));
  try {
    for (const workload of WORKLOADS) {
      const countedHere = counted[workload];
      const statementsHere = statements[workload];
      let reference: string | undefined;
      for (const mode of MODES) {
        const { sent } = counters[mode];
        await ops[workload][mode](id); // connects first
        sent.length = 0;
        const rows = await ops[workload][mode](id);
        countedHere[mode] = sent.length;
        statementsHere[mode] = [...sent];
        const same = JSON.stringify(rows.map((row) => ({ ...row })));
        reference ??= same;
        if (rows.length !== workloads[workload].expected || same !== reference) {
          throw new Error(`${workload}/${mode}: not the same rows as bare; the comparison is void`);
        }
      }
    }
  } finally {
    await bareDb.close();
    await appDb.close();
    await Promise.all([bare.pool.end(), app.pool.end(), manual.pool.end()]);
  }
  return { counted, statements };
}

/** Session-level tenant and role for bare's connections (startup parameters, no extra round trip). */
const sessionTenant = (tenant: string) => `-c app.tenant_id=${tenant} -c role=${APP_ROLE}`;

// ------------------------------------------------------------------ measuring

/** One measurement of one mode. */
interface Run {
  ops: number;
  opsPerSecond: number;
  /** µs */
  p50: number;
  p99: number;
  /** Node's CPU time (user + system) per operation, µs: the client side's cost. */
  cpuPerOp: number;
  /** PostgreSQL's, µs; null when /proc could not be read. */
  serverCpuPerOp: number | null;
}

/** `callers` loops calling `op` back to back for `seconds`; latencies in µs. */
async function drive(
  op: Operation,
  expected: number,
  ids: readonly string[],
  callers: number,
  seconds: number,
): Promise<Omit<Run, 'serverCpuPerOp'>> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const cpuBefore = process.cpuUsage();
  const caller = async () => {
    while (performance.now() < deadline) {
      const id = ids[next % ids.length];
      if (id === undefined) throw new Error('no item ids to read');
      next += 1;
      const t0 = performance.now();
      const rows = await op(id);
      latencies.push((performance.now() - t0) * 1000);
      if (rows.length !== expected) {
        throw new Error(`got ${rows.length} rows instead of ${expected}; the numbers are void`);
      }
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const sorted = Float64Array.from(latencies).sort();
  return {
    ops: sorted.length,
    opsPerSecond: sorted.length / elapsed,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    // Node's CPU time (user + system) per operation: the client side's cost.
    cpuPerOp: (cpu.user + cpu.system) / sorted.length,
  };
}

/**
 * CPU time (user + system, µs) of the bench database's server processes, from
 * /proc: the server's share of the work (PostgreSQL runs on this machine). The
 * monitor's own backend is left out; null when /proc cannot be read.
 */
async function serverCpu(monitor: pg.Client): Promise<Map<number, number> | null> {
  const { rows } = await monitor.query<{ pid: number }>(
    'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
  );
  const byPid = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      byPid.set(pid, await processCpu(pid));
    } catch {
      return null;
    }
  }
  return byPid;
}

/** Server CPU between two serverCpu() readings; a backend born in between counts from 0. */
function serverCpuDelta(
  before: Map<number, number> | null,
  after: Map<number, number> | null,
): number | null {
  if (!before || !after) return null;
  let total = 0;
  for (const [pid, micros] of after) total += micros - (before.get(pid) ?? 0);
  return total;
}

// ------------------------------------------------------------------ the run

const handles: (() => Promise<unknown>)[] = [];
let databaseName: string | undefined;
let dropping: Promise<void> | undefined;

/** Closes every handle (bounded) and drops the bench database; once. */
function teardown(): Promise<void> {
  dropping ??= (async () => {
    const closing = Promise.allSettled(handles.map((close) => close()));
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 3_000).unref())]);
    // As the owner, who created it.
    if (databaseName) await dropDatabase(OWNER, databaseName);
  })();
  return dropping;
}

tearDownOnSignals('dropping the bench database', teardown);

async function main() {
  const loadBefore = os.loadavg();
  const measurements = rounds * modes.length * WORKLOADS.length * loads.length;
  console.log(
    `db bench: ${modes.length} modes × ${WORKLOADS.length} reads × ${loads.length} loads × ${rounds} rounds × ` +
      `(${warmup} s warm-up + ${duration} s); pools of ${poolSize}, ${concurrency} concurrent callers; ` +
      `about ${((measurements * (duration + warmup)) / 60 + 0.2).toFixed(1)} min; ` +
      machineLoad(loadBefore),
  );

  const name = `ff_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery({ as: OWNER }, `create database ${name}`);
  databaseName = name;
  const ownerDb = createDatabase({ url: pgUrl(OWNER, name), poolSize: 1 });
  try {
    await migrateToLatest(ownerDb.db, { migrations });
  } finally {
    await ownerDb.close();
  }
  const seeded = await seed(name);
  const { tenant, ids } = seeded;
  console.log(
    `database ${name}: PostgreSQL ${seeded.serverVersion}, ${tenantCount} tenants × ${rowsPerTenant} rows; ` +
      `reads as tenant ${tenant}\n`,
  );

  const { counted, statements } = await countRoundTrips(name, tenant, seeded.firstId);
  console.log('round trips per operation (client.query calls, counted once):');
  for (const workload of WORKLOADS) {
    console.log(
      `  ${workload.padEnd(6)} ${MODES.map((m) => `${m} ${counted[workload][m]}`).join(', ')}`,
    );
  }
  console.log(
    `  withTenant sends: ${statements.point.withTenant.map((s) => JSON.stringify(s)).join(' | ')}\n`,
  );

  const options = { poolSize, idleTimeoutMs: IDLE_TIMEOUT_MS };
  const bareDb = createDatabase<BenchDatabase>({
    url: pgUrl(APP_LOGIN, name, sessionTenant(tenant)),
    ...options,
  });
  const appDb = createDatabase<BenchDatabase>({ url: pgUrl(APP_LOGIN, name), ...options });
  // The same settings createDatabase gives its own pool.
  const manualPool = appPool(pgUrl(APP_LOGIN, name), poolSize, IDLE_TIMEOUT_MS);
  // Reads the server processes' pids between measurements. As the owner, not the
  // superuser: the owner's drop … with (force) could not end a superuser's backend.
  const monitor = new pg.Client({ connectionString: pgUrl(OWNER, name) });
  monitor.on('error', () => undefined);
  await monitor.connect();
  handles.push(
    () => bareDb.close(),
    () => appDb.close(),
    () => manualPool.end(),
    () => monitor.end(),
  );
  const ops = operations({ bareDb, appDb, manualPool, tenant });

  // JIT and connections: every mode, every read, both loads, once, discarded.
  for (const load of loads) {
    for (const workload of WORKLOADS) {
      for (const mode of modes) {
        await drive(ops[workload][mode], workloads[workload].expected, ids, load.callers, 0.3);
      }
    }
  }

  const groups = loads.flatMap((load) => WORKLOADS.map((workload) => ({ load, workload })));
  const runs = recordOf(
    groups.map(({ load, workload }) => `${load.name}/${workload}`),
    () => recordOf<string, Run[]>(modes, () => []),
  );
  for (let round = 0; round < rounds; round += 1) {
    for (const { load, workload } of groups) {
      const group = entryOf(runs, `${load.name}/${workload}`);
      for (const mode of rotated(modes, round)) {
        const op = ops[workload][mode];
        const { expected } = workloads[workload];
        await drive(op, expected, ids, load.callers, warmup);
        const before = await serverCpu(monitor);
        const measured = await drive(op, expected, ids, load.callers, duration);
        const serverMicros = serverCpuDelta(before, await serverCpu(monitor));
        const run: Run = {
          ...measured,
          serverCpuPerOp: serverMicros === null ? null : serverMicros / measured.ops,
        };
        entryOf(group, mode).push(run);
        console.log(
          `round ${round + 1}/${rounds}  ${load.name.padEnd(10)} ${workload.padEnd(5)} ${mode.padEnd(13)} ` +
            `${Math.round(run.opsPerSecond).toString().padStart(6)} ops/s  p50 ${Math.round(run.p50)} µs  ` +
            `p99 ${Math.round(run.p99)} µs  CPU/op ${run.cpuPerOp.toFixed(0)} µs Node` +
            (run.serverCpuPerOp === null ? '' : ` + ${run.serverCpuPerOp.toFixed(0)} µs server`),
        );
      }
    }
  }

  const summary = groups.flatMap(({ load, workload }) => {
    const group = entryOf(runs, `${load.name}/${workload}`);
    const baseline = entryOf(group, BASELINE);
    return modes.map((mode) => {
      const list = entryOf(group, mode);
      const ratio = (pick: (base: Run, run: Run) => number) =>
        median(perRound(list, baseline, pick));
      const serverCpus = list.map((run) => run.serverCpuPerOp);
      return {
        load: load.name,
        callers: load.callers,
        workload,
        mode,
        roundTrips: counted[workload][mode],
        opsPerSecond: median(list.map((run) => run.opsPerSecond)),
        spread: spread(list.map((run) => run.opsPerSecond)),
        ratio: ratio((base, run) => run.opsPerSecond / base.opsPerSecond),
        p50: median(list.map((run) => run.p50)),
        p99: median(list.map((run) => run.p99)),
        p50Ratio: ratio((base, run) => run.p50 / base.p50),
        p99Ratio: ratio((base, run) => run.p99 / base.p99),
        p50Extra: ratio((base, run) => run.p50 - base.p50),
        cpuPerOp: median(list.map((run) => run.cpuPerOp)),
        serverCpuPerOp: allNumbers(serverCpus) ? median(serverCpus) : null,
      };
    });
  });

  console.log(
    '\nmedian of each column over the rounds; spread = (max − min) ÷ median ops/s over the rounds;\n' +
      'ratio = median over the rounds of (ops/s ÷ bare ops/s in the same round); p50 ratio and\n' +
      '+p50 likewise against bare p50 in the same round; RT = round trips per operation\n',
  );
  printTable(
    [
      'load',
      'read',
      'mode',
      'RT',
      'ops/s',
      'spread',
      'ratio',
      'p50 µs',
      'p99 µs',
      'p50 ratio',
      '+p50 µs',
      'Node CPU µs/op',
      'server CPU µs/op',
    ],
    summary.flatMap((row, index) => [
      ...(index > 0 && row.mode === BASELINE ? [null] : []),
      [
        `${row.load} (${row.callers})`,
        row.workload,
        row.mode,
        String(row.roundTrips),
        Math.round(row.opsPerSecond).toString(),
        `${Math.round(row.spread * 100)} %`,
        `${row.ratio.toFixed(2)}×`,
        Math.round(row.p50).toString(),
        Math.round(row.p99).toString(),
        `${row.p50Ratio.toFixed(2)}×`,
        Math.round(row.p50Extra).toString(),
        row.cpuPerOp.toFixed(0),
        row.serverCpuPerOp === null ? '–' : row.serverCpuPerOp.toFixed(0),
      ],
    ]),
    3,
  );

  const extra = Math.max(
    ...WORKLOADS.map((workload) => counted[workload].withTenant - counted[workload].bare),
  );
  const verdict = {
    extraRoundTrips: extra,
    target: TARGET_EXTRA_ROUND_TRIPS,
    met: extra <= TARGET_EXTRA_ROUND_TRIPS,
  };
  const sequentialPoint = summary.find(
    (row) => row.load === 'sequential' && row.workload === 'point' && row.mode === 'withTenant',
  );
  console.log(
    `\nwithTenant = bare + ${extra} round trips (target ≤ ${TARGET_EXTRA_ROUND_TRIPS}): ` +
      (verdict.met ? 'target met' : 'TARGET NOT MET') +
      (sequentialPoint
        ? `; sequential point read: p50 ${sequentialPoint.p50Ratio.toFixed(2)}× bare ` +
          `(+${Math.round(sequentialPoint.p50Extra)} µs), ${sequentialPoint.ratio.toFixed(2)}× bare ops/s`
        : ''),
  );

  await writeResults(
    RESULTS,
    { loadBefore, servers: { postgres: seeded.serverVersion } },
    {
      settings: {
        rounds,
        duration,
        warmup,
        concurrency,
        poolSize,
        tenants: tenantCount,
        rowsPerTenant,
        listLimit: LIST_LIMIT,
        modes,
      },
      roundTrips: counted,
      statements,
      summary,
      verdict,
      runs,
    },
  );
  console.log(`results written to ${RESULTS}`);
}

try {
  await main();
} finally {
  await teardown();
}
