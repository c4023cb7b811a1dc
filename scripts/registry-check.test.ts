// The publish test: every packages/* package packed, published to a throwaway verdaccio
// and installed from it with npm (see registry-check.ts), plus unit tests of its rules (the
// lockfile mirror's are in lib/lock-mirror.test.ts). `pnpm check:registry` runs both with a
// TAP report in reports/registry-check.tap.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { after, before, describe, test } from 'node:test';
import { Script } from 'node:vm';
import { CONSUMERS, SMOKES } from './lib/package-smokes.ts';
import { readJson } from './lib/workspace.ts';
import {
  DEV_ONLY,
  ROOT,
  OLDEST_NODE,
  formatMegabytes,
  limiter,
  listPackages,
  declarationImports,
  manifestProblems,
  optionalPeerLeaks,
  parseSkipList,
  REPOSITORY,
  tarballProblems,
  startRun,
  type Outcome,
  type PackageSteps,
  type RegistryRun,
} from './registry-check.ts';

/** The whole run's budget (about 2 min alone here, 3 under a loaded `pnpm check`); each step has its own limit too. */
const RUN_LIMIT_MS = 300_000;

const skip = parseSkipList(process.env['FLOWFORGE_REGISTRY_SKIP']);
const packages = listPackages({ skip });
const skipped = listPackages().filter((pkg) => skip.has(pkg.name));

// ---------------------------------------------------------------------------
// Rules, without a registry

describe('the dev-only rule on packed manifests', () => {
  const base = { name: '@flowforge/x', version: '1.0.0' };

  test('runtime dependencies that are not dev-only pass', () => {
    assert.deepEqual(manifestProblems({ ...base, dependencies: { pino: '^10.0.0' } }), []);
  });

  for (const dep of ['pino-pretty', 'vitest', '@types/pg', '@electric-sql/pglite']) {
    test(`${dep} in dependencies is refused`, () => {
      const problems = manifestProblems({ ...base, dependencies: { [dep]: '^1.0.0' } });
      assert.equal(problems.length, 1);
      assert.match(problems[0] ?? '', new RegExp(`${dep}.*dev-only.*dependencies`));
    });
  }

  test('a dev-only optionalDependency or required peer is refused', () => {
    const problems = manifestProblems({
      ...base,
      optionalDependencies: { chdb: '^3.0.0' },
      peerDependencies: { 'oidc-provider': '^9.0.0', 'fast-check': '^4.0.0' },
      peerDependenciesMeta: { 'fast-check': { optional: false } },
    });
    assert.equal(problems.length, 3);
  });

  test('an optional peer is allowed: npm never installs it for the user', () => {
    const manifest = {
      ...base,
      peerDependencies: { 'pino-pretty': '>=11' },
      peerDependenciesMeta: { 'pino-pretty': { optional: true } },
    };
    assert.deepEqual(manifestProblems(manifest), []);
  });

  test('workspace-protocol ranges and bundled dependencies are refused', () => {
    const problems = manifestProblems({
      ...base,
      dependencies: { '@flowforge/config': 'workspace:^' },
      bundleDependencies: ['pino'],
    });
    assert.equal(problems.length, 2);
  });

  test('the list names every package the issue calls dev-only', () => {
    for (const dep of ['pino-pretty', 'chdb', 'oidc-provider', 'pg-gateway', 'verdaccio']) {
      assert.ok(DEV_ONLY.includes(dep), dep);
    }
  });
});

