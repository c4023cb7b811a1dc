// Reads through @flowforge/redis's read-only view against the same reads on a raw
// ioredis client, in one run; each result is reported as a ratio to raw ioredis.
// Needs the redis-server of scripts/services (127.0.0.1:6379). See README.md.
//
// Usage: node redis/run.ts [--rounds 5] [--duration 3] [--warmup 0.25]
//                           [--concurrency 50] [--keys 1000] [--port 6379] [--help]
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis as IORedis } from 'ioredis';
import { createRedis } from '@flowforge/redis';
import { createMetrics } from '@flowforge/observability';
import {
  allNumbers,
  cpuMicros,
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

const BASELINE = 'raw';
const MODES = ['raw', 'raw-options', 'flowforge', 'flowforge-no-metrics'] as const;
type Mode = (typeof MODES)[number];
const WORKLOADS = ['get', 'hgetall'] as const;
type Workload = (typeof WORKLOADS)[number];
const TARGET = 0.95;
/** Interleaved slices per mode and measurement (see the measuring loop). */
const SLICES = 6;
const HOST = '127.0.0.1';
const VALUE_BYTES = 100;
const HASH_FIELDS = 5;

const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));

const USAGE = `Usage: node bench/redis/run.ts [options]

Reads (GET of a ${VALUE_BYTES}-byte string, HGETALL of a ${HASH_FIELDS}-field hash) through
redis.data of @flowforge/redis against the same reads on a raw ioredis client; each
mode's ops/s as a ratio to raw in the same round, median over the rounds. Auto-pipelining
is off in every mode (ioredis's default). Seeds keys under ff:bench:<random>: on
${HOST}:<port> with a raw client and deletes them at the end.

Options:
  --rounds N        measurements per mode, workload and load; the median is reported  (5)
  --duration S      seconds measured per mode, in 6 interleaved slices                  (3)
  --warmup S        seconds of the discarded warm-up of each mode per measurement      (0.25)
  --concurrency N   callers in flight in the concurrent load                           (50)
  --keys N          keys seeded per workload (reads cycle through them)                (1000)
  --port N          the redis-server to use                                            (6379)
  --help            this text
`;

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '0.25' },
    concurrency: { type: 'string', default: '50' },
    keys: { type: 'string', default: '1000' },
    port: { type: 'string', default: '6379' },
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
const keyCount = positiveFlag(flags, 'keys', { integer: true });
const port = positiveFlag(flags, 'port', { integer: true });
const loads = [
  { name: 'concurrent', callers: concurrency },
  { name: 'sequential', callers: 1 },
];

const prefix = `ff:bench:${randomBytes(4).toString('hex')}:`;
const stringKey = (index: number) => `${prefix}s:${index}`;
const hashKey = (index: number) => `${prefix}h:${index}`;
const stringKeys = Array.from({ length: keyCount }, (_unused, index) => stringKey(index));
const hashKeys = Array.from({ length: keyCount }, (_unused, index) => hashKey(index));
const value = 'v'.repeat(VALUE_BYTES);
const hash = Object.fromEntries(
  Array.from({ length: HASH_FIELDS }, (_unused, index) => [`field${index}`, `value-${index}`]),
);

// ------------------------------------------------------------------ data

async function seed(writer: IORedis): Promise<void> {
  for (let start = 0; start < keyCount; start += 500) {
    const pipeline = writer.pipeline();
    for (let index = start; index < Math.min(keyCount, start + 500); index += 1) {
      pipeline.set(stringKey(index), value);
      pipeline.hset(hashKey(index), hash);
    }
    await pipeline.exec();
  }
}

async function deleteSeed(writer: IORedis): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await writer.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await writer.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

// ------------------------------------------------------------------ the modes

/** The reads measured, as both ioredis and redis.data offer them. */
interface ReadView {
  get(key: string): Promise<string | null>;
  hgetall(key: string): Promise<Record<string, string>>;
}

/** One read of a seeded key; resolves to the reply. */
type Operation = (key: string) => Promise<unknown>;

