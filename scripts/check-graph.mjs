#!/usr/bin/env node
// The leaf rule: which workspace packages each package may depend on, checked
// against package.json files and against the imports in every package's src/.
//
//   node scripts/check-graph.mjs [rootDir]
import console from 'node:console';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative, resolve, sep } from 'node:path';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

/**
 * @typedef {{
 *   name?: unknown,
 *   dependencies?: Record<string, string>,
 *   peerDependencies?: Record<string, string>,
 *   optionalDependencies?: Record<string, string>,
 *   devDependencies?: Record<string, string>,
 * }} Manifest
 * @typedef {{ name: string, dir: string, isApp: boolean, manifest: Manifest }} WorkspacePackage
 * @typedef {{ specifier: string, index: number, typeOnly: boolean }} ImportSite
 * @typedef {{ code: string, bare: string }} MaskedSource
 */

const SCOPE = '@flowforge/';

/** DESIGN.md's table: package → the workspace packages it may depend on at runtime. Apps may use any. */
const LEAF_RULE = /** @type {Record<string, readonly string[]>} */ ({
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
});

const ENV_OWNER = '@flowforge/config';
const RUNTIME_FIELDS = /** @type {const} */ ([
  'dependencies',
  'peerDependencies',
  'optionalDependencies',
]);
const ALL_FIELDS = /** @type {const} */ ([...RUNTIME_FIELDS, 'devDependencies']);
const SOURCE_EXTENSIONS = ['.ts', '.tsx', '.mts', '.cts', '.js', '.mjs'];
const SKIPPED_DIRS = new Set(['node_modules', 'dist']);

/**
 * Checks the leaf rule over the workspace at `rootDir`.
 * @param {string | URL} rootDir
 * @returns {{ problems: string[], packages: number, files: number }}
 */
export function checkGraph(rootDir) {
  const root = rootDir instanceof URL ? fileURLToPath(rootDir) : resolve(rootDir);
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new Error(`check-graph: ${root} is not a directory`);
  }
  const { packages, problems } = readWorkspace(root);
  const appNames = new Set(packages.filter((pkg) => pkg.isApp).map((pkg) => pkg.name));
  let files = 0;
  for (const pkg of packages) {
    problems.push(...checkDeclaredEdges(pkg, appNames));
    for (const file of listSourceFiles(join(root, pkg.dir, 'src'))) {
      files += 1;
      problems.push(...checkSourceFile(root, pkg, file, appNames));
    }
  }
  problems.push(...findCycles(packages).map((cycle) => `dependency cycle: ${cycle.join(' → ')}`));
  return { problems, packages: packages.length, files };
}

// ---------------------------------------------------------------------------
// Workspace

/**
 * @param {string} root
 * @returns {{ packages: WorkspacePackage[], problems: string[] }}
 */
function readWorkspace(root) {
  /** @type {WorkspacePackage[]} */
  const packages = [];
  /** @type {string[]} */
  const problems = [];
  for (const group of ['packages', 'apps']) {
    for (const dir of listSubdirs(join(root, group))) {
      const manifestPath = join(root, group, dir, 'package.json');
      if (!existsSync(manifestPath)) continue;
      const shown = `${group}/${dir}/package.json`;
      const manifest = readManifest(manifestPath);
      if (typeof manifest === 'string') {
        problems.push(`${shown}: ${manifest}`);
        continue;
      }
      const name = /** @type {string} */ (manifest.name);
      const isApp = group === 'apps';
      if (!isApp && !(name in LEAF_RULE)) {
        problems.push(
          `${shown}: ${name} is not in the leaf-rule table: add it to DESIGN.md's table first`,
        );
      }
      packages.push({ name, dir: `${group}/${dir}`, isApp, manifest });
    }
  }
  return { packages, problems };
}

/**
 * @param {string} dir
 * @returns {string[]}
 */
function listSubdirs(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort(byCodeUnits);
}

/**
 * @param {string} a
 * @param {string} b
 */
function byCodeUnits(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * @param {string} path
 * @returns {Manifest | string} the manifest, or what is wrong with it
 */
function readManifest(path) {
  /** @type {Manifest} */
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    return `is not valid JSON (${/** @type {Error} */ (error).message})`;
  }
  if (typeof manifest.name !== 'string' || manifest.name === '') return 'has no "name"';
  return manifest;
}