describe('what an npm user sees of a packed package', () => {
  const manifest = {
    name: '@flowforge/x',
    version: '1.0.0',
    repository: { type: 'git', url: `git+${REPOSITORY}.git`, directory: 'packages/x' },
    homepage: `${REPOSITORY}/tree/main/packages/x#readme`,
    bugs: { url: `${REPOSITORY}/issues` },
  };
  const files = ['package.json', 'README.md', 'LICENSE', 'dist/index.js'];

  test('a complete package passes', () => {
    const readme = `[API](${REPOSITORY}/blob/main/docs/x.md), [code](./dist/index.js), [top](#x)`;
    assert.deepEqual(tarballProblems(manifest, files, readme), []);
  });

  test('no LICENSE, repository directory, homepage or bugs is each refused', () => {
    const problems = tarballProblems(
      {
        name: manifest.name,
        version: manifest.version,
        repository: { url: manifest.repository.url, directory: '' },
      },
      files.filter((file) => file !== 'LICENSE'),
      'text',
    );
    assert.equal(problems.length, 4, problems.join('\n'));
  });

  test('a relative README link out of the package is refused: npm renders the README alone', () => {
    const problems = tarballProblems(
      manifest,
      files,
      'See [the design](../../docs/x.md).\n[ref]: ./CONTRIBUTING.md',
    );
    assert.deepEqual(problems, [
      '@flowforge/x: README link (../../docs/x.md) is not in the tarball: make it absolute',
      '@flowforge/x: README link (./CONTRIBUTING.md) is not in the tarball: make it absolute',
    ]);
  });

  test('every package ships the root LICENSE, unchanged', () => {
    const root = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    for (const pkg of listPackages()) {
      assert.equal(readFileSync(join(pkg.dir, 'LICENSE'), 'utf8'), root, pkg.name);
    }
  });
});

