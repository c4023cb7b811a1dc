// Tenant-scoped reads through @flowforge/db's withTenant against the same query
// without a transaction, in one run; each result is reported as a ratio to bare.
// Needs the PostgreSQL of scripts/services (trust auth on loopback). See ../README.md.
//
// Usage: node db/run.mjs [--rounds 5] [--duration 1.5] [--warmup 0.25] [--concurrency 8]
//                        [--pool 4] [--modes a,b,c] [--tenants 10] [--rows 1000] [--help]
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createDatabase, createTenantTable, migrateToLatest } from '@flowforge/db';
import { sql } from 'kysely';
import pg from 'pg';
import {
  dropDatabase,
  median,
  percentile,
  spread,
  writeResults,
  positiveFlag,
} from '../lib/harness.mjs';

const BASELINE = 'bare';
const MODES = ['bare', 'withTenant', 'manual', 'manual-kysely'];
const WORKLOADS = ['point', 'list'];
const LIST_LIMIT = 20;
const TARGET_EXTRA_ROUND_TRIPS = 2;
const PG_HOST = '127.0.0.1:5432';
const OWNER = 'flowforge_owner';
const APP_LOGIN = 'flowforge';
const APP_ROLE = 'flowforge_app';
const SUPERUSER = 'postgres';
// Pools are idle for most of a round (the other modes run): keep their
// connections, so that a measurement does not start by reconnecting.
const IDLE_TIMEOUT_MS = 120_000;

const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));

const USAGE = `Usage: node bench/db/run.mjs [options]

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

const positive = (name, options) => positiveFlag(flags, name, options);
const rounds = positive('rounds', { integer: true });
const duration = positive('duration');
const warmup = positive('warmup', { min: -1 });
const concurrency = positive('concurrency', { integer: true });
const poolSize = positive('pool', { integer: true });
const tenantCount = positive('tenants', { integer: true });
const rowsPerTenant = positive('rows', { integer: true, min: LIST_LIMIT - 1 });
const modes = flags.modes.split(',').filter(Boolean);
for (const mode of modes) {
  if (!MODES.includes(mode)) throw new Error(`unknown mode "${mode}" (${MODES.join(', ')})`);
}
if (!modes.includes(BASELINE)) modes.unshift(BASELINE);
const loads = [
  { name: 'sequential', callers: 1 },
  { name: 'concurrent', callers: concurrency },
];

const urlFor = (user, database, options) =>
  `postgres://${user}:${user}@${PG_HOST}/${database}` +
  (options ? `?options=${encodeURIComponent(options)}` : '');

// ------------------------------------------------------------------ the database

