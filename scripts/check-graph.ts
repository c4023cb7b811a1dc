#!/usr/bin/env node
// The leaf rule: which workspace packages each package may depend on, checked
// against package.json files and against the imports in every package's src/.
// Test doubles (testing/*) are private, only ever a devDependency of a workspace
// package (packages/*, apps/*, testing/*, bench, the root), and imported by no
// package's or app's code outside its tests.
//
//   node scripts/check-graph.ts [rootDir]
import console from 'node:console';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative, resolve, sep } from 'node:path';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';
import { SCOPE, messageOf } from './lib/workspace.ts';

/** The fields of a package.json the rule reads; `name` is checked before a manifest is used. */
interface Manifest {
  name?: unknown;
  private?: unknown;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}
type DependencyField = Exclude<keyof Manifest, 'name' | 'private'>;
/** Where a package lives: packages/ (the leaf-rule table), apps/, or testing/ (test doubles). */
type PackageKind = 'package' | 'app' | 'testing';
interface WorkspacePackage {
  name: string;
  dir: string;
  kind: PackageKind;
  manifest: Manifest;
}
/** A manifest read only for the test-double rule (the root's, bench's). */
interface OtherManifest {
  name: string;
  shown: string;
  manifest: Manifest;
}
interface ImportSite {
  specifier: string;
  index: number;
  typeOnly: boolean;
}
interface MaskedSource {
  code: string;
  bare: string;
}
/** What checkGraph() found. */
export interface GraphResult {
  problems: string[];
  packages: number;
  files: number;
}

/** DESIGN.md's table: package → the workspace packages it may depend on at runtime. Apps may use any. */
const LEAF_RULE: Readonly<Record<string, readonly string[]>> = {
  '@flowforge/kernel': [],
  '@flowforge/config': ['@flowforge/kernel'],
  '@flowforge/observability': ['@flowforge/config', '@flowforge/kernel'],
  '@flowforge/db': ['@flowforge/config', '@flowforge/observability', '@flowforge/kernel'],
  '@flowforge/redis': ['@flowforge/config', '@flowforge/observability', '@flowforge/kernel'],
  '@flowforge/clickhouse': ['@flowforge/config', '@flowforge/observability', '@flowforge/kernel'],
  '@flowforge/materialize': ['@flowforge/config', '@flowforge/observability', '@flowforge/kernel'],
  '@flowforge/auth': [
    '@flowforge/config',
    '@flowforge/observability',
    '@flowforge/db',
    '@flowforge/kernel',
  ],
  // The data model every FlowForge app shares (docs/decisions/011-widgets-package.md):
  // tables and reads over the stores, beside the server kit, never on it.
  '@flowforge/widgets': [
    '@flowforge/kernel',
    '@flowforge/config',
    '@flowforge/observability',
    '@flowforge/db',
    '@flowforge/redis',
    '@flowforge/clickhouse',
    '@flowforge/auth',
  ],
  // The server kit: any package above, none beside it (widgets) and no app.
  '@flowforge/server': [
    '@flowforge/kernel',
    '@flowforge/config',
    '@flowforge/observability',
    '@flowforge/db',
    '@flowforge/redis',
    '@flowforge/clickhouse',
    '@flowforge/materialize',
    '@flowforge/auth',
  ],
};

const ENV_OWNER = '@flowforge/config';
const RUNTIME_FIELDS: readonly DependencyField[] = [
  'dependencies',
  'peerDependencies',
  'optionalDependencies',
];
const ALL_FIELDS: readonly DependencyField[] = [...RUNTIME_FIELDS, 'devDependencies'];
/** Workspace folders whose every subfolder with a package.json is a package of that kind. */
const GROUPS: readonly (readonly [folder: string, kind: PackageKind])[] = [
  ['packages', 'package'],
  ['apps', 'app'],
  ['testing', 'testing'],
];
/** Workspace packages outside GROUPS: their dependencies are checked for test doubles only. */
const OTHER_MANIFESTS = ['package.json', 'bench/package.json'];
const SOURCE_EXTENSIONS = ['.ts', '.tsx', '.mts', '.cts', '.js', '.mjs'];
const SKIPPED_DIRS = new Set(['node_modules', 'dist']);

