// What a shutdown-under-load test of a built FlowForge service needs, whatever it
// serves: the service as a child process with its JSON log, keep-alive load that
// counts what came back, and readiness probes as a kubelet sends them.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import autocannon from 'autocannon';
import { probeReadiness } from './http.js';

/** Polls until `done()` holds, at most `timeoutMs`. */
export async function until(done: () => boolean, timeoutMs: number): Promise<void> {
  for (let waited = 0; !done() && waited < timeoutMs; waited += 20) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A built service running as a process; see {@link startServiceProcess}. */
export interface ServiceProcess {
  /** Its exit code and signal, once it exited. */
  readonly exited: Promise<[code: number | null, signal: NodeJS.Signals | null]>;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Its JSON log lines so far, parsed. */
  lines(): Record<string, unknown>[];
  /** Waits until it logged a line whose `msg` is `msg`, at most `timeoutMs`; true when it did. */
  logged(msg: string, timeoutMs: number): Promise<boolean>;
  /** Sends `signal`. */
  kill(signal: NodeJS.Signals): void;
  /** SIGKILL unless it already exited (for afterAll). */
  killIfRunning(): void;
}

/**
 * Runs `node <main>` with exactly `env` (nothing inherited from the test
 * runner), as `pnpm start` runs it; set LOG_FORMAT=json for {@link ServiceProcess.lines}.
 */
export function startServiceProcess(
  main: string,
  env: Readonly<Record<string, string>>,
): ServiceProcess {
  let output = '';
  const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return {
    exited,
    output: () => output,
    lines: () =>
      output
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    async logged(msg, timeoutMs) {
      const marker = `"msg":${JSON.stringify(msg)}`;
      await until(() => output.includes(marker), timeoutMs);
      return output.includes(marker);
    },
    kill: (signal) => child.kill(signal),
    killIfRunning() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** One request of the load; every connection sends them in turn. */
export interface LoadRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

/** Load on keep-alive connections; see {@link startKeepAliveLoad}. */
export interface KeepAliveLoad {
  /** Responses received, by status. */
  readonly statuses: Readonly<Record<string, number>>;
  /** Requests that got no response, by error code (refused, reset, broken pipe). */
  readonly errors: Readonly<Record<string, number>>;
  /** How many responses came back so far. */
  answered(): number;
  /** Stops sending; resolves once the load generator is done. */
  stop(): Promise<void>;
}

/**
 * autocannon on `connections` keep-alive connections to `url`, counting every
 * response by status and every failed request by error code. autocannon does
 * not honour `Connection: close`: a request it writes on a connection the
 * service closed is an error here (ECONNRESET, EPIPE), never an answer.
 */
export function startKeepAliveLoad(options: {
  readonly url: string;
  readonly connections: number;
  readonly requests: readonly LoadRequest[];
}): KeepAliveLoad {
  const statuses: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const cannon = autocannon(
    {
      url: options.url,
      connections: options.connections,
      duration: 120,
      timeout: 30,
      requests: options.requests.map((request) => ({
        ...request,
        ...(request.headers === undefined ? {} : { headers: { ...request.headers } }),
      })),
    },
    // With a callback autocannon returns its emitter (the events below), not a promise.
    () => undefined,
  );
  const done = once(cannon, 'done');
  cannon.on('response', (_client, statusCode) => {
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
  });
  cannon.on('reqError', (error: NodeJS.ErrnoException) => {
    const code = error.code ?? error.message;
    errors[code] = (errors[code] ?? 0) + 1;
  });
  return {
    statuses,
    errors,
    answered: () => Object.values(statuses).reduce((sum, n) => sum + n, 0),
    async stop() {
      cannon.stop();
      await done;
    },
  };
}

/** Readiness probers; see {@link startReadinessProbers}. */
export interface ReadinessProbers {
  /** Stops probing once each prober's current probe is answered. */
  stop(): Promise<void>;
  /** Each prober's outcomes (a status, or an error code) of the probes sent at or after `at` (ms). */
  outcomesSince(at: number): string[][];
}

/**
 * `count` probers, each sending GET /health/ready on a fresh connection (as a
 * kubelet does) one after the other until stopped.
 */
export function startReadinessProbers(port: number, count = 3): ReadinessProbers {
  const probes: { at: number; outcome: string }[][] = Array.from({ length: count }, () => []);
  let probing = true;
  const probers = probes.map(async (seen) => {
    while (probing) {
      const at = Date.now();
      const { outcome } = await probeReadiness(port);
      seen.push({ at, outcome });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  });
  return {
    async stop() {
      probing = false;
      await Promise.all(probers);
    },
    outcomesSince: (at) =>
      probes.map((seen) => seen.filter((probe) => probe.at >= at).map((probe) => probe.outcome)),
  };
}
