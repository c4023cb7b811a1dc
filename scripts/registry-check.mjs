#!/usr/bin/env node
// Proves that every package under packages/ installs from a registry the way users get it:
// packs it (`pnpm pack` rewrites `workspace:^` to real versions), publishes the tarball to a
// throwaway verdaccio on loopback, installs it with npm into a fresh temp project outside the
// workspace, then runs a smoke script through ESM `import` and `require()` (on the Node we run
// and on the oldest Node we claim) and type-checks a consumer file with the workspace's
// TypeScript (NodeNext, strict, skipLibCheck off). It also refuses dev-only packages among the
// packed manifest's runtime dependencies.
//
// Hermetic by default: the consumer projects get @flowforge/* from verdaccio and everything
// else from a mirror on loopback that serves only the versions pnpm-lock.yaml holds (with the
// lockfile's integrity), so the verdict depends on the commit, not on what the npm registry
// published today. `--latest` (`pnpm check:latest`) runs the same check against the newest
// versions the published ranges allow and reports where they differ from the lockfile.
//
//   node --test scripts/registry-check.test.mjs     what CI runs (`pnpm check:registry`)
//   node scripts/registry-check.mjs                 the same run, printed as a table
//   node scripts/registry-check.mjs --latest        the drift report (`pnpm check:latest`)
//
// FLOWFORGE_REGISTRY_SKIP=@flowforge/a,@flowforge/b leaves packages out (a package being
// written that does not build yet); the default run checks every package.
import console from 'node:console';
import { spawn } from 'node:child_process';
import {
  ROOT,
  STRICT_CONSUMER_OPTIONS,
  activeChildren,
  listPackages,
  spawnCollect,
} from './lib/workspace.mjs';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { lstat, readdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import process from 'node:process';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { URL, fileURLToPath } from 'node:url';

/**
 * @typedef {import('./lib/workspace.mjs').Manifest} Manifest
 * @typedef {import('./lib/workspace.mjs').WorkspacePackage} WorkspacePackage
 * @typedef {{ url: string, port: number, dir: string, env: NodeJS.ProcessEnv, mirror: Mirror, stop: () => Promise<void> }} Registry
 * @typedef {'locked' | 'latest'} Resolution
 * @typedef {Map<string, Map<string, string>>} LockedVersions  name → version → integrity
 * @typedef {{
 *   url: string,
 *   refused: Set<string>,
 *   stop: () => Promise<void>,
 * }} Mirror  `refused`: what npm asked for that pnpm-lock.yaml does not hold
 * @typedef {{ bytes: number, diskBytes: number, files: number }} Size
 */

export { ROOT, listPackages };
const SCOPE = '@flowforge/';

/** The npm registry the mirror reads from (and where `--latest` resolves). */
const UPSTREAM = 'https://registry.npmjs.org/';

/** Per-step limits; the whole run takes about a minute and a half here. */
const LIMITS = {
  registryStartMs: 30_000,
  packMs: 60_000,
  publishMs: 60_000,
  installMs: 180_000,
  smokeMs: 20_000,
  typecheckMs: 120_000,
};

// ---------------------------------------------------------------------------
// The workspace

/**
 * Package names from FLOWFORGE_REGISTRY_SKIP (comma or space separated).
 * @param {string | undefined} value
 */
export function parseSkipList(value) {
  return new Set((value ?? '').split(/[\s,]+/).filter(Boolean));
}

// ---------------------------------------------------------------------------
// The dev-only rule, checked on the packed manifest (what npm users get)

/** Packages that serve tests, fixtures or development only; never a runtime dependency. */
export const DEV_ONLY = Object.freeze([
  'pino-pretty',
  'chdb',
  'oidc-provider',
  'pg-gateway',
  '@electric-sql/pglite',
  'verdaccio',
  'vitest',
  'fast-check',
  '@types/*',
]);

/** @param {string} dep */
function isDevOnly(dep) {
  return DEV_ONLY.some((entry) =>
    entry.endsWith('/*') ? dep.startsWith(entry.slice(0, -1)) : dep === entry,
  );
}

/**
 * What is wrong with a publishable manifest's runtime dependencies: dev-only packages in
 * `dependencies`, `optionalDependencies` or a required peer, bundled dependencies, and
 * workspace-protocol specifiers left behind by packing. An optional peer
 * (`peerDependenciesMeta[dep].optional`) is allowed: npm never installs it for the user,
 * it only states which versions work when the user adds it (pino-pretty in development).
 * @param {Manifest} manifest
 * @returns {string[]}
 */
export function manifestProblems(manifest) {
  /** @type {string[]} */
  const problems = [];
  for (const field of /** @type {const} */ ([
    'dependencies',
    'optionalDependencies',
    'peerDependencies',
  ])) {
    for (const [dep, range] of Object.entries(manifest[field] ?? {})) {
      const optionalPeer =
        field === 'peerDependencies' && manifest.peerDependenciesMeta?.[dep]?.optional === true;
      if (isDevOnly(dep) && !optionalPeer) {
        problems.push(
          `${manifest.name}: ${dep} is dev-only and may not be in ${field}${field === 'peerDependencies' ? ' (unless optional)' : ''}`,
        );
      }
      if (/^(?:workspace|catalog|link|file):/.test(range)) {
        problems.push(`${manifest.name}: ${field}.${dep} is "${range}" in the packed manifest`);
      }
    }
  }
  const bundled = manifest.bundleDependencies ?? manifest.bundledDependencies;
  if (bundled === true || (Array.isArray(bundled) && bundled.length > 0)) {
    problems.push(`${manifest.name}: bundles dependencies; declare them instead`);
  }
  return problems;
}

// ---------------------------------------------------------------------------
// Child processes

/**
 * Runs a command to completion within `timeoutMs`; rejects with its output on failure.
 * @param {string} command
 * @param {string[]} args
 * @param {{ cwd: string, env?: NodeJS.ProcessEnv, timeoutMs: number }} options
 * @returns {Promise<string>} stdout and stderr, interleaved
 */
async function run(command, args, options) {
  const { code, signal, output } = await spawnCollect(command, args, options);
  if (code === 0) return output;
  const shown = [command, ...args].join(' ');
  throw new Error(`${shown} (in ${options.cwd}) exited ${code ?? signal}:\n${output.trim()}`);
}

/**
 * The environment for npm and the smoke scripts: nothing inherited from a pnpm or npm
 * parent (npm_config_*, npm_package_*), the registry and a private cache and userconfig.
 * @param {string} dir the run's temp dir
 * @param {string} registryUrl
 */
function cleanEnv(dir, registryUrl) {
  /** @type {NodeJS.ProcessEnv} */
  const env = {};
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

// ---------------------------------------------------------------------------
// The mirror: third-party packages at the versions of pnpm-lock.yaml

/**
 * Every `name@version` of pnpm-lock.yaml's `packages:` section, with its integrity.
 * @param {string} text the lockfile (lockfileVersion 9)
 * @returns {LockedVersions}
 */
export function lockedVersions(text) {
  const start = text.search(/^packages:\s*$/m);
  if (start === -1) throw new Error('pnpm-lock.yaml has no packages: section');
  const end = text.slice(start).search(/^snapshots:\s*$/m);
  const section = end === -1 ? text.slice(start) : text.slice(start, start + end);
  /** @type {LockedVersions} */
  const locked = new Map();
  const entry =
    /^ {2}'?((?:@[^@/\s']+\/)?[^@/\s']+)@(\d[^(':\s]*)'?:\s*\n {4}resolution: \{integrity: ([^,}\s]+)/gm;
  for (const match of section.matchAll(entry)) {
    const [, name, version, integrity] = /** @type {[string, string, string, string]} */ (match);
    if (!locked.has(name)) locked.set(name, new Map());
    locked.get(name)?.set(version, integrity);
  }
  if (locked.size === 0) throw new Error('pnpm-lock.yaml: no package entries found');
  return locked;
}

