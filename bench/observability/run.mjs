// req/s of a Fastify hello-world, bare and with observability stacks, in one run;
// each result is reported as a ratio to bare. See ../README.md.
//
// Usage: node observability/run.mjs [--rounds 3] [--duration 10] [--warmup 2] [--modes a,b,c]
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  checkedLoad,
  freePort,
  median,
  processCpu,
  spread,
  startServer as startChild,
  stopServer,
  writeResults,
  positiveFlag,
} from '../lib/harness.mjs';

const TARGET = 0.8;
const BASELINE = 'bare';
const DEFAULT_MODES = ['bare', 'flowforge', 'flowforge-no-fastify-log', 'fastify-logger', 'naive'];
// Two cores shared by the server and the load generator: keep the load modest.
const CONNECTIONS = 50;
const PIPELINING = 1;

const SERVER = fileURLToPath(new URL('./server.mjs', import.meta.url));
const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    modes: { type: 'string', default: DEFAULT_MODES.join(',') },
  },
});

const positive = (name) => positiveFlag(flags, name);
const rounds = Math.trunc(positive('rounds'));
const duration = positive('duration');
const warmup = positive('warmup');
const modes = flags.modes.split(',').filter(Boolean);
if (!modes.includes(BASELINE)) modes.unshift(BASELINE);

/** Starts `server.mjs mode port` and resolves once it prints "ready". */
const startServer = (mode, port) => startChild(mode, [SERVER, mode, String(port)]);

/** One autocannon run; throws when any response was not 2xx or any request failed. */
async function load(mode, port, seconds) {
  const { summary } = await checkedLoad(mode, {
    url: `http://127.0.0.1:${port}/hello`,
    connections: CONNECTIONS,
    pipelining: PIPELINING,
    duration: seconds,
  });
  // Zero whenever there are numbers at all (checkedLoad throws otherwise); kept in the results.
  return { ...summary, non2xx: 0, errors: 0, timeouts: 0 };
}

async function measure(mode) {
  const port = await freePort();
  const child = await startServer(mode, port);
  try {
    await load(mode, port, warmup); // JIT warm-up, discarded
    const cpuBefore = await processCpu(child.pid);
    const run = await load(mode, port, duration);
    const cpuPerRequest = ((await processCpu(child.pid)) - cpuBefore) / run.requests;
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
    `load average ${loadBefore[0].toFixed(2)} on ${os.cpus().length} CPUs\n`,
);

const runs = Object.fromEntries(modes.map((mode) => [mode, []]));
for (let round = 0; round < rounds; round += 1) {
  // Interleaved, and rotated every round, so that drift over time hits every mode alike.
  const order = modes.map((_mode, index) => modes[(index + round) % modes.length]);
  for (const mode of order) {
    const run = await measure(mode);
    runs[mode].push(run);
    console.log(
      `round ${round + 1}/${rounds}  ${mode.padEnd(26)} ${Math.round(run.requestsPerSecond)
        .toString()
        .padStart(
          7,
        )} req/s  p50 ${run.p50} ms  p99 ${run.p99} ms  ${run.cpuPerRequest.toFixed(1)} µs CPU/req`,
    );
  }
}

const summary = modes.map((mode) => ({
  mode,
  requestsPerSecond: median(runs[mode].map((run) => run.requestsPerSecond)),
  // How far apart the rounds were: above ~15 % something else was using the CPU.
  spread: spread(runs[mode].map((run) => run.requestsPerSecond)),
  p50: median(runs[mode].map((run) => run.p50)),
  p99: median(runs[mode].map((run) => run.p99)),
  cpuPerRequest: median(runs[mode].map((run) => run.cpuPerRequest)),
}));
// Ratios are taken within each round, then the median over rounds: this VM's CPU
// speed drifts by tens of percent over minutes, so a ratio of medians taken
// minutes apart would mostly measure the drift.
const perRound = (mode, pick) => runs[mode].map((run, round) => pick(runs[BASELINE][round], run));
for (const row of summary) {
  row.ratio = median(
    perRound(row.mode, (base, run) => run.requestsPerSecond / base.requestsPerSecond),
  );
  // The throughput a server-bound process would keep: bare CPU per request ÷ this mode's.
  row.cpuRatio = median(perRound(row.mode, (base, run) => base.cpuPerRequest / run.cpuPerRequest));
}

console.log(
  '\nmedian of each column over the rounds; spread = (max − min) ÷ median req/s over the rounds;\n' +
    'ratio = median over the rounds of (req/s ÷ bare req/s in the same round)\n',
);
const header = ['mode', 'req/s', 'spread', 'ratio', 'p50 ms', 'p99 ms', 'CPU µs/req', 'CPU ratio'];
const rows = summary.map((row) => [
  row.mode,
  Math.round(row.requestsPerSecond).toString(),
  `${Math.round(row.spread * 100)} %`,
  `${row.ratio.toFixed(2)}×`,
  String(row.p50),
  String(row.p99),
  row.cpuPerRequest.toFixed(1),
  `${row.cpuRatio.toFixed(2)}×`,
]);
const widths = header.map((title, column) =>
  Math.max(title.length, ...rows.map((row) => row[column].length)),
);
const format = (cells) =>
  cells
    .map((cell, column) => (column === 0 ? cell.padEnd : cell.padStart).call(cell, widths[column]))
    .join('  ');
console.log(format(header));
console.log(widths.map((width) => '-'.repeat(width)).join('  '));
for (const row of rows) console.log(format(row));

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