/** Checks the leaf rule over the workspace at `rootDir`. */
export function checkGraph(rootDir: string | URL): GraphResult {
  const root = rootDir instanceof URL ? fileURLToPath(rootDir) : resolve(rootDir);
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new Error(`check-graph: ${root} is not a directory`);
  }
  const { packages, others, problems } = readWorkspace(root);
  const names: Names = {
    apps: new Set(packages.filter((pkg) => pkg.kind === 'app').map((pkg) => pkg.name)),
    doubles: new Set(packages.filter((pkg) => pkg.kind === 'testing').map((pkg) => pkg.name)),
  };
  let files = 0;
  for (const pkg of packages) {
    problems.push(...checkDeclaredEdges(pkg, names));
    for (const file of listSourceFiles(join(root, pkg.dir, 'src'))) {
      files += 1;
      problems.push(...checkSourceFile(root, pkg, file, names));
    }
  }
  for (const other of others) {
    problems.push(
      ...runtimeDoubles(other.manifest, names).map(
        ([field, dep]) => `${other.shown}: ${other.name} ${doubleAsRuntimeDependency(dep, field)}`,
      ),
    );
  }
  problems.push(...findCycles(packages).map((cycle) => `dependency cycle: ${cycle.join(' → ')}`));
  return { problems, packages: packages.length, files };
}

// ---------------------------------------------------------------------------
// Workspace

/** The names the rules single out. */
interface Names {
  apps: ReadonlySet<string>;
  /** the test doubles (testing/*) */
  doubles: ReadonlySet<string>;
}

function readWorkspace(root: string): {
  packages: WorkspacePackage[];
  others: OtherManifest[];
  problems: string[];
} {
  const packages: WorkspacePackage[] = [];
  const others: OtherManifest[] = [];
  const problems: string[] = [];
  for (const [group, kind] of GROUPS) {
    for (const dir of listSubdirs(join(root, group))) {
      const manifestPath = join(root, group, dir, 'package.json');
      if (!existsSync(manifestPath)) continue;
      const shown = `${group}/${dir}/package.json`;
      const manifest = readManifest(manifestPath);
      if (typeof manifest === 'string') {
        problems.push(`${shown}: ${manifest}`);
        continue;
      }
      const name = manifest.name;
      if (kind === 'package' && !(name in LEAF_RULE)) {
        problems.push(
          `${shown}: ${name} is not in the leaf-rule table: add it to DESIGN.md's table first`,
        );
      }
      if (kind === 'testing' && manifest.private !== true) {
        problems.push(`${shown}: ${name} is a test double (testing/): it must be "private": true`);
      }
      packages.push({ name, dir: `${group}/${dir}`, kind, manifest });
    }
  }
  for (const shown of OTHER_MANIFESTS) {
    const manifestPath = join(root, shown);
    if (!existsSync(manifestPath)) continue;
    const manifest = readManifest(manifestPath);
    if (typeof manifest === 'string') problems.push(`${shown}: ${manifest}`);
    else others.push({ name: manifest.name, shown, manifest });
  }
  return { packages, others, problems };
}

function listSubdirs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort(byCodeUnits);
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The manifest (with its name), or what is wrong with it. */
function readManifest(path: string): (Manifest & { name: string }) | string {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  } catch (error) {
    return `is not valid JSON (${messageOf(error)})`;
  }
  const { name } = manifest;
  if (typeof name !== 'string' || name === '') return 'has no "name"';
  return { ...manifest, name };
}

function declaredDeps(
  manifest: Manifest,
  fields: readonly DependencyField[],
): [field: DependencyField, dep: string][] {
  return fields.flatMap((field) =>
    Object.keys(manifest[field] ?? {}).map((dep): [DependencyField, string] => [field, dep]),
  );
}

function declares(manifest: Manifest, fields: readonly DependencyField[], dep: string): boolean {
  return fields.some((field) => Object.hasOwn(manifest[field] ?? {}, dep));
}

// ---------------------------------------------------------------------------
// The rule itself

/**
 * Why `pkg` may not use `dep`, or undefined if it may. Test-only use (devDependencies,
 * test files) is exempt from the table, but never from "nothing depends on an app".
 */
function leafRuleViolation(
  pkg: WorkspacePackage,
  dep: string,
  apps: ReadonlySet<string>,
  { testOnly }: { testOnly: boolean },
): string | undefined {
  if (dep === pkg.name) return undefined;
  if (apps.has(dep)) return 'nothing may depend on an app';
  // Apps may use any package, test doubles anything but an app.
  if (testOnly || pkg.kind !== 'package' || !dep.startsWith(SCOPE)) return undefined;
  const allowed = LEAF_RULE[pkg.name];
  // A package missing from the table is reported once, by readWorkspace.
  if (!allowed || allowed.includes(dep)) return undefined;
  return `allowed: ${allowed.join(', ') || 'none'}`;
}

