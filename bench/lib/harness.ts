// What the benchmarks share: statistics over rounds, the order of modes in a round,
// child servers that print "ready", a checked autocannon run, CPU time from /proc,
// the results file, result tables and the clean-up on Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import process from 'node:process';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';

// ------------------------------------------------------------------ statistics

/** The median; NaN for no numbers. */
export function median(numbers: readonly number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const at = (index: number): number => sorted[index] ?? Number.NaN;
  return sorted.length % 2 === 1 ? at(middle) : (at(middle - 1) + at(middle)) / 2;
}

/** (max − min) ÷ median. */
export function spread(numbers: readonly number[]): number {
  return (Math.max(...numbers) - Math.min(...numbers)) / median(numbers);
}

/** [min, max] of `values`. */
export function range(values: readonly number[]): [min: number, max: number] {
  return [Math.min(...values), Math.max(...values)];
}

/** True when none of `values` is null (a measurement /proc could not make). */
export function allNumbers(values: readonly (number | null)[]): values is number[] {
  return values.every((value) => value !== null);
}

/** Nearest-rank percentile of a sorted array; NaN for an empty one. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN;
}

/**
 * `list` rotated by `by` places. Modes run interleaved, and rotated every round, so
 * that drift over time (this VM's speed moves by tens of percent in minutes) hits
 * every mode alike.
 */
export function rotated<T>(list: readonly T[], by: number): T[] {
  const start = list.length === 0 ? 0 : by % list.length;
  return [...list.slice(start), ...list.slice(0, start)];
}

/**
 * `pick(baseline's run, run)` for each round of `runs`. Ratios are taken within a
 * round, then the median over the rounds: a ratio of medians taken minutes apart
 * would mostly measure the VM's drift.
 */
export function perRound<Run>(
  runs: readonly Run[],
  baseline: readonly Run[],
  pick: (base: Run, run: Run) => number,
): number[] {
  return runs.map((run, round) => {
    const base = baseline[round];
    if (base === undefined) throw new Error(`no baseline run in round ${round + 1}`);
    return pick(base, run);
  });
}

/** True for a JSON object (not null, not an array): what a parsed body must be to be read. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The name and message of whatever was thrown (an Error's own; anything else as a string). */
export function errorParts(error: unknown): { name: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: typeof error, message: String(error) };
}

/** A record with a value for each of `keys`, in their order. */
export function recordOf<K extends string, V>(
  keys: readonly K[],
  value: (key: K) => V,
): Record<K, V> {
  // Object.fromEntries types its result by string keys; every key of K is set here.
  return Object.fromEntries(keys.map((key) => [key, value(key)])) as Record<K, V>;
}

/** `record[key]`, which the caller knows is there (it made the record from its keys). */
export function entryOf<V>(record: Readonly<Record<string, V>>, key: string): V {
  const value = record[key];
  if (value === undefined) throw new Error(`nothing recorded for "${key}"`);
  return value;
}

// ------------------------------------------------------------------ output

/**
 * Prints a table: the first `leftColumns` columns left-aligned, the others right-aligned;
 * a `null` row is an empty line (between groups).
 */
export function printTable(
  header: readonly string[],
  rows: readonly (readonly string[] | null)[],
  leftColumns = 1,
): void {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row?.[column]?.length ?? 0)),
  );
  const format = (cells: readonly string[]): string =>
    cells
      .map((cell, column) =>
        column < leftColumns
          ? cell.padEnd(widths[column] ?? 0)
          : cell.padStart(widths[column] ?? 0),
      )
      .join('  ');
  console.log(format(header));
  console.log(widths.map((width) => '-'.repeat(width)).join('  '));
  for (const row of rows) console.log(row === null ? '' : format(row));
}

/**
 * "load average 0.52 on 2 CPUs" of an os.loadavg() reading (its 1-minute figure):
 * anything else running skews the numbers, so every benchmark prints it.
 */
export function machineLoad(loadavg: readonly number[]): string {
  return `load average ${oneMinuteLoad(loadavg)} on ${os.cpus().length} CPUs`;
}

/** The 1-minute figure of an os.loadavg() reading, to two decimals. */
export function oneMinuteLoad(loadavg: readonly number[]): string {
  return (loadavg[0] ?? Number.NaN).toFixed(2);
}

/** What a results file records of the machine beside the numbers. */
export interface Machine {
  /** os.loadavg() before the run. */
  loadBefore: number[];
  /** The versions of the servers measured against. */
  servers?: Record<string, unknown>;
}

/**
 * Writes a benchmark's results JSON: the date, the machine (with the versions of
 * the servers it measured against and the load average before and after), then `body`.
 */