test('a main entry whose types import an optional peer is refused; a subpath may', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flowforge-entry-'));
  try {
    mkdirSync(join(dir, 'dist'));
    writeFileSync(
      join(dir, 'dist', 'index.d.ts'),
      "import { Logger } from 'pino';\nexport { x } from './chunk-a.js';\n",
    );
    writeFileSync(
      join(dir, 'dist', 'chunk-a.d.ts'),
      "import type { Kysely } from 'kysely/migration';\n",
    );
    writeFileSync(
      join(dir, 'dist', 'fastify.d.ts'),
      "import { FastifyInstance } from 'fastify';\n",
    );
    const manifest = {
      name: '@flowforge/x',
      version: '1.0.0',
      exports: {
        '.': { types: './dist/index.d.ts' },
        './fastify': { types: './dist/fastify.d.ts' },
      },
      peerDependencies: { fastify: '^5.10.0', kysely: '^0.29.9' },
      peerDependenciesMeta: { fastify: { optional: true } },
    };
    assert.deepEqual(declarationImports(dir, './dist/index.d.ts'), ['kysely', 'pino']);
    assert.deepEqual(declarationImports(dir), ['fastify', 'kysely', 'pino']);
    assert.deepEqual(optionalPeerLeaks(dir, manifest), []);
    writeFileSync(
      join(dir, 'dist', 'chunk-a.d.ts'),
      "import type { FastifyRequest } from 'fastify';\n",
    );
    assert.deepEqual(optionalPeerLeaks(dir, manifest), [
      "@flowforge/x: the main entry's types import the optional peer fastify; move what needs it to a subpath export",
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('FLOWFORGE_REGISTRY_SKIP takes commas or spaces', () => {
  assert.deepEqual([...parseSkipList(' @a/b,@c/d  @e/f ')], ['@a/b', '@c/d', '@e/f']);
  assert.equal(parseSkipList(undefined).size, 0);
});

test('the limiter runs at most its limit at once, in order', async () => {
  const limited = limiter(2);
  let active = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(
    [1, 2, 3, 4, 5].map((n) =>
      limited(async () => {
        active += 1;
        peak = Math.max(peak, active);
        order.push(n);
        await new Promise((wake) => setTimeout(wake, 5));
        active -= 1;
      }),
    ),
  );
  assert.equal(peak, 2);
  assert.deepEqual(order, [1, 2, 3, 4, 5]);
});

test('turbo builds every package before this check', () => {
  const turbo = readJson<{ tasks: Record<string, { dependsOn?: string[] }> }>(
    join(ROOT, 'turbo.json'),
  );
  const dependsOn = turbo.tasks['//#check:registry']?.dependsOn ?? [];
  for (const pkg of listPackages()) assert.ok(dependsOn.includes(`${pkg.name}#build`), pkg.name);
});

test('smoke scripts and consumer files name existing packages only', () => {
  const names = new Set(listPackages().map((pkg) => pkg.name));
  for (const name of [...Object.keys(SMOKES), ...Object.keys(CONSUMERS)]) {
    assert.ok(names.has(name), name);
  }
});

test('every published package has its own smoke script and consumer file', () => {
  for (const pkg of listPackages()) {
    assert.ok(Object.hasOwn(SMOKES, pkg.name), `${pkg.name}: no entry in SMOKES`);
    assert.ok(Object.hasOwn(CONSUMERS, pkg.name), `${pkg.name}: no entry in CONSUMERS`);
  }
});

test('each smoke script travels as plain JavaScript (its types stripped)', () => {
  for (const [name, check] of Object.entries(SMOKES)) {
    const source = `module.exports = ${check.toString()};`;
    assert.doesNotThrow(() => new Script(source, { filename: `${name}/check.cjs` }), name);
  }
});

// ---------------------------------------------------------------------------
// The registry run

describe('packages installed from a local registry', { timeout: RUN_LIMIT_MS }, () => {
  let session: RegistryRun | undefined;
  const watchdog = setTimeout(() => {
    console.error(`registry check: over ${RUN_LIMIT_MS} ms, giving up`);
    void session?.close().finally(() => process.exit(1));
  }, RUN_LIMIT_MS);
  watchdog.unref();

  before(async () => {
    session = await startRun(packages);
  });
  after(async () => {
    clearTimeout(watchdog);
    await session?.close();
  });

  const stepsOf = async (name: string): Promise<PackageSteps> => {
    assert.ok(session, 'the registry did not start');
    return (await session.steps.get(name)) ?? {};
  };

  function assertOk<T>(
    result: Outcome<T> | undefined,
    what: string,
  ): asserts result is { ok: true; value: T } {
    if (result === undefined) assert.fail(`${what}: not run (an earlier step failed)`);
    if (!result.ok) throw result.error;
  }

  for (const pkg of packages) {
    describe(pkg.name, () => {
      test('packs (workspace:^ rewritten) and publishes', () => {
        assertOk(session?.published.get(pkg.name), 'pack and publish');
      });

      test('packed manifest: no dev-only runtime dependency', () => {
        const published = session?.published.get(pkg.name);
        assertOk(published, 'pack and publish');
        if (published?.ok) assert.deepEqual(manifestProblems(published.value), []);
      });

      test('packed tarball: LICENSE, repository, homepage, bugs, README links that work on npm', () => {
        assertOk(session?.published.get(pkg.name), 'pack and publish');
        assert.deepEqual(session?.tarballs.get(pkg.name), []);
      });

      test('installs alone with npm into a fresh project', async (t) => {
        const { install } = await stepsOf(pkg.name);
        assertOk(install, 'npm install');
        if (install?.ok) {
          t.diagnostic(
            `install size ${formatMegabytes(install.value.bytes)} (${install.value.files} files)`,
          );
        }
      });

      test('ESM import: the smoke script passes', async () => {
        assertOk((await stepsOf(pkg.name)).import, 'import');
      });

      test('require(): the smoke script passes, same instance as import', async () => {
        assertOk((await stepsOf(pkg.name)).require, 'require');
      });

      test("the main entry's types import no optional peer (it type-checks without Fastify)", async (t) => {
        const { entryTypes } = await stepsOf(pkg.name);
        assertOk(entryTypes, 'main entry types');
        if (entryTypes?.ok) t.diagnostic(`imports ${entryTypes.value.join(', ') || 'nothing'}`);
      });

      test('import and require() pass on the oldest Node we claim', async (t) => {
        const { oldestNode } = await stepsOf(pkg.name);
        assertOk(oldestNode, OLDEST_NODE);
        if (oldestNode?.ok) t.diagnostic(oldestNode.value);
      });
    });
  }

  test('consumer files type-check against the published types (tsc, NodeNext, strict)', async (t) => {
    assert.ok(session?.types, 'the registry did not start');
    const types = await session.types;
    assertOk(types, 'tsc');
    if (types.ok)
      t.diagnostic(`with @types/node${types.value.peers.map((peer) => `, ${peer}`).join('')}`);
  });

  test('every third-party version installed is one pnpm-lock.yaml holds (hermetic)', async () => {
    assert.ok(session, 'the registry did not start');
    const { drift, refused } = await session.audit();
    assert.deepEqual(
      drift.map((item) => `${item.name}@${item.version}`),
      [],
      'installed versions the lockfile does not hold',
    );
    assert.deepEqual(refused, [], 'asked for, not in the lockfile (optional peers aside)');
  });

  for (const pkg of skipped) {
    test(pkg.name, { skip: 'left out by FLOWFORGE_REGISTRY_SKIP' }, () => {});
  }
});
