// What the repository's check scripts share: where the workspace is, its published packages,
// and running a child process with a bound on its time and output.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

/** A `dependencies`-like field: package name → range. */
type DependencyMap = Record<string, string>;

/** The fields of a package.json that the checks read. */
export interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  dependencies?: DependencyMap;
  peerDependencies?: DependencyMap;
  optionalDependencies?: DependencyMap;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  bundleDependencies?: string[] | boolean;
  bundledDependencies?: string[] | boolean;
  files?: string[];
  exports?: unknown;
}

/** A published package of the workspace: its name, absolute directory and manifest. */
export interface WorkspacePackage {
  name: string;
  dir: string;
  manifest: Manifest;
}

/** The npm scope of every package the workspace publishes. */
export const SCOPE = '@flowforge/';

/** The repository's root directory, with a trailing separator. */
export const ROOT: string = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Reads and parses a JSON file. The caller names the shape it expects: the files read this
 * way are the repository's own (package.json, turbo.json), not input from elsewhere.
 */
export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/**
 * Every published (not private) packages/* package, in directory order, minus the names in
 * `skip`.
 */
export function listPackages({
  root = ROOT,
  skip = new Set<string>(),
}: { root?: string; skip?: ReadonlySet<string> } = {}): WorkspacePackage[] {
  const parent = join(root, 'packages');
  return readdirSync(parent, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(parent, entry.name, 'package.json')))
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const dir = join(parent, name);
      const manifest = readJson<Manifest>(join(dir, 'package.json'));
      return { name: manifest.name, dir, manifest };
    })
    .filter((pkg) => !pkg.manifest.private && !skip.has(pkg.name));
}

/**
 * The compiler options of a strict consumer project (what the registry and README-example
 * checks type-check against our published declarations with): the library's own `.d.ts`
 * files are checked too (`skipLibCheck: false`). Module options are the caller's.
 */
export const STRICT_CONSUMER_OPTIONS: Readonly<Record<string, unknown>> = Object.freeze({
  target: 'ES2023',
  strict: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  skipLibCheck: false,
  types: ['node'],
});

/** Children of spawnCollect() still running; killed when this process ends first. */
export const activeChildren: Set<ChildProcess> = new Set();
process.on('exit', () => {
  for (const child of activeChildren) child.kill('SIGKILL');
});

/** How a command run by spawnCollect() ended, with the tail of its output. */
export interface Collected {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr, interleaved */
  output: string;
}

/**
 * Runs a command to completion within `timeoutMs` (then SIGKILL), keeping the last
 * `maxOutput` characters of stdout and stderr, interleaved. Rejects only when the command
 * cannot be started.
 */
export function spawnCollect(
  command: string,
  args: readonly string[],
  {
    cwd,
    env = process.env,
    timeoutMs,
    maxOutput = 20_000,
  }: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number; maxOutput?: number },
): Promise<Collected> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    activeChildren.add(child);
    let output = '';
    const append = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-maxOutput);
    };
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    const timer = setTimeout(() => {
      output += `\n[killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      activeChildren.delete(child);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      activeChildren.delete(child);
      resolvePromise({ code, signal, output });
    });
  });
}

/** The message of whatever was thrown: an Error's own, anything else as a string. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** True for a plain JSON object (not null, not an array): what a parsed manifest must be. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
