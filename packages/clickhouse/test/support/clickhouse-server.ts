/**
 * A private clickhouse-server 18.16 for the tests that kill or reconfigure a
 * server: the shared one on 8123 (scripts/services) is used by other suites at
 * the same time and is never touched.
 *
 * The instance lives in a temp dir owned by the `clickhouse` user (the server
 * refuses to run as root): its own config.xml and users.xml (copied in spirit
 * from /etc/clickhouse-server, reduced to what a single node needs), data,
 * tmp and log paths, and free loopback ports for HTTP, native TCP and
 * interserver. It runs in the foreground as its own process group (`runuser`
 * forks the server), so `kill()` can SIGKILL both at once; `stop()` kills and
 * removes the dir and is safe to call from afterAll whatever state it is in.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chown, mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const SERVER_BINARY = '/usr/sbin/clickhouse-server';
const RUNUSER = '/usr/sbin/runuser';
const RUN_AS = 'clickhouse';
const START_TIMEOUT_MS = 30_000;

/** A user of the private server. */
export interface ServerUser {
  readonly name: string;
  readonly password: string;
  /** The user's profile's readonly level. @default 0 */
  readonly readonly?: 0 | 1 | 2;
}

async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, 'close');
  return port;
}

async function idsOf(user: string): Promise<{ uid: number; gid: number }> {
  const child = spawn('id', [user], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await once(child, 'exit');
  const uid = /uid=(\d+)/.exec(out)?.[1];
  const gid = /gid=(\d+)/.exec(out)?.[1];
  if (uid === undefined || gid === undefined) throw new Error(`no system user "${user}"`);
  return { uid: Number(uid), gid: Number(gid) };
}

function configXml(dir: string, ports: { http: number; tcp: number; interserver: number }): string {
  return `<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>${dir}/log/clickhouse-server.log</log>
        <errorlog>${dir}/log/clickhouse-server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>${ports.http}</http_port>
    <tcp_port>${ports.tcp}</tcp_port>
    <interserver_http_port>${ports.interserver}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_connections>256</max_connections>
    <max_concurrent_queries>20</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>${dir}/data/</path>
    <tmp_path>${dir}/tmp/</tmp_path>
    <user_files_path>${dir}/user_files/</user_files_path>
    <format_schema_path>${dir}/format_schemas/</format_schema_path>
    <users_config>${dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mlock_executable>false</mlock_executable>
</yandex>
`;
}

function usersXml(users: readonly ServerUser[]): string {
  const profiles = [0, 1, 2]
    .map((level) => `        <readonly_${level}><readonly>${level}</readonly></readonly_${level}>`)
    .join('\n');
  const entries = users
    .map(
      (user) => `        <${user.name}>
            <password>${user.password}</password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>readonly_${user.readonly ?? 0}</profile>
            <quota>default</quota>
        </${user.name}>`,
    )
    .join('\n');
  return `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default></default>
${profiles}
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
${entries}
    </users>
    <quotas>
        <default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default>
    </quotas>
</yandex>
`;
}

export class ClickHouseServer {
  readonly dir: string;
  readonly httpPort: number;
  readonly #ids: { uid: number; gid: number };
  #child: ChildProcess | undefined;
  #users: readonly ServerUser[];
  #usersMtime = 0;

  private constructor(
    dir: string,
    httpPort: number,
    ids: { uid: number; gid: number },
    users: readonly ServerUser[],
  ) {
    this.dir = dir;
    this.httpPort = httpPort;
    this.#ids = ids;
    this.#users = users;
  }

  /** Creates the instance's dir and config and starts it (resolves once /ping answers "Ok."). */
  static async start(users: readonly ServerUser[] = []): Promise<ClickHouseServer> {
    const ids = await idsOf(RUN_AS);
    const dir = await mkdtemp(path.join(tmpdir(), 'ff-clickhouse-'));
    const ports = { http: await freePort(), tcp: await freePort(), interserver: await freePort() };
    const server = new ClickHouseServer(dir, ports.http, ids, users);
    try {
      for (const sub of ['data', 'tmp', 'user_files', 'format_schemas', 'log']) {
        await mkdir(path.join(dir, sub));
      }
      await writeFile(path.join(dir, 'config.xml'), configXml(dir, ports));
      await writeFile(path.join(dir, 'users.xml'), usersXml(users));
      await server.#chownAll();
      await server.restart();
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get running(): boolean {
    const child = this.#child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  async #chownAll(): Promise<void> {
    const { uid, gid } = this.#ids;
    const walk = async (target: string): Promise<void> => {
      await chown(target, uid, gid);
    };
    await walk(this.dir);
    for (const entry of [
      'config.xml',
      'users.xml',
      'data',
      'tmp',
      'user_files',
      'format_schemas',
      'log',
    ]) {
      await walk(path.join(this.dir, entry));
    }
  }

  /** Starts the server process (again) on the same ports and data. */
  async restart(): Promise<void> {
    if (this.running) return;
    const child = spawn(
      RUNUSER,
      ['-u', RUN_AS, '--', SERVER_BINARY, `--config-file=${path.join(this.dir, 'config.xml')}`],
      { cwd: this.dir, detached: true, stdio: 'ignore' },
    );
    this.#child = child;
    child.on('error', () => undefined);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await this.ping())) {
      if (!this.running) {
        throw new Error(`clickhouse-server exited while starting (see ${this.dir}/log)`);
      }
      if (Date.now() > deadline)
        throw new Error(`clickhouse-server did not answer /ping on ${this.url}`);
      await sleep(100);
    }
  }

  /** True when /ping answers "Ok.". */
  async ping(): Promise<boolean> {
    try {
      const response = await fetch(`${this.url}/ping`, { signal: AbortSignal.timeout(1_000) });
      return (await response.text()) === 'Ok.\n';
    } catch {
      return false;
    }
  }

  /** SIGKILL to the whole process group (runuser and the server); resolves once it exited. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child || !this.running || child.pid === undefined) return;
    const exited = once(child, 'exit');
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await exited;
    // The server is runuser's child: make sure it is gone too before a restart.
    const deadline = Date.now() + 10_000;
    while ((await this.ping()) && Date.now() < deadline) await sleep(50);
  }

  /**
   * Replaces the users. The server re-reads users.xml within seconds, no
   * restart, but it compares modification times in whole seconds: two writes
   * within one second can look unchanged, so every write gets a later second.
   */
  async setUsers(users: readonly ServerUser[]): Promise<void> {
    this.#users = users;
    const file = path.join(this.dir, 'users.xml');
    await writeFile(file, usersXml(users));
    await chown(file, this.#ids.uid, this.#ids.gid);
    this.#usersMtime = Math.max(Math.floor(Date.now() / 1000), this.#usersMtime) + 1;
    await utimes(file, this.#usersMtime, this.#usersMtime);
  }

  get users(): readonly ServerUser[] {
    return this.#users;
  }

  /** Kills the server if it runs and removes its dir. Safe to call in any state, twice. */
  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}