/** The test doubles `manifest` declares outside devDependencies. */
function runtimeDoubles(manifest: Manifest, names: Names): [DependencyField, string][] {
  return declaredDeps(manifest, RUNTIME_FIELDS).filter(([, dep]) => names.doubles.has(dep));
}

function doubleAsRuntimeDependency(dep: string, field: DependencyField): string {
  return `may not depend on ${dep} (${field}; a test double is only ever a devDependency)`;
}

/** Check 1: the edges declared in package.json. */
function checkDeclaredEdges(pkg: WorkspacePackage, names: Names): string[] {
  const shown = `${pkg.dir}/package.json: ${pkg.name}`;
  return declaredDeps(pkg.manifest, ALL_FIELDS).flatMap(([field, dep]) => {
    const testOnly = field === 'devDependencies';
    if (!testOnly && names.doubles.has(dep) && dep !== pkg.name) {
      return [`${shown} ${doubleAsRuntimeDependency(dep, field)}`];
    }
    const reason = leafRuleViolation(pkg, dep, names.apps, { testOnly });
    return reason ? [`${shown} may not depend on ${dep} (${field}; ${reason})`] : [];
  });
}

// ---------------------------------------------------------------------------
// Source files

/** Absolute paths, sorted. */
function listSourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => byCodeUnits(a.name, b.name))
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return SKIPPED_DIRS.has(entry.name) ? [] : listSourceFiles(path);
      return entry.isFile() && SOURCE_EXTENSIONS.some((ext) => entry.name.endsWith(ext))
        ? [path]
        : [];
    });
}

/** Checks 2 and 3: the imports and environment reads of one file. */
function checkSourceFile(
  root: string,
  pkg: WorkspacePackage,
  file: string,
  names: Names,
): string[] {
  const shown = relative(root, file).split(sep).join('/');
  const source = maskSource(readFileSync(file, 'utf8'));
  const where = (index: number): string => `${shown}:${lineAt(source.code, index)}`;
  const testFile = isTestFile(relative(join(root, pkg.dir, 'src'), file));
  const declarationFile = /\.d\.[mc]?ts$/.test(file);

  const problems: string[] = [];
  for (const site of findImports(source)) {
    const dep = packageNameOf(site.specifier);
    if (dep === undefined || dep === pkg.name) continue;
    if (names.doubles.has(dep) && pkg.kind !== 'testing' && !testFile) {
      problems.push(
        `${where(site.index)}: ${pkg.name} may not import ${dep} outside its tests (a test double)`,
      );
      continue;
    }
    const reason = leafRuleViolation(pkg, dep, names.apps, { testOnly: testFile });
    if (reason) {
      problems.push(`${where(site.index)}: ${pkg.name} may not import ${dep} (${reason})`);
      continue;
    }
    const devAllowed = testFile || declarationFile || site.typeOnly;
    const undeclared = undeclaredImport(pkg, dep, devAllowed);
    if (undeclared) problems.push(`${where(site.index)}: ${undeclared}`);
  }
  if (pkg.name !== ENV_OWNER) {
    for (const index of findEnvReads(source)) {
      problems.push(
        `${where(index)}: process.env is read outside ${ENV_OWNER}: take typed options, or use settings from ${ENV_OWNER}`,
      );
    }
  }
  return problems;
}

function isTestFile(pathInSrc: string): boolean {
  const parts = pathInSrc.split(sep);
  return /\.test\./.test(parts.at(-1) ?? '') || parts.slice(0, -1).includes('__tests__');
}

function undeclaredImport(
  pkg: WorkspacePackage,
  dep: string,
  devAllowed: boolean,
): string | undefined {
  if (declares(pkg.manifest, devAllowed ? ALL_FIELDS : RUNTIME_FIELDS, dep)) return undefined;
  if (devAllowed) return `${pkg.name} imports ${dep}, which its package.json does not declare`;
  const hint = declares(pkg.manifest, ['devDependencies'], dep)
    ? ': devDependencies only serve tests and type-only imports'
    : '';
  return `${pkg.name} imports ${dep}, which is not in its dependencies, peerDependencies or optionalDependencies${hint}`;
}