/** @param {string} a @param {string} b semver order for plain x.y.z[-pre] versions */
function compareVersions(a, b) {
  const parse = (/** @type {string} */ v) => {
    const [core = '', pre] = v.split('+')[0]?.split(/-(.*)/s) ?? [];
    return { parts: core.split('.').map(Number), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i += 1) {
    const d = (x.parts[i] ?? 0) - (y.parts[i] ?? 0);
    if (d !== 0) return d;
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  return x.pre < y.pre ? -1 : 1;
}

/**
 * A packument (full or npm's abbreviated form) cut down to the locked versions: other
 * versions, their times and the dist-tags pointing elsewhere go; `latest` becomes the newest
 * locked version. A locked version whose integrity differs from the lockfile's is dropped too
 * (the registry no longer serves what the lockfile pinned).
 * @param {any} packument
 * @param {Map<string, string>} versions version → integrity, from the lockfile
 * @returns {{ packument: any, mismatched: string[] }}
 */
export function lockPackument(packument, versions) {
  /** @type {Record<string, unknown>} */
  const kept = {};
  /** @type {string[]} */
  const mismatched = [];
  for (const [version, integrity] of versions) {
    const manifest = packument.versions?.[version];
    if (!manifest) continue;
    if (manifest.dist?.integrity !== undefined && manifest.dist.integrity !== integrity) {
      mismatched.push(version);
      continue;
    }
    kept[version] = manifest;
  }
  /** @type {Record<string, string>} */
  const tags = {};
  for (const [tag, version] of Object.entries(packument['dist-tags'] ?? {})) {
    if (typeof version === 'string' && version in kept) tags[tag] = version;
  }
  // npm prefers `latest` for a bare name or `*`: keep the registry's when it is locked, else
  // the newest locked release (a prerelease only when nothing else is locked).
  if (tags['latest'] === undefined) {
    const sorted = Object.keys(kept).sort(compareVersions);
    const newest = sorted.filter((version) => !version.includes('-')).at(-1) ?? sorted.at(-1);
    if (newest !== undefined) tags['latest'] = newest;
  }
  /** @type {any} */
  const result = { ...packument, versions: kept, 'dist-tags': tags };
  if (packument.time) {
    result.time = Object.fromEntries(
      Object.entries(packument.time).filter(([key]) => key in kept || !/^\d/.test(key)),
    );
  }
  return { packument: result, mismatched };
}

/** @param {string} pathname a registry request path @returns {string | null} the package name of a packument request */
function packumentName(pathname) {
  const path = decoded(pathname).replace(/^\/+/, '');
  return /^(?:@[^/@]+\/)?[^/@]+$/.test(path) ? path : null;
}

/** @param {string} pathname @returns {string} the path decoded; '' when it cannot be */
function decoded(pathname) {
  try {
    return decodeURIComponent(pathname);
  } catch {
    return '';
  }
}

/**
 * The package and version of a tarball request (`/name/-/name-1.2.3.tgz`,
 * `/@scope/name/-/name-1.2.3.tgz`), or null for any other path.
 * @param {string} pathname
 */
export function tarballOf(pathname) {
  const match = /^\/((?:@[^/@]+\/)?[^/@]+)\/-\/([^/]+)\.tgz$/.exec(decoded(pathname));
  if (!match) return null;
  const name = /** @type {string} */ (match[1]);
  const base = name.split('/').at(-1) ?? name;
  const file = /** @type {string} */ (match[2]);
  return file.startsWith(`${base}-`) ? { name, version: file.slice(base.length + 1) } : null;
}

/**
 * An npm registry on 127.0.0.1 that reads through to `upstream`. With `locked`, packuments are
 * cut to the lockfile's versions and a package the lockfile lacks answers 404 (and is listed in
 * `refused`, so the check can name it); without it (`--latest`) everything passes through.
 * Tarballs always pass through: a version that is not in a served packument is never asked for.
 * @param {{ locked: LockedVersions | null, upstream?: string }} options
 * @returns {Promise<Mirror>}
 */
export async function startMirror({ locked, upstream = UPSTREAM }) {
  /** @type {Set<string>} */
  const refused = new Set();
  const server = createHttpServer((request, response) => {
    const fail = (/** @type {number} */ status, /** @type {string} */ error) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error }));
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') return fail(405, 'read-only');
    const url = new URL(request.url ?? '/', 'http://mirror');
    const name = packumentName(url.pathname);
    const versions = name === null || locked === null ? undefined : locked.get(name);
    if (name !== null && locked !== null && versions === undefined) {
      refused.add(name);
      return fail(404, `${name} is not in pnpm-lock.yaml`);
    }
    if (name === null && locked !== null) {
      // Pinned means pinned for every path: a tarball of a locked version, nothing else.
      const tarball = tarballOf(url.pathname);
      if (!tarball || !locked.get(tarball.name)?.has(tarball.version)) {
        refused.add(tarball ? `${tarball.name}@${tarball.version}` : url.pathname);
        return fail(404, `${url.pathname} is not a tarball of a version in pnpm-lock.yaml`);
      }
    }
    /** @type {Record<string, string>} */
    const headers = {};
    if (typeof request.headers.accept === 'string') headers['accept'] = request.headers.accept;
    fetch(new URL(url.pathname.replace(/^\/+/, ''), upstream), {
      headers,
      signal: AbortSignal.timeout(LIMITS.installMs),
    })
      .then(async (upstreamResponse) => {
        if (!upstreamResponse.ok || versions === undefined) {
          response.writeHead(upstreamResponse.status, {
            'content-type':
              upstreamResponse.headers.get('content-type') ?? 'application/octet-stream',
          });
          if (upstreamResponse.body === null || request.method === 'HEAD') return response.end();
          return Readable.fromWeb(/** @type {any} */ (upstreamResponse.body)).pipe(response);
        }
        const cut = lockPackument(await upstreamResponse.json(), versions);
        for (const version of cut.mismatched) refused.add(`${name}@${version} (integrity differs)`);
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(cut.packument));
      })
      .catch((/** @type {Error} */ error) => {
        if (!response.headersSent) fail(502, `upstream: ${error.message}`);
        else response.destroy(error);
      });
  });
  await new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolveListen(undefined));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/`,
    refused,
    stop: () =>
      new Promise((resolveClose) => {
        server.closeAllConnections();
        server.close(() => resolveClose(undefined));
      }),
  };
}

/**
 * Third-party packages installed under `dir` (npm's hidden lockfile) whose version is not
 * one that pnpm-lock.yaml holds: the drift a consumer installing today would get.
 * @param {string} dir a consumer project
 * @param {LockedVersions} locked
 * @returns {{ name: string, version: string, locked: string[] }[]}
 */
export function driftOf(dir, locked) {
  const lockfile = join(dir, 'node_modules', '.package-lock.json');
  if (!existsSync(lockfile)) return [];
  const tree = JSON.parse(readFileSync(lockfile, 'utf8'));
  /** @type {Map<string, { name: string, version: string, locked: string[] }>} */
  const drift = new Map();
  for (const [path, entry] of Object.entries(tree.packages ?? {})) {
    const name = /** @type {string} */ (path.split('node_modules/').at(-1));
    if (!name || name.startsWith(SCOPE) || entry.link) continue;
    const versions = locked.get(name);
    if (versions?.has(entry.version)) continue;
    drift.set(`${name}@${entry.version}`, {
      name,
      version: entry.version,
      locked: [...(versions?.keys() ?? [])],
    });
  }
  return [...drift.values()];
}

/**
 * Optional peers named by the packages installed under `dir` (npm asks the registry about
 * them, to check a range, without installing them: pg's `pg-native`).
 * @param {string} dir a consumer project
 * @returns {Set<string>}
 */
export function optionalPeersOf(dir) {
  const lockfile = join(dir, 'node_modules', '.package-lock.json');
  /** @type {Set<string>} */
  const names = new Set();
  if (!existsSync(lockfile)) return names;
  const tree = JSON.parse(readFileSync(lockfile, 'utf8'));
  for (const entry of Object.values(tree.packages ?? {})) {
    for (const [name, meta] of Object.entries(entry.peerDependenciesMeta ?? {})) {
      if (/** @type {{ optional?: boolean }} */ (meta).optional) names.add(name);
    }
  }
  return names;
}

// ---------------------------------------------------------------------------
// The registry

/** @returns {Promise<number>} a port that was free a moment ago on 127.0.0.1 */
function freePort() {
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
 * @param {string} storage @param {string} htpasswd
 */
function verdaccioConfig(storage, htpasswd) {
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

/** @type {Set<import('node:child_process').ChildProcess>} */
const liveRegistries = new Set();
// A last resort if the run dies between start and stop (the test's `after` stops it normally).
process.on('exit', () => {
  for (const child of liveRegistries) child.kill('SIGKILL');
});

/**
 * Starts the mirror for third-party packages (pinned to pnpm-lock.yaml unless `resolution` is
 * 'latest') and verdaccio for @flowforge/* on 127.0.0.1, with config and storage in `dir`,
 * creates a verdaccio user and writes npm's userconfig (token included) to `dir/npmrc`.
 * @param {string} dir an empty temp dir that the caller removes
 * @param {Resolution} resolution
 * @returns {Promise<Registry>}
 */
async function startRegistry(dir, resolution) {
  const locked =
    resolution === 'locked'
      ? lockedVersions(readFileSync(join(ROOT, 'pnpm-lock.yaml'), 'utf8'))
      : null;
  const mirror = await startMirror({ locked });
  try {
    return await startVerdaccio(dir, mirror);
  } catch (error) {
    await mirror.stop();
    throw error;
  }
}

/**
 * @param {string} dir
 * @param {Mirror} mirror
 * @returns {Promise<Registry>}
 */
async function startVerdaccio(dir, mirror) {
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
    child.stdout?.on('data', (chunk) => (log = (log + chunk).slice(-10_000)));
    child.stderr?.on('data', (chunk) => (log = (log + chunk).slice(-10_000)));
    const exited = new Promise((resolveExit) => child.once('exit', resolveExit));
    const stopVerdaccio = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const gone = await Promise.race([exited.then(() => true), delay(5_000, false)]);
        if (!gone) child.kill('SIGKILL');
        await exited;
      }
      liveRegistries.delete(child);
    };
    const stop = async () => {
      await stopVerdaccio();
      await mirror.stop();
    };
    try {
      await waitForPing(url, exited, LIMITS.registryStartMs);
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
      lastError = new Error(
        `verdaccio on port ${port}: ${/** @type {Error} */ (error).message}\n${log}`,
      );
    }
  }
  throw lastError;
}

/**
 * @param {string} url
 * @param {Promise<unknown>} exited
 * @param {number} timeoutMs
 */
async function waitForPing(url, exited, timeoutMs) {
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
 * without a token even where the registry would allow it.
 * @param {string} url
 * @returns {Promise<string>} the user's token
 */
async function createUser(url) {
  const name = 'flowforge-ci';
  const response = await fetch(new URL(`-/user/org.couchdb.user:${name}`, url), {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, password: `pw-${process.pid}-${Date.now()}` }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = /** @type {{ token?: string }} */ (await response.json());
  if (!response.ok || !body.token) {
    throw new Error(`creating a user: ${response.status} ${JSON.stringify(body)}`);
  }
  return body.token;
}

// ---------------------------------------------------------------------------
// Pack and publish

/**
 * `pnpm pack` into `dest`; returns the tarball's path and the manifest inside it.
 * @param {WorkspacePackage} pkg
 * @param {string} dest an empty dir
 */
async function pack(pkg, dest) {
  mkdirSync(dest, { recursive: true });
  await run('pnpm', ['pack', '--pack-destination', dest], {
    cwd: pkg.dir,
    timeoutMs: LIMITS.packMs,
  });
  const tarballs = readdirSync(dest).filter((file) => file.endsWith('.tgz'));
  if (tarballs.length !== 1)
    throw new Error(`pnpm pack left ${tarballs.length} tarballs in ${dest}`);
  const tarball = join(dest, /** @type {string} */ (tarballs[0]));
  const read = (/** @type {string[]} */ args) => run('tar', args, { cwd: dest, timeoutMs: 10_000 });
  const manifest = /** @type {Manifest} */ (
    JSON.parse(await read(['-xzOf', tarball, 'package/package.json']))
  );
  const files = (await read(['-tzf', tarball]))
    .split('\n')
    .filter(Boolean)
    .map((file) => file.replace(/^package\//, ''));
  const readme = files.includes('README.md')
    ? await read(['-xzOf', tarball, 'package/README.md'])
    : '';
  return { tarball, manifest, problems: tarballProblems(manifest, files, readme) };
}

/** The repository every package is published from. */
export const REPOSITORY = 'https://github.com/flowforge/flowforge-core';

/**
 * What an npm user would miss in a packed package: the LICENSE file, `repository` (with the
 * package's `directory`), `homepage` and `bugs`, and README links that work on the npm page
 * (npm renders the README alone: a relative link must name a file inside the tarball; anything
 * outside it needs an absolute URL).
 * @param {Manifest & { repository?: { url?: string, directory?: string } | string, homepage?: string, bugs?: { url?: string } | string }} manifest
 * @param {string[]} files paths inside the tarball
 * @param {string} readme the packed README.md
 * @returns {string[]}
 */
export function tarballProblems(manifest, files, readme) {
  /** @type {string[]} */
  const problems = [];
  const name = manifest.name;
  if (!files.some((file) => /^LICEN[CS]E(?:\.md|\.txt)?$/i.test(file))) {
    problems.push(`${name}: no LICENSE file in the tarball`);
  }
  const repository = typeof manifest.repository === 'object' ? manifest.repository : undefined;
  if (!repository?.url?.includes(REPOSITORY.replace(/^https:\/\//, ''))) {
    problems.push(`${name}: repository.url does not name ${REPOSITORY}`);
  }
  if (!repository?.directory) problems.push(`${name}: repository.directory is missing`);
  if (typeof manifest.homepage !== 'string' || !manifest.homepage.startsWith('https://')) {
    problems.push(`${name}: homepage is missing`);
  }
  const bugs = typeof manifest.bugs === 'object' ? manifest.bugs.url : manifest.bugs;
  if (typeof bugs !== 'string' || !bugs.startsWith('https://')) {
    problems.push(`${name}: bugs is missing`);
  }
  if (readme === '') problems.push(`${name}: no README.md in the tarball`);
  for (const match of readme.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)|^\[[^\]]+\]:\s*(\S+)/gm)) {
    const target = /** @type {string} */ (match[1] ?? match[2]);
    if (/^(?:[a-z][a-z+.-]*:|#)/i.test(target)) continue;
    const path = target.split('#')[0]?.replace(/^\.\//, '') ?? '';
    if (
      !files.includes(path) &&
      !files.some((file) => file.startsWith(`${path.replace(/\/$/, '')}/`))
    ) {
      problems.push(`${name}: README link (${target}) is not in the tarball: make it absolute`);
    }
  }
  return problems;
}

/**
 * @param {Registry} registry
 * @param {string} tarball an absolute path (npm reads a relative one as a git spec)
 */
async function publish(registry, tarball) {
  await run('npm', ['publish', tarball, '--access', 'public', '--tag', 'latest'], {
    cwd: registry.dir,
    env: registry.env,
    timeoutMs: LIMITS.publishMs,
  });
}

// ---------------------------------------------------------------------------
// Install, measure, smoke, type-check

/**
 * A fresh npm project in `dir` (outside the workspace) with `specs` installed from the registry.
 * @param {Registry} registry
 * @param {string} dir
 * @param {string[]} specs
 * @param {Record<string, unknown>} [fields] more package.json fields
 */
async function installFresh(registry, dir, specs, fields = {}) {
  mkdirSync(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), packageJson(fields));
  await npmInstall(registry, dir, specs);
}

/**
 * A consumer project's package.json, before npm adds what it installs.
 * @param {Record<string, unknown>} [fields]
 */
function packageJson(fields = {}) {
  const manifest = { name: 'flowforge-consumer', version: '1.0.0', private: true, ...fields };
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/**
 * @param {Registry} registry
 * @param {string} dir
 * @param {string[]} specs
 * @param {string[]} [flags]
 */
async function npmInstall(registry, dir, specs, flags = []) {
  try {
    await run('npm', ['install', '--no-audit', '--no-fund', ...flags, ...specs], {
      cwd: dir,
      env: registry.env,
      timeoutMs: LIMITS.installMs,
    });
  } catch (error) {
    const message = /** @type {Error} */ (error).message;
    if (registry.mirror.refused.size > 0) {
      throw new Error(
        `${message}\n(npm asked for what pnpm-lock.yaml does not hold: ${[...registry.mirror.refused].join(', ')}; a dependency added to a package without \`pnpm install\`?)`,
        { cause: error },
      );
    }
    if (/E(?:404|502)[\s\S]*GET http:\/\/127\.0\.0\.1:\d+\/(?!@flowforge)/.test(message)) {
      throw new Error(
        `${message}\n(the mirror could not fetch it from ${UPSTREAM}: no network, or a proxy or CA certificate (NODE_EXTRA_CA_CERTS) that did not reach it)`,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * The size of everything under `dir`: file bytes (what packagephobia calls install size)
 * and allocated disk blocks (what `du` shows; depends on the filesystem).
 * @param {string} dir
 * @returns {Promise<Size>}
 */
async function directorySize(dir) {
  const size = { bytes: 0, diskBytes: 0, files: 0 };
  /** @param {string} path */
  const walk = async (path) => {
    const stat = await lstat(path);
    size.diskBytes += stat.blocks * 512;
    if (stat.isDirectory()) {
      for (const entry of await readdir(path)) await walk(join(path, entry));
    } else {
      size.bytes += stat.size;
      size.files += 1;
    }
  };
  await walk(dir);
  return size;
}

/** @param {number} bytes */
export function formatMegabytes(bytes) {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

/**
 * One real export per package, run once through `import` and once through `require()`.
 * Each is serialized into the consumer project, so it may use only its arguments.
 * @type {Record<string, (pkg: any, assert: any) => unknown>}
 */
export const SMOKES = {
  '@flowforge/config': (pkg, assert) => {
    const settings = pkg.loadSettings({
      APP_ENV: 'test',
      PORT: '8123',
      DATABASE_URL: 'postgres://127.0.0.1/flowforge_test',
    });
    assert.equal(settings.app.env, 'test');
    assert.equal(settings.app.port, 8123);
    assert.equal(settings.database.url, 'postgres://127.0.0.1/flowforge_test');
    assert.ok(Object.isFrozen(settings.database));
    assert.throws(
      () => pkg.loadSettings({ APP_ENV: 'test', PORT: 'eighty' }),
      (/** @type {any} */ error) =>
        error instanceof pkg.ConfigError &&
        error.code === 'CONFIG_INVALID' &&
        error.issues.some((/** @type {{ variable: string }} */ issue) => issue.variable === 'PORT'),
    );
  },
  '@flowforge/observability': async (pkg, assert) => {
    const metrics = pkg.createMetrics({ defaultMetrics: false });
    metrics.counter({ name: 'smoke_total', help: 'Smoke test counter.' }).inc();
    assert.match(await metrics.render(), /^flowforge_smoke_total 1$/m);
    assert.throws(
      () => metrics.gauge({ name: 'smoke_total', help: 'Smoke test counter.' }),
      (/** @type {any} */ error) =>
        error instanceof pkg.ObservabilityError && error.code === 'METRIC_CONFLICT',
    );
  },
  '@flowforge/db': (pkg, assert) => {
    const tenant = '0f8fad5b-d9cb-469f-a165-70867728950e';
    assert.equal(pkg.isTenantId(tenant), true);
    assert.equal(pkg.assertTenantId(tenant.toUpperCase()), tenant);
    assert.throws(
      () => pkg.assertTenantId('not-a-tenant'),
      (/** @type {any} */ error) => pkg.isDatabaseError(error, 'TENANT_INVALID'),
    );
    assert.ok(Object.keys(pkg.coreMigrations().migrations).length > 0);
  },
  '@flowforge/auth': (pkg, assert) => {
    const tenant = '0f8fad5b-d9cb-469f-a165-70867728950e';
    const { key, hash } = pkg.generateApiKey(tenant);
    assert.deepEqual(pkg.parseApiKey(key), { tenantId: tenant, hash });
    assert.equal(pkg.parseApiKey(`${key}x`), null);
    const error = new pkg.AuthError('TOKEN_EXPIRED', 'expired');
    assert.equal(error.code, 'TOKEN_EXPIRED');
    assert.equal(error.status, 401);
    assert.ok(pkg.isAuthError(error));
  },
  '@flowforge/redis': (pkg, assert) => {
    assert.throws(
      () => pkg.createRedis({ topology: null }),
      (/** @type {any} */ error) => pkg.isRedisError(error, 'NOT_CONFIGURED'),
    );
    assert.equal(new pkg.RedisError('UNAVAILABLE', 'down').retryable, true);
  },
  '@flowforge/clickhouse': (pkg, assert) => {
    assert.throws(
      () => pkg.createClickHouse({ url: null }),
      (/** @type {any} */ error) => pkg.isClickHouseError(error, 'NOT_CONFIGURED'),
    );
    assert.equal(new pkg.ClickHouseError('TIMEOUT', 'slow').retryable, true);
  },
  '@flowforge/materialize': (pkg, assert) => {
    assert.throws(
      () => pkg.createMaterialize({ url: null }),
      (/** @type {any} */ error) => pkg.isMaterializeError(error, 'NOT_CONFIGURED'),
    );
    const mz = pkg.createMaterialize({ url: 'postgres://materialize@127.0.0.1:1/materialize' });
    assert.equal(mz.status, 'idle');
    assert.throws(
      () => mz.subscribe('view"; drop view x; --'),
      (/** @type {any} */ error) => pkg.isMaterializeError(error, 'INVALID_ARGUMENT'),
    );
    assert.equal(new pkg.MaterializeError('UNAVAILABLE', 'down').retryable, true);
    return mz.close();
  },
};

/**
 * For a package without an entry in SMOKES: the entry loads and exports something.
 * @param {any} pkg
 * @param {any} assert
 */
function genericSmoke(pkg, assert) {
  assert.ok(Object.keys(pkg).length > 0, 'the public entry exports nothing');
}

/**
 * Consumer files: the public types used the way the README examples use them. They are
 * type-checked only (never run), so they may name services that do not exist here.
 * @type {Record<string, string>}
 */
export const CONSUMERS = {
  '@flowforge/config': `
import { loadSettings, ConfigError, type Settings, type ConfigErrorCode } from '@flowforge/config';

export const settings: Settings = loadSettings({ APP_ENV: 'test' });
export const port: number = settings.app.port;
export const databaseUrl: string | null = settings.database.url;
export const issuer: string = settings.auth.keycloak.issuer;
export function describe(error: unknown): string {
  if (error instanceof ConfigError) {
    const code: ConfigErrorCode = error.code;
    return \`\${code}: \${error.issues.map((issue) => issue.variable).join(', ')}\`;
  }
  return 'ok';
}
`,
  '@flowforge/observability': `
import { createLogger, createMetrics, ObservabilityError, type Logger, type Metrics } from '@flowforge/observability';
import { fastifyObservability, genReqId, type FastifyObservabilityOptions } from '@flowforge/observability/fastify';

export const logger: Logger = createLogger({ level: 'info', format: 'json', service: 'consumer' });
export const metrics: Metrics = createMetrics();
const requests = metrics.counter({ name: 'consumer_requests_total', help: 'Requests.', labelNames: ['route'] });
requests.labels('/').inc();
export const text: Promise<string> = metrics.render();
export const code: ObservabilityError['code'] = 'METRIC_CONFLICT';
export const plugin: typeof fastifyObservability = fastifyObservability;
export const requestIds: typeof genReqId = genReqId;
export type PluginOptions = FastifyObservabilityOptions;
`,
  '@flowforge/db': `
import type { Generated } from 'kysely';
import { loadSettings } from '@flowforge/config';
import { createDatabase, isDatabaseError, type Database, type TenantScoped } from '@flowforge/db';

interface DB {
  dashboards: TenantScoped<{ id: Generated<string>; name: string }>;
}
export function open(): Database<DB> {
  return createDatabase<DB>({ ...loadSettings({ APP_ENV: 'test' }).database });
}
export async function names(database: Database<DB>, tenantId: string): Promise<string[]> {
  const rows = await database.withTenant(tenantId, (trx) => trx.selectFrom('dashboards').select('name').execute());
  return rows.map((row) => row.name);
}
export function conflict(error: unknown): boolean {
  return isDatabaseError(error, 'UNIQUE_VIOLATION');
}
`,
  '@flowforge/auth': `
import { AuthError, generateApiKey, parseApiKey, type AuthErrorCode, type Principal } from '@flowforge/auth';
import { bearer, requireRole, type AuthHook } from '@flowforge/auth/fastify';

export const generated = generateApiKey('0f8fad5b-d9cb-469f-a165-70867728950e');
export const tenantId: string | undefined = parseApiKey(generated.key)?.tenantId;
export function tenantOf(principal: Principal): string {
  return principal.tenantId;
}
export const viewerOnly = requireRole('viewer');
export const makeBearer: (...args: Parameters<typeof bearer>) => AuthHook = bearer;
export function challenge(error: AuthError): string | undefined {
  const code: AuthErrorCode = error.code;
  return code === 'TOKEN_EXPIRED' ? error.challenge('flowforge') : undefined;
}
`,
  '@flowforge/redis': `
import { loadSettings } from '@flowforge/config';
import { createRedis, isRedisError, type Redis, type RedisErrorCode } from '@flowforge/redis';

export function open(): Redis {
  return createRedis({ ...loadSettings({ APP_ENV: 'test' }).redis });
}
export async function profile(redis: Redis, userId: string): Promise<Record<string, string>> {
  return redis.data.hgetall(\`user:\${userId}\`);
}
export function retryable(error: unknown): boolean {
  return isRedisError(error) && error.retryable;
}
export const code: RedisErrorCode = 'NOT_CONFIGURED';
`,
  '@flowforge/clickhouse': `
import { loadSettings } from '@flowforge/config';
import { createClickHouse, isClickHouseError, type ClickHouse } from '@flowforge/clickhouse';

export function open(): ClickHouse {
  return createClickHouse({ ...loadSettings({ APP_ENV: 'test' }).clickhouse });
}
export async function days(clickhouse: ClickHouse, tenantId: string): Promise<{ day: string; views: string }[]> {
  return clickhouse.queryForTenant<{ day: string; views: string }>(
    tenantId,
    'SELECT toDate(ts) AS day, count() AS views FROM events WHERE tenant_id = {tenant_id:UUID} GROUP BY day',
  );
}
export function unavailable(error: unknown): boolean {
  return isClickHouseError(error, 'UNAVAILABLE');
}
`,
  '@flowforge/materialize': `
import { loadSettings } from '@flowforge/config';
import {
  createMaterialize,
  isMaterializeError,
  type Materialize,
  type MaterializeErrorCode,
  type SubscribeUpdate,
} from '@flowforge/materialize';

export function open(): Materialize {
  return createMaterialize({ ...loadSettings({ APP_ENV: 'test' }).materialize, optional: true });
}
export async function totals(mz: Materialize, tenantId: string, signal: AbortSignal): Promise<number> {
  let sum = 0;
  for await (const change of mz.subscribe<{ total: string }>('widget_totals', {
    filter: { tenant_id: tenantId },
    signal,
  })) {
    const update: SubscribeUpdate<{ total: string }> = change;
    const at: bigint = update.mzTimestamp;
    sum += Number(update.row.total) * update.mzDiff + Number(at > 0n);
  }
  return sum;
}
export async function resume(mz: Materialize, from: bigint): Promise<bigint | null> {
  for await (const item of mz.subscribe('widget_totals', { progress: true, resumeFrom: from })) {
    if (item.kind === 'progress') return item.mzTimestamp;
  }
  return null;
}
export function retryable(error: unknown): boolean {
  return isMaterializeError(error) && error.retryable;
}
export const code: MaterializeErrorCode = 'HISTORY_UNAVAILABLE';
`,
};

/** @param {string} name */
function genericConsumer(name) {
  return `import * as pkg from '${name}';\n\nexport type PublicSurface = typeof pkg;\n`;
}

/**
 * Writes the smoke scripts into `dir`: the package's check, once under ESM `import` and
 * once under `require()` (which must give the same module instance as import, or users
 * get two copies of its state). A package that connects or schedules work at import
 * time never exits and times out.
 * @param {string} dir
 * @param {string} name
 */
async function writeSmokes(dir, name) {
  const check = SMOKES[name] ?? genericSmoke;
  const spec = JSON.stringify(name);
  await writeFile(join(dir, 'check.cjs'), `'use strict';\nmodule.exports = ${check.toString()};\n`);
  await writeFile(
    join(dir, 'smoke.mjs'),
    [
      "import assert from 'node:assert/strict';",
      "import { createRequire } from 'node:module';",
      `import * as pkg from ${spec};`,
      "const check = createRequire(import.meta.url)('./check.cjs');",
      'await check(pkg, assert);',
      `console.log('import ${name}: ok');`,
      '',
    ].join('\n'),
  );
  await writeFile(
    join(dir, 'smoke.cjs'),
    [
      "'use strict';",
      "const assert = require('node:assert/strict');",
      `const pkg = require(${spec});`,
      "const check = require('./check.cjs');",
      '(async () => {',
      '  await check(pkg, assert);',
      `  assert.equal(pkg, await import(${spec}), 'require() and import() give different instances');`,
      `  console.log('require ${name}: ok');`,
      '})().catch((error) => {',
      '  console.error(error);',
      '  process.exitCode = 1;',
      '});',
      '',
    ].join('\n'),
  );
}

/** The oldest Node that engines.node claims, as scripts/bootstrap installs it. */
export const OLDEST_NODE = join(ROOT, '.tools', 'node-oldest', 'node_modules', '.bin', 'node');
const OLDEST_NODE_LABEL = `node ${
  /** @type {{ engines: { node: string } }} */ (
    JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  ).engines.node
}`;

/**
 * @param {Registry} registry
 * @param {string} dir
 * @param {'smoke.mjs' | 'smoke.cjs'} script
 * @param {string} [node] the node binary
 */
function runSmoke(registry, dir, script, node = process.execPath) {
  if (!existsSync(node)) {
    return Promise.reject(new Error(`${node} is missing: run scripts/bootstrap first`));
  }
  return run(node, [script], {
    cwd: dir,
    env: registry.env,
    timeoutMs: LIMITS.smokeMs,
  });
}

/**
 * Type-checks one consumer file per package, in one fresh project holding all of them,
 * with the workspace's TypeScript and `skipLibCheck` off so the shipped .d.ts files are
 * checked too. The project has what such a consumer has: @types/node, and the optional
 * peers whose types the installed @flowforge/* .d.ts files import (fastify, for the
 * plugins). One project and one tsc run keep this to a few seconds.
 * @param {Registry} registry
 * @param {string} dir
 * @param {Manifest[]} manifests the packed manifests
 */
async function typecheck(registry, dir, manifests) {
  await installFresh(
    registry,
    dir,
    manifests.map((manifest) => `${manifest.name}@${manifest.version}`),
    { type: 'module' },
  );
  const rootRequire = createRequire(join(ROOT, 'package.json'));
  const typesNode = JSON.parse(
    readFileSync(rootRequire.resolve('@types/node/package.json'), 'utf8'),
  );
  /** @type {Map<string, string>} */
  const peers = new Map();
  for (const installed of listInstalled(join(dir, 'node_modules', '@flowforge'))) {
    for (const dep of declarationImports(installed.dir)) {
      const range = installed.manifest.peerDependencies?.[dep];
      if (range !== undefined && !existsSync(join(dir, 'node_modules', dep))) peers.set(dep, range);
    }
  }
  await npmInstall(
    registry,
    dir,
    [
      `@types/node@^${typesNode.version.split('.')[0]}`,
      ...[...peers].map(([dep, range]) => `${dep}@${range}`),
    ],
    ['--save-dev'],
  );
  const files = manifests.map((manifest) => {
    const file = `${manifest.name.slice(SCOPE.length)}.consumer.ts`;
    const text = CONSUMERS[manifest.name] ?? genericConsumer(manifest.name);
    return { file, text: text.trimStart() };
  });
  for (const { file, text } of files) await writeFile(join(dir, file), text);
  await writeFile(
    join(dir, 'tsconfig.json'),
    `${JSON.stringify(
      {
        compilerOptions: {
          ...STRICT_CONSUMER_OPTIONS,
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          noEmit: true,
        },
        files: files.map(({ file }) => file),
      },
      null,
      2,
    )}\n`,
  );
  const tsc = rootRequire.resolve('typescript/bin/tsc');
  await run(process.execPath, [tsc, '-p', 'tsconfig.json'], {
    cwd: dir,
    env: registry.env,
    timeoutMs: LIMITS.typecheckMs,
  });
  return { peers: [...peers.keys()] };
}

/**
 * The packages installed in a scope directory.
 * @param {string} scopeDir
 * @returns {{ dir: string, manifest: Manifest }[]}
 */
function listInstalled(scopeDir) {
  if (!existsSync(scopeDir)) return [];
  return readdirSync(scopeDir).map((name) => {
    const dir = join(scopeDir, name);
    const manifest = /** @type {Manifest} */ (
      JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
    );
    return { dir, manifest };
  });
}

/** The package name of a bare module specifier (`kysely/migration` → `kysely`). @param {string} specifier */
function packageOf(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : /** @type {string} */ (parts[0]);
}

/**
 * Every way a declaration file can need another module: `import … from`, `export … from`
 * (over several lines too), a side-effect `import 'x'`, an inline `import('x')`, and a
 * `declare module 'x'` augmentation (TS2664 without it).
 */
const DECLARATION_IMPORT =
  /^\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*declare\s+module\s+['"]([^'"]+)['"]/gm;

/**
 * Bare module specifiers imported by the .d.ts files under `dir/dist`, or, with `entry`, by
 * that declaration file and the ones it imports relatively (what a consumer of that entry
 * point type-checks).
 * @param {string} dir an installed package
 * @param {string} [entry] a declaration file relative to `dir` (`./dist/index.d.ts`)
 * @returns {string[]} package names
 */
export function declarationImports(dir, entry) {
  const dist = join(dir, 'dist');
  /** @type {string[]} */
  const queue = entry
    ? [join(dir, entry)]
    : existsSync(dist)
      ? readdirSync(dist, { recursive: true, encoding: 'utf8' })
          .filter((file) => /\.d\.[mc]?ts$/.test(file))
          .map((file) => join(dist, file))
      : [];
  const seen = new Set(queue);
  const names = new Set();
  while (queue.length > 0) {
    const file = /** @type {string} */ (queue.shift());
    if (!existsSync(file)) continue;
    for (const match of readFileSync(file, 'utf8').matchAll(DECLARATION_IMPORT)) {
      const specifier = /** @type {string} */ (match[1] ?? match[2] ?? match[3] ?? match[4]);
      if (/^node:/.test(specifier)) continue;
      if (/^\./.test(specifier)) {
        const next = join(file, '..', specifier.replace(/\.(m|c)?js$/, '.d.$1ts'));
        if (entry && !seen.has(next)) {
          seen.add(next);
          queue.push(next);
        }
        continue;
      }
      names.add(packageOf(specifier));
    }
  }
  return [...names].sort();
}

/**
 * Optional peers that the main entry's declarations import: a consumer without that peer
 * (an app without Fastify) cannot type-check the package. Bindings to an optional peer
 * belong under a subpath export (`@flowforge/auth/fastify`).
 * @param {string} dir an installed package
 * @param {Manifest} manifest
 * @returns {string[]} problems
 */
export function optionalPeerLeaks(dir, manifest) {
  const main = /** @type {{ '.'?: { types?: string } } | undefined} */ (manifest.exports)?.['.'];
  const types = main?.types;
  if (!types) return [`${manifest.name}: exports["."] has no types`];
  return declarationImports(dir, types)
    .filter((name) => manifest.peerDependenciesMeta?.[name]?.optional === true)
    .map(
      (name) =>
        `${manifest.name}: the main entry's types import the optional peer ${name}; move what needs it to a subpath export`,
    );
}

// ---------------------------------------------------------------------------
// A whole run, shared by the test file, the CLI and scripts/install-size.mjs

/**
 * @template T
 * @typedef {{ ok: true, value: T } | { ok: false, error: Error }} Outcome
 */
/**
 * @typedef {{
 *   install?: Outcome<Size>,
 *   import?: Outcome<string>,
 *   require?: Outcome<string>,
 *   oldestNode?: Outcome<string>,
 *   entryTypes?: Outcome<string[]>,
 * }} PackageSteps  a step is missing when an earlier one failed; `oldestNode`: both smokes on OLDEST_NODE
 * @typedef {{ name: string, version: string, locked: string[] }} Drift
 * @typedef {{
 *   registry: Registry,
 *   resolution: Resolution,
 *   published: Map<string, Outcome<Manifest>>,
 *   tarballs: Map<string, string[]>,
 *   steps: Map<string, Promise<PackageSteps>>,
 *   types: Promise<Outcome<{ peers: string[] }>> | undefined,
 *   audit: () => Promise<{ drift: Drift[], refused: string[] }>,
 *   close: () => Promise<void>,
 * }} RegistryRun  `audit`, once every step settled: `drift`, installed third-party versions
 *   that pnpm-lock.yaml does not hold; `refused`, what npm asked the mirror for that the
 *   lockfile lacks, less the optional peers npm only looks up (they are never installed)
 */

/**
 * @template T
 * @param {() => Promise<T>} work
 * @returns {Promise<Outcome<T>>}
 */
async function outcome(work) {
  try {
    return { ok: true, value: await work() };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error : new Error(String(error)) };
  }
}

/**
 * A function that runs at most `limit` tasks at a time, in the order they were queued.
 * @param {number} limit
 */
export function limiter(limit) {
  let active = 0;
  /** @type {(() => void)[]} */
  const queue = [];
  /**
   * @template T
   * @param {() => Promise<T>} task
   * @returns {Promise<T>}
   */
  return async function limited(task) {
    if (active >= limit) await new Promise((wake) => queue.push(() => wake(undefined)));
    active += 1;
    try {
      return await task();
    } finally {
      active -= 1;
      queue.shift()?.();
    }
  };
}

/** npm installs at a time: they wait on verdaccio and the network more than on the CPU. */
const INSTALL_CONCURRENCY = 3;

/** @param {WorkspacePackage} pkg */
function shortName(pkg) {
  return pkg.name.startsWith(SCOPE) ? pkg.name.slice(SCOPE.length) : pkg.name.replace(/\W/g, '-');
}

/**
 * Makes the run's temp dir (outside the workspace) and removes it, with the registry and
 * any child still running, when the run is closed or the process ends, even by a signal.
 * @param {string} prefix
 */
function makeRunDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    for (const child of [...activeChildren, ...liveRegistries]) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  process.once('exit', remove);
  for (const [signal, code] of /** @type {const} */ ([
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ])) {
    process.once(signal, () => {
      remove();
      process.exit(code);
    });
  }
  return { dir, remove };
}

/**
 * Starts the registry, packs and publishes `packages`, then queues for each one an install
 * alone in a fresh project (measured) and, with `smoke`, its smoke scripts (on this Node and
 * the oldest claimed); with `types`, also the consumer type check. The returned promises
 * settle as the work finishes. `resolution` 'locked' (the default) gives the consumers the
 * third-party versions of pnpm-lock.yaml; 'latest' the newest the published ranges allow.
 * @param {WorkspacePackage[]} packages
 * @param {{ smoke?: boolean, types?: boolean, resolution?: Resolution }} [options]
 * @returns {Promise<RegistryRun>}
 */
export async function startRun(
  packages,
  { smoke = true, types = true, resolution = 'locked' } = {},
) {
  const runDir = makeRunDir('flowforge-registry-');
  /** @type {Registry} */
  let registry;
  try {
    registry = await startRegistry(runDir.dir, resolution);
  } catch (error) {
    runDir.remove();
    throw error;
  }
  const published = new Map(
    packages.map((pkg) => [pkg.name, /** @type {Outcome<Manifest> | undefined} */ (undefined)]),
  );
  /** @type {Map<string, string[]>} */
  const tarballs = new Map();
  // Sequential: pnpm pack is CPU-bound and a dependent must not be installed before this ends.
  for (const pkg of packages) {
    published.set(
      pkg.name,
      await outcome(async () => {
        const packed = await pack(pkg, join(runDir.dir, 'tarballs', shortName(pkg)));
        await publish(registry, packed.tarball);
        tarballs.set(pkg.name, packed.problems);
        return packed.manifest;
      }),
    );
  }
  const limited = limiter(INSTALL_CONCURRENCY);
  const manifests = packages.flatMap((pkg) => {
    const result = published.get(pkg.name);
    return result?.ok ? [result.value] : [];
  });
  // Queued first: it is the longest (it adds @types/node and the optional peers' types).
  const typesResult = types
    ? limited(() => outcome(() => typecheck(registry, join(runDir.dir, 'types'), manifests)))
    : undefined;
  const steps = new Map(
    packages.map((pkg) => [
      pkg.name,
      limited(async () => {
        /** @type {PackageSteps} */
        const result = {};
        const manifest = published.get(pkg.name);
        if (!manifest?.ok) return result;
        const dir = join(runDir.dir, 'consumers', shortName(pkg));
        result.install = await outcome(() => installAlone(registry, dir, manifest.value));
        if (!result.install.ok) return result;
        result.entryTypes = await outcome(async () => {
          const installed = join(dir, 'node_modules', ...pkg.name.split('/'));
          const leaks = optionalPeerLeaks(installed, manifest.value);
          if (leaks.length > 0) throw new Error(leaks.join('\n'));
          return declarationImports(installed, './dist/index.d.ts');
        });
        if (!smoke) return result;
        await writeSmokes(dir, pkg.name);
        result.import = await outcome(() => runSmoke(registry, dir, 'smoke.mjs'));
        result.require = await outcome(() => runSmoke(registry, dir, 'smoke.cjs'));
        result.oldestNode = await outcome(async () => {
          const esm = await runSmoke(registry, dir, 'smoke.mjs', OLDEST_NODE);
          const cjs = await runSmoke(registry, dir, 'smoke.cjs', OLDEST_NODE);
          return `${esm.trim()}; ${cjs.trim()}`;
        });
        return result;
      }),
    ]),
  );
  const locked = lockedVersions(readFileSync(join(ROOT, 'pnpm-lock.yaml'), 'utf8'));
  return {
    registry,
    resolution,
    published: /** @type {Map<string, Outcome<Manifest>>} */ (published),
    tarballs,
    steps,
    types: typesResult,
    audit: async () => {
      await Promise.allSettled([...steps.values(), typesResult]);
      const consumers = join(runDir.dir, 'consumers');
      const dirs = [
        join(runDir.dir, 'types'),
        ...(existsSync(consumers)
          ? readdirSync(consumers).map((name) => join(consumers, name))
          : []),
      ];
      /** @type {Map<string, Drift>} */
      const drift = new Map();
      /** @type {Set<string>} */
      const optionalPeers = new Set();
      for (const dir of dirs) {
        for (const item of driftOf(dir, locked)) drift.set(`${item.name}@${item.version}`, item);
        for (const name of optionalPeersOf(dir)) optionalPeers.add(name);
      }
      return {
        drift: [...drift.values()].sort((a, b) => a.name.localeCompare(b.name)),
        refused: [...registry.mirror.refused].filter((name) => !optionalPeers.has(name)).sort(),
      };
    },
    close: async () => {
      for (const child of activeChildren) child.kill('SIGKILL');
      await Promise.allSettled([...steps.values(), typesResult]);
      await registry.stop();
      runDir.remove();
    },
  };
}

/**
 * Installs `name`@`version` alone in a fresh project and measures its node_modules.
 * @param {Registry} registry
 * @param {string} dir
 * @param {Manifest} manifest
 */
async function installAlone(registry, dir, manifest) {
  await installFresh(registry, dir, [`${manifest.name}@${manifest.version}`]);
  return directorySize(join(dir, 'node_modules'));
}

/**
 * @param {Outcome<unknown> | undefined} result
 * @returns {string}
 */
function shown(result) {
  if (result === undefined) return 'not run';
  return result.ok ? 'ok' : `FAIL ${result.error.message}`;
}

async function main() {
  const started = Date.now();
  const args = process.argv.slice(2);
  const unknown = args.filter((arg) => arg !== '--latest');
  if (unknown.length > 0)
    throw new Error(`unknown argument(s) ${unknown.join(' ')}; usage: [--latest]`);
  const resolution = args.includes('--latest') ? 'latest' : 'locked';
  const packages = listPackages({ skip: parseSkipList(process.env['FLOWFORGE_REGISTRY_SKIP']) });
  const session = await startRun(packages, { resolution });
  let failures = 0;
  console.log(
    resolution === 'latest'
      ? `third-party packages: the newest versions the published ranges allow (${UPSTREAM})`
      : 'third-party packages: the versions of pnpm-lock.yaml',
  );
  try {
    for (const pkg of packages) {
      const published = session.published.get(pkg.name);
      const steps = await session.steps.get(pkg.name);
      const problems = published?.ok
        ? [...manifestProblems(published.value), ...(session.tarballs.get(pkg.name) ?? [])]
        : [];
      const lines = [
        `  pack and publish: ${shown(published)}`,
        `  packed manifest: ${problems.length === 0 ? 'ok' : `FAIL ${problems.join('; ')}`}`,
        `  npm install alone: ${shown(steps?.install)}${steps?.install?.ok ? ` (${formatMegabytes(steps.install.value.bytes)})` : ''}`,
        `  import: ${shown(steps?.import)}`,
        `  require: ${shown(steps?.require)}`,
        `  import and require on ${OLDEST_NODE_LABEL}: ${shown(steps?.oldestNode)}`,
        `  main entry types without optional peers: ${shown(steps?.entryTypes)}`,
      ];
      failures += lines.filter((line) => !/: ok\b/.test(line)).length;
      console.log(`${pkg.name}\n${lines.join('\n')}`);
    }
    const types = await session.types;
    if (!types?.ok) failures += 1;
    console.log(`consumer type check: ${shown(types)}`);
    const { drift, refused } = await session.audit();
    if (resolution === 'locked' && (drift.length > 0 || refused.length > 0)) failures += 1;
    if (refused.length > 0) console.log(`asked for, not in pnpm-lock.yaml: ${refused.join(', ')}`);
    console.log(
      drift.length === 0
        ? 'drift: none (every installed third-party version is in pnpm-lock.yaml)'
        : `drift: ${drift.length} installed version(s) not in pnpm-lock.yaml\n${drift
            .map(
              (item) =>
                `  ${item.name} ${item.version} (lockfile: ${item.locked.join(', ') || 'absent'})`,
            )
            .join('\n')}`,
    );
  } finally {
    await session.close();
  }
  const seconds = Math.round((Date.now() - started) / 1000);
  console.log(`registry check: ${failures} failure(s), ${packages.length} packages, ${seconds} s`);
  if (failures > 0) process.exitCode = 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
