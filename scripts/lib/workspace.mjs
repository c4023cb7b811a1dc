// What the repository's check scripts share: where the workspace is, its published packages,
// and running a child process with a bound on its time and output.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

/**
 * @typedef {Record<string, string>} DependencyMap
 * @typedef {{
 *   name: string,
 *   version: string,
 *   private?: boolean,
 *   dependencies?: DependencyMap,
 *   peerDependencies?: DependencyMap,
 *   optionalDependencies?: DependencyMap,
 *   peerDependenciesMeta?: Record<string, { optional?: boolean }>,
 *   bundleDependencies?: string[] | boolean,
 *   bundledDependencies?: string[] | boolean,
 *   files?: string[],
 *   exports?: unknown,
 * }} Manifest
 * @typedef {{ name: string, dir: string, manifest: Manifest }} WorkspacePackage
 */

/** The repository's root directory, with a trailing separator. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Every published (not private) packages/* package, in directory order, minus the names in
 * `skip`.
 * @param {{ root?: string, skip?: ReadonlySet<string> }} [options]
 * @returns {WorkspacePackage[]}
 */
export function listPackages({ root = ROOT, skip = new Set() } = {}) {
  const parent = join(root, 'packages');
  return readdirSync(parent, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(parent, entry.name, 'package.json')))
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const dir = join(parent, name);
      const manifest = /** @type {Manifest} */ (
        JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
      );
      return { name: manifest.name, dir, manifest };
    })
    .filter((pkg) => !pkg.manifest.private && !skip.has(pkg.name));
}

/**
 * The compiler options of a strict consumer project (what the registry and README-example
 * checks type-check against our published declarations with): the library's own `.d.ts`
 * files are checked too (`skipLibCheck: false`). Module options are the caller's.
 */
export const STRICT_CONSUMER_OPTIONS = Object.freeze({
  target: 'ES2023',
  strict: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  skipLibCheck: false,
  types: ['node'],
});

/** Children of spawnCollect() still running; killed when this process ends first. */
export const activeChildren = new Set();
process.on('exit', () => {
  for (const child of activeChildren) child.kill('SIGKILL');
});

/**
 * Runs a command to completion within `timeoutMs` (then SIGKILL), keeping the last
 * `maxOutput` characters of stdout and stderr, interleaved. Rejects only when the command
 * cannot be started.
 * @param {string} command
 * @param {string[]} args
 * @param {{ cwd: string, env?: NodeJS.ProcessEnv, timeoutMs: number, maxOutput?: number }} options
 * @returns {Promise<{ code: number | null, signal: NodeJS.Signals | null, output: string }>}
 */
export function spawnCollect(
  command,
  args,
  { cwd, env = process.env, timeoutMs, maxOutput = 20_000 },
) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    activeChildren.add(child);
    let output = '';
    const append = (/** @type {Buffer} */ chunk) => {
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
