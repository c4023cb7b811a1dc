// A probe storm on readiness: many concurrent GET /health/ready probes, as a fleet of load
// balancers and kubelets sends them, against a real PostgreSQL check. Three ways to answer,
// in one run; each result is a ratio to `per-probe` (what apps/sample-api did before the
// server kit: every probe ran every check). See ../README.md.
//
// Usage: node server/readiness.ts [--rounds 5] [--duration 2] [--probers 200] [--pool 4]
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createDatabase } from '@flowforge/db';
import { createReadiness } from '@flowforge/server';
import {
  entryOf,
  machineLoad,
  median,
  perRound,
  positiveFlag,
  printTable,
  recordOf,
  rotated,
  spread,
  writeResults,
} from '../lib/harness.ts';
import { SUPERUSER, pgUrl } from '../lib/postgres.ts';

const BASELINE = 'per-probe';
const MODES = ['per-probe', 'shared', 'cached'] as const;
type Mode = (typeof MODES)[number];
const WHAT: Readonly<Record<Mode, string>> = {
  'per-probe': 'every probe runs the check (the app before the kit)',
  shared: 'createReadiness({ cacheMs: 0 }): probes in flight share one run',
  cached: 'createReadiness(): a finished report is reused for 1 s',
};
const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));

const USAGE = `Usage: node server/readiness.ts [options]

--probers concurrent loops each asking for a readiness report as fast as it is
answered, for --duration seconds, in three modes (${MODES.join(', ')}), against a
PostgreSQL health check through @flowforge/db (the PostgreSQL of scripts/services).

Options:
  --rounds N      measurements per mode; medians are reported   (5)
  --duration S    seconds of each measurement                    (2)
  --probers N     concurrent probe loops                         (200)
  --pool N        the database pool's size                       (4)
  --help          this text`;

interface Measurement {
  /** Reports answered per second. */
  readonly probesPerSecond: number;
  /** Checks that reached the database per second. */
  readonly queriesPerSecond: number;
}

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      duration: { type: 'string', default: '2' },
      probers: { type: 'string', default: '200' },
      pool: { type: 'string', default: '4' },
      help: { type: 'boolean', default: false },
    },
  });
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  const rounds = positiveFlag(flags, 'rounds', { integer: true });
  const durationMs = positiveFlag(flags, 'duration') * 1000;
  const probers = positiveFlag(flags, 'probers', { integer: true });
  const poolSize = positiveFlag(flags, 'pool', { integer: true });
  const loadBefore = os.loadavg();
  console.log(`${machineLoad(loadBefore)}; ${probers} probers, ${durationMs} ms, ${rounds} rounds`);

  const database = createDatabase<unknown>({ url: pgUrl(SUPERUSER, 'postgres'), poolSize });
  let queries = 0;
  const check = async (): Promise<void> => {
    queries += 1;
    await database.health();
  };

  /** One measurement of `mode`: a fresh registry, so no report carries over. */
  async function measure(mode: Mode): Promise<Measurement> {
    let report: () => Promise<unknown>;
    if (mode === 'per-probe') {
      report = check;
    } else {
      const readiness = createReadiness(mode === 'shared' ? { cacheMs: 0 } : {});
      readiness.add({ name: 'postgres', check });
      report = () => readiness.report();
    }
    queries = 0;
    let probes = 0;
    const started = performance.now();
    const until = started + durationMs;
    await Promise.all(
      Array.from({ length: probers }, async () => {
        while (performance.now() < until) {
          await report();
          probes += 1;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    return { probesPerSecond: probes / seconds, queriesPerSecond: queries / seconds };
  }

  try {
    for (const mode of MODES) await measure(mode); // warm the pool and the JIT
    // Each round measures every mode, in a rotated order, so drift spreads evenly.
    const runs: Record<Mode, Measurement>[] = [];
    for (let round = 0; round < rounds; round += 1) {
      const measured = {} as Record<Mode, Measurement>;
      for (const mode of rotated(MODES, round)) measured[mode] = await measure(mode);
      runs.push(measured);
    }
    const baseline = runs.map((run) => run[BASELINE]);
    const results = recordOf(MODES, (mode) => {
      const measured = runs.map((run) => run[mode]);
      const probes = measured.map((run) => run.probesPerSecond);
      return {
        what: WHAT[mode],
        probesPerSecond: median(probes),
        queriesPerSecond: median(measured.map((run) => run.queriesPerSecond)),
        throughputRatio: median(
          perRound(measured, baseline, (base, run) => run.probesPerSecond / base.probesPerSecond),
        ),
        queryRatio: median(
          perRound(measured, baseline, (base, run) => run.queriesPerSecond / base.queriesPerSecond),
        ),
        spread: spread(probes),
      };
    });
    printTable(
      ['mode', 'probes/s', `× ${BASELINE}`, 'checks/s', `checks × ${BASELINE}`, 'spread'],
      MODES.map((mode) => {
        const result = entryOf(results, mode);
        return [
          mode,
          result.probesPerSecond.toFixed(0),
          result.throughputRatio.toFixed(2),
          result.queriesPerSecond.toFixed(1),
          result.queryRatio.toFixed(4),
          `±${(result.spread * 100).toFixed(0)}%`,
        ];
      }),
    );
    await writeResults(RESULTS, { loadBefore }, { probers, durationMs, rounds, poolSize, results });
  } finally {
    await database.close();
  }
}

await main();
