/**
 * Private redis-server processes for the tests that kill, pause or reconfigure
 * a server (the shared one on 6379 is never touched that way): standalone
 * servers, a primary + replica + three Sentinels, a six-node Cluster. Every
 * process runs in its own process group on a free loopback port with its files
 * in a temp directory; `stopAll()` (and, as a last resort, process exit) kills
 * them all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const HOST = '127.0.0.1';
const REDIS_SERVER = '/usr/bin/redis-server';
const REDIS_CLI = '/usr/bin/redis-cli';

/** A port nobody listens on right now (the kernel's pick). */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  probe.listen(0, HOST);
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, 'close');
  return port;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `intervalMs` until it returns true; throws after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
}

/**
 * Sends one command over a fresh socket in RESP and returns the raw reply text
 * (no client library, so the servers' readiness never depends on the code
 * under test). Rejects on a socket error or after `timeoutMs`.
 */
export async function rawCommand(
  port: number,
  args: readonly string[],
  timeoutMs = 2_000,
): Promise<string> {
  const socket = net.createConnection({ host: HOST, port });
  socket.setNoDelay(true);
  const request = `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;
  return new Promise<string>((resolve, reject) => {
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply from ${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      if (isComplete(reply)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(reply);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** True when `text` holds one whole RESP2 reply. */
function isComplete(text: string): boolean {
  return parseAt(text, 0) !== -1;
}

function parseAt(text: string, start: number): number {
  const end = text.indexOf('\r\n', start);
  if (end === -1) return -1;
  const type = text[start];
  const header = text.slice(start + 1, end);
  if (type === '+' || type === '-' || type === ':') return end + 2;
  if (type === '$') {
    const length = Number(header);
    if (length < 0) return end + 2;
    const bodyEnd = end + 2 + length;
    return Buffer.byteLength(text.slice(end + 2)) >= length + 2 ? bodyEnd + 2 : -1;
  }
  if (type === '*') {
    const count = Number(header);
    let next = end + 2;
    for (let index = 0; index < count; index += 1) {
      next = parseAt(text, next);
      if (next === -1) return -1;
    }
    return next;
  }
  return -1;
}

/** Every process any test of this worker started; killed at stopAll() or exit. */
const running = new Set<ChildProcess>();
/** Ports held for killed servers (see RedisProcess.kill); released at stopAll(). */
const holders = new Set<() => Promise<void>>();
process.on('exit', () => {
  for (const child of running) killGroup(child, 'SIGKILL');
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** One redis-server (or Sentinel) process. */
export interface RedisProcess {
  readonly port: number;
  readonly dir: string;
  /**
   * SIGKILL (a crash), waiting until the process is gone. `holdPort` keeps the
   * port taken afterwards by a listener that resets every connection (a dead
   * host, as far as clients can tell), until restart() or stopAll(): a node that
   * never comes back must not have its port picked up by a server another test
   * starts meanwhile, or clients that still know the address would talk to it.
   */
  kill(options?: { readonly holdPort?: boolean }): Promise<void>;
  /** Starts the same server again on the same port and directory. */
  restart(): Promise<void>;
  /** One command over a raw socket; the reply as RESP text. */
  command(...args: string[]): Promise<string>;
  readonly running: boolean;
}

interface ProcessSpec {
  readonly args: (port: number, dir: string) => Promise<string[]>;
  /** Extra readiness check after PING answers. */
  readonly ready?: (port: number) => Promise<boolean>;
}

async function spawnServer(port: number, dir: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER, args, {
    cwd: dir,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  child.once('exit', () => running.delete(child));
  const exited = once(child, 'exit');
  try {
    await Promise.race([
      waitFor(`redis-server on ${port} to answer PING`, async () => {
        const reply = await rawCommand(port, ['PING'], 500);
        // NOAUTH: a server with requirepass is up, it only wants a password.
        return reply.startsWith('+PONG') || reply.startsWith('-NOAUTH');
      }),
      exited.then(([code]) => {
        throw new Error(`redis-server on ${port} exited (${String(code)}): ${stderr.trim()}`);
      }),
    ]);
  } catch (error) {
    killGroup(child, 'SIGKILL');
    throw error;
  }
  return child;
}

async function startProcess(spec: ProcessSpec): Promise<RedisProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'ff-redis-test-'));
  // A free port can be taken between the probe and the bind: try a few.
  let port = 0;
  let child: ChildProcess | undefined;
  for (let attempt = 1; child === undefined; attempt += 1) {
    port = await freePort();
    try {
      child = await spawnServer(port, dir, await spec.args(port, dir));
    } catch (error) {
      if (attempt >= 3) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  if (spec.ready) await waitFor(`redis-server on ${port} to be ready`, () => spec.ready!(port));
  let current: ChildProcess = child;
  let holder: net.Server | undefined;
  const fixedPort = port;
  const release = async (): Promise<void> => {
    if (!holder) return;
    const closing = once(holder, 'close');
    holder.close();
    await closing;
    holder = undefined;
  };
  const handle: RedisProcess = {
    port: fixedPort,
    dir,
    get running() {
      return current.exitCode === null && current.signalCode === null;
    },
    async kill(options) {
      if (handle.running) {
        const exited = once(current, 'exit');
        killGroup(current, 'SIGKILL');
        await exited;
      }
      if (options?.holdPort && !holder) {
        holder = net.createServer((socket) => socket.destroy());
        holder.listen(fixedPort, HOST);
        await once(holder, 'listening');
        holders.add(release);
      }
    },
    async restart() {
      await handle.kill();
      await release();
      current = await spawnServer(fixedPort, dir, await spec.args(fixedPort, dir));
    },
    command: (...args) => rawCommand(fixedPort, args),
  };
  return handle;
}

/** Keeps every process of a test file, to stop them all in afterAll. */
export class RedisServers {
  readonly #processes: RedisProcess[] = [];
  readonly #dirs: string[] = [];

  /** A standalone server: no persistence, loopback only, plus `extraArgs`. */
  async standalone(extraArgs: readonly string[] = []): Promise<RedisProcess> {
    const server = await startProcess({
      args: (port, dir) => Promise.resolve(serverArgs(port, dir, extraArgs)),
    });
    this.#track(server);
    return server;
  }

  /**
   * A primary, a replica of it, and three Sentinels monitoring it as
   * `masterName` (quorum 2, down after 1 s), every address announced as
   * 127.0.0.1. Resolves once each Sentinel sees the replica and the other two.
   */
  async sentinelGroup(masterName = 'ffmaster'): Promise<SentinelGroup> {
    const primary = await this.standalone();
    const replica = await this.standalone(['--replicaof', HOST, String(primary.port)]);
    await waitFor('the replica to sync', async () =>
      (await replica.command('INFO', 'replication')).includes('master_link_status:up'),
    );
    const sentinels: RedisProcess[] = [];
    for (let index = 0; index < 3; index += 1) {
      const sentinel = await startProcess({
        args: async (port, dir) => {
          const file = join(dir, 'sentinel.conf');
          // Sentinel rewrites its file: write it on the first start only (a restart keeps it).
          await writeFile(
            file,
            [
              `port ${port}`,
              `bind ${HOST}`,
              `dir ${dir}`,
              `sentinel announce-ip ${HOST}`,
              `sentinel monitor ${masterName} ${HOST} ${primary.port} 2`,
              `sentinel down-after-milliseconds ${masterName} 1000`,
              `sentinel failover-timeout ${masterName} 3000`,
              `sentinel parallel-syncs ${masterName} 1`,
              '',
            ].join('\n'),
            { flag: 'wx' },
          ).catch((error: NodeJS.ErrnoException) => {
            if (error.code !== 'EEXIST') throw error;
          });
          return [file, '--sentinel'];
        },
      });
      this.#track(sentinel);
      sentinels.push(sentinel);
    }
    await waitFor(
      'the Sentinels to find each other and the replica',
      async () => {
        for (const sentinel of sentinels) {
          const reply = await sentinel.command('SENTINEL', 'MASTER', masterName);
          if (field(reply, 'num-other-sentinels') !== '2' || field(reply, 'num-slaves') !== '1') {
            return false;
          }
        }
        return true;
      },
      30_000,
      200,
    );
    return {
      primary,
      replica,
      sentinels,
      masterName,
      async currentPrimaryPort() {
        const reply = await (sentinels.find((s) => s.running) ?? sentinels[0]!).command(
          'SENTINEL',
          'GET-MASTER-ADDR-BY-NAME',
          masterName,
        );
        return Number(bulkStrings(reply)[1]);
      },
    };
  }

  /**
   * Six cluster nodes (three primaries with a replica each) created with
   * `redis-cli --cluster create`; resolves once every node reports
   * `cluster_state:ok` and knows all six, and every replica has synced.
   */
  async cluster(): Promise<ClusterGroup> {
    const nodes: RedisProcess[] = [];
    for (let index = 0; index < 6; index += 1) {
      nodes.push(
        await this.standalone([
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '2000',
          // The bus port is port + 10000 unless given: pick a free one of our own.
          '--cluster-port',
          String(await freePort()),
        ]),
      );
    }
    await runCli([
      '--cluster',
      'create',
      ...nodes.map((node) => `${HOST}:${node.port}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ]);
    await waitFor(
      'every cluster node to report cluster_state:ok',
      async () => {
        for (const node of nodes) {
          const info = await node.command('CLUSTER', 'INFO');
          if (!info.includes('cluster_state:ok') || !info.includes('cluster_known_nodes:6')) {
            return false;
          }
          // A replica that never synced refuses to fail over (its data counts as too old).
          const replication = await node.command('INFO', 'replication');
          if (
            replication.includes('role:slave') &&
            !replication.includes('master_link_status:up')
          ) {
            return false;
          }
        }
        return true;
      },
      60_000,
      200,
    );
    return { nodes };
  }

  /**
   * Kills every process of this file (and any other this worker started, e.g.
   * one whose start timed out) and removes their directories.
   */
  async stopAll(): Promise<void> {
    await Promise.all(this.#processes.map((server) => server.kill()));
    for (const child of running) killGroup(child, 'SIGKILL');
    await Promise.all([...holders].map((release) => release()));
    holders.clear();
    await Promise.all(this.#dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    this.#processes.length = 0;
    this.#dirs.length = 0;
  }

  #track(server: RedisProcess): void {
    this.#processes.push(server);
    this.#dirs.push(server.dir);
  }
}

