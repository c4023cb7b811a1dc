// The publish test: every packages/* package packed, published to a throwaway verdaccio
// and installed from it with npm (see registry-check.mjs), plus unit tests of its rules.
// `pnpm check:registry` runs this with a TAP report in reports/registry-check.tap.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { after, before, describe, test } from 'node:test';
import {
  CONSUMERS,
  DEV_ONLY,
  ROOT,
  SMOKES,
  formatMegabytes,
  limiter,
  listPackages,
  manifestProblems,
  parseSkipList,
  startRun,
} from './registry-check.mjs';

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

test('FLOWFORGE_REGISTRY_SKIP takes commas or spaces', () => {
  assert.deepEqual([...parseSkipList(' @a/b,@c/d  @e/f ')], ['@a/b', '@c/d', '@e/f']);
  assert.equal(parseSkipList(undefined).size, 0);
});

test('the limiter runs at most its limit at once, in order', async () => {
  const limited = limiter(2);
  let active = 0;
  let peak = 0;
  /** @type {number[]} */
  const order = [];
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
  const turbo = JSON.parse(readFileSync(join(ROOT, 'turbo.json'), 'utf8'));
  const dependsOn = turbo.tasks['//#check:registry']?.dependsOn ?? [];
  for (const pkg of listPackages()) assert.ok(dependsOn.includes(`${pkg.name}#build`), pkg.name);
});

test('smoke scripts and consumer files name existing packages only', () => {
  const names = new Set(listPackages().map((pkg) => pkg.name));
  for (const name of [...Object.keys(SMOKES), ...Object.keys(CONSUMERS)]) {
    assert.ok(names.has(name), name);
  }
});

// ---------------------------------------------------------------------------
// The registry run

describe('packages installed from a local registry', { timeout: RUN_LIMIT_MS }, () => {
  /** @type {import('./registry-check.mjs').RegistryRun | undefined} */
  let session;
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

  /** @param {string} name */
  const stepsOf = async (name) => {
    assert.ok(session, 'the registry did not start');
    return (await session.steps.get(name)) ?? {};
  };

  /**
   * @param {import('./registry-check.mjs').Outcome<unknown> | undefined} result
   * @param {string} what
   */
  const assertOk = (result, what) => {
    if (result === undefined) assert.fail(`${what}: not run (an earlier step failed)`);
    if (!result.ok) throw result.error;
  };

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
    });
  }

  test('consumer files type-check against the published types (tsc, NodeNext, strict)', async (t) => {
    assert.ok(session?.types, 'the registry did not start');
    const types = await session.types;
    assertOk(types, 'tsc');
    if (types.ok)
      t.diagnostic(`with @types/node${types.value.peers.map((peer) => `, ${peer}`).join('')}`);
  });

  for (const pkg of skipped) {
    test(pkg.name, { skip: 'left out by FLOWFORGE_REGISTRY_SKIP' }, () => {});
  }
});
