// Rows/s of @flowforge/clickhouse's stream() against raw @clickhouse/client
// (query(...).stream(), rows taken from its batches the same way) on the
// clickhouse-server 18.16 of scripts/services, in one run; plus query() (all
// rows as an array) against the raw client's query(...).json() for a medium
// result. Each result is a ratio to the raw client in the same round. See README.md.
//
// Usage: node clickhouse/run.ts [--rounds 5] [--rows 2000000] [--medium-rows 100000]
//                                [--medium-repeat 5] [--warmup-rows 200000] [--help]
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { createClickHouse } from '@flowforge/clickhouse';
import {
  allNumbers,
  cpuMicros,
  machineLoad,
  median,
  perRound,
  printTable,
  processCpu,
  recordOf,
  rotated,
  spread,
  writeResults,
} from '../lib/harness.ts';

const SERVER_URL = 'http://127.0.0.1:8123';
// readonly=1: the handle sends no settings at all, so both clients send the
// same request apart from the query text (the handle binds {n:UInt32} client-side).
const USER = { user: 'flowforge_reader', password: 'flowforge_reader' };
const SERVER_PID_FILE = '/run/clickhouse-server/clickhouse-server.pid';
const TARGET = 0.95;
const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));

const USAGE = `Usage: node bench/clickhouse/run.ts [options]

Streams a large SELECT from system.numbers (three columns, JSONEachRow) through
@flowforge/clickhouse's stream() and through raw @clickhouse/client
query(...).stream(), consuming every row the same way (parse it, read a field);
then a medium result as an array (query() vs query(...).json()). Modes alternate
and rotate every round; ratio = handle ÷ raw in the same round, median over rounds.
Needs the clickhouse-server of scripts/services on ${SERVER_URL}.

Options:
  --rounds N          measurements per mode; the median is reported      (5)
  --rows N            rows of the streamed SELECT                        (2000000)
  --medium-rows N     rows of the array query                            (100000)
  --medium-repeat N   array queries per measurement                      (5)
  --warmup-rows N     rows of the discarded warm-up before each one      (200000)
  --help              this text
`;

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    rows: { type: 'string', default: '2000000' },
    'medium-rows': { type: 'string', default: '100000' },
    'medium-repeat': { type: 'string', default: '5' },
    'warmup-rows': { type: 'string', default: '200000' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
const positive = (name: keyof typeof flags) => {
  const value = Number(flags[name]);
  if (!Number.isInteger(value) || value < 1) {
    console.error(`--${name} must be a positive integer\n\n${USAGE}`);
    process.exit(2);
  }
  return value;
};
const rounds = positive('rounds');
const rowCount = positive('rows');
const mediumRows = positive('medium-rows');
const mediumRepeat = positive('medium-repeat');
const warmupRows = positive('warmup-rows');

const SQL = 'SELECT number, toString(number) AS s, number * 2 AS d FROM system.numbers';
const rawSql = (n: number) => `${SQL} LIMIT ${n}`;
const boundSql = `${SQL} LIMIT {n:UInt32}`;

const raw = createClient({
  url: SERVER_URL,
  username: USER.user,
  password: USER.password,
  request_timeout: 600_000,
  log: { level: ClickHouseLogLevel.OFF },
});
const handle = createClickHouse({ url: SERVER_URL, ...USER, requestTimeoutMs: 600_000 });

/** A row of SQL as JSONEachRow gives it (UInt64 as a string). */
interface NumberRow {
  number: string;
  s: string;
  d: string;
}

/** Reads `n` rows one way; resolves to how many, and how many characters of `s`. */
type Mode = (n: number) => Promise<{ count: number; chars: number }>;

/** Every row is parsed and one field read, in every mode. */
const STREAM_MODES: Record<'raw' | 'flowforge', Mode> = {
  raw: async (n) => {
    const result = await raw.query({ query: rawSql(n), format: 'JSONEachRow' });
    let count = 0;
    let chars = 0;
    for await (const rows of result.stream<NumberRow>()) {
      for (const row of rows) {
        chars += row.json().s.length;
        count += 1;
      }
    }
    return { count, chars };
  },
  flowforge: async (n) => {
    let count = 0;
    let chars = 0;
    for await (const row of handle.stream<NumberRow>(boundSql, { n })) {
      chars += row.s.length;
      count += 1;
    }
    return { count, chars };
  },
};

const QUERY_MODES: Record<'raw' | 'flowforge', Mode> = {
  raw: async (n) => {
    const result = await raw.query({ query: rawSql(n), format: 'JSONEachRow' });
    const rows = await result.json<NumberRow>();
    return { count: rows.length, chars: rows.reduce((sum, row) => sum + row.s.length, 0) };
  },
  flowforge: async (n) => {
    const rows = await handle.query<NumberRow>(boundSql, { n });
    return { count: rows.length, chars: rows.reduce((sum, row) => sum + row.s.length, 0) };
  },
};

/** Characters of toString(number) for 0..n-1: checks that every row was read. */
function expectedChars(n: number): number {
  let chars = 0;
  for (let digits = 1, low = 0, high = 10; low < n; digits += 1, low = high, high *= 10) {
    chars += (Math.min(n, high) - low) * digits;
  }
  return chars;
}

async function serverPid(): Promise<number | null> {
  try {
    return Number((await readFile(SERVER_PID_FILE, 'utf8')).trim()) || null;
  } catch {
    return null;
  }
}

/** One measurement. */
interface Run {
  rowsPerSecond: number;
  seconds: number;
  nodeCpuNsPerRow: number;
  serverCpuNsPerRow: number | null;
}

async function measure(mode: string, run: Mode, n: number, repeat: number): Promise<Run> {
  const pid = await serverPid();
  const serverBefore = pid ? await processCpu(pid).catch(() => null) : null;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  let total = 0;
  for (let i = 0; i < repeat; i += 1) {
    const { count, chars } = await run(n);
    if (count !== n || chars !== expectedChars(n)) {
      throw new Error(
        `${mode}: read ${count} rows / ${chars} chars, expected ${n} / ${expectedChars(n)}`,
      );
    }
    total += count;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const serverAfter = pid && serverBefore !== null ? await processCpu(pid).catch(() => null) : null;
  return {
    rowsPerSecond: total / seconds,
    seconds,
    nodeCpuNsPerRow: (cpuMicros(cpu) * 1000) / total,
    serverCpuNsPerRow:
      serverBefore !== null && serverAfter !== null
        ? ((serverAfter - serverBefore) * 1000) / total
        : null,
  };
}

async function part(
  name: string,
  modes: Record<'raw' | 'flowforge', Mode>,
  n: number,
  repeat: number,
) {
  const names = ['raw', 'flowforge'] as const;
  const runs = recordOf(names, (): Run[] => []);
  for (let round = 0; round < rounds; round += 1) {
    // Alternating, and rotated every round, so that drift over time hits both alike.
    for (const mode of rotated(names, round)) {
      await measure(mode, modes[mode], Math.min(n, warmupRows), 1);
      const run = await measure(mode, modes[mode], n, repeat);
      runs[mode].push(run);
      console.log(
        `round ${round + 1}/${rounds}  ${name.padEnd(6)} ${mode.padEnd(9)} ` +
          `${Math.round(run.rowsPerSecond).toString().padStart(8)} rows/s  ` +
          `Node CPU ${run.nodeCpuNsPerRow.toFixed(0)} ns/row` +
          (run.serverCpuNsPerRow === null
            ? ''
            : `  server CPU ${run.serverCpuNsPerRow.toFixed(0)} ns/row`),
      );
    }
  }
  const ratioOf = (mode: 'raw' | 'flowforge', pick: (run: Run) => number) =>
    median(perRound(runs[mode], runs.raw, (base, run) => pick(run) / pick(base)));
  return names.map((mode) => {
    const serverCpus = runs[mode].map((run) => run.serverCpuNsPerRow);
    return {
      part: name,
      mode,
      rows: n * repeat,
      rowsPerSecond: median(runs[mode].map((run) => run.rowsPerSecond)),
      spread: spread(runs[mode].map((run) => run.rowsPerSecond)),
      ratio: ratioOf(mode, (run) => run.rowsPerSecond),
      nodeCpuNsPerRow: median(runs[mode].map((run) => run.nodeCpuNsPerRow)),
      // raw's CPU per row ÷ this mode's: the throughput ratio of a client with a core to itself.
      cpuRatio: ratioOf(mode, (run) => 1 / run.nodeCpuNsPerRow),
      serverCpuNsPerRow: allNumbers(serverCpus) ? median(serverCpus) : null,
      runs: runs[mode],
    };
  });
}

async function main() {
  const loadBefore = os.loadavg();
  const [versionRow] = await handle.query<{ version: string }>('SELECT version() AS version');
  const version = versionRow?.version;
  console.log(
    `clickhouse bench: server ${version} at ${SERVER_URL} as ${USER.user}; ${rounds} rounds; ` +
      `stream ${rowCount} rows, array ${mediumRepeat} × ${mediumRows} rows; ` +
      `${machineLoad(loadBefore)}\n`,
  );
  const summary = [
    ...(await part('stream', STREAM_MODES, rowCount, 1)),
    ...(await part('array', QUERY_MODES, mediumRows, mediumRepeat)),
  ];

  console.log(
    '\nmedian over the rounds; spread = (max − min) ÷ median rows/s; ratio = median over the\n' +
      'rounds of (rows/s ÷ raw rows/s in the same round); CPU ratio = raw Node CPU per row ÷\n' +
      "this mode's, in the same round; server CPU per row = clickhouse-server's (from /proc)\n",
  );
  printTable(
    [
      'part',
      'mode',
      'rows/s',
      'spread',
      'ratio',
      'Node CPU ns/row',
      'CPU ratio',
      'server CPU ns/row',
    ],
    summary.map((row) => [
      row.part,
      row.mode,
      Math.round(row.rowsPerSecond).toString(),
      `${Math.round(row.spread * 100)} %`,
      `${row.ratio.toFixed(3)}×`,
      row.nodeCpuNsPerRow.toFixed(0),
      `${row.cpuRatio.toFixed(3)}×`,
      row.serverCpuNsPerRow === null ? '–' : row.serverCpuNsPerRow.toFixed(0),
    ]),
    2,
  );

  const stream = summary.find((row) => row.part === 'stream' && row.mode === 'flowforge');
  if (!stream) throw new Error('no stream() measurement');
  const verdict = { target: TARGET, ratio: stream.ratio, met: stream.ratio >= TARGET };
  console.log(
    `\nstream(): ${stream.ratio.toFixed(3)}× raw rows/s (target ≥ ${TARGET}×): ` +
      (verdict.met ? 'target met' : 'TARGET NOT MET') +
      `; Node CPU per row ${stream.cpuRatio.toFixed(3)}× raw's throughput`,
  );

  await writeResults(
    RESULTS,
    { loadBefore, servers: { clickhouse: version } },
    {
      settings: { rounds, rows: rowCount, mediumRows, mediumRepeat, warmupRows, sql: SQL },
      summary,
      verdict,
    },
  );
  console.log(`results written to ${RESULTS}`);
}

try {
  await main();
} finally {
  await handle.close();
  await raw.close();
}
