#!/usr/bin/env node
// The `flowforge-db` command. A committed file rather than dist/cli.js itself:
// pnpm links a workspace package's bin only when the target exists at install
// time, and dist/ is built after `pnpm install`. This file always exists, so
// the link is made; it runs the built CLI, or says to build it.
//
// It also turns a failure to load the CLI (the kysely peer not installed, or
// one too old) into one line that names the package and how to install it:
// Node's own ERR_MODULE_NOT_FOUND stack names neither remedy nor version.
// Exit 70 (EX_SOFTWARE) for both: the installation is incomplete, not the
// command line (64) or the settings (78).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const EX_SOFTWARE = 70;
const cli = new URL('../dist/cli.js', import.meta.url);

/** This package's package.json (name, peer and runtime dependency ranges), or `{}`. */
function ownManifest() {
  try {
    return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  } catch {
    return {};
  }
}

/** The `version` of the package.json at `path`, or undefined. */
function versionAt(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8')).version;
  } catch {
    return undefined;
  }
}

/** The version of `name` that Node resolves from dist/ (node_modules upwards), or undefined. */
function installedVersion(name) {
  for (let dir = dirname(fileURLToPath(cli)); ; dir = dirname(dir)) {
    const manifest = join(dir, 'node_modules', name, 'package.json');
    if (existsSync(manifest)) return versionAt(manifest);
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * What failed to load and what to do, for the errors that mean "installed
 * incompletely"; undefined for any other error (that one keeps its stack).
 */
function loadProblem(error) {
  const message = typeof error?.message === 'string' ? error.message : '';
  const own = ownManifest();
  const self = own.name ?? '@flowforge/db';
  const peers = own.peerDependencies ?? {};
  const optional = own.peerDependenciesMeta ?? {};
  /**
   * The advice for a package that is missing (`installed` false) or present in
   * a version the CLI cannot use. The range is always given: a bare `npm
   * install kysely` would take the newest kysely, which may be outside it.
   */
  const advice = (name, installed) => {
    if (name in peers && !optional[name]?.optional) {
      const spec = `"${name}@${peers[name]}"`;
      return (
        `${installed ? `${self} needs ${name} ${peers[name]}; ` : ''}` +
        `${name} is a required peer dependency of ${self}: install it beside it with ` +
        `npm install ${spec} (or pnpm add ${spec}, yarn add ${spec})`
      );
    }
    if (name === self || name in (own.dependencies ?? {})) {
      return `${name} is a dependency of ${self}: reinstall it (npm install ${self})`;
    }
    return `reinstall the project's dependencies (npm install)`;
  };

  if (error?.code === 'ERR_MODULE_NOT_FOUND') {
    const name = /Cannot find package '([^']+)'/.exec(message)?.[1];
    const from = / imported from (.+)$/m.exec(message)?.[1];
    if (name) {
      return `the package ${name} is not installed${from ? ` (imported from ${from})` : ''}: ${advice(name, false)}`;
    }
    const file = /Cannot find module '([^']+)'/.exec(message)?.[1];
    return `${file ?? 'a module'} is missing: ${self} is installed incompletely; reinstall it (npm install ${self})`;
  }
  if (error?.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') {
    // "Package subpath './migration' is not defined by "exports" in /…/node_modules/kysely/package.json imported from …"
    const manifest = / in (\S+package\.json)/.exec(message)?.[1];
    const subpath = /subpath '([^']+)'/.exec(message)?.[1];
    let name;
    try {
      name = manifest ? JSON.parse(readFileSync(manifest, 'utf8')).name : undefined;
    } catch {
      name = undefined;
    }
    if (name) {
      const version = versionAt(manifest);
      const entry = subpath ? `${name}/${subpath.replace(/^\.\//, '')}` : name;
      return `${name}${version ? ` ${version}` : ''} is installed, but it has no ${entry}: ${advice(name, true)}`;
    }
  }
  if (error instanceof SyntaxError) {
    // "The requested module 'kysely' does not provide an export named 'PGliteDialect'"
    const found = /requested module '([^']+)' does not provide an export named '([^']+)'/.exec(
      message,
    );
    const name = found?.[1]?.match(/^(@[^/]+\/[^/]+|[^/]+)/)?.[1];
    if (found && name && !name.startsWith('.')) {
      const version = installedVersion(name);
      const installed = version ? `${name} ${version} is installed` : `the installed ${name}`;
      return `${installed}, but it has no export ${found[2]}: ${advice(name, true)}`;
    }
  }
  return undefined;
}

if (existsSync(cli)) {
  try {
    await import(cli.href);
  } catch (error) {
    const problem = loadProblem(error);
    if (problem === undefined) throw error;
    process.stderr.write(`flowforge-db: cannot start: ${problem}\n`);
    process.exitCode = EX_SOFTWARE;
  }
} else {
  process.stderr.write(
    `flowforge-db: ${fileURLToPath(cli)} is missing: build @flowforge/db first ` +
      '(in this repository: pnpm --filter @flowforge/db build, or pnpm run build)\n',
  );
  // EX_SOFTWARE: the installation is incomplete, not the command line or the settings.
  process.exitCode = EX_SOFTWARE;
}
