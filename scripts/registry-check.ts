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
// published today (lib/local-registry.ts, lib/lock-mirror.ts). Each package's smoke script and
// consumer file are in lib/package-smokes.ts. `--latest` (`pnpm check:latest`) runs the same check against the newest
// versions the published ranges allow and reports where they differ from the lockfile.
//
//   node --test scripts/registry-check.test.ts     what CI runs (`pnpm check:registry`)
//   node scripts/registry-check.ts                 the same run, printed as a table
//   node scripts/registry-check.ts --latest        the drift report (`pnpm check:latest`)
//
// FLOWFORGE_REGISTRY_SKIP=@flowforge/a,@flowforge/b leaves packages out (a package being
// written that does not build yet); the default run checks every package.
import console from 'node:console';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { lstat, readdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import {
  killRegistries,
  startRegistry,
  type Registry,
  type Resolution,
} from './lib/local-registry.ts';
import {
  UPSTREAM,
  driftOf,
  lockedVersions,
  optionalPeersOf,
  type Drift,
} from './lib/lock-mirror.ts';
import { consumerFile, writeSmokes } from './lib/package-smokes.ts';
import {
  ROOT,
  SCOPE,
  STRICT_CONSUMER_OPTIONS,
  activeChildren,
  isRecord,
  listPackages,
  messageOf,
  readJson,
  spawnCollect,
  type Manifest,
  type WorkspacePackage,
} from './lib/workspace.ts';

/** An installed project's node_modules: file bytes, allocated disk bytes, files. */
export interface Size {
  bytes: number;
  diskBytes: number;
  files: number;
}

export { ROOT, listPackages };

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

/** Package names from FLOWFORGE_REGISTRY_SKIP (comma or space separated). */
export function parseSkipList(value: string | undefined): Set<string> {
  return new Set((value ?? '').split(/[\s,]+/).filter(Boolean));
}

// ---------------------------------------------------------------------------
// The dev-only rule, checked on the packed manifest (what npm users get)

/** Packages that serve tests, fixtures or development only; never a runtime dependency. */
export const DEV_ONLY: readonly string[] = Object.freeze([
  'pino-pretty',
  'chdb',
  'oidc-provider',
  'pg-gateway',
  '@electric-sql/pglite',
  'verdaccio',
  'vitest',
  'fast-check',
  '@types/*',
  // The private test doubles of testing/ (never published; only ever a devDependency).
  '@flowforge/materialize-double',
]);

function isDevOnly(dep: string): boolean {
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
 */
export function manifestProblems(manifest: Manifest): string[] {
  const problems: string[] = [];
  for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies'] as const) {
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
 * Resolves to stdout and stderr, interleaved.
 */
async function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<string> {
  const { code, signal, output } = await spawnCollect(command, args, options);
  if (code === 0) return output;
  const shown = [command, ...args].join(' ');
  throw new Error(
    `${shown} (in ${options.cwd}) exited ${code ?? signal ?? 'unknown'}:\n${output.trim()}`,
  );
}

// ---------------------------------------------------------------------------
// Pack and publish

/**
 * `pnpm pack` into `dest` (an empty dir); returns the tarball's path, the manifest inside it
 * and what an npm user would miss in it.
 */
async function pack(
  pkg: WorkspacePackage,
  dest: string,
): Promise<{ tarball: string; manifest: PackedManifest; problems: string[] }> {
  mkdirSync(dest, { recursive: true });
  await run('pnpm', ['pack', '--pack-destination', dest], {
    cwd: pkg.dir,
    timeoutMs: LIMITS.packMs,
  });
  const tarballs = readdirSync(dest).filter((file) => file.endsWith('.tgz'));
  if (tarballs.length !== 1)
    throw new Error(`pnpm pack left ${tarballs.length} tarballs in ${dest}`);
  const [file = ''] = tarballs;
  const tarball = join(dest, file);
  const read = (args: string[]): Promise<string> =>
    run('tar', args, { cwd: dest, timeoutMs: 10_000 });
  // The manifest pnpm wrote from the workspace's own package.json.
  const manifest = JSON.parse(
    await read(['-xzOf', tarball, 'package/package.json']),
  ) as PackedManifest;
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

/** A packed manifest, with the fields an npm page shows. */
export type PackedManifest = Manifest & {
  repository?: { url?: string; directory?: string } | string;
  homepage?: string;
  bugs?: { url?: string } | string;
};

/**
 * What an npm user would miss in a packed package: the LICENSE file, `repository` (with the
 * package's `directory`), `homepage` and `bugs`, and README links that work on the npm page
 * (npm renders the README alone: a relative link must name a file inside the tarball; anything
 * outside it needs an absolute URL).
 * @param files - paths inside the tarball
 * @param readme - the packed README.md
 */
export function tarballProblems(
  manifest: PackedManifest,
  files: string[],
  readme: string,
): string[] {
  const problems: string[] = [];
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
    const target = match[1] ?? match[2] ?? '';
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

/** @param tarball - an absolute path (npm reads a relative one as a git spec) */
async function publish(registry: Registry, tarball: string): Promise<void> {
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
 * @param fields - more package.json fields
 */
async function installFresh(
  registry: Registry,
  dir: string,
  specs: string[],
  fields: Record<string, unknown> = {},
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), packageJson(fields));
  await npmInstall(registry, dir, specs);
}

/** A consumer project's package.json, before npm adds what it installs. */
function packageJson(fields: Record<string, unknown> = {}): string {
  const manifest = { name: 'flowforge-consumer', version: '1.0.0', private: true, ...fields };
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

async function npmInstall(
  registry: Registry,
  dir: string,
  specs: string[],
  flags: string[] = [],
): Promise<void> {
  try {
    await run('npm', ['install', '--no-audit', '--no-fund', ...flags, ...specs], {
      cwd: dir,
      env: registry.env,
      timeoutMs: LIMITS.installMs,
    });
  } catch (error) {
    const message = messageOf(error);
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
 */
async function directorySize(dir: string): Promise<Size> {
  const size: Size = { bytes: 0, diskBytes: 0, files: 0 };
  const walk = async (path: string): Promise<void> => {
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

/** Bytes as megabytes (10⁶) with one decimal: `12.3 MB`. */
export function formatMegabytes(bytes: number): string {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

/** The oldest Node that engines.node claims, as scripts/bootstrap installs it. */
export const OLDEST_NODE: string = join(
  ROOT,
  '.tools',
  'node-oldest',
  'node_modules',
  '.bin',
  'node',
);
const OLDEST_NODE_LABEL = `node ${readJson<{ engines: { node: string } }>(join(ROOT, 'package.json')).engines.node}`;

/** @param node - the node binary */
function runSmoke(
  registry: Registry,
  dir: string,
  script: 'smoke.mjs' | 'smoke.cjs',
  node: string = process.execPath,
): Promise<string> {
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
 * @param manifests - the packed manifests
 */
async function typecheck(
  registry: Registry,
  dir: string,
  manifests: Manifest[],
): Promise<{ peers: string[] }> {
  await installFresh(
    registry,
    dir,
    manifests.map((manifest) => `${manifest.name}@${manifest.version}`),
    { type: 'module' },
  );
  const rootRequire = createRequire(join(ROOT, 'package.json'));
  const typesNode = readJson<{ version: string }>(rootRequire.resolve('@types/node/package.json'));
  const peers = new Map<string, string>();
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
      `@types/node@^${typesNode.version.split('.')[0] ?? ''}`,
      ...[...peers].map(([dep, range]) => `${dep}@${range}`),
    ],
    ['--save-dev'],
  );
  const files = manifests.map((manifest) => {
    const file = `${manifest.name.slice(SCOPE.length)}.consumer.ts`;
    return { file, text: consumerFile(manifest.name).trimStart() };
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

/** The packages installed in a scope directory (ours: @flowforge/*, as packed from the workspace). */
function listInstalled(scopeDir: string): { dir: string; manifest: Manifest }[] {
  if (!existsSync(scopeDir)) return [];
  return readdirSync(scopeDir).map((name) => {
    const dir = join(scopeDir, name);
    return { dir, manifest: readJson<Manifest>(join(dir, 'package.json')) };
  });
}

/** The package name of a bare module specifier (`kysely/migration` → `kysely`). */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
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
 * point type-checks). Returns package names.
 * @param dir - an installed package
 * @param entry - a declaration file relative to `dir` (`./dist/index.d.ts`)
 */
export function declarationImports(dir: string, entry?: string): string[] {
  const dist = join(dir, 'dist');
  const queue: string[] = entry
    ? [join(dir, entry)]
    : existsSync(dist)
      ? readdirSync(dist, { recursive: true, encoding: 'utf8' })
          .filter((file) => /\.d\.[mc]?ts$/.test(file))
          .map((file) => join(dist, file))
      : [];
  const seen = new Set(queue);
  const names = new Set<string>();
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    if (!existsSync(file)) continue;
    for (const match of readFileSync(file, 'utf8').matchAll(DECLARATION_IMPORT)) {
      const specifier = match[1] ?? match[2] ?? match[3] ?? match[4] ?? '';
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
 * belong under a subpath export (`@flowforge/auth/fastify`). Returns the problems.
 * @param dir - an installed package
 */
export function optionalPeerLeaks(dir: string, manifest: Manifest): string[] {
  const main = isRecord(manifest.exports) ? manifest.exports['.'] : undefined;
  const types = isRecord(main) ? main['types'] : undefined;
  if (typeof types !== 'string' || !types) return [`${manifest.name}: exports["."] has no types`];
  return declarationImports(dir, types)
    .filter((name) => manifest.peerDependenciesMeta?.[name]?.optional === true)
    .map(
      (name) =>
        `${manifest.name}: the main entry's types import the optional peer ${name}; move what needs it to a subpath export`,
    );
}

// ---------------------------------------------------------------------------
// A whole run, shared by the test file, the CLI and scripts/install-size.ts

/** How a step ended: its value, or the error it failed with. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: Error };

/**
 * One package's steps after publishing. A step is missing when an earlier one failed;
 * `oldestNode`: both smokes on OLDEST_NODE.
 */
export interface PackageSteps {
  install?: Outcome<Size>;
  import?: Outcome<string>;
  require?: Outcome<string>;
  oldestNode?: Outcome<string>;
  entryTypes?: Outcome<string[]>;
}

/** A registry run under way; its promises settle as the work finishes. */
export interface RegistryRun {
  registry: Registry;
  resolution: Resolution;
  published: Map<string, Outcome<Manifest>>;
  tarballs: Map<string, string[]>;
  steps: Map<string, Promise<PackageSteps>>;
  types: Promise<Outcome<{ peers: string[] }>> | undefined;
  /**
   * Once every step settled: `drift`, installed third-party versions that pnpm-lock.yaml does
   * not hold; `refused`, what npm asked the mirror for that the lockfile lacks, less the
   * optional peers npm only looks up (they are never installed).
   */
  audit: () => Promise<{ drift: Drift[]; refused: string[] }>;
  close: () => Promise<void>;
}

/** Runs `work`, catching what it throws (synchronously or not) as a failed outcome. */
async function outcome<T>(work: () => T | Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await work() };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error : new Error(String(error)) };
  }
}

/** A function that runs at most `limit` tasks at a time, in the order they were queued. */
export function limiter(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  return async function limited<T>(task: () => Promise<T>): Promise<T> {
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

function shortName(pkg: WorkspacePackage): string {
  return pkg.name.startsWith(SCOPE) ? pkg.name.slice(SCOPE.length) : pkg.name.replace(/\W/g, '-');
}

/**
 * Makes the run's temp dir (outside the workspace) and removes it, with the registry and
 * any child still running, when the run is closed or the process ends, even by a signal.
 */
function makeRunDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let removed = false;
  const remove = (): void => {
    if (removed) return;
    removed = true;
    for (const child of activeChildren) child.kill('SIGKILL');
    killRegistries();
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  process.once('exit', remove);
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
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
 */
export async function startRun(
  packages: WorkspacePackage[],
  {
    smoke = true,
    types = true,
    resolution = 'locked',
  }: { smoke?: boolean; types?: boolean; resolution?: Resolution } = {},
): Promise<RegistryRun> {
  const runDir = makeRunDir('flowforge-registry-');
  let registry: Registry;
  try {
    registry = await startRegistry(runDir.dir, resolution, {
      startMs: LIMITS.registryStartMs,
      upstreamMs: LIMITS.installMs,
    });
  } catch (error) {
    runDir.remove();
    throw error;
  }
  const published = new Map<string, Outcome<Manifest>>();
  const tarballs = new Map<string, string[]>();
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
        const result: PackageSteps = {};
        const manifest = published.get(pkg.name);
        if (!manifest?.ok) return result;
        const dir = join(runDir.dir, 'consumers', shortName(pkg));
        result.install = await outcome(() => installAlone(registry, dir, manifest.value));
        if (!result.install.ok) return result;
        result.entryTypes = await outcome(() => {
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
    published,
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
      const drift = new Map<string, Drift>();
      const optionalPeers = new Set<string>();
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

/** Installs `name`@`version` alone in a fresh project and measures its node_modules. */
async function installAlone(registry: Registry, dir: string, manifest: Manifest): Promise<Size> {
  await installFresh(registry, dir, [`${manifest.name}@${manifest.version}`]);
  return directorySize(join(dir, 'node_modules'));
}

function shown(result: Outcome<unknown> | undefined): string {
  if (result === undefined) return 'not run';
  return result.ok ? 'ok' : `FAIL ${result.error.message}`;
}

async function main(): Promise<void> {
  const started = Date.now();
  const args = process.argv.slice(2);
  const unknown = args.filter((arg) => arg !== '--latest');
  if (unknown.length > 0)
    throw new Error(`unknown argument(s) ${unknown.join(' ')}; usage: [--latest]`);
  const resolution: Resolution = args.includes('--latest') ? 'latest' : 'locked';
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
