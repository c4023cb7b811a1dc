// Rows/s of @flowforge/materialize's subscribe() against a raw node-postgres
// DECLARE … SUBSCRIBE / FETCH loop, on the same Materialize wire double (a test
// fixture, in a child process), in one run; then peak RSS while subscribe()
// streams a million rows to a slow consumer. See README.md.
//
// Usage: node materialize/run.mjs [--rounds 5] [--rows 1000000] [--rows-per-timestamp 1000]
//                                 [--batch 1000] [--slow-rows 1000000] [--help]
import { fork } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createMaterialize } from '@flowforge/materialize';
import { median, positiveFlag, spread, writeResults } from '../lib/harness.mjs';

const TARGET = 0.9;
const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));

const USAGE = `Usage: node bench/materialize/run.mjs [options]

Streams the same committed updates (AS OF before them, SNAPSHOT = false,
PROGRESS) from the Materialize wire double through @flowforge/materialize's
subscribe() and through a raw node-postgres FETCH loop, consuming every row the
same way (read a field, parse mz_diff). Modes alternate and rotate every round;
ratio = subscribe() ÷ raw in the same round, median over rounds. Then a slow
consumer reads --slow-rows rows through subscribe() while RSS is sampled.

Options:
  --rounds N               measurements per mode; the median is reported   (5)
  --rows N                 rows per measurement                             (1000000)
  --rows-per-timestamp N   rows committed per Materialize timestamp         (1000)
  --batch N                rows per FETCH, both modes                       (1000)
  --slow-rows N            rows streamed to the slow consumer               (1000000)
  --help                   this text
`;

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    rows: { type: 'string', default: '1000000' },
    'rows-per-timestamp': { type: 'string', default: '1000' },
    batch: { type: 'string', default: '1000' },
    'slow-rows': { type: 'string', default: '1000000' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
const rounds = positiveFlag(flags, 'rounds', { integer: true });
const rowCount = positiveFlag(flags, 'rows', { integer: true });
const rowsPerTimestamp = positiveFlag(flags, 'rows-per-timestamp', { integer: true });
const batch = positiveFlag(flags, 'batch', { integer: true });
const slowRows = positiveFlag(flags, 'slow-rows', { integer: true });

/** Starts the double in a child process and fills it; resolves to its URL and the AS OF. */
async function startDouble(rows) {
  const child = fork(fileURLToPath(new URL('./double-process.mjs', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const reply = (op) =>
    new Promise((resolve, reject) => {
      const onMessage = (message) => {
        if (message.op !== op) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(message);
      };
      const onExit = (code) => reject(new Error(`the double exited (${code}) before "${op}"`));
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  const { url, view } = await reply('ready');
  child.send({ op: 'fill', rows, rowsPerTimestamp });
  const filled = await reply('filled');
  return { child, url, view, asOf: BigInt(filled.asOf) };
}

/** The raw loop: what an application would write by hand with node-postgres. */
async function rawRun(url, view, asOf, n) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let count = 0;
  let chars = 0;
  let diffs = 0;
  try {
    await client.query(
      `BEGIN; DECLARE c CURSOR FOR SUBSCRIBE (SELECT * FROM "${view}") ` +
        `WITH (SNAPSHOT = false, PROGRESS) AS OF ${asOf}`,
    );
    while (count < n) {
      const { rows } = await client.query(`FETCH ${batch} c WITH (timeout = '1s')`);
      for (const row of rows) {
        if (row.mz_progressed) continue;
        diffs += Number(row.mz_diff);
        chars += row.label.length;
        count += 1;
        if (count === n) break;
      }
    }
    await client.query('ROLLBACK');
  } finally {
    await client.end();
  }
  return { count, chars, diffs };
}

async function flowforgeRun(mz, view, asOf, n) {
  let count = 0;
  let chars = 0;
  let diffs = 0;
  for await (const change of mz.subscribe(view, { asOf })) {
    diffs += change.mzDiff;
    chars += change.row.label.length;
    count += 1;
    if (count === n) break;
  }
  return { count, chars, diffs };
}

async function measure(mode, run, n) {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const { count, chars, diffs } = await run(n);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  if (count !== n || diffs !== n)
    throw new Error(`${mode}: read ${count} rows (${diffs} diffs), expected ${n}`);
  return {
    rowsPerSecond: n / seconds,
    seconds,
    chars,
    nodeCpuNsPerRow: ((cpu.user + cpu.system) * 1000) / n,
  };
}

/** subscribe() to a consumer that yields to timers every 100 rows; RSS sampled every 50 ms. */
async function slowConsumer(mz, view, asOf, n) {
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const samples = [];
  const sampler = setInterval(() => {
    const rss = process.memoryUsage().rss;
    peak = Math.max(peak, rss);
    samples.push(rss);
  }, 50);
  const started = performance.now();
  let count = 0;
  const checkpoints = {};
  for await (const change of mz.subscribe(view, { asOf })) {
    count += change.mzDiff;
    if (count % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    if (count % (n / 10) === 0) checkpoints[`${(count * 100) / n}%`] = process.memoryUsage().rss;
    if (count === n) break;
  }
  clearInterval(sampler);
  return {
    rows: count,
    seconds: (performance.now() - started) / 1000,
    baselineRss: baseline,
    peakRss: peak,
    checkpoints,
  };
}

const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

async function main() {
  const loadBefore = os.loadavg();
  const rows = Math.max(rowCount, slowRows);
  console.log(`filling the double with ${rows} rows (${rowsPerTimestamp} per timestamp)…`);
  const double = await startDouble(rows);
  const mz = createMaterialize({ url: double.url, poolSize: 2, fetchBatchSize: batch });
  await mz.start();
  console.log(
    `materialize bench: the wire double at ${double.url}; ${rounds} rounds of ${rowCount} rows; ` +
      `FETCH ${batch}; load average ${loadBefore[0].toFixed(2)} on ${os.cpus().length} CPUs\n`,
  );
  const modes = {
    raw: (n) => rawRun(double.url, double.view, double.asOf, n),
    flowforge: (n) => flowforgeRun(mz, double.view, double.asOf, n),
  };
  const runs = { raw: [], flowforge: [] };
  try {
    for (let round = 0; round < rounds; round += 1) {
      const names = Object.keys(modes);
      const order = names.map((_mode, index) => names[(index + round) % names.length]);
      for (const mode of order) {
        await measure(mode, modes[mode], Math.min(rowCount, 100_000)); // warm-up, discarded
        const run = await measure(mode, modes[mode], rowCount);
        runs[mode].push(run);
        console.log(
          `round ${round + 1}/${rounds}  ${mode.padEnd(9)} ${Math.round(run.rowsPerSecond)
            .toString()
            .padStart(8)} rows/s  Node CPU ${run.nodeCpuNsPerRow.toFixed(0)} ns/row`,
        );
      }
    }
    const ratios = runs.flowforge.map(
      (run, index) => run.rowsPerSecond / runs.raw[index].rowsPerSecond,
    );
    const cpuRatios = runs.flowforge.map(
      (run, index) => runs.raw[index].nodeCpuNsPerRow / run.nodeCpuNsPerRow,
    );
    const summary = Object.fromEntries(
      Object.entries(runs).map(([mode, list]) => [
        mode,
        {
          rowsPerSecond: median(list.map((run) => run.rowsPerSecond)),
          spread: spread(list.map((run) => run.rowsPerSecond)),
          nodeCpuNsPerRow: median(list.map((run) => run.nodeCpuNsPerRow)),
          runs: list,
        },
      ]),
    );
    const ratio = median(ratios);
    console.log(
      `\nsubscribe(): ${ratio.toFixed(3)}× raw rows/s (rounds: ${ratios
        .map((r) => r.toFixed(2))
        .join(
          ', ',
        )}; target ≥ ${TARGET}×): ${ratio >= TARGET ? 'target met' : 'TARGET NOT MET'}; ` +
        `CPU per row ${median(cpuRatios).toFixed(3)}× raw's throughput`,
    );
    for (const [mode, row] of Object.entries(summary)) {
      console.log(
        `  ${mode.padEnd(9)} ${Math.round(row.rowsPerSecond)} rows/s (spread ${Math.round(
          row.spread * 100,
        )} %), Node CPU ${row.nodeCpuNsPerRow.toFixed(0)} ns/row`,
      );
    }

    console.log(
      `\nslow consumer: ${slowRows} rows through subscribe(), 1 ms pause every 100 rows…`,
    );
    const slow = await slowConsumer(mz, double.view, double.asOf, slowRows);
    console.log(
      `  ${slow.rows} rows in ${slow.seconds.toFixed(1)} s; RSS at start ${mb(slow.baselineRss)}, ` +
        `peak ${mb(slow.peakRss)} (+${mb(slow.peakRss - slow.baselineRss)}); at ` +
        Object.entries(slow.checkpoints)
          .map(([at, rss]) => `${at} ${mb(rss)}`)
          .join(', '),
    );
    await writeResults(
      RESULTS,
      { loadBefore },
      {
        options: { rounds, rows: rowCount, rowsPerTimestamp, batch, slowRows },
        target: TARGET,
        ratio,
        ratios,
        cpuRatio: median(cpuRatios),
        met: ratio >= TARGET,
        summary,
        slowConsumer: slow,
      },
    );
    console.log(`\nresults: ${RESULTS}`);
  } finally {
    await mz.close();
    double.child.send({ op: 'stop' });
  }
}

await main();
