// req/s of a Fastify hello-world, bare and with observability stacks, in one run;
// each result is reported as a ratio to bare. See ../README.md.
//
// Usage: node observability/run.ts [--rounds 3] [--duration 10] [--warmup 2] [--modes a,b,c] [--help]
import os from 'node:os';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  checkedLoad,
  entryOf,
  freePort,
  machineLoad,
  median,
  perRound,
  pidOf,
  positiveFlag,
  printTable,
  processCpu,
  recordOf,
  rotated,
  spread,
  startServer as startChild,
  stopServer,
  writeResults,
} from '../lib/harness.ts';

const TARGET = 0.8;
const BASELINE = 'bare';
const DEFAULT_MODES = ['bare', 'flowforge', 'flowforge-no-fastify-log', 'fastify-logger', 'naive'];
// Two cores shared by the server and the load generator: keep the load modest.
const CONNECTIONS = 50;
const PIPELINING = 1;

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));
const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));

const USAGE = `Usage: node bench/observability/run.ts [options]

req/s of a Fastify hello-world (GET /hello, ${CONNECTIONS} autocannon connections) served
from a child process, bare and with observability stacks; each mode's req/s as a ratio
to bare in the same round, median over the rounds.

Options:
  --rounds N        measurements per mode; the median is reported        (3)
  --duration S      seconds of each measured run                         (10)
  --warmup S        seconds of the discarded warm-up run before each one (2)
  --modes a,b,...   ${DEFAULT_MODES.join(', ')} (bare is always added)   (all)
  --help            this text
`;

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    modes: { type: 'string', default: DEFAULT_MODES.join(',') },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const rounds = Math.trunc(positiveFlag(flags, 'rounds'));
const duration = positiveFlag(flags, 'duration');
const warmup = positiveFlag(flags, 'warmup');
const modes = flags.modes.split(',').filter(Boolean);
if (!modes.includes(BASELINE)) modes.unshift(BASELINE);

interface Run {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  cpuPerRequest: number;
}

/** Starts `server.ts mode port` and resolves once it prints "ready". */
const startServer = (mode: string, port: number) => startChild(mode, [SERVER, mode, String(port)]);

/** One autocannon run; throws when any response was not 2xx or any request failed. */
async function load(mode: string, port: number, seconds: number) {
  const { summary } = await checkedLoad(mode, {
    url: `http://127.0.0.1:${port}/hello`,
    connections: CONNECTIONS,
    pipelining: PIPELINING,
    duration: seconds,
  });
  // Zero whenever there are numbers at all (checkedLoad throws otherwise); kept in the results.
  return { ...summary, non2xx: 0, errors: 0, timeouts: 0 };
}

async function measure(mode: string): Promise<Run> {
  const port = await freePort();
  const child = await startServer(mode, port);
  try {
    await load(mode, port, warmup); // JIT warm-up, discarded
    const pid = pidOf(child);
    const cpuBefore = await processCpu(pid);
    const run = await load(mode, port, duration);
    const cpuPerRequest = ((await processCpu(pid)) - cpuBefore) / run.requests;
    return { ...run, cpuPerRequest };
  } finally {
    await stopServer(child);
  }
}

// Anything else running skews the numbers: the load average goes into the results.
const loadBefore = os.loadavg();
const minutes = (rounds * modes.length * (duration + warmup + 1)) / 60;
console.log(
  `observability bench: ${modes.length} modes × ${rounds} rounds × (${warmup} s warm-up + ${duration} s), ` +
    `${CONNECTIONS} connections, pipelining ${PIPELINING}; about ${minutes.toFixed(1)} min; ` +
    `${machineLoad(loadBefore)}\n`,
);

const runs = recordOf(modes, (): Run[] => []);
const runsOf = (mode: string): Run[] => entryOf(runs, mode);
for (let round = 0; round < rounds; round += 1) {
  for (const mode of rotated(modes, round)) {
    const run = await measure(mode);
    runsOf(mode).push(run);
    console.log(
      `round ${round + 1}/${rounds}  ${mode.padEnd(26)} ${Math.round(run.requestsPerSecond)
        .toString()
        .padStart(
          7,
        )} req/s  p50 ${run.p50} ms  p99 ${run.p99} ms  ${run.cpuPerRequest.toFixed(1)} µs CPU/req`,
    );
  }
}

const summary = modes.map((mode) => {
  const list = runsOf(mode);
  const ratios = (pick: (base: Run, run: Run) => number) =>
    median(perRound(list, runsOf(BASELINE), pick));
  return {
    mode,
    requestsPerSecond: median(list.map((run) => run.requestsPerSecond)),
    // How far apart the rounds were: above ~15 % something else was using the CPU.
    spread: spread(list.map((run) => run.requestsPerSecond)),
    p50: median(list.map((run) => run.p50)),
    p99: median(list.map((run) => run.p99)),
    cpuPerRequest: median(list.map((run) => run.cpuPerRequest)),
    ratio: ratios((base, run) => run.requestsPerSecond / base.requestsPerSecond),
    // The throughput a server-bound process would keep: bare CPU per request ÷ this mode's.
    cpuRatio: ratios((base, run) => base.cpuPerRequest / run.cpuPerRequest),
  };
});

console.log(
  '\nmedian of each column over the rounds; spread = (max − min) ÷ median req/s over the rounds;\n' +
    'ratio = median over the rounds of (req/s ÷ bare req/s in the same round)\n',
);
printTable(
  ['mode', 'req/s', 'spread', 'ratio', 'p50 ms', 'p99 ms', 'CPU µs/req', 'CPU ratio'],
  summary.map((row) => [
    row.mode,
    Math.round(row.requestsPerSecond).toString(),
    `${Math.round(row.spread * 100)} %`,
    `${row.ratio.toFixed(2)}×`,
    String(row.p50),
    String(row.p99),
    row.cpuPerRequest.toFixed(1),
    `${row.cpuRatio.toFixed(2)}×`,
  ]),
);

const flowforge = summary.find((row) => row.mode === 'flowforge');
let verdict;
if (flowforge) {
  const met = flowforge.ratio >= TARGET;
  verdict = { ratio: flowforge.ratio, cpuRatio: flowforge.cpuRatio, target: TARGET, met };
  console.log(
    `\nflowforge/bare = ${flowforge.ratio.toFixed(2)}× (target ≥ ${TARGET.toFixed(2)}×): ` +
      (met ? 'target met' : 'TARGET NOT MET') +
      `; by server CPU per request ${flowforge.cpuRatio.toFixed(2)}×`,
  );
}

await writeResults(
  RESULTS,
  { loadBefore },
  {
    settings: { rounds, duration, warmup, connections: CONNECTIONS, pipelining: PIPELINING },
    summary,
    verdict,
    runs,
  },
);
console.log(`results written to ${RESULTS}`);