/**
 * - raw: `new Redis({ host, port })`, ioredis's defaults (the baseline);
 * - raw-options: raw ioredis with the connection options createRedis gives its
 *   client (a command timeout, no offline queue, no retries per request): the
 *   driver's own cost of those options, without the package's code;
 * - flowforge: `createRedis({ topology, metrics })` and `redis.data`, as the app
 *   builds it (metrics on);
 * - flowforge-no-metrics: the same without a metrics registry.
 */
async function openModes() {
  const topology = {
    mode: 'standalone' as const,
    tls: false,
    node: { host: HOST, port },
    db: 0,
  };
  const raw = new IORedis({ host: HOST, port });
  const rawOptions = new IORedis({
    host: HOST,
    port,
    commandTimeout: 2_000,
    connectTimeout: 5_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectionName: 'flowforge:bench-raw-options',
    lazyConnect: true,
  });
  const metrics = createMetrics({ defaultMetrics: false });
  const withMetrics = createRedis({ topology, name: 'bench', metrics });
  const withoutMetrics = createRedis({ topology, name: 'bench-no-metrics' });
  for (const client of [raw, rawOptions]) client.on('error', () => undefined);
  await rawOptions.connect();
  await Promise.all([raw.ping(), rawOptions.ping(), withMetrics.health(), withoutMetrics.health()]);
  const views: Record<Mode, ReadView> = {
    raw,
    'raw-options': rawOptions,
    flowforge: withMetrics.data,
    'flowforge-no-metrics': withoutMetrics.data,
  };
  const ops: Record<Workload, Record<Mode, Operation>> = {
    get: recordOf(MODES, (mode) => (key: string) => views[mode].get(key)),
    hgetall: recordOf(MODES, (mode) => (key: string) => views[mode].hgetall(key)),
  };
  return {
    ops,
    metrics,
    close: async () => {
      raw.disconnect();
      rawOptions.disconnect();
      await Promise.all([withMetrics.close(), withoutMetrics.close()]);
    },
  };
}

/** The keys each read cycles through, and what its reply must be. */
const reads: Record<Workload, { keys: readonly string[]; check: (reply: unknown) => boolean }> = {
  get: { keys: stringKeys, check: (reply) => reply === value },
  hgetall: {
    keys: hashKeys,
    check: (reply) =>
      typeof reply === 'object' && reply !== null && Object.keys(reply).length === HASH_FIELDS,
  },
};

// ------------------------------------------------------------------ measuring

/** What one slice measured. */
interface Slice {
  /** µs */
  latencies: number[];
  seconds: number;
  /** Node's CPU time, µs */
  cpu: number;
  /** redis-server's CPU time, µs; null when its pid is unknown */
  serverCpu: number | null;
}

