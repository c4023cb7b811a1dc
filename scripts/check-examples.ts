#!/usr/bin/env node
// Every README example is true: each ```ts / ```typescript block of a package README
// (packages/*/README.md) compiles against the BUILT packages, the way a consumer sees them
// (their package.json exports and dist .d.ts, never src), in a strict consumer project
// outside the workspace, once per module mode:
//
//   nodenext  module NodeNext, moduleResolution NodeNext    (Node, tsc)
//   bundler   module preserve, moduleResolution bundler     (Vite, esbuild, tsup …)
//
// both with strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes, skipLibCheck
// false and types ['node']. One tsc run per mode checks every block at once; diagnostics
// are mapped back to README file:line:column. Blocks marked to run are then run (the
// NodeNext build) with node. README links are checked too: a relative link may not leave
// its package (npm renders the README without the repository), so such links are absolute
// (REPO_BLOB + path) and must name a file that exists.
//
// Marking a block: an HTML comment on the line before its fence (blank lines between are fine).
//
//   (no marker), or
//   <!-- example: compile -->       compiled in both modes
//   <!-- example: run -->           compiled, then run with node: it must exit 0 within
//                                   LIMITS.runMs, with no external service, in a clean
//                                   environment (PATH, HOME, APP_ENV=test)
//   <!-- example: skip (reason) --> neither: a fragment that cannot compile on its own.
//                                   The reason is required. Prefer a complete example.
//
// Each block is a module of its own (`export {}` is appended), so it must import what it
// uses. The consumer project: node_modules/@flowforge/<name> holds a copy of what the
// package publishes (package.json and its `files`), and each third-party dependency and
// peer of a package is a symlink to the very copy the workspace resolves for that package
// (pnpm's store), hoisted as npm would; plus @types/node, and the @types/* package a
// dependency without its own types needs. So an example may import what a consumer has
// after installing the packages and their peers, and nothing from the workspace's dev tools.
//
//   node --test scripts/check-examples.test.ts   what CI runs (`pnpm check:examples`)
//   node scripts/check-examples.ts [--keep]      the same check, printed per block
//                                                (--keep leaves the consumer project)
import console from 'node:console';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import {
  ROOT,
  SCOPE,
  STRICT_CONSUMER_OPTIONS,
  listPackages,
  messageOf,
  readJson,
  spawnCollect,
  type Collected,
  type Manifest as WorkspaceManifest,
} from './lib/workspace.ts';

/** A package.json, with the fields that say a package ships its own types. */
type Manifest = WorkspaceManifest & { types?: string; typings?: string };

/** A README to check. */
export interface Readme {
  /** The package the README belongs to. */
  name: string;
  /** Absolute. */
  path: string;
  /** As printed (repo-relative). */
  shown: string;
  /** Absolute: the boundary for relative links. */
  packageDir: string;
  /** The text, instead of reading `path`. */
  text?: string;
}
/** How a block is checked: compiled, compiled and run, or neither. */
type BlockMode = 'compile' | 'run' | 'skip';
/** A TypeScript block of a README. */
export interface Block {
  /** The README line of the opening fence; the code's first line is line + 1. */
  line: number;
  code: string;
  mode: BlockMode;
  reason?: string;
}
/** A README line and what is wrong there. */
export interface Problem {
  line: number;
  message: string;
}
/** A README's blocks and the problems of its markers and links. */
interface ParsedReadme {
  readme: Readme;
  blocks: Block[];
  problems: Problem[];
}
/** The module options a block is compiled under. */
type ModeName = 'nodenext' | 'bundler';
/** A tsc diagnostic. */
export interface Diagnostic {
  /** Relative to the consumer project. */
  file?: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
  code: string;
  message: string;
}
/** How a runnable block's run ended. */
interface RunResult {
  ok: boolean;
  output: string;
}
/** One block, checked. */
export interface BlockResult {
  readme: Readme;
  block: Block;
  file: string;
  /** Formatted as `README:line:column: TSxxxx message`. */
  diagnostics: Record<ModeName, string[]>;
  run?: RunResult;
}
/** The whole check. */
export interface CheckResult {
  parsed: ParsedReadme[];
  blocks: BlockResult[];
  /** Diagnostics outside the examples (the packages' .d.ts, the setup). */
  library: string[];
  seconds: number;
  dir: string;
}

export { ROOT, listPackages };

