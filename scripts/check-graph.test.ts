import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { after, test } from 'node:test';
import { URL, fileURLToPath } from 'node:url';
import { checkGraph } from './check-graph.ts';

const CLI = fileURLToPath(new URL('check-graph.ts', import.meta.url));

const tempRoots: string[] = [];
after(() => {
  for (const root of tempRoots) rmSync(root, { recursive: true, force: true });
});

/** Writes a fake monorepo to a fresh temp dir (relative path → contents); objects are written as JSON. */
function makeRepo(files: Record<string, string | object>): string {
  const root = mkdtempSync(join(tmpdir(), 'check-graph-'));
  tempRoots.push(root);
  for (const [path, contents] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    const text = typeof contents === 'string' ? contents : JSON.stringify(contents, null, 2);
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** `fields`: e.g. { dependencies: { pino: '^9' } } */
function manifest(name: string, fields: Record<string, Record<string, string>> = {}): object {
  return { name, version: '0.0.0', type: 'module', ...fields };
}

const workspace = (...names: string[]): Record<string, string> =>
  Object.fromEntries(names.map((name) => [name, 'workspace:*']));

/** The test double of the fake repo (testing/double). */
const DOUBLE = '@flowforge/test-double';

/** A small repo that obeys the leaf rule; tests add or override files. */
function cleanRepo(): Record<string, string | object> {
  return {
    'package.json': { name: 'fake-root', private: true },
    'packages/config/package.json': manifest('@flowforge/config'),
    'packages/config/src/index.ts': "export const settings = { env: process.env['APP_ENV'] };\n",
    'packages/observability/package.json': manifest('@flowforge/observability', {
      dependencies: { ...workspace('@flowforge/config'), pino: '^9.0.0' },
    }),
    'packages/observability/src/index.ts': [
      "import pino from 'pino';",
      "import { settings } from '@flowforge/config';",
      'export const logger = pino({ level: settings.env });',
      '',
    ].join('\n'),
    'packages/db/package.json': manifest('@flowforge/db', {
      dependencies: workspace('@flowforge/config', '@flowforge/observability'),
      devDependencies: { vitest: '^3.0.0', ...workspace(DOUBLE) },
    }),
    'packages/db/src/index.ts': "export { logger } from '@flowforge/observability';\n",
    'packages/db/src/index.test.ts': [
      "import { test } from 'vitest';",
      `import { startDouble } from '${DOUBLE}';`,
      "test('db', () => startDouble());",
      '',
    ].join('\n'),
    'apps/sample-api/package.json': manifest('@flowforge/sample-api', {
      dependencies: workspace('@flowforge/config', '@flowforge/db'),
      devDependencies: workspace(DOUBLE),
    }),
    'apps/sample-api/src/main.ts':
      "import { settings } from '@flowforge/config';\nimport '@flowforge/db';\n",
    'testing/double/package.json': { ...manifest(DOUBLE), private: true },
    'testing/double/src/index.ts': "export const startDouble = (): string => 'double';\n",
    'bench/package.json': manifest('flowforge-bench', {
      dependencies: workspace('@flowforge/sample-api'),
      devDependencies: workspace(DOUBLE),
    }),
  };
}

const problemsWith = (overrides: Record<string, string | object>): string[] =>
  checkGraph(makeRepo({ ...cleanRepo(), ...overrides })).problems;

test('a repo that obeys the leaf rule has no problems', () => {
  const result = checkGraph(makeRepo(cleanRepo()));
  assert.deepEqual(result, { problems: [], packages: 5, files: 6 });
});

test('reports a forbidden declared edge, and the cycles it makes', () => {
  const problems = problemsWith({
    'packages/config/package.json': manifest('@flowforge/config', {
      dependencies: workspace('@flowforge/db'),
    }),
  });
  assert.deepEqual(problems, [
    'packages/config/package.json: @flowforge/config may not depend on @flowforge/db (dependencies; allowed: @flowforge/kernel)',
    'dependency cycle: @flowforge/config → @flowforge/db → @flowforge/config',
    'dependency cycle: @flowforge/config → @flowforge/db → @flowforge/observability → @flowforge/config',
  ]);
});

test('the kernel is a leaf: it may depend on no workspace package', () => {
  const problems = problemsWith({
    'packages/kernel/package.json': manifest('@flowforge/kernel', {
      dependencies: workspace('@flowforge/config'),
    }),
  });
  assert.deepEqual(problems, [
    'packages/kernel/package.json: @flowforge/kernel may not depend on @flowforge/config (dependencies; allowed: none)',
  ]);
});

test('widgets builds on the stores and auth, but not on Materialize or the server kit', () => {
  const problems = problemsWith({
    'packages/widgets/package.json': manifest('@flowforge/widgets', {
      dependencies: workspace(
        '@flowforge/config',
        '@flowforge/db',
        '@flowforge/materialize',
        '@flowforge/server',
      ),
    }),
  });
  const allowed =
    '@flowforge/kernel, @flowforge/config, @flowforge/observability, @flowforge/db, @flowforge/redis, @flowforge/clickhouse, @flowforge/auth';
  assert.deepEqual(problems, [
    `packages/widgets/package.json: @flowforge/widgets may not depend on @flowforge/materialize (dependencies; allowed: ${allowed})`,
    `packages/widgets/package.json: @flowforge/widgets may not depend on @flowforge/server (dependencies; allowed: ${allowed})`,
  ]);
});

test('checks peerDependencies and optionalDependencies like dependencies', () => {
  const problems = problemsWith({
    'packages/redis/package.json': manifest('@flowforge/redis', {
      peerDependencies: workspace('@flowforge/db'),
      optionalDependencies: workspace('@flowforge/auth'),
    }),
  });
  assert.deepEqual(problems, [
    'packages/redis/package.json: @flowforge/redis may not depend on @flowforge/db (peerDependencies; allowed: @flowforge/config, @flowforge/observability, @flowforge/kernel)',
    'packages/redis/package.json: @flowforge/redis may not depend on @flowforge/auth (optionalDependencies; allowed: @flowforge/config, @flowforge/observability, @flowforge/kernel)',
  ]);
});

test('reports a forbidden import even when it is declared', () => {
  const problems = problemsWith({
    'packages/observability/package.json': manifest('@flowforge/observability', {
      dependencies: { ...workspace('@flowforge/config', '@flowforge/auth'), pino: '^9.0.0' },
    }),
    'packages/observability/src/auth.ts': "\nimport { login } from '@flowforge/auth';\n",
  });
  assert.deepEqual(problems, [
    'packages/observability/package.json: @flowforge/observability may not depend on @flowforge/auth (dependencies; allowed: @flowforge/config, @flowforge/kernel)',
    'packages/observability/src/auth.ts:2: @flowforge/observability may not import @flowforge/auth (allowed: @flowforge/config, @flowforge/kernel)',
  ]);
});

test('reports an import of an undeclared package', () => {
  const problems = problemsWith({ 'packages/db/src/log.ts': "import pino from 'pino/file';\n" });
  assert.deepEqual(problems, [
    'packages/db/src/log.ts:1: @flowforge/db imports pino, which is not in its dependencies, peerDependencies or optionalDependencies',
  ]);
});

test('test files and type-only imports may use devDependencies', () => {
  const problems = problemsWith({
    'packages/db/src/pool.test.ts': "import { describe } from 'vitest';\n",
    'packages/db/src/__tests__/helpers.ts': "import { vi } from 'vitest';\n",
    'packages/db/src/types.ts':
      "import type { Mock } from 'vitest';\nexport type { Mock } from 'vitest';\n",
  });
  assert.deepEqual(problems, []);
});

test('a test file may not import a package declared nowhere', () => {
  const problems = problemsWith({ 'packages/db/src/pool.test.ts': "import nock from 'nock';\n" });
  assert.deepEqual(problems, [
    'packages/db/src/pool.test.ts:1: @flowforge/db imports nock, which its package.json does not declare',
  ]);
});

test('reports a runtime import that only devDependencies declare', () => {
  const problems = problemsWith({ 'packages/db/src/pool.ts': "import { vi } from 'vitest';\n" });
  assert.deepEqual(problems, [
    'packages/db/src/pool.ts:1: @flowforge/db imports vitest, which is not in its dependencies, peerDependencies or optionalDependencies: devDependencies only serve tests and type-only imports',
  ]);
});

test('ignores commented-out imports and import-like text in strings and regexes', () => {
  const problems = problemsWith({
    'packages/db/src/quiet.ts': [
      "// import { login } from '@flowforge/auth';",
      "/* import { login } from '@flowforge/auth';",
      "   require('@flowforge/auth'); */",
      "const url = 'https://example.com/path'; // import x from '@flowforge/auth'",
      'const help = "import x from \'@flowforge/auth\'";',
      "const quote = /'/g; const slash = /\\/\\//;",
      "const tpl = `${url}/import('@flowforge/auth')`;",
      '',
    ].join('\n'),
  });
  assert.deepEqual(problems, []);
});

test('code after URLs, regexes and templates on the same line is still checked', () => {
  const problems = problemsWith({
    'packages/db/src/loud.ts': [
      "const url = 'http://example.com'; import { a } from '@flowforge/auth';",
      "const re = /'/; const b = require('@flowforge/auth');",
      "const tpl = `${'//'}`; const c = import('@flowforge/auth');",
      '',
    ].join('\n'),
  });
  const forbidden =
    '@flowforge/db may not import @flowforge/auth (allowed: @flowforge/config, @flowforge/observability, @flowforge/kernel)';
  assert.deepEqual(problems, [
    `packages/db/src/loud.ts:1: ${forbidden}`,
    `packages/db/src/loud.ts:2: ${forbidden}`,
    `packages/db/src/loud.ts:3: ${forbidden}`,
  ]);
});

test('process.env is only for @flowforge/config', () => {
  const problems = problemsWith({
    'packages/db/src/env.ts':
      '// process.env in a comment is fine\nconst url = process.env.DATABASE_URL;\n',
    'apps/sample-api/src/port.ts':
      "const help = 'set process.env.PORT';\nexport const port = process['env'].PORT;\n",
  });
  const message =
    'process.env is read outside @flowforge/config: take typed options, or use settings from @flowforge/config';
  assert.deepEqual(problems, [
    `packages/db/src/env.ts:2: ${message}`,
    `apps/sample-api/src/port.ts:2: ${message}`,
  ]);
});

test('reports any dependency on an app, dev ones included', () => {
  const problems = problemsWith({
    'packages/auth/package.json': manifest('@flowforge/auth', {
      devDependencies: workspace('@flowforge/sample-api'),
    }),
  });
  assert.deepEqual(problems, [
    'packages/auth/package.json: @flowforge/auth may not depend on @flowforge/sample-api (devDependencies; nothing may depend on an app)',
  ]);
});

test('an app may not import another app', () => {
  const problems = problemsWith({
    'apps/worker/package.json': manifest('@flowforge/worker', {
      dependencies: workspace('@flowforge/config'),
    }),
    'apps/worker/src/main.ts': "import '@flowforge/sample-api';\n",
  });
  assert.deepEqual(problems, [
    'apps/worker/src/main.ts:1: @flowforge/worker may not import @flowforge/sample-api (nothing may depend on an app)',
  ]);
});

test('node builtins and relative imports need no declaration', () => {
  const problems = problemsWith({
    'packages/config/src/files.ts': [
      "import { readFileSync } from 'fs';",
      "import { readFile } from 'node:fs/promises';",
      "import { join } from 'path';",
      "import { test } from 'node:test';",
      "import { settings } from './index.js';",
      "import { self } from '@flowforge/config';",
      '',
    ].join('\n'),
  });
  assert.deepEqual(problems, []);
});

test('reports dynamic imports and requires of forbidden packages', () => {
  const problems = problemsWith({
    'packages/config/src/lazy.ts': [
      "const db = await import('@flowforge/db');",
      "const obs = require('@flowforge/observability/logger');",
      '',
    ].join('\n'),
  });
  assert.deepEqual(problems, [
    'packages/config/src/lazy.ts:1: @flowforge/config may not import @flowforge/db (allowed: @flowforge/kernel)',
    'packages/config/src/lazy.ts:2: @flowforge/config may not import @flowforge/observability (allowed: @flowforge/kernel)',
  ]);
});

test('reports a package under packages/ that the table does not know', () => {
  const problems = problemsWith({ 'packages/queue/package.json': manifest('@flowforge/queue') });
  assert.deepEqual(problems, [
    "packages/queue/package.json: @flowforge/queue is not in the leaf-rule table: add it to DESIGN.md's table first",
  ]);
});

test('reports a cycle in the declared runtime graph', () => {
  const problems = problemsWith({
    'packages/auth/package.json': manifest('@flowforge/auth', {
      dependencies: workspace('@flowforge/db'),
    }),
    'packages/db/package.json': manifest('@flowforge/db', {
      dependencies: workspace('@flowforge/observability', '@flowforge/auth'),
    }),
  });
  assert.ok(
    problems.includes('dependency cycle: @flowforge/auth → @flowforge/db → @flowforge/auth'),
    problems.join('\n'),
  );
});

test('a test double under testing/ must be private', () => {
  const problems = problemsWith({ 'testing/double/package.json': manifest(DOUBLE) });
  assert.deepEqual(problems, [
    `testing/double/package.json: ${DOUBLE} is a test double (testing/): it must be "private": true`,
  ]);
});

test('a test double is only ever a devDependency, of any workspace package', () => {
  const problems = problemsWith({
    'package.json': { name: 'fake-root', private: true, peerDependencies: workspace(DOUBLE) },
    'packages/redis/package.json': manifest('@flowforge/redis', {
      dependencies: workspace('@flowforge/config', DOUBLE),
    }),
    'apps/sample-api/package.json': manifest('@flowforge/sample-api', {
      dependencies: workspace('@flowforge/config', '@flowforge/db', DOUBLE),
    }),
    'testing/other/package.json': {
      ...manifest('@flowforge/other-double', { dependencies: workspace(DOUBLE) }),
      private: true,
    },
    'bench/package.json': manifest('flowforge-bench', {
      optionalDependencies: workspace(DOUBLE),
    }),
  });
  assert.deepEqual(problems, [
    `packages/redis/package.json: @flowforge/redis may not depend on ${DOUBLE} (dependencies; a test double is only ever a devDependency)`,
    `apps/sample-api/package.json: @flowforge/sample-api may not depend on ${DOUBLE} (dependencies; a test double is only ever a devDependency)`,
    `testing/other/package.json: @flowforge/other-double may not depend on ${DOUBLE} (dependencies; a test double is only ever a devDependency)`,
    `package.json: fake-root may not depend on ${DOUBLE} (peerDependencies; a test double is only ever a devDependency)`,
    `bench/package.json: flowforge-bench may not depend on ${DOUBLE} (optionalDependencies; a test double is only ever a devDependency)`,
  ]);
});

test("no package's or app's code imports a test double outside its tests", () => {
  const problems = problemsWith({
    // A devDependency and a type-only import pass the other checks: only this rule stops them.
    'apps/sample-api/src/double.ts': `import type { Double } from '${DOUBLE}';\n`,
    'apps/sample-api/src/double.test.ts': `import { startDouble } from '${DOUBLE}';\n`,
    'packages/db/src/fixture.ts': `\nimport { startDouble } from '${DOUBLE}';\n`,
    'packages/db/src/__tests__/fixture.ts': `import { startDouble } from '${DOUBLE}';\n`,
  });
  assert.deepEqual(problems, [
    `packages/db/src/fixture.ts:2: @flowforge/db may not import ${DOUBLE} outside its tests (a test double)`,
    `apps/sample-api/src/double.ts:1: @flowforge/sample-api may not import ${DOUBLE} outside its tests (a test double)`,
  ]);
});

test('a test double may use any package but an app, and its code is checked like a package', () => {
  const problems = problemsWith({
    'testing/double/package.json': {
      ...manifest(DOUBLE, { dependencies: workspace('@flowforge/db', '@flowforge/sample-api') }),
      private: true,
    },
    'testing/double/src/index.ts': [
      "import '@flowforge/db';",
      "import pino from 'pino';",
      'export const level = process.env.LOG_LEVEL;',
      '',
    ].join('\n'),
  });
  assert.deepEqual(problems, [
    `testing/double/package.json: ${DOUBLE} may not depend on @flowforge/sample-api (dependencies; nothing may depend on an app)`,
    `testing/double/src/index.ts:2: ${DOUBLE} imports pino, which is not in its dependencies, peerDependencies or optionalDependencies`,
    'testing/double/src/index.ts:3: process.env is read outside @flowforge/config: take typed options, or use settings from @flowforge/config',
  ]);
});

test('the CLI exits 1 and prints the problems for a bad repo', () => {
  const root = makeRepo({ ...cleanRepo(), 'packages/db/src/env.ts': 'process.env.X;\n' });
  const run = spawnSync(process.execPath, [CLI, root], { encoding: 'utf8' });
  assert.equal(run.status, 1);
  assert.match(
    run.stdout,
    /^packages\/db\/src\/env\.ts:1: process\.env is read outside @flowforge\/config/m,
  );
});

test('the CLI exits 0 and prints a summary for a clean repo', () => {
  const stdout = execFileSync(process.execPath, [CLI, makeRepo(cleanRepo())], { encoding: 'utf8' });
  assert.equal(stdout, 'graph: 5 packages, 6 source files, leaf rule holds\n');
});

test('the real repo obeys the leaf rule', () => {
  const { problems } = checkGraph(new URL('..', import.meta.url));
  assert.deepEqual(problems, []);
});