/** One slice: `callers` loops calling `op` back to back for `seconds`; latencies in µs. */
async function drive(
  op: Operation,
  workload: Workload,
  callers: number,
  seconds: number,
  serverPid: number | null,
): Promise<Slice> {
  const { keys, check } = reads[workload];
  const latencies: number[] = [];
  let next = 0;
  const serverBefore = serverPid ? await processCpu(serverPid) : 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const caller = async () => {
    while (performance.now() < deadline) {
      const key = keys[next % keyCount];
      if (key === undefined) throw new Error(`no key ${next % keyCount}`);
      next += 1;
      const t0 = performance.now();
      const reply = await op(key);
      latencies.push((performance.now() - t0) * 1000);
      if (!check(reply)) throw new Error('a read returned the wrong value; the numbers are void');
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    latencies,
    seconds: elapsed,
    cpu: cpuMicros(cpu),
    serverCpu: serverPid ? (await processCpu(serverPid)) - serverBefore : null,
  };
}

/** One measurement. */
interface Run {
  ops: number;
  opsPerSecond: number;
  /** µs */
  p50: number;
  p99: number;
  cpuPerOp: number;
  serverCpuPerOp: number | null;
}

/** One measurement out of its slices: ops/s, nearest-rank p50/p99 (µs), CPU per op (µs). */
function summarize(slices: readonly Slice[]): Run {
  const sorted = Float64Array.from(slices.flatMap((slice) => slice.latencies)).sort();
  const seconds = slices.reduce((sum, slice) => sum + slice.seconds, 0);
  const cpu = slices.reduce((sum, slice) => sum + slice.cpu, 0);
  let serverCpu: number | null = 0;
  for (const slice of slices) {
    serverCpu = serverCpu === null || slice.serverCpu === null ? null : serverCpu + slice.serverCpu;
  }
  return {
    ops: sorted.length,
    opsPerSecond: sorted.length / seconds,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    cpuPerOp: cpu / sorted.length,
    serverCpuPerOp: serverCpu === null ? null : serverCpu / sorted.length,
  };
}

// ------------------------------------------------------------------ the run

let writer: IORedis | undefined;
let cleaning: Promise<void> | undefined;
/** Deletes the seeded keys; once. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    if (!writer) return;
    const deleted = await deleteSeed(writer);
    console.log(`deleted ${deleted} bench keys (${prefix}*)`);
    writer.disconnect();
  })();
  return cleaning;
}
tearDownOnSignals('deleting the bench keys', cleanup);

async function main() {
  const loadBefore = os.loadavg();
  const measurements = rounds * MODES.length * WORKLOADS.length * loads.length;
  console.log(
    `redis bench: ${MODES.length} modes × ${WORKLOADS.length} reads × ${loads.length} loads × ${rounds} rounds × ` +
      `(${warmup} s warm-up + ${duration} s); ${concurrency} concurrent callers; ` +
      `about ${((measurements * (duration + warmup)) / 60 + 0.1).toFixed(1)} min; ` +
      machineLoad(loadBefore),
  );
  writer = new IORedis({ host: HOST, port });
  writer.on('error', () => undefined);
  const info = String(await writer.info('server'));
  const serverVersion = /redis_version:(\S+)/.exec(info)?.[1];
  const serverPid = Number(/process_id:(\d+)/.exec(info)?.[1]) || null;
  await seed(writer);
  console.log(
    `redis-server ${serverVersion} on ${HOST}:${port} (pid ${serverPid}); ` +
      `${keyCount} strings of ${VALUE_BYTES} B and ${keyCount} hashes of ${HASH_FIELDS} fields under ${prefix}\n`,
  );

  const { ops, metrics, close } = await openModes();
  try {
    // JIT and connections: every combination once, discarded.
    for (const load of loads) {
      for (const workload of WORKLOADS) {
        for (const mode of MODES) {
          await drive(ops[workload][mode], workload, load.callers, 0.3, null);
        }
      }
    }

    const groups = loads.flatMap((load) => WORKLOADS.map((workload) => ({ load, workload })));
    const runs = recordOf(
      groups.map(({ load, workload }) => `${load.name}/${workload}`),
      () => recordOf(MODES, (): Run[] => []),
    );
    const runsOf = (group: string) => entryOf(runs, group);
    for (let round = 0; round < rounds; round += 1) {
      for (const { load, workload } of groups) {
        // A mode's measurement is SLICES slices, interleaved with the other modes' and
        // rotated from slice to slice: the VM's speed drifts within seconds, and
        // back-to-back whole runs would mostly measure that drift.
        for (const mode of MODES) {
          await drive(ops[workload][mode], workload, load.callers, warmup, null);
        }
        const slices = recordOf(MODES, (): Slice[] => []);
        for (let slice = 0; slice < SLICES; slice += 1) {
          for (const mode of rotated(MODES, round + slice)) {
            slices[mode].push(
              await drive(
                ops[workload][mode],
                workload,
                load.callers,
                duration / SLICES,
                serverPid,
              ),
            );
          }
        }
        for (const mode of MODES) {
          const run = summarize(slices[mode]);
          runsOf(`${load.name}/${workload}`)[mode].push(run);
          console.log(
            `round ${round + 1}/${rounds}  ${load.name.padEnd(10)} ${workload.padEnd(7)} ${mode.padEnd(20)} ` +
              `${Math.round(run.opsPerSecond).toString().padStart(6)} ops/s  p50 ${Math.round(run.p50)} µs  ` +
              `p99 ${Math.round(run.p99)} µs  CPU/op ${run.cpuPerOp.toFixed(1)} µs Node` +
              (run.serverCpuPerOp === null ? '' : ` + ${run.serverCpuPerOp.toFixed(1)} µs server`),
          );
        }
      }
    }

    const summary = groups.flatMap(({ load, workload }) => {
      const group = runsOf(`${load.name}/${workload}`);
      return MODES.map((mode) => {
        const list = group[mode];
        // Ratios within each round, then the median over the rounds (the VM's speed drifts).
        const byRound = (pick: (base: Run, run: Run) => number) =>
          perRound(list, group[BASELINE], pick);
        const ratios = byRound((base, run) => run.opsPerSecond / base.opsPerSecond);
        const serverCpus = list.map((run) => run.serverCpuPerOp);
        return {
          load: load.name,
          callers: load.callers,
          workload,
          mode,
          opsPerSecond: median(list.map((run) => run.opsPerSecond)),
          spread: spread(list.map((run) => run.opsPerSecond)),
          ratio: median(ratios),
          ratioMin: Math.min(...ratios),
          ratioMax: Math.max(...ratios),
          p50: median(list.map((run) => run.p50)),
          p99: median(list.map((run) => run.p99)),
          cpuPerOp: median(list.map((run) => run.cpuPerOp)),
          cpuRatio: median(byRound((base, run) => base.cpuPerOp / run.cpuPerOp)),
          cpuExtra: median(byRound((base, run) => run.cpuPerOp - base.cpuPerOp)),
          serverCpuPerOp: allNumbers(serverCpus) ? median(serverCpus) : null,
        };
      });
    });

    console.log(
      '\nmedian of each column over the rounds; spread = (max − min) ÷ median ops/s; ratio = median over\n' +
        'the rounds of (ops/s ÷ raw ops/s in the same round), range = min–max of those; CPU = Node\n' +
        "process CPU (user + system) per read, CPU ratio = raw's ÷ this mode's, +CPU = this − raw\n",
    );
    printTable(
      [
        'load',
        'read',
        'mode',
        'ops/s',
        'spread',
        'ratio',
        'ratio range',
        'p50 µs',
        'p99 µs',
        'CPU µs/op',
        'CPU ratio',
        '+CPU µs',
        'server µs/op',
      ],
      summary.flatMap((row, index) => [
        ...(index > 0 && row.mode === BASELINE ? [null] : []),
        [
          `${row.load} (${row.callers})`,
          row.workload,
          row.mode,
          Math.round(row.opsPerSecond).toString(),
          `${Math.round(row.spread * 100)} %`,
          `${row.ratio.toFixed(2)}×`,
          `${row.ratioMin.toFixed(2)}–${row.ratioMax.toFixed(2)}×`,
          Math.round(row.p50).toString(),
          Math.round(row.p99).toString(),
          row.cpuPerOp.toFixed(1),
          `${row.cpuRatio.toFixed(2)}×`,
          row.cpuExtra.toFixed(1),
          row.serverCpuPerOp === null ? '–' : row.serverCpuPerOp.toFixed(1),
        ],
      ]),
      3,
    );

    const judged = summary.filter((row) => row.load === 'concurrent' && row.mode === 'flowforge');
    const verdicts = judged.map((row) => ({
      workload: row.workload,
      ratio: row.ratio,
      target: TARGET,
      met: row.ratio >= TARGET,
    }));
    console.log('');
    for (const verdict of verdicts) {
      console.log(
        `flowforge/raw, ${verdict.workload}, ${concurrency} callers: ${verdict.ratio.toFixed(2)}× ` +
          `(target ≥ ${TARGET}×): ${verdict.met ? 'target met' : 'TARGET NOT MET'}`,
      );
    }
    // The histogram saw every read of the metrics mode: a check that it was on.
    const rendered = await metrics.render();
    if (
      !rendered.includes(
        'flowforge_redis_command_duration_seconds_count{client="bench",command="get"}',
      )
    ) {
      throw new Error('the flowforge mode recorded no metrics; the comparison is void');
    }

    await writeResults(
      RESULTS,
      { loadBefore, servers: { redis: serverVersion } },
      {
        settings: {
          rounds,
          duration,
          slices: SLICES,
          warmup,
          concurrency,
          keys: keyCount,
          modes: MODES,
          autoPipelining: false,
        },
        summary,
        verdicts,
        runs,
      },
    );
    console.log(`results written to ${RESULTS}`);
  } finally {
    await close();
  }
}

try {
  await main();
} finally {
  await cleanup();
}