/** Where a README's links to files outside its package point: what npm can render. */
export const REPO_BLOB = 'https://github.com/flowforge/flowforge-core/blob/main/';
const REPO_TREE = REPO_BLOB.replace('/blob/', '/tree/');

const EXAMPLES_DIR = 'examples';
const BUILD_DIR = 'build';

/** Time limits; the whole check takes about half a minute on 2 cores. */
const LIMITS = { tscMs: 240_000, runMs: 30_000 };

const MODES: Readonly<Record<ModeName, Record<string, unknown>>> = Object.freeze({
  nodenext: {
    ...STRICT_CONSUMER_OPTIONS,
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    // The runnable blocks are run from this build.
    outDir: BUILD_DIR,
    rootDir: EXAMPLES_DIR,
  },
  bundler: {
    ...STRICT_CONSUMER_OPTIONS,
    module: 'preserve',
    moduleResolution: 'bundler',
    noEmit: true,
  },
});
const MODE_NAMES: readonly ModeName[] = ['nodenext', 'bundler'];

// ---------------------------------------------------------------------------
// The workspace

/** The README of every published package that has one. */
export function listReadmes(root: string = ROOT): Readme[] {
  return listPackages({ root })
    .filter((pkg) => existsSync(join(pkg.dir, 'README.md')))
    .map((pkg) => ({
      name: pkg.name,
      path: join(pkg.dir, 'README.md'),
      shown: toPosix(relative(root, join(pkg.dir, 'README.md'))),
      packageDir: pkg.dir,
    }));
}

function toPosix(path: string): string {
  return path.split(sep).join('/');
}

function readmeText(readme: Readme): string {
  return readme.text ?? readFileSync(readme.path, 'utf8');
}

// ---------------------------------------------------------------------------
// Markdown: fenced blocks, markers, links

const FENCE_OPEN = /^( {0,3})(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
const MARKER = /^ {0,3}<!--\s*example:\s*([\s\S]*?)\s*-->\s*$/;
const TYPESCRIPT = new Set(['ts', 'typescript']);

/** A fenced code block of a Markdown text, with the lines it occupies (0-based indexes). */
interface Fence {
  open: number;
  close: number;
  lang: string;
  code: string;
}

/** The fenced code blocks of a Markdown text. */
function fencedBlocks(lines: string[]): Fence[] {
  const blocks: Fence[] = [];
  for (let i = 0; i < lines.length; i += 1) {
    const open = FENCE_OPEN.exec(lines[i] ?? '');
    if (!open) continue;
    const indent = open[1]?.length ?? 0;
    const fence = open[2] ?? '```';
    const closing = new RegExp(`^ {0,3}${fence[0] === '`' ? '`' : '~'}{${fence.length},}[ \\t]*$`);
    let close = i + 1;
    while (close < lines.length && !closing.test(lines[close] ?? '')) close += 1;
    const body = lines
      .slice(i + 1, close)
      .map((line) => line.replace(new RegExp(`^ {0,${indent}}`), ''));
    blocks.push({ open: i, close, lang: (open[3] ?? '').toLowerCase(), code: body.join('\n') });
    i = close;
  }
  return blocks;
}

/**
 * The TypeScript blocks of a README with their markers, and what is wrong with the markers:
 * an unknown one, a skip without a reason, or one that no TypeScript block follows.
 */
export function parseExamples(text: string): { blocks: Block[]; problems: Problem[] } {
  const lines = text.split(/\r?\n/);
  const fences = fencedBlocks(lines);
  const insideFence = new Set(fences.flatMap(({ open, close }) => range(open, close + 1)));
  // marker line → marker
  const markers = new Map<number, { mode: BlockMode; reason?: string }>();
  const problems: Problem[] = [];
  lines.forEach((line, index) => {
    if (insideFence.has(index)) return;
    const match = MARKER.exec(line);
    if (!match) return;
    const body = match[1] ?? '';
    const skip = /^skip\b\s*(?:\((?<reason>[\s\S]*)\))?\s*$/.exec(body);
    if (body === 'run' || body === 'compile') markers.set(index, { mode: body });
    else if (skip && (skip.groups?.['reason'] ?? '').trim() !== '') {
      markers.set(index, { mode: 'skip', reason: (skip.groups?.['reason'] ?? '').trim() });
    } else if (skip) {
      problems.push({
        line: index + 1,
        message: 'a skipped example needs a reason: <!-- example: skip (why it cannot compile) -->',
      });
      markers.set(index, { mode: 'skip', reason: '' });
    } else {
      problems.push({
        line: index + 1,
        message: `unknown example marker "${body}": use run, compile or skip (reason)`,
      });
    }
  });

  const blocks: Block[] = [];
  const used = new Set<number>();
  for (const fence of fences) {
    let before = fence.open - 1;
    while (before >= 0 && (lines[before] ?? '').trim() === '') before -= 1;
    const marker = markers.get(before);
    if (marker) used.add(before);
    if (!TYPESCRIPT.has(fence.lang)) {
      if (marker) {
        problems.push({
          line: before + 1,
          message: `example marker before a \`${fence.lang || 'plain'}\` block: only ts/typescript blocks are examples`,
        });
      }
      continue;
    }
    blocks.push({
      line: fence.open + 1,
      code: fence.code,
      mode: marker?.mode ?? 'compile',
      ...(marker?.reason === undefined ? {} : { reason: marker.reason }),
    });
  }
  for (const index of markers.keys()) {
    if (!used.has(index)) {
      problems.push({ line: index + 1, message: 'example marker not followed by a code block' });
    }
  }
  problems.sort((a, b) => a.line - b.line);
  return { blocks, problems };
}

/** The numbers from `from` to `to`, exclusive. */
function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

const INLINE_LINK =
  /!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^()\s>]+(?:\([^()\s]*\)[^()\s>]*)*)>?(?:\s+"[^"]*")?\s*\)/g;
