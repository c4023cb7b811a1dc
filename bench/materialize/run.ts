// Rows/s of @flowforge/materialize's subscribe() against a raw node-postgres
// DECLARE … SUBSCRIBE / FETCH loop, on the same Materialize wire double (a test
// fixture, in a child process), in one run; then peak RSS while subscribe()
// streams a million rows to a slow consumer. See README.md.
//
// Usage: node materialize/run.ts [--rounds 5] [--rows 1000000] [--rows-per-timestamp 1000]
//                                 [--batch 1000] [--slow-rows 1000000] [--help]
import os from 'node:os';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createMaterialize, type Materialize } from '@flowforge/materialize';
import {
  cpuMicros,
  machineLoad,
  median,
  perRound,
  positiveFlag,
  recordOf,
  rotated,
  sleep,
  spread,
  writeResults,
} from '../lib/harness.ts';
import { forkWithIpc } from '../lib/ipc.ts';
import type { DoubleCommand, DoubleReply } from './double-process.ts';

const TARGET = 0.9;
const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));

const USAGE = `Usage: node bench/materialize/run.ts [options]

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
async function startDouble(rows: number) {
  const { child, reply, send } = forkWithIpc<DoubleReply, DoubleCommand>(
    'double',
    fileURLToPath(new URL('./double-process.ts', import.meta.url)),
  );
  const { url, view } = await reply('ready');
  send({ op: 'fill', rows, rowsPerTimestamp });
  const filled = await reply('filled');
  return { child, send, url, view, asOf: BigInt(filled.asOf) };
}

/** A row of the view as node-postgres parses it (int8 as a string). */
interface BenchRow {
  id: string;
  tenant_id: string;
  value: number;
  label: string;
}

/** What a FETCH of a SUBSCRIBE cursor with PROGRESS returns per row (a progress row's columns are null). */
interface FetchedRow {
  mz_timestamp: string;
  mz_progressed: boolean;
  mz_diff: string | null;
  id: string | null;
  tenant_id: string | null;
  value: number | null;
  label: string | null;
}

/** What a run read: rows, characters of `label`, and the sum of the diffs. */
interface Read {
  count: number;
  chars: number;
  diffs: number;
}

/** The raw loop: what an application would write by hand with node-postgres. */
async function rawRun(url: string, view: string, asOf: bigint, n: number): Promise<Read> {
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
      // No timeout: Materialize blocks until rows exist, then returns what is ready. With
      // WITH (timeout) it would hold each FETCH until `batch` rows came (decision 015).
      const { rows } = await client.query<FetchedRow>(`FETCH ${batch} c`);
      for (const row of rows) {
        if (row.mz_progressed) continue;
        diffs += Number(row.mz_diff);
        chars += row.label?.length ?? 0;
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

async function flowforgeRun(mz: Materialize, view: string, asOf: bigint, n: number): Promise<Read> {
  let count = 0;
  let chars = 0;
  let diffs = 0;
  for await (const change of mz.subscribe<BenchRow>(view, { asOf })) {
    diffs += change.mzDiff;
    chars += change.row.label.length;
    count += 1;
    if (count === n) break;
  }
  return { count, chars, diffs };
}

/** One measurement. */
interface Run {
  rowsPerSecond: number;
  seconds: number;
  chars: number;
  nodeCpuNsPerRow: number;
}

async function measure(mode: string, run: (n: number) => Promise<Read>, n: number): Promise<Run> {
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
    nodeCpuNsPerRow: (cpuMicros(cpu) * 1000) / n,
  };
}

/** subscribe() to a consumer that yields to timers every 100 rows; RSS sampled every 50 ms. */
async function slowConsumer(mz: Materialize, view: string, asOf: bigint, n: number) {
  globalThis.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const samples: number[] = [];
  const sampler = setInterval(() => {
    const rss = process.memoryUsage().rss;
    peak = Math.max(peak, rss);
    samples.push(rss);
  }, 50);
  const started = performance.now();
  let count = 0;
  const checkpoints: Record<string, number> = {};
  for await (const change of mz.subscribe(view, { asOf })) {
    count += change.mzDiff;
    if (count % 100 === 0) await sleep(1);
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

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

async function main() {
  const loadBefore = os.loadavg();
  const rows = Math.max(rowCount, slowRows);
  console.log(`filling the double with ${rows} rows (${rowsPerTimestamp} per timestamp)…`);
  const double = await startDouble(rows);
  const mz = createMaterialize({ url: double.url, poolSize: 2, fetchBatchSize: batch });
  await mz.start();
  console.log(
    `materialize bench: the wire double at ${double.url}; ${rounds} rounds of ${rowCount} rows; ` +
      `FETCH ${batch}; ${machineLoad(loadBefore)}\n`,
  );
  const names = ['raw', 'flowforge'] as const;
  const modes = {
    raw: (n: number) => rawRun(double.url, double.view, double.asOf, n),
    flowforge: (n: number) => flowforgeRun(mz, double.view, double.asOf, n),
  };
  const runs = recordOf(names, (): Run[] => []);
  try {
    for (let round = 0; round < rounds; round += 1) {
      for (const mode of rotated(names, round)) {
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
    const ratios = perRound(
      runs.flowforge,
      runs.raw,
      (base, run) => run.rowsPerSecond / base.rowsPerSecond,
    );
    const cpuRatios = perRound(
      runs.flowforge,
      runs.raw,
      (base, run) => base.nodeCpuNsPerRow / run.nodeCpuNsPerRow,
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
    double.send({ op: 'stop' });
  }
}

await main();