/** The package a bare specifier names, or undefined for relative paths, URLs, `#imports` and builtins. */
function packageNameOf(specifier: string): string | undefined {
  if (/^[./#]/.test(specifier) || /^[a-z][a-z\d+.-]*:/i.test(specifier)) return undefined;
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
  if (builtinModules.includes(specifier) || builtinModules.includes(name)) return undefined;
  return name;
}

// ---------------------------------------------------------------------------
// Scanning source text

const STATIC_IMPORT =
  /\b(?:import|export)\s*(?<type>type\s+(?!from\s*['"]))?(?:(?:(?!\b(?:import|export)\b)[\w$\s{},*])*?\bfrom\s*)?(?<quote>['"])(?<specifier>[^'"\n]+)\k<quote>/g;
const DYNAMIC_IMPORT = /\bimport\s*\(\s*(?<quote>['"`])(?<specifier>[^'"`$\n]+)\k<quote>\s*[,)]/g;
const REQUIRE = /(?<![\w$.])require\s*\(\s*(?<quote>['"`])(?<specifier>[^'"`$\n]+)\k<quote>\s*\)/g;
const ENV_READ =
  /\bprocess\s*(?:\?\.|\.)\s*env\b|\bprocess\s*(?:\?\.)?\[\s*(?<quote>['"`])env\k<quote>\s*\]/g;

function findImports(source: MaskedSource): ImportSite[] {
  return [STATIC_IMPORT, DYNAMIC_IMPORT, REQUIRE]
    .flatMap((pattern) => liveMatches(source, pattern))
    .map((match) => ({
      specifier: match.groups?.specifier ?? '',
      index: match.index,
      typeOnly: match.groups?.type !== undefined,
    }))
    .sort((a, b) => a.index - b.index);
}

function findEnvReads(source: MaskedSource): number[] {
  return liveMatches(source, ENV_READ).map((match) => match.index);
}

/**
 * Matches in the comment-free code whose first character is code, not string contents.
 * The patterns run on `code` because they need the specifier strings; `bare` vetoes
 * matches such as "import x from 'y'" that sit inside a string.
 */
function liveMatches({ code, bare }: MaskedSource, pattern: RegExp): RegExpExecArray[] {
  return [...code.matchAll(pattern)].filter((match) => bare[match.index] === code[match.index]);
}

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) line += 1;
  return line;
}

const WORD = /[\w$]+/y;
const REGEX_AFTER_WORDS = new Set(
  'return typeof instanceof in of new delete void throw case do else yield await'.split(' '),
);

/**
 * A tokenizer-lite pass over JS/TS source. `code` is the source with comments blanked;
 * `bare` also blanks the contents of strings, templates and regex literals. Both keep
 * every offset and newline, so indexes and line numbers carry over from one to the other.
 */
function maskSource(source: string): MaskedSource {
  const code = source.split('');
  const bare = source.split('');
  // brace depth at each open `${`, innermost last
  const templates: number[] = [];
  let braces = 0;
  let previous = ''; // last token: a punctuator, a word, or 'literal'
  let i = 0;
  while (i < source.length) {
    const ch = source[i] ?? '';
    const next = source[i + 1];
    const regexEnd = ch === '/' && startsRegex(previous) ? skipRegex(source, i) : -1;
    if (ch === '/' && (next === '/' || next === '*')) {
      const end = next === '/' ? endOf(source, '\n', i) : endOf(source, '*/', i + 2) + 2;
      blank(code, i, end);
      blank(bare, i, end);
      i = end;
    } else if (ch === '"' || ch === "'") {
      const end = skipString(source, i);
      blank(bare, i + 1, end - 1);
      [i, previous] = [end, 'literal'];
    } else if (ch === '`' || (ch === '}' && templates.at(-1) === braces)) {
      if (ch === '}') templates.pop();
      const { end, opensExpression } = skipTemplate(source, i + 1);
      blank(bare, i + 1, opensExpression ? end - 2 : end - 1);
      if (opensExpression) templates.push(braces);
      [i, previous] = [end, 'literal'];
    } else if (regexEnd !== -1) {
      blank(bare, i + 1, regexEnd - 1);
      [i, previous] = [regexEnd, 'literal'];
    } else if (/[\w$]/.test(ch)) {
      WORD.lastIndex = i;
      const word = WORD.exec(source)?.[0] ?? ch;
      [i, previous] = [i + word.length, word];
    } else {
      if (ch === '{') braces += 1;
      if (ch === '}') braces -= 1;
      if (!/\s/.test(ch)) previous = ch;
      i += 1;
    }
  }
  return { code: code.join(''), bare: bare.join('') };
}

/** Whether a `/` after `previous` starts a regex literal rather than a division. */
function startsRegex(previous: string): boolean {
  if (previous === '' || REGEX_AFTER_WORDS.has(previous)) return true;
  return previous !== 'literal' && !/^[\w$]/.test(previous) && !')]}'.includes(previous);
}

function blank(chars: string[], from: number, to: number): void {
  for (let i = from; i < to; i += 1) if (chars[i] !== '\n') chars[i] = ' ';
}

function endOf(source: string, token: string, from: number): number {
  const index = source.indexOf(token, from);
  return index === -1 ? source.length : index;
}

/**
 * The index just past the closing quote (or the end of the line, if unterminated) of the
 * string whose opening quote is at `start`.
 */
function skipString(source: string, start: number): number {
  const quote = source[start];
  let i = start + 1;
  while (i < source.length && source[i] !== quote && source[i] !== '\n')
    i += source[i] === '\\' ? 2 : 1;
  return Math.min(i + 1, source.length);
}

/**
 * From `start`, just inside a template's opening (a backtick or `}`): `end` is just past the
 * closing backtick or `${`.
 */
function skipTemplate(source: string, start: number): { end: number; opensExpression: boolean } {
  let i = start;
  while (i < source.length) {
    if (source[i] === '\\') i += 2;
    else if (source[i] === '`') return { end: i + 1, opensExpression: false };
    else if (source.startsWith('${', i)) return { end: i + 2, opensExpression: true };
    else i += 1;
  }
  return { end: source.length, opensExpression: false };
}

/**
 * From `start`, the opening slash: the index just past the flags, or -1 if no regex literal
 * closes on this line.
 */
function skipRegex(source: string, start: number): number {
  let inClass = false;
  for (let i = start + 1; i < source.length; i += 1) {
    const ch = source[i];
    if (ch === '\n') return -1;
    if (ch === '\\') i += 1;
    else if (ch === '[') inClass = true;
    else if (ch === ']') inClass = false;
    else if (ch === '/' && !inClass)
      return i + 1 + (/^[a-z]*/.exec(source.slice(i + 1))?.[0].length ?? 0);
  }
  return -1;
}

// ---------------------------------------------------------------------------
// Cycles

/**
 * Cycles among the runtime edges between workspace packages, each starting at its
 * alphabetically first package and ending where it started.
 */
function findCycles(packages: WorkspacePackage[]): string[][] {
  const names = new Set(packages.map((pkg) => pkg.name));
  const edges = new Map(
    packages.map((pkg) => [
      pkg.name,
      declaredDeps(pkg.manifest, RUNTIME_FIELDS)
        .map(([, dep]) => dep)
        .filter((dep) => names.has(dep)),
    ]),
  );
  const cycles = new Map<string, string[]>();
  const done = new Set<string>();
  const path: string[] = [];

  const visit = (name: string): void => {
    const onPath = path.indexOf(name);
    if (onPath !== -1) {
      const cycle = rotateToSmallest(path.slice(onPath));
      cycles.set(cycle.join(' '), [...cycle, cycle[0] ?? name]);
      return;
    }
    if (done.has(name)) return;
    path.push(name);
    for (const dep of edges.get(name) ?? []) visit(dep);
    path.pop();
    done.add(name);
  };
  [...names].sort().forEach(visit);
  return [...cycles.values()];
}

function rotateToSmallest(cycle: string[]): string[] {
  const start = cycle.indexOf([...cycle].sort()[0] ?? '');
  return [...cycle.slice(start), ...cycle.slice(0, start)];
}

// ---------------------------------------------------------------------------
// CLI

function main(): void {
  const root = process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url));
  let result: GraphResult;
  try {
    result = checkGraph(root);
  } catch (error) {
    console.error(messageOf(error));
    process.exit(2);
  }
  const { problems, packages, files } = result;
  for (const problem of problems) console.log(problem);
  if (problems.length > 0) {
    console.log(`graph: ${problems.length} leaf-rule problem(s)`);
    process.exitCode = 1;
  } else {
    console.log(`graph: ${packages} packages, ${files} source files, leaf rule holds`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
