// A throwaway npm registry on 127.0.0.1 for one registry check run (scripts/registry-check.ts):
// verdaccio serves the @flowforge/* tarballs the run publishes, the lockfile mirror
// (lock-mirror.ts) serves everything else, and npm's userconfig in the run's temp dir points
// at both, with a token to publish.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import process from 'node:process';
import { setTimeout as delay } from 'node:timers/promises';
import { URL, fileURLToPath } from 'node:url';
import { lockedVersions, startMirror, type Mirror } from './lock-mirror.ts';
import { ROOT, isRecord, messageOf } from './workspace.ts';

/** verdaccio for @flowforge/* and the lockfile mirror for the rest, as npm's userconfig names them. */
export interface Registry {
  url: string;
  port: number;
  dir: string;
  env: NodeJS.ProcessEnv;
  mirror: Mirror;
  stop: () => Promise<void>;
}
/** Which third-party versions the consumer projects get: pnpm-lock.yaml's, or the newest allowed. */
export type Resolution = 'locked' | 'latest';
/** How long the registry may take to answer, and each request of the mirror to its upstream. */
export interface RegistryLimits {
  startMs: number;
  upstreamMs: number;
}

/**
 * The environment for npm and the smoke scripts: nothing inherited from a pnpm or npm
 * parent (npm_config_*, npm_package_*), the registry and a private cache and userconfig.
 * @param dir - the run's temp dir
 */
function cleanEnv(dir: string, registryUrl: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(?:npm_|pnpm_|node_options$|node_path$)/i.test(key)) env[key] = value;
  }
  return {
    ...env,
    npm_config_registry: registryUrl,
    npm_config_userconfig: join(dir, 'npmrc'),
    npm_config_globalconfig: join(dir, 'npmrc-global'),
    npm_config_cache: join(dir, 'npm-cache'),
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    npm_config_loglevel: 'warn',
  };
}

/** A port that was free a moment ago on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePromise(port));
    });
  });
}

/**
 * verdaccio serves only what this run publishes: no uplink, so nothing real can leak in under
 * our scope, and nothing else is asked of it (npm gets third-party packages from the mirror).
 */
function verdaccioConfig(storage: string, htpasswd: string): string {
  return [
    `storage: ${JSON.stringify(storage)}`,
    'auth:',
    '  htpasswd:',
    `    file: ${JSON.stringify(htpasswd)}`,
    'packages:',
    "  '@flowforge/*':",
    '    access: $all',
    '    publish: $authenticated',
    'publish:',
    '  allow_offline: true',
    'log: { type: stdout, format: pretty, level: warn }',
    '',
  ].join('\n');
}

const liveRegistries = new Set<ChildProcess>();
// A last resort if the run dies between start and stop (the test's `after` stops it normally).
process.on('exit', killRegistries);

/** Kills every verdaccio still running (a run's cleanup when it ends abruptly). */
export function killRegistries(): void {
  for (const child of liveRegistries) child.kill('SIGKILL');
}

/**
 * Starts the mirror for third-party packages (pinned to pnpm-lock.yaml unless `resolution` is
 * 'latest') and verdaccio for @flowforge/* on 127.0.0.1, with config and storage in `dir`,
 * creates a verdaccio user and writes npm's userconfig (token included) to `dir/npmrc`.
 * @param dir - an empty temp dir that the caller removes
 */
export async function startRegistry(
  dir: string,
  resolution: Resolution,
  limits: RegistryLimits,
): Promise<Registry> {
  const locked =
    resolution === 'locked'
      ? lockedVersions(readFileSync(join(ROOT, 'pnpm-lock.yaml'), 'utf8'))
      : null;
  const mirror = await startMirror({ locked, timeoutMs: limits.upstreamMs });
  try {
    return await startVerdaccio(dir, mirror, limits.startMs);
  } catch (error) {
    await mirror.stop();
    throw error;
  }
}

async function startVerdaccio(dir: string, mirror: Mirror, startMs: number): Promise<Registry> {
  const config = join(dir, 'verdaccio.yaml');
  await writeFile(config, verdaccioConfig(join(dir, 'storage'), join(dir, 'htpasswd')));
  const bin = fileURLToPath(import.meta.resolve('verdaccio/bin/verdaccio'));
  let lastError = new Error('verdaccio did not start');
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/`;
    const child = spawn(
      process.execPath,
      [bin, '--config', config, '--listen', `127.0.0.1:${port}`],
      {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    liveRegistries.add(child);
    let log = '';
    const append = (chunk: Buffer): void => {
      log = (log + chunk.toString()).slice(-10_000);
    };
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    const exited = new Promise((resolveExit) => child.once('exit', resolveExit));
    const stopVerdaccio = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const gone = await Promise.race([exited.then(() => true), delay(5_000, false)]);
        if (!gone) child.kill('SIGKILL');
        await exited;
      }
      liveRegistries.delete(child);
    };
    const stop = async (): Promise<void> => {
      await stopVerdaccio();
      await mirror.stop();
    };
    try {
      await waitForPing(url, exited, startMs);
      const token = await createUser(url);
      const env = cleanEnv(dir, mirror.url);
      await writeFile(
        join(dir, 'npmrc'),
        [
          `registry=${mirror.url}`,
          `@flowforge:registry=${url}`,
          `//127.0.0.1:${port}/:_authToken=${token}`,
          '',
        ].join('\n'),
      );
      await writeFile(join(dir, 'npmrc-global'), '');
      return { url, port, dir, env, mirror, stop };
    } catch (error) {
      await stopVerdaccio();
      lastError = new Error(`verdaccio on port ${port}: ${messageOf(error)}\n${log}`);
    }
  }
  throw lastError;
}

async function waitForPing(
  url: string,
  exited: Promise<unknown>,
  timeoutMs: number,
): Promise<void> {
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (done) throw new Error('exited before answering');
    try {
      const response = await fetch(new URL('-/ping', url), { signal: AbortSignal.timeout(2_000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await delay(200);
  }
  throw new Error(`no answer within ${timeoutMs} ms`);
}

/**
 * Adds a user through the CouchDB user API that `npm adduser` uses; npm refuses to publish
 * without a token even where the registry would allow it. Resolves to the user's token.
 */
async function createUser(url: string): Promise<string> {
  const name = 'flowforge-ci';
  const response = await fetch(new URL(`-/user/org.couchdb.user:${name}`, url), {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, password: `pw-${process.pid}-${Date.now()}` }),
    signal: AbortSignal.timeout(10_000),
  });
  const body: unknown = await response.json();
  const token = isRecord(body) ? body['token'] : undefined;
  if (!response.ok || typeof token !== 'string' || token === '') {
    throw new Error(`creating a user: ${response.status} ${JSON.stringify(body)}`);
  }
  return token;
}