const migrations = {
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

async function adminQuery(text) {
  const client = new pg.Client({ connectionString: urlFor(OWNER, 'postgres') });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

/** Seeds as the superuser (it bypasses the forced row-level security); returns the tenant ids. */
async function seed(name) {
  const tenants = Array.from({ length: tenantCount }, () => randomUUID());
  const client = new pg.Client({ connectionString: urlFor(SUPERUSER, name) });
  await client.connect();
  try {
    await client.query(
      `insert into items (tenant_id, name, created_at)
       select t.id, 'item ' || g, now() - g * interval '1 second'
       from unnest($1::uuid[]) as t(id), generate_series(1, $2::int) as g`,
      [tenants, rowsPerTenant],
    );
    await client.query('vacuum (analyze) items');
    const { rows } = await client.query(
      'select id from items where tenant_id = $1 order by random()',
      [tenants[0]],
    );
    const { rows: version } = await client.query('show server_version');
    return { tenants, ids: rows.map((row) => row.id), serverVersion: version[0].server_version };
  } finally {
    await client.end();
  }
}

// ------------------------------------------------------------------ the modes

const workloads = {
  point: {
    build: (q, id) => q.selectFrom('items').selectAll().where('id', '=', id),
    expected: 1,
  },
  list: {
    build: (q) => q.selectFrom('items').selectAll().orderBy('created_at', 'desc').limit(LIST_LIMIT),
    expected: LIST_LIMIT,
  },
};

/**
 * The operations of every mode over the given handles:
 * - bare: the query on the pool, no transaction (its connections have the tenant
 *   and role set for the session, so row-level security shows the same rows);
 * - withTenant: database.withTenant (BEGIN-with-settings, the query, COMMIT);
 * - manual: BEGIN / set_config / the query / COMMIT by hand on a pg client;
 * - manual-kysely: the same four round trips through database.withTransaction.
 */
function operations({ bareDb, appDb, manualPool, tenant }) {
  const setTenant = `select set_config('app.tenant_id', $1, true), set_config('role', '${APP_ROLE}', true)`;
  const ops = {};
  for (const [name, workload] of Object.entries(workloads)) {
    // The very SQL text Kysely sends, for the hand-written transaction.
    const { sql: text } = workload.build(appDb.db, randomUUID()).compile();
    const params = name === 'point' ? (id) => [id] : () => [LIST_LIMIT];
    ops[name] = {
      bare: (id) => workload.build(bareDb.db, id).execute(),
      withTenant: (id) => appDb.withTenant(tenant, (trx) => workload.build(trx, id).execute()),
      async manual(id) {
        const client = await manualPool.connect();
        let failed;
        try {
          await client.query('begin');
          await client.query(setTenant, [tenant]);
          const { rows } = await client.query(text, params(id));
          await client.query('commit');
          return rows;
        } catch (error) {
          failed = error;
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
  }
  return ops;
}

/** node-postgres crashes the process on a client error nobody listens to. */
function quiet(pool) {
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** A one-connection pool whose client counts what it sends: one client.query is one round trip. */
function countingPool(url) {
  const sent = [];
  const pool = quiet(new pg.Pool({ connectionString: url, max: 1 }));
  pool.on('connect', (client) => {
    const query = client.query.bind(client);
    client.query = (...args) => {
      sent.push(typeof args[0] === 'string' ? args[0] : (args[0]?.text ?? 'object'));
      return query(...args);
    };
  });
  return { pool, sent };
}

/** Round trips per operation, counted once per mode and workload; also checks that all modes return the same rows. */
async function countRoundTrips(name, tenant, id) {
  const bare = countingPool(urlFor(APP_LOGIN, name, sessionTenant(tenant)));
  const app = countingPool(urlFor(APP_LOGIN, name));
  const manual = countingPool(urlFor(APP_LOGIN, name));
  const bareDb = createDatabase({ pool: bare.pool });
  const appDb = createDatabase({ pool: app.pool });
  const counters = { bare, withTenant: app, 'manual-kysely': app, manual };
  const ops = operations({ bareDb, appDb, manualPool: manual.pool, tenant });
  const counted = {};
  const statements = {};
  try {
    for (const workload of WORKLOADS) {
      counted[workload] = {};
      statements[workload] = {};
      let reference;
      for (const mode of MODES) {
        const { sent } = counters[mode];
        await ops[workload][mode](id); // connects first
        sent.length = 0;
        const rows = await ops[workload][mode](id);
        counted[workload][mode] = sent.length;
        statements[workload][mode] = [...sent];
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
const sessionTenant = (tenant) => `-c app.tenant_id=${tenant} -c role=${APP_ROLE}`;

// ------------------------------------------------------------------ measuring

/** `callers` loops calling `op` back to back for `seconds`; latencies in µs. */
async function drive(op, expected, ids, callers, seconds) {
  const latencies = [];
  let next = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const cpuBefore = process.cpuUsage();
  const caller = async () => {
    while (performance.now() < deadline) {
      const id = ids[next % ids.length];
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
async function serverCpu(monitor) {
  const { rows } = await monitor.query(
    'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
  );
  const byPid = new Map();
  for (const { pid } of rows) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime and stime: fields 14 and 15 of stat (11 and 12 after the command), in ticks of 10 ms.
      byPid.set(pid, (Number(fields[11]) + Number(fields[12])) * 10_000);
    } catch {
      return null;
    }
  }
  return byPid;
}

/** Server CPU between two serverCpu() readings; a backend born in between counts from 0. */
function serverCpuDelta(before, after) {
  if (!before || !after) return null;
  let total = 0;
  for (const [pid, micros] of after) total += micros - (before.get(pid) ?? 0);
  return total;
}

// ------------------------------------------------------------------ the run

const handles = [];
let databaseName;
let dropping;

/** Closes every handle (bounded) and drops the bench database; once. */
function teardown() {
  dropping ??= (async () => {
    const closing = Promise.allSettled(handles.map((close) => close()));
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 3_000).unref())]);
    if (databaseName) await dropDatabase(adminQuery, databaseName);
  })();
  return dropping;
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`\n${signal}: dropping the bench database`);
    teardown().then(
      () => process.exit(130),
      (error) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
}

async function main() {
  const loadBefore = os.loadavg();
  const measurements = rounds * modes.length * WORKLOADS.length * loads.length;
  console.log(
    `db bench: ${modes.length} modes × ${WORKLOADS.length} reads × ${loads.length} loads × ${rounds} rounds × ` +
      `(${warmup} s warm-up + ${duration} s); pools of ${poolSize}, ${concurrency} concurrent callers; ` +
      `about ${((measurements * (duration + warmup)) / 60 + 0.2).toFixed(1)} min; ` +
      `load average ${loadBefore[0].toFixed(2)} on ${os.cpus().length} CPUs`,
  );

  const name = `ff_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  databaseName = name;
  const ownerDb = createDatabase({ url: urlFor(OWNER, name), poolSize: 1 });
  try {
    await migrateToLatest(ownerDb.db, { migrations });
  } finally {
    await ownerDb.close();
  }
  const { tenants, ids, serverVersion } = await seed(name);
  const tenant = tenants[0];
  console.log(
    `database ${name}: PostgreSQL ${serverVersion}, ${tenantCount} tenants × ${rowsPerTenant} rows; ` +
      `reads as tenant ${tenant}\n`,
  );

  const { counted, statements } = await countRoundTrips(name, tenant, ids[0]);
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
  const bareDb = createDatabase({
    url: urlFor(APP_LOGIN, name, sessionTenant(tenant)),
    ...options,
  });
  const appDb = createDatabase({ url: urlFor(APP_LOGIN, name), ...options });
  // The same settings createDatabase gives its own pool.
  const manualPool = quiet(
    new pg.Pool({
      connectionString: urlFor(APP_LOGIN, name),
      max: poolSize,
      idleTimeoutMillis: IDLE_TIMEOUT_MS,
      connectionTimeoutMillis: 5_000,
      application_name: 'flowforge',
      statement_timeout: 30_000,
      keepAlive: true,
    }),
  );
  // Reads the server processes' pids between measurements. As the owner, not the
  // superuser: the owner's drop … with (force) could not end a superuser's backend.
  const monitor = new pg.Client({ connectionString: urlFor(OWNER, name) });
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
  const runs = Object.fromEntries(
    groups.map(({ load, workload }) => [
      `${load.name}/${workload}`,
      Object.fromEntries(modes.map((mode) => [mode, []])),
    ]),
  );
  for (let round = 0; round < rounds; round += 1) {
    for (const { load, workload } of groups) {
      // Interleaved, and rotated every round, so that drift over time hits every mode alike.
      const order = modes.map((_mode, index) => modes[(index + round) % modes.length]);
      for (const mode of order) {
        const op = ops[workload][mode];
        const { expected } = workloads[workload];
        await drive(op, expected, ids, load.callers, warmup);
        const before = await serverCpu(monitor);
        const run = await drive(op, expected, ids, load.callers, duration);
        const serverMicros = serverCpuDelta(before, await serverCpu(monitor));
        run.serverCpuPerOp = serverMicros === null ? null : serverMicros / run.ops;
        runs[`${load.name}/${workload}`][mode].push(run);
        console.log(
          `round ${round + 1}/${rounds}  ${load.name.padEnd(10)} ${workload.padEnd(5)} ${mode.padEnd(13)} ` +
            `${Math.round(run.opsPerSecond).toString().padStart(6)} ops/s  p50 ${Math.round(run.p50)} µs  ` +
            `p99 ${Math.round(run.p99)} µs  CPU/op ${run.cpuPerOp.toFixed(0)} µs Node` +
            (run.serverCpuPerOp === null ? '' : ` + ${run.serverCpuPerOp.toFixed(0)} µs server`),
        );
      }
    }
  }

  const summary = [];
  for (const { load, workload } of groups) {
    const group = runs[`${load.name}/${workload}`];
    // Ratios are taken within each round, then the median over rounds: the VM's
    // speed drifts over minutes, and a ratio of medians would mostly measure that.
    const perRound = (mode, pick) =>
      group[mode].map((run, index) => pick(group[BASELINE][index], run));
    for (const mode of modes) {
      const list = group[mode];
      summary.push({
        load: load.name,
        callers: load.callers,
        workload,
        mode,
        roundTrips: counted[workload][mode],
        opsPerSecond: median(list.map((run) => run.opsPerSecond)),
        spread: spread(list.map((run) => run.opsPerSecond)),
        ratio: median(perRound(mode, (base, run) => run.opsPerSecond / base.opsPerSecond)),
        p50: median(list.map((run) => run.p50)),
        p99: median(list.map((run) => run.p99)),
        p50Ratio: median(perRound(mode, (base, run) => run.p50 / base.p50)),
        p99Ratio: median(perRound(mode, (base, run) => run.p99 / base.p99)),
        p50Extra: median(perRound(mode, (base, run) => run.p50 - base.p50)),
        cpuPerOp: median(list.map((run) => run.cpuPerOp)),
        serverCpuPerOp: list.some((run) => run.serverCpuPerOp === null)
          ? null
          : median(list.map((run) => run.serverCpuPerOp)),
      });
    }
  }

  console.log(
    '\nmedian of each column over the rounds; spread = (max − min) ÷ median ops/s over the rounds;\n' +
      'ratio = median over the rounds of (ops/s ÷ bare ops/s in the same round); p50 ratio and\n' +
      '+p50 likewise against bare p50 in the same round; RT = round trips per operation\n',
  );
  const header = [
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
  ];
  const rows = summary.map((row) => [
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
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length)),
  );
  const format = (cells) =>
    cells
      .map((cell, column) => (column <= 2 ? cell.padEnd : cell.padStart).call(cell, widths[column]))
      .join('  ');
  console.log(format(header));
  console.log(widths.map((width) => '-'.repeat(width)).join('  '));
  summary.forEach((row, index) => {
    if (index > 0 && row.mode === BASELINE) console.log('');
    console.log(format(rows[index]));
  });

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
    { loadBefore, servers: { postgres: serverVersion } },
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