/**
 * Waits until every replica of `primary` has acknowledged all it was sent
 * (replication is asynchronous: a replica promoted before that lacks the last
 * writes, and reads through any client then find nothing).
 */
export async function waitForReplicas(primary: RedisProcess, timeoutMs = 15_000): Promise<void> {
  await waitFor(
    `the replicas of ${primary.port} to catch up`,
    async () => {
      const info = await primary.command('INFO', 'replication');
      const offset = /master_repl_offset:(\d+)/.exec(info)?.[1];
      const replicas = [...info.matchAll(/slave\d+:[^\r\n]*state=(\w+),offset=(\d+)/g)];
      return (
        replicas.length > 0 &&
        replicas.every(([, state, acknowledged]) => state === 'online' && acknowledged === offset)
      );
    },
    timeoutMs,
    50,
  );
}

export interface SentinelGroup {
  readonly primary: RedisProcess;
  readonly replica: RedisProcess;
  readonly sentinels: readonly RedisProcess[];
  readonly masterName: string;
  /** The port the Sentinels now name as primary. */
  currentPrimaryPort(): Promise<number>;
}

export interface ClusterGroup {
  readonly nodes: readonly RedisProcess[];
}

function serverArgs(port: number, dir: string, extra: readonly string[]): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    HOST,
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--logfile',
    'redis.log',
    // Replicas sync at once instead of after the default 5 s wait for more of them.
    '--repl-diskless-sync-delay',
    '0',
    ...extra,
  ];
}

/** The bulk strings of a RESP reply, in order (nesting flattened). */
export function bulkStrings(reply: string): string[] {
  const values: string[] = [];
  const lines = reply.split('\r\n');
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index] ?? '';
    if (line.startsWith('$') && line !== '$-1') values.push(lines[index + 1] ?? '');
    else if (line.startsWith(':') || line.startsWith('+')) values.push(line.slice(1));
  }
  return values;
}

/** The value after `name` in a flat name/value RESP reply (SENTINEL MASTER, …). */
function field(reply: string, name: string): string | undefined {
  const values = bulkStrings(reply);
  const index = values.indexOf(name);
  return index === -1 ? undefined : values[index + 1];
}

async function runCli(args: readonly string[]): Promise<void> {
  const child = spawn(REDIS_CLI, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`redis-cli ${args.join(' ')} exited ${String(code)}:\n${output}`);
}
