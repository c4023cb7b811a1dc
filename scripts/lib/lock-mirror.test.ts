// The lockfile mirror (lib/lock-mirror.ts): what the npm registry publishes today cannot change
// the registry check's verdict. Run with the registry check (`pnpm check:registry`).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  driftOf,
  lockPackument,
  lockedVersions,
  optionalPeersOf,
  startMirror,
  type LockedPackument,
} from './lock-mirror.ts';
import { ROOT } from './workspace.ts';

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
  const asked: string[] = [];
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
  const address = upstream.address() as AddressInfo;
  const locked = lockedVersions(LOCKFILE);
  const pinned = await startMirror({ locked, upstream: `http://127.0.0.1:${address.port}/` });
  const latest = await startMirror({ locked: null, upstream: `http://127.0.0.1:${address.port}/` });
  try {
    const packument = (await (
      await fetch(new URL('ioredis', pinned.url))
    ).json()) as LockedPackument;
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

    const newest = (await (await fetch(new URL('ioredis', latest.url))).json()) as LockedPackument;
    assert.equal(newest['dist-tags'].latest, '6.1.0', '--latest passes the registry through');
  } finally {
    await pinned.stop();
    await latest.stop();
    await new Promise((closed) => upstream.close(() => closed(undefined)));
  }
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