const REFERENCE_LINK = /^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+["'(].*)?$/;

/**
 * What is wrong with the links of a README as npm shows it: a relative link that leaves the
 * package (npm has only the package, not the repository), a relative link to a file that does
 * not exist, a link into this repository on GitHub that names no file or folder of it, and an
 * anchor that names no heading.
 */
export function checkLinks(
  text: string,
  {
    readmePath,
    packageDir,
    root = ROOT,
  }: { readmePath: string; packageDir: string; root?: string },
): Problem[] {
  const lines = text.split(/\r?\n/);
  const insideFence = new Set(
    fencedBlocks(lines).flatMap(({ open, close }) => range(open, close + 1)),
  );
  const anchors = headingAnchors(lines, insideFence);
  const problems: Problem[] = [];
  lines.forEach((line, index) => {
    if (insideFence.has(index)) return;
    const withoutCode = line.replace(/(`+)[^`]*?\1/g, (span) => ' '.repeat(span.length));
    const targets = [...withoutCode.matchAll(INLINE_LINK)].map((match) => match[1] ?? '');
    const reference = REFERENCE_LINK.exec(withoutCode);
    if (reference) targets.push(reference[1] ?? '');
    for (const target of targets) {
      const problem = linkProblem(target, { readmePath, packageDir, root, anchors });
      if (problem) problems.push({ line: index + 1, message: problem });
    }
  });
  return problems;
}

function linkProblem(
  target: string,
  {
    readmePath,
    packageDir,
    root,
    anchors,
  }: { readmePath: string; packageDir: string; root: string; anchors: Set<string> },
): string | undefined {
  if (target.startsWith('#')) {
    const anchor = decodeURIComponent(target.slice(1));
    return anchors.has(anchor) ? undefined : `link to #${anchor}: no heading has that anchor`;
  }
  for (const [base, kind] of [
    [REPO_BLOB, 'file'],
    [REPO_TREE, 'folder'],
  ] as const) {
    if (!target.startsWith(base)) continue;
    const path = decodeURIComponent(target.slice(base.length).replace(/[#?].*$/, ''));
    const full = resolve(root, path);
    const exists =
      existsSync(full) &&
      (kind === 'file' ? statSync(full).isFile() : statSync(full).isDirectory());
    return exists ? undefined : `link to ${target}: the repository has no ${kind} ${path}`;
  }
  if (/^[a-z][a-z\d+.-]*:/i.test(target) || target.startsWith('//')) return undefined;
  const path = decodeURIComponent(target.replace(/[#?].*$/, ''));
  const full = resolve(dirname(readmePath), path);
  const inside = relative(packageDir, full);
  if (inside.startsWith('..') || isAbsolute(inside)) {
    const fromRoot = toPosix(relative(root, full));
    const base = existsSync(full) && statSync(full).isDirectory() ? REPO_TREE : REPO_BLOB;
    return `relative link ${target} leaves the package, so it is broken on npm: use ${base}${fromRoot}`;
  }
  return existsSync(full) ? undefined : `relative link ${target}: no such file`;
}

/** The anchors GitHub and npm give the headings of a README. */
function headingAnchors(lines: string[], insideFence: Set<number>): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  lines.forEach((line, index) => {
    const heading = insideFence.has(index) ? null : /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) return;
    const slug = (heading[1] ?? '')
      .toLowerCase()
      .replace(/<[^>]*>/g, '')
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  });
  return anchors;
}

// ---------------------------------------------------------------------------
// The consumer project

/**
 * The directory of `name` as resolved from `fromDir` (node_modules lookup, the way Node and
 * pnpm's symlinks do it), with symlinks resolved; undefined when not installed there.
 */
function installedDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dirname(dir) === dir) return undefined;
  }
}

/** Whether a package ships its own types (else a consumer installs @types/<name>). */
function hasOwnTypes(dir: string): boolean {
  const manifest = readJson<Manifest>(join(dir, 'package.json'));
  return (
    manifest.types !== undefined ||
    manifest.typings !== undefined ||
    existsSync(join(dir, 'index.d.ts')) ||
    /"types"\s*:/.test(JSON.stringify(manifest.exports ?? null))
  );
}

function typesPackageOf(name: string): string {
  return `@types/${name.startsWith('@') ? name.slice(1).replace('/', '__') : name}`;
}

function link(target: string, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  symlinkSync(target, path, 'dir');
}

/**
 * Lays out `dir/node_modules` as a consumer who installed every published package has it
 * (see the header). Returns what could not be resolved (a required dependency missing from
 * the workspace: run `pnpm install`).
 */
function prepareConsumer(dir: string, { root = ROOT }: { root?: string } = {}): string[] {
  const problems: string[] = [];
  const modules = join(dir, 'node_modules');
  mkdirSync(modules, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify({ name: 'flowforge-readme-examples', private: true, type: 'module' }, null, 2)}\n`,
  );
  // hoisted name → real dir
  const hoisted = new Map<string, string>();
  // nestUnder: the package copy to nest it in when another version is hoisted
  const place = (name: string, real: string, nestUnder: string): void => {
    const top = hoisted.get(name);
    if (top === real) return;
    if (top === undefined) {
      hoisted.set(name, real);
      link(real, join(modules, name));
    } else {
      link(real, join(nestUnder, 'node_modules', name));
    }
  };

  const packages = listPackages({ root });
  for (const pkg of packages) {
    const copy = join(modules, pkg.name);
    mkdirSync(copy, { recursive: true });
    cpSync(join(pkg.dir, 'package.json'), join(copy, 'package.json'));
    for (const entry of pkg.manifest.files ?? []) {
      const from = join(pkg.dir, entry);
      if (existsSync(from)) cpSync(from, join(copy, entry), { recursive: true });
      else problems.push(`${pkg.name}: "${entry}" (in files) is not there: build it first`);
    }
    hoisted.set(pkg.name, copy);
  }
  for (const pkg of packages) {
    const copy = join(modules, pkg.name);
    const optional = pkg.manifest.peerDependenciesMeta ?? {};
    const wanted = [
      ...Object.keys(pkg.manifest.dependencies ?? {}),
      ...Object.keys(pkg.manifest.peerDependencies ?? {}),
    ].filter((name) => !name.startsWith(SCOPE));
    for (const name of new Set(wanted)) {
      const real = installedDir(name, pkg.dir);
      if (real === undefined) {
        // An optional peer the workspace does not install is one a consumer may leave out.
        if (optional[name]?.optional !== true) {
          problems.push(`${pkg.name}: ${name} is not installed in the workspace (pnpm install)`);
        }
        continue;
      }
      place(name, real, copy);
      if (!hasOwnTypes(real)) {
        const types = typesPackageOf(name);
        const typesDir = installedDir(types, pkg.dir);
        if (typesDir !== undefined) place(types, typesDir, copy);
      }
    }
  }
  const typesNode = installedDir('@types/node', root);
  if (typesNode === undefined) problems.push('@types/node is not installed at the workspace root');
  else place('@types/node', typesNode, modules);
  return problems;
}

// ---------------------------------------------------------------------------
// Examples as files, compiled and run

/** The file (relative to the consumer project) that holds a block. */
function exampleFile(readme: Readme, block: Block): string {
  const short = readme.name.startsWith(SCOPE)
    ? readme.name.slice(SCOPE.length)
    : readme.name.replace(/[^\w.-]+/g, '-');
  return `${EXAMPLES_DIR}/${short}/readme-L${block.line}.ts`;
}

/**
 * Writes the blocks to compile and a tsconfig per mode. Every block becomes a module of its own:
 * `export {}` goes after its last line, so its lines keep their numbers. Returns the files
 * written, one per example, in order.
 */
function writeExamples(dir: string, examples: { readme: Readme; block: Block }[]): string[] {
  const files = examples.map(({ readme, block }) => {
    const file = exampleFile(readme, block);
    mkdirSync(join(dir, dirname(file)), { recursive: true });
    writeFileSync(join(dir, file), `${block.code}\nexport {};\n`);
    return file;
  });
  for (const [mode, compilerOptions] of Object.entries(MODES)) {
    writeFileSync(
      join(dir, `tsconfig.${mode}.json`),
      `${JSON.stringify({ compilerOptions, include: [`${EXAMPLES_DIR}/**/*.ts`] }, null, 2)}\n`,
    );
  }
  return files;
}

function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<Collected> {
  return spawnCollect(command, args, { ...options, maxOutput: 200_000 });
}

const TSC_DIAGNOSTIC =
  /^(?:(?<file>.+?)\((?<line>\d+),(?<column>\d+)\): )?error (?<code>TS\d+): (?<message>.*)$/;

/** Parses `tsc --pretty false` output: one diagnostic a line, continued by indented lines. */
export function parseTscOutput(output: string): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const line of output.split(/\r?\n/)) {
    const match = TSC_DIAGNOSTIC.exec(line);
    const last = diagnostics.at(-1);
    if (match?.groups) {
      const { file, line: at, column, code, message } = match.groups;
      diagnostics.push({
        ...(file === undefined ? {} : { file: toPosix(file) }),
        line: Number(at ?? 0),
        column: Number(column ?? 0),
        code: code ?? '',
        message: message ?? '',
      });
    } else if (last && /^\s+\S/.test(line)) {
      last.message += `\n${line}`;
    }
  }
  return diagnostics;
}

/** One tsc run of the workspace's TypeScript over the consumer project in `mode`. */
async function compile(dir: string, mode: ModeName, root: string): Promise<Diagnostic[]> {
  const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
  const { code, output } = await run(
    process.execPath,
    [tsc, '-p', `tsconfig.${mode}.json`, '--pretty', 'false'],
    { cwd: dir, timeoutMs: LIMITS.tscMs },
  );
  const diagnostics = parseTscOutput(output);
  if (code !== 0 && diagnostics.length === 0) {
    diagnostics.push({
      line: 0,
      column: 0,
      code: 'tsc',
      message: `exited ${String(code)}: ${output}`,
    });
  }
  return diagnostics;
}

/** A runnable example's environment: PATH, HOME (the temp project) and APP_ENV=test, nothing else. */
function runEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { HOME: dir, APP_ENV: 'test' };
  if (process.env['PATH'] !== undefined) env['PATH'] = process.env['PATH'];
  return env;
}

/**
 * Runs the NodeNext build of an example.
 * @param file - the example's .ts file, relative to `dir`
 */
async function runExample(dir: string, file: string): Promise<RunResult> {
  const built = join(BUILD_DIR, relative(EXAMPLES_DIR, file)).replace(/\.ts$/, '.js');
  try {
    const { code, output } = await run(process.execPath, [built], {
      cwd: dir,
      env: runEnv(dir),
      timeoutMs: LIMITS.runMs,
    });
    return { ok: code === 0, output: code === 0 ? output : `exited ${String(code)}\n${output}` };
  } catch (error) {
    return { ok: false, output: messageOf(error) };
  }
}

function formatDiagnostic(diagnostic: Diagnostic, where: string): string {
  return `${where}: ${diagnostic.code} ${diagnostic.message}`;
}

/**
 * The whole check: parses the READMEs, lays out a consumer project in a temp dir, compiles
 * every block that is not skipped once per mode, and runs the blocks marked `run` that
 * compiled. Throws only when the check itself cannot run.
 */
export async function checkExamples({
  root = ROOT,
  readmes = listReadmes(root),
  keep = false,
}: { root?: string; readmes?: Readme[]; keep?: boolean } = {}): Promise<CheckResult> {
  const started = Date.now();
  const parsed = readmes.map((readme) => {
    const text = readmeText(readme);
    const { blocks, problems } = parseExamples(text);
    const links = checkLinks(text, {
      readmePath: readme.path,
      packageDir: readme.packageDir,
      root,
    });
    return { readme, blocks, problems: [...problems, ...links].sort((a, b) => a.line - b.line) };
  });
  const dir = mkdtempSync(join(tmpdir(), 'flowforge-examples-'));
  const remove = (): void => rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  if (!keep) process.once('exit', remove);
  try {
    const library = prepareConsumer(dir, { root });
    const examples = parsed.flatMap(({ readme, blocks }) =>
      blocks.filter((block) => block.mode !== 'skip').map((block) => ({ readme, block })),
    );
    const files = writeExamples(dir, examples);
    const byFile = new Map(examples.map((example, i) => [files[i] ?? '', example]));
    const results = new Map<string, BlockResult>(
      examples.map(({ readme, block }, i) => {
        const file = files[i] ?? '';
        return [file, { readme, block, file, diagnostics: { nodenext: [], bundler: [] } }];
      }),
    );
    const compiled = await Promise.all(MODE_NAMES.map((mode) => compile(dir, mode, root)));
    MODE_NAMES.forEach((mode, i) => {
      for (const diagnostic of compiled[i] ?? []) {
        const example = diagnostic.file === undefined ? undefined : byFile.get(diagnostic.file);
        const result = diagnostic.file === undefined ? undefined : results.get(diagnostic.file);
        if (example && result) {
          const line = example.block.line + diagnostic.line;
          const where = `${example.readme.shown}:${line}:${diagnostic.column}`;
          result.diagnostics[mode].push(formatDiagnostic(diagnostic, where));
        } else {
          const where = diagnostic.file
            ? `${diagnostic.file}:${diagnostic.line}:${diagnostic.column}`
            : 'tsc';
          library.push(`[${mode}] ${formatDiagnostic(diagnostic, where)}`);
        }
      }
    });
    const runnable = [...results.values()].filter((result) => result.block.mode === 'run');
    // Two at a time: CI has two cores, and each run is a node process of its own.
    const next = runnable.values();
    const worker = async (): Promise<void> => {
      for (const result of next) {
        const failed = MODE_NAMES.some((mode) => result.diagnostics[mode].length > 0);
        result.run = failed
          ? { ok: false, output: 'not run: it does not compile' }
          : await runExample(dir, result.file);
      }
    };
    await Promise.all([worker(), worker()]);
    return {
      parsed,
      blocks: [...results.values()],
      library,
      seconds: (Date.now() - started) / 1000,
      dir,
    };
  } finally {
    if (!keep) {
      process.off('exit', remove);
      remove();
    }
  }
}

/** Everything wrong with one block, as lines; empty when it passes. */
export function blockFailures(result: BlockResult): string[] {
  const failures = MODE_NAMES.flatMap((mode) =>
    result.diagnostics[mode].map((line) => `[${mode}] ${line}`),
  );
  if (result.run && !result.run.ok) {
    failures.push(`${result.readme.shown}:${result.block.line}: run failed: ${result.run.output}`);
  }
  return failures;
}

/** A block's name in reports: package, README line and mode. */
export function blockName(readme: Readme, block: Block): string {
  return `${readme.name} ${readme.shown}:${block.line} (${block.mode})`;
}

async function main(): Promise<void> {
  const keep = process.argv.includes('--keep');
  const result = await checkExamples({ keep });
  let failures = 0;
  for (const { readme, blocks, problems } of result.parsed) {
    for (const problem of problems) {
      failures += 1;
      console.log(`${readme.shown}:${problem.line}: ${problem.message}`);
    }
    for (const block of blocks.filter((b) => b.mode === 'skip')) {
      console.log(`skip ${blockName(readme, block)}: ${block.reason ?? ''}`);
    }
  }
  for (const block of result.blocks) {
    const lines = blockFailures(block);
    failures += lines.length > 0 ? 1 : 0;
    console.log(`${lines.length > 0 ? 'FAIL' : 'ok  '} ${blockName(block.readme, block.block)}`);
    for (const line of lines) console.log(`  ${line.replace(/\n/g, '\n  ')}`);
  }
  for (const line of result.library) console.log(line);
  failures += result.library.length;
  console.log(
    `examples: ${result.blocks.length} blocks, ${failures} failure(s), ${result.seconds.toFixed(1)} s${keep ? ` (kept in ${result.dir})` : ''}`,
  );
  if (failures > 0) process.exitCode = 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
