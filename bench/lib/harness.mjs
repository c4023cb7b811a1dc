// What the benchmarks share: statistics over rounds, child servers that print
// "ready", a checked autocannon run, CPU time from /proc, and the bench database's clean-up.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import process from 'node:process';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';

/** @param {number[]} numbers */
export const median = (numbers) => {
  const sorted = [...numbers].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** (max − min) ÷ median. @param {number[]} numbers */
export const spread = (numbers) => (Math.max(...numbers) - Math.min(...numbers)) / median(numbers);

/** Nearest-rank percentile of a sorted array. @param {number[]} sorted @param {number} p */
export const percentile = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];

/** A port nobody listens on right now. */
export async function freePort() {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = /** @type {import('node:net').AddressInfo} */ (probe.address());
  probe.close();
  await once(probe, 'close');
  return port;
}

/**
 * Starts `node ...args` and resolves once it prints "ready" (15 s at most).
 * @param {string} mode the name in error messages
 * @param {string[]} args
 */
export async function startServer(mode, args) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit').then(([code, signal]) => {
    throw new Error(`server "${mode}" exited before it was ready (code ${code}, signal ${signal})`);
  });
  const ready = (async () => {
    for await (const line of createInterface({ input: child.stdout })) {
      if (line.trim() === 'ready') return;
    }
    await exited; // stdout closed without "ready": report the exit
  })();
  let timer;
  const timeout = new Promise((_resolve, reject) => {
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

/** SIGTERM, then SIGKILL after 5 s. @param {import('node:child_process').ChildProcess} child */
export async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * CPU time (user + system) a process has used, in microseconds, from /proc
 * (Linux, 10 ms ticks). With the load generator on the same cores, req/s also
 * measures the generator; CPU per request measures the server alone.
 * @param {number} pid
 */
export async function processCpu(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat (11 and 12 after the command).
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/**
 * Drops a bench database. A backend whose client just left may still be exiting,
 * and `force` cannot end it then (42501 for one of another role): tries again for
 * a few seconds.
 * @param {(text: string) => Promise<unknown>} adminQuery
 * @param {string} name
 */
export async function dropDatabase(adminQuery, name) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await adminQuery(`drop database if exists ${name} with (force)`);
      break;
    } catch (error) {
      if (attempt >= 10) {
        console.error(`could not drop database ${name}: drop it by hand`);
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
  console.log(`dropped database ${name}`);
}

/**
 * Writes a benchmark's results JSON: the date, the machine (with the versions of
 * the servers it measured against and the load average before and after), then `body`.
 * @param {string | URL} file
 * @param {{ loadBefore: number[], servers?: Record<string, unknown> }} machine
 * @param {Record<string, unknown>} body
 */
export async function writeResults(file, { loadBefore, servers = {} }, body) {
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

/**
 * The numeric value of a parseArgs string flag, above `min` (and whole when asked).
 * @param {Record<string, unknown>} flags
 * @param {string} name
 * @param {{ integer?: boolean, min?: number }} [options]
 */
export function positiveFlag(flags, name, { integer = false, min = 0 } = {}) {
  const value = Number(flags[name]);
  if (!Number.isFinite(value) || value <= min || (integer && !Number.isInteger(value))) {
    throw new Error(`--${name} must be a ${integer ? 'whole ' : ''}number above ${min}`);
  }
  return value;
}

/**
 * One autocannon run (`options` as autocannon takes them); throws when any
 * response was not 2xx or any request failed, since the numbers are then void.
 * `summary` holds req/s, p50/p99 (whole milliseconds: autocannon's histogram
 * is integer) and the request count; `result` is autocannon's own.
 * @param {string} mode
 * @param {import('autocannon').Options} options
 */
export async function checkedLoad(mode, options) {
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