/**
 * @param {Manifest} manifest
 * @param {readonly (keyof Manifest)[]} fields
 * @returns {[field: string, dep: string][]}
 */
function declaredDeps(manifest, fields) {
  return fields.flatMap((field) =>
    Object.keys(manifest[field] ?? {}).map((dep) => /** @type {[string, string]} */ ([field, dep])),
  );
}

/**
 * @param {Manifest} manifest
 * @param {readonly (keyof Manifest)[]} fields
 * @param {string} dep
 */
function declares(manifest, fields, dep) {
  return fields.some((field) => Object.hasOwn(manifest[field] ?? {}, dep));
}

// ---------------------------------------------------------------------------
// The rule itself

/**
 * Why `pkg` may not use `dep`, or undefined if it may. Test-only use (devDependencies,
 * test files) is exempt from the table, but never from "nothing depends on an app".
 * @param {WorkspacePackage} pkg
 * @param {string} dep
 * @param {Set<string>} appNames
 * @param {{ testOnly: boolean }} use
 * @returns {string | undefined}
 */
function leafRuleViolation(pkg, dep, appNames, { testOnly }) {
  if (dep === pkg.name) return undefined;
  if (appNames.has(dep)) return 'nothing may depend on an app';
  if (testOnly || pkg.isApp || !dep.startsWith(SCOPE)) return undefined;
  const allowed = LEAF_RULE[pkg.name];
  // A package missing from the table is reported once, by readWorkspace.
  if (!allowed || allowed.includes(dep)) return undefined;
  return `allowed: ${allowed.join(', ') || 'none'}`;
}

/**
 * Check 1: the edges declared in package.json.
 * @param {WorkspacePackage} pkg
 * @param {Set<string>} appNames
 * @returns {string[]}
 */
function checkDeclaredEdges(pkg, appNames) {
  return declaredDeps(pkg.manifest, ALL_FIELDS).flatMap(([field, dep]) => {
    const testOnly = field === 'devDependencies';
    const reason = leafRuleViolation(pkg, dep, appNames, { testOnly });
    return reason
      ? [`${pkg.dir}/package.json: ${pkg.name} may not depend on ${dep} (${field}; ${reason})`]
      : [];
  });
}

// ---------------------------------------------------------------------------
// Source files

/**
 * @param {string} dir
 * @returns {string[]} absolute paths, sorted
 */