export async function writeResults(
  file: string | URL,
  { loadBefore, servers = {} }: Machine,
  body: Record<string, unknown>,
): Promise<void> {
  const cpus = os.cpus();
  const results = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus.length,
      model: cpus[0]?.model,
      node: process.version,
      ...servers,
      platform: `${os.platform()} ${os.release()}`,
      loadAverage: { before: loadBefore, after: os.loadavg() },
    },
    ...body,
  };
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
}

// ------------------------------------------------------------------ flags

/** The numeric value of a parseArgs string flag, above `min` (and whole when asked). */
export function positiveFlag<Flags extends object>(
  flags: Flags,
  name: keyof Flags & string,
  { integer = false, min = 0 }: { integer?: boolean; min?: number } = {},
): number {
  const value = Number(flags[name]);
  if (!Number.isFinite(value) || value <= min || (integer && !Number.isInteger(value))) {
    throw new Error(`--${name} must be a ${integer ? 'whole ' : ''}number above ${min}`);
  }
  return value;
}

// ------------------------------------------------------------------ processes

/** The port a listening server is bound to. */
export function listeningPort(server: { address(): AddressInfo | string | null }): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the server is not on TCP');
  return address.port;
}

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = listeningPort(probe);
  probe.close();
  await once(probe, 'close');
  return port;
}

/** How a child process ended. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Resolves when `child` exits; rejects if it emits 'error' first (as events.once does). */
export function exitOf(child: ChildProcess): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      child.off('error', onError);
      resolve({ code, signal });
    };
    const onError = (error: Error): void => {
      child.off('exit', onExit);
      reject(error);
    };
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/** The pid of a started child (spawn leaves it undefined only when the start failed). */
export function pidOf(child: ChildProcess): number {
  if (child.pid === undefined) throw new Error('the child process has no pid: it did not start');
  return child.pid;
}

/** Starts `node ...args` and resolves once it prints "ready" (15 s at most). */
export async function startServer(mode: string, args: readonly string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = exitOf(child).then(({ code, signal }): never => {
    throw new Error(`server "${mode}" exited before it was ready (code ${code}, signal ${signal})`);
  });
  const ready = (async () => {
    for await (const line of createInterface({ input: child.stdout })) {
      if (line.trim() === 'ready') return;
    }
    await exited; // stdout closed without "ready": report the exit
  })();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`server "${mode}" not ready after 15 s`)), 15_000);
  });
  try {
    await Promise.race([ready, exited, timeout]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  } finally {
    clearTimeout(timer);
  }
  exited.catch(() => undefined);
  return child;
}

/** SIGTERM, then SIGKILL after 5 s. */
export async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = exitOf(child);
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * CPU time (user + system) a process has used, in microseconds, from /proc
 * (Linux, 10 ms ticks). With the load generator on the same cores, req/s also
 * measures the generator; CPU per request measures the server alone.
 */
export async function processCpu(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat (11 and 12 after the command).
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** User + system CPU time of a process.cpuUsage() reading, in µs. */
export function cpuMicros(usage: NodeJS.CpuUsage): number {
  return usage.user + usage.system;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * On SIGINT or SIGTERM: says `what` is being cleaned up, runs `teardown`, then exits
 * 130 (1 when the teardown failed).
 */
export function tearDownOnSignals(what: string, teardown: () => Promise<unknown>): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: ${what}`);
      teardown().then(
        () => process.exit(130),
        (error: unknown) => {
          console.error(error);
          process.exit(1);
        },
      );
    });
  }
}

// ------------------------------------------------------------------ HTTP load

/** What checkedLoad() reports of a run. */
export interface LoadSummary {
  requestsPerSecond: number;
  /** whole milliseconds: autocannon's histogram is integer */
  p50: number;
  p99: number;
  requests: number;
}

/**
 * One autocannon run (`options` as autocannon takes them); throws when any
 * response was not 2xx or any request failed, since the numbers are then void.
 * `summary` holds req/s, p50/p99 and the request count; `result` is autocannon's own.
 */
export async function checkedLoad(
  mode: string,
  options: autocannon.Options,
): Promise<{ summary: LoadSummary; result: autocannon.Result }> {
  const result = await autocannon(options);
  const failures = { non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts };
  if (failures.non2xx > 0 || failures.errors > 0 || failures.timeouts > 0) {
    throw new Error(
      `"${mode}": failed requests ${JSON.stringify(failures)}, status codes ` +
        `${JSON.stringify(result.statusCodeStats)}; the numbers are void`,
    );
  }
  const summary = {
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
  };
  return { summary, result };
}

/**
 * One request alone before the load (a server fetches its JWKS then, not under load);
 * throws unless it got 200. Resolves to the body.
 */
export async function firstRequest(
  mode: string,
  url: string,
  authorization: string,
): Promise<string> {
  const first = await fetch(url, { headers: { authorization } });
  const body = await first.text();
  if (first.status !== 200) {
    throw new Error(`"${mode}": the first request got ${first.status} ${body}`);
  }
  return body;
}
