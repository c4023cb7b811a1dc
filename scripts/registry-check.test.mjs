// The publish test: every packages/* package packed, published to a throwaway verdaccio
// and installed from it with npm (see registry-check.mjs), plus unit tests of its rules.
// `pnpm check:registry` runs this with a TAP report in reports/registry-check.tap.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import { join } from 'node:path';
import process from 'node:process';
import { after, before, describe, test } from 'node:test';
import {
  CONSUMERS,
  DEV_ONLY,
  ROOT,
  SMOKES,
  OLDEST_NODE,
  formatMegabytes,
  limiter,
  listPackages,
  lockPackument,
  lockedVersions,
  declarationImports,
  driftOf,
  manifestProblems,
  optionalPeerLeaks,
  optionalPeersOf,
  parseSkipList,
  REPOSITORY,
  startMirror,
  tarballProblems,
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

// ---------------------------------------------------------------------------
// The mirror: what the registry publishes today cannot change the verdict

const LOCKFILE = `lockfileVersion: '9.0'

importers:

  .:
    dependencies:
      ioredis:
        specifier: ^6.0.0
        version: 6.0.0

packages:

  '@ioredis/commands@1.4.0':
    resolution: {integrity: sha512-commands}

  ioredis@6.0.0:
    resolution: {integrity: sha512-six}
    engines: {node: '>=12.22.0'}

  ms@2.1.2:
    resolution: {integrity: sha512-ms212}

  ms@2.1.3:
    resolution: {integrity: sha512-ms213}

snapshots:

  ioredis@6.0.0:
    dependencies:
      ms: 2.1.3
`;

test('lockedVersions reads every name@version of the packages section, with its integrity', () => {
  const locked = lockedVersions(LOCKFILE);
  assert.deepEqual([...locked.keys()].sort(), ['@ioredis/commands', 'ioredis', 'ms']);
  assert.deepEqual(
    [...(locked.get('ms')?.entries() ?? [])],
    [
      ['2.1.2', 'sha512-ms212'],
      ['2.1.3', 'sha512-ms213'],
    ],
  );
  assert.equal(locked.get('@ioredis/commands')?.get('1.4.0'), 'sha512-commands');
});

test('lockedVersions reads the whole real lockfile', () => {
  const text = readFileSync(join(ROOT, 'pnpm-lock.yaml'), 'utf8');
  const section = text.slice(text.search(/^packages:/m), text.search(/^snapshots:/m));
  const entries = section.match(/^ {2}\S/gm)?.length ?? 0;
  const locked = lockedVersions(text);
  assert.equal(
    [...locked.values()].reduce((sum, versions) => sum + versions.size, 0),
    entries,
  );
});

/** A packument as the npm registry served ioredis after 6.1.0 was published. */
const published = () => ({
  name: 'ioredis',
  'dist-tags': { latest: '6.1.0', next: '6.0.0-beta.1' },
  versions: {
    '6.0.0-beta.1': { version: '6.0.0-beta.1', dist: { integrity: 'sha512-beta' } },
    '6.0.0': { version: '6.0.0', dist: { integrity: 'sha512-six' } },
    '6.1.0': { version: '6.1.0', dist: { integrity: 'sha512-new' } },
  },
  time: { created: 'c', modified: 'm', '6.0.0': 't0', '6.1.0': 't1', '6.0.0-beta.1': 'tb' },
});

test('lockPackument keeps only locked versions and points latest at the newest of them', () => {
  const { packument, mismatched } = lockPackument(published(), new Map([['6.0.0', 'sha512-six']]));
  assert.deepEqual(Object.keys(packument.versions), ['6.0.0']);
  assert.deepEqual(packument['dist-tags'], { latest: '6.0.0' });
  assert.deepEqual(packument.time, { created: 'c', modified: 'm', '6.0.0': 't0' });
  assert.deepEqual(mismatched, []);
});

test("lockPackument keeps the registry's latest when it is locked, and prefers a release to a prerelease", () => {
  const both = new Map([
    ['6.0.0-beta.1', 'sha512-beta'],
    ['6.0.0', 'sha512-six'],
    ['6.1.0', 'sha512-new'],
  ]);
  assert.equal(lockPackument(published(), both).packument['dist-tags'].latest, '6.1.0');
  const upstream = { ...published(), 'dist-tags': { latest: '7.0.0' } };
  const betaAndRelease = new Map([
    ['6.0.0-beta.1', 'sha512-beta'],
    ['6.0.0', 'sha512-six'],
  ]);
  assert.equal(lockPackument(upstream, betaAndRelease).packument['dist-tags'].latest, '6.0.0');
  const betaOnly = new Map([['6.0.0-beta.1', 'sha512-beta']]);
  assert.equal(lockPackument(upstream, betaOnly).packument['dist-tags'].latest, '6.0.0-beta.1');
});

test("lockPackument drops a locked version whose integrity is not the lockfile's", () => {
  const { packument, mismatched } = lockPackument(
    published(),
    new Map([['6.0.0', 'sha512-other']]),
  );
  assert.deepEqual(packument.versions, {});
  assert.deepEqual(mismatched, ['6.0.0']);
});

test("the mirror serves the lockfile's versions while the upstream has newer ones", async () => {
  /** @type {string[]} */
  const asked = [];
  const upstream = createServer((request, response) => {
    asked.push(request.url ?? '');
    if (request.url === '/ioredis') {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(published()));
    } else if (request.url === '/ioredis/-/ioredis-6.0.0.tgz') {
      response.writeHead(200, { 'content-type': 'application/octet-stream' });
      response.end('tarball bytes');
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise((listening) => upstream.listen(0, '127.0.0.1', () => listening(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (upstream.address());
  const locked = lockedVersions(LOCKFILE);
  const pinned = await startMirror({ locked, upstream: `http://127.0.0.1:${address.port}/` });
  const latest = await startMirror({ locked: null, upstream: `http://127.0.0.1:${address.port}/` });
  try {
    const packument = await (await fetch(new URL('ioredis', pinned.url))).json();
    assert.deepEqual(Object.keys(packument.versions), ['6.0.0']);
    assert.equal(packument['dist-tags'].latest, '6.0.0');

    const tarball = await fetch(new URL('ioredis/-/ioredis-6.0.0.tgz', pinned.url));
    assert.equal(await tarball.text(), 'tarball bytes');
    for (const path of [
      'ioredis/-/ioredis-6.1.0.tgz',
      'ioredis/6.1.0',
      'ioredis/latest',
      '%E0%A4%A',
    ]) {
      const response = await fetch(new URL(path, pinned.url));
      assert.equal(response.status, 404, `${path} must not pass the lockfile`);
    }
    const unpinned = await fetch(new URL('ioredis/-/ioredis-6.0.0.tgz', latest.url));
    assert.equal(await unpinned.text(), 'tarball bytes');

    const absent = await fetch(new URL('left-pad', pinned.url));
    assert.equal(absent.status, 404);
    assert.ok(pinned.refused.has('left-pad'));
    assert.ok(!asked.includes('/left-pad'), 'a package the lockfile lacks is not even asked for');

    const scoped = await fetch(new URL('@ioredis%2fcommands', pinned.url));
    assert.equal(scoped.status, 404, 'the fake upstream has no such packument');
    assert.ok(!pinned.refused.has('@ioredis/commands'), 'a scoped locked name is not refused');

    const newest = await (await fetch(new URL('ioredis', latest.url))).json();
    assert.equal(newest['dist-tags'].latest, '6.1.0', '--latest passes the registry through');
  } finally {
    await pinned.stop();
    await latest.stop();
    await new Promise((closed) => upstream.close(() => closed(undefined)));
  }
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

test("a consumer project's drift and optional peers, from npm's hidden lockfile", () => {
  const dir = mkdtempSync(join(tmpdir(), 'flowforge-drift-'));
  try {
    mkdirSync(join(dir, 'node_modules'));
    writeFileSync(
      join(dir, 'node_modules', '.package-lock.json'),
      JSON.stringify({
        packages: {
          'node_modules/@flowforge/redis': { version: '0.1.0' },
          'node_modules/ioredis': { version: '6.1.0' },
          'node_modules/ms': { version: '2.1.3' },
          'node_modules/pg': {
            version: '8.23.1',
            peerDependencies: { 'pg-native': '>=3.0.1' },
            peerDependenciesMeta: { 'pg-native': { optional: true } },
          },
        },
      }),
    );
    const locked = lockedVersions(LOCKFILE);
    assert.deepEqual(driftOf(dir, locked), [
      { name: 'ioredis', version: '6.1.0', locked: ['6.0.0'] },
      { name: 'pg', version: '8.23.1', locked: [] },
    ]);
    assert.deepEqual([...optionalPeersOf(dir)], ['pg-native']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
