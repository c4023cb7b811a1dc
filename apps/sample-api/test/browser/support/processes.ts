/**
 * Real processes for the browser suite: the built sample app (`dist/main.js`, as
 * `pnpm start` runs it) and the Materialize wire double (./double-process.ts), each
 * started with exactly the environment given, watched line by line, and stopped with
 * bounded waits (SIGTERM, then SIGKILL) so that no test leaves one behind.
 * Plain support code: no vitest imports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const MAIN = fileURLToPath(new URL('../../../dist/main.js', import.meta.url));
const DOUBLE = fileURLToPath(new URL('./double-process.ts', import.meta.url));

/** A free loopback port (closed again: the process that gets it binds it next). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * Polls `probe` until it returns something other than `undefined`; throws naming `what`
 * after `timeoutMs`. For bounded waits on eventually-true conditions, never for timing.
 */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await probe();
    if (result !== undefined) return result;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(intervalMs);
  }
}

/** A child process whose output is kept, line by line. */
export class Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly lines: string[] = [];
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  readonly exited: Promise<number | string>;
  #exit: number | string | undefined;

  constructor(name: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv) {
    this.name = name;
    this.process = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [this.process.stdout!, this.process.stderr!]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop()!;
        this.lines.push(...parts);
      });
      stream.on('end', () => {
        if (partial !== '') this.lines.push(partial);
      });
    }
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code, signal) => {
        this.#exit = code ?? signal ?? 'unknown';
        resolve(this.#exit);
      });
    });
  }

  /** The exit code or signal, once exited. */
  get exitStatus(): number | string | undefined {
    return this.#exit;
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  /** The output so far (the last `count` lines), for failure messages. */
  tail(count = 40): string {
    return this.lines.slice(-count).join('\n');
  }

  /** Waits until a line matches; throws with the output when it does not, or the process exits. */
  async waitForLine(pattern: RegExp, timeoutMs = 15_000, from = 0): Promise<string> {
    return eventually(
      `${this.name}: a line matching ${String(pattern)}`,
      () => {
        const line = this.lines.slice(from).find((candidate) => pattern.test(candidate));
        if (line !== undefined) return line;
        if (!this.running) {
          throw new Error(`${this.name} exited (${String(this.#exit)}):\n${this.tail()}`);
        }
        return undefined;
      },
      timeoutMs,
      25,
    );
  }

  /** Sends `signal` (no-op once exited). */
  kill(signal: NodeJS.Signals): void {
    if (this.running) this.process.kill(signal);
  }

  /** SIGTERM, then SIGKILL after `graceMs`: the process is gone when this resolves. */
  async stop(graceMs = 10_000): Promise<number | string> {
    if (!this.running) return this.#exit!;
    this.process.kill('SIGTERM');
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The Materialize wire double process (./double-process.ts). */
export interface DoubleProcess {
  readonly child: Child;
  readonly url: string;
  readonly port: number;
  /** Statements that declared a SUBSCRIBE, in order of arrival. */
  subscribes(): string[];
  /** The last order id added (the initial rows' last one before any tick). */
  lastOrderId(): number;
}

/** Starts the double; `rows` initial orders (ids 1..rows), then one more every `tickMs`. */
export async function startDouble(options: {
  readonly tenantId: string;
  readonly port?: number;
  readonly rows?: number;
  readonly tickMs?: number;
}): Promise<DoubleProcess> {
  const rows = options.rows ?? 4;
  const child = new Child(
    'materialize double',
    process.execPath,
    [
      DOUBLE,
      `--port=${options.port ?? 0}`,
      `--tenant=${options.tenantId}`,
      `--rows=${rows}`,
      `--tick-ms=${options.tickMs ?? 500}`,
    ],
    {},
  );
  const url = await child.waitForLine(/^postgres:\/\//, 15_000);
  const json = (): Record<string, unknown>[] =>
    child.lines
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return {
    child,
    url,
    port: Number(new URL(url).port),
    subscribes: () =>
      json().flatMap((line) => (typeof line.subscribe === 'string' ? [line.subscribe] : [])),
    lastOrderId: () =>
      json().reduce(
        (last, line) => (typeof line.inserted === 'number' ? line.inserted : last),
        rows,
      ),
  };
}

/** One sample-app process. */
export interface AppProcess {
  readonly child: Child;
  readonly port: number;
  readonly url: string;
}

/**
 * Starts `node dist/main.js` with exactly `env` (plus PORT) and waits until its
 * readiness answers 200 (all required stores reachable).
 */
export async function startApp(
  name: string,
  env: Readonly<Record<string, string>>,
  port?: number,
): Promise<AppProcess> {
  const chosen = port ?? (await freePort());
  const child = new Child(name, process.execPath, [MAIN], { ...env, PORT: String(chosen) });
  const url = `http://127.0.0.1:${chosen}`;
  try {
    await eventually(
      `${name} ready at ${url}/health/ready`,
      async () => {
        if (!child.running)
          throw new Error(`${name} exited (${String(child.exitStatus)}):\n${child.tail()}`);
        const answer = await fetch(`${url}/health/ready`, {
          signal: AbortSignal.timeout(1_000),
        }).catch(() => null);
        return answer?.status === 200 ? true : undefined;
      },
      30_000,
      100,
    );
  } catch (error) {
    await child.stop(2_000);
    throw error;
  }
  return { child, port: chosen, url };
}