function listSourceFiles(dir) {
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

/**
 * Checks 2 and 3: the imports and environment reads of one file.
 * @param {string} root
 * @param {WorkspacePackage} pkg
 * @param {string} file
 * @param {Set<string>} appNames
 * @returns {string[]}
 */
function checkSourceFile(root, pkg, file, appNames) {
  const shown = relative(root, file).split(sep).join('/');
  const source = maskSource(readFileSync(file, 'utf8'));
  const where = (/** @type {number} */ index) => `${shown}:${lineAt(source.code, index)}`;
  const testFile = isTestFile(relative(join(root, pkg.dir, 'src'), file));
  const declarationFile = /\.d\.[mc]?ts$/.test(file);

  /** @type {string[]} */
  const problems = [];
  for (const site of findImports(source)) {
    const dep = packageNameOf(site.specifier);
    if (dep === undefined || dep === pkg.name) continue;
    const reason = leafRuleViolation(pkg, dep, appNames, { testOnly: testFile });
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

/**
 * @param {string} pathInSrc
 */
function isTestFile(pathInSrc) {
  const parts = pathInSrc.split(sep);
  return /\.test\./.test(parts.at(-1) ?? '') || parts.slice(0, -1).includes('__tests__');
}

/**
 * @param {WorkspacePackage} pkg
 * @param {string} dep
 * @param {boolean} devAllowed
 * @returns {string | undefined}
 */
function undeclaredImport(pkg, dep, devAllowed) {
  if (declares(pkg.manifest, devAllowed ? ALL_FIELDS : RUNTIME_FIELDS, dep)) return undefined;
  if (devAllowed) return `${pkg.name} imports ${dep}, which its package.json does not declare`;
  const hint = declares(pkg.manifest, ['devDependencies'], dep)
    ? ': devDependencies only serve tests and type-only imports'
    : '';
  return `${pkg.name} imports ${dep}, which is not in its dependencies, peerDependencies or optionalDependencies${hint}`;
}

/**
 * The package a bare specifier names, or undefined for relative paths, URLs, `#imports` and builtins.
 * @param {string} specifier
 * @returns {string | undefined}
 */
function packageNameOf(specifier) {
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

/**
 * @param {MaskedSource} source
 * @returns {ImportSite[]}
 */
function findImports(source) {
  return [STATIC_IMPORT, DYNAMIC_IMPORT, REQUIRE]
    .flatMap((pattern) => liveMatches(source, pattern))
    .map((match) => ({
      specifier: match.groups?.specifier ?? '',
      index: match.index,
      typeOnly: match.groups?.type !== undefined,
    }))
    .sort((a, b) => a.index - b.index);
}

/**
 * @param {MaskedSource} source
 * @returns {number[]}
 */
function findEnvReads(source) {
  return liveMatches(source, ENV_READ).map((match) => match.index);
}

/**
 * Matches in the comment-free code whose first character is code, not string contents.
 * The patterns run on `code` because they need the specifier strings; `bare` vetoes
 * matches such as "import x from 'y'" that sit inside a string.
 * @param {MaskedSource} source
 * @param {RegExp} pattern
 */
function liveMatches({ code, bare }, pattern) {
  return [...code.matchAll(pattern)].filter((match) => bare[match.index] === code[match.index]);
}

/**
 * @param {string} text
 * @param {number} index
 */
function lineAt(text, index) {
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
 * @param {string} source
 * @returns {MaskedSource}
 */
function maskSource(source) {
  const code = source.split('');
  const bare = source.split('');
  /** @type {number[]} brace depth at each open `${`, innermost last */
  const templates = [];
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

/**
 * Whether a `/` after `previous` starts a regex literal rather than a division.
 * @param {string} previous
 */
function startsRegex(previous) {
  if (previous === '' || REGEX_AFTER_WORDS.has(previous)) return true;
  return previous !== 'literal' && !/^[\w$]/.test(previous) && !')]}'.includes(previous);
}

/**
 * @param {string[]} chars
 * @param {number} from
 * @param {number} to
 */
function blank(chars, from, to) {
  for (let i = from; i < to; i += 1) if (chars[i] !== '\n') chars[i] = ' ';
}

/**
 * @param {string} source
 * @param {string} token
 * @param {number} from
 */
function endOf(source, token, from) {
  const index = source.indexOf(token, from);
  return index === -1 ? source.length : index;
}

/**
 * @param {string} source
 * @param {number} start index of the opening quote
 * @returns {number} index just past the closing quote (or the end of the line, if unterminated)
 */
function skipString(source, start) {
  const quote = source[start];
  let i = start + 1;
  while (i < source.length && source[i] !== quote && source[i] !== '\n')
    i += source[i] === '\\' ? 2 : 1;
  return Math.min(i + 1, source.length);
}

/**
 * @param {string} source
 * @param {number} start index just inside the template's opening (a backtick or `}`)
 * @returns {{ end: number, opensExpression: boolean }} end is just past the closing backtick or `${`
 */
function skipTemplate(source, start) {
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
 * @param {string} source
 * @param {number} start index of the opening slash
 * @returns {number} index just past the flags, or -1 if no regex literal closes on this line
 */
function skipRegex(source, start) {
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
 * @param {WorkspacePackage[]} packages
 * @returns {string[][]}
 */
function findCycles(packages) {
  const names = new Set(packages.map((pkg) => pkg.name));
  const edges = new Map(
    packages.map((pkg) => [
      pkg.name,
      declaredDeps(pkg.manifest, RUNTIME_FIELDS)
        .map(([, dep]) => dep)
        .filter((dep) => names.has(dep)),
    ]),
  );
  /** @type {Map<string, string[]>} */
  const cycles = new Map();
  const done = new Set();
  /** @type {string[]} */
  const path = [];

  /** @param {string} name */
  const visit = (name) => {
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

/**
 * @param {string[]} cycle
 */
function rotateToSmallest(cycle) {
  const start = cycle.indexOf([...cycle].sort()[0] ?? '');
  return [...cycle.slice(start), ...cycle.slice(0, start)];
}

// ---------------------------------------------------------------------------
// CLI

function main() {
  const root = process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url));
  /** @type {ReturnType<typeof checkGraph>} */
  let result;
  try {
    result = checkGraph(root);
  } catch (error) {
    console.error(/** @type {Error} */ (error).message);
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
