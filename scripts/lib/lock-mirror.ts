// Third-party packages at the versions of pnpm-lock.yaml: the lockfile read as name → version →
// integrity, an npm registry mirror on loopback that serves only those versions (so what the
// npm registry published today cannot change a check's verdict), and the audit of what a
// consumer project installed against the lockfile. The registry check (scripts/registry-check.ts)
// points npm at this mirror for everything outside @flowforge/*.
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import { URL } from 'node:url';
import { SCOPE, isRecord, messageOf } from './workspace.ts';

/** pnpm-lock.yaml's packages: name → version → integrity. */
export type LockedVersions = Map<string, Map<string, string>>;

/** A registry mirror on 127.0.0.1. */
export interface Mirror {
  /** The registry URL, with a trailing slash. */
  url: string;
  /** What npm asked for that pnpm-lock.yaml does not hold. */
  refused: Set<string>;
  stop: () => Promise<void>;
}

/**
 * The fields of an npm packument (full or abbreviated form) that the mirror cuts; every
 * other field passes through as it is.
 */
export interface Packument {
  versions?: unknown;
  'dist-tags'?: unknown;
  time?: unknown;
  [field: string]: unknown;
}

/** A packument cut to the locked versions. */
export interface LockedPackument extends Packument {
  versions: Record<string, unknown>;
  'dist-tags': Record<string, string>;
}

/** A third-party version installed in a consumer project that pnpm-lock.yaml does not hold. */
export interface Drift {
  name: string;
  version: string;
  /** The versions of `name` the lockfile holds. */
  locked: string[];
}

/** The npm registry the mirror reads from (and where `--latest` resolves). */
export const UPSTREAM = 'https://registry.npmjs.org/';

/**
 * Every `name@version` of pnpm-lock.yaml's `packages:` section, with its integrity.
 * @param text - the lockfile (lockfileVersion 9)
 */
export function lockedVersions(text: string): LockedVersions {
  const start = text.search(/^packages:\s*$/m);
  if (start === -1) throw new Error('pnpm-lock.yaml has no packages: section');
  const end = text.slice(start).search(/^snapshots:\s*$/m);
  const section = end === -1 ? text.slice(start) : text.slice(start, start + end);
  const locked: LockedVersions = new Map();
  const entry =
    /^ {2}'?((?:@[^@/\s']+\/)?[^@/\s']+)@(\d[^(':\s]*)'?:\s*\n {4}resolution: \{integrity: ([^,}\s]+)/gm;
  for (const [, name = '', version = '', integrity = ''] of section.matchAll(entry)) {
    if (!locked.has(name)) locked.set(name, new Map());
    locked.get(name)?.set(version, integrity);
  }
  if (locked.size === 0) throw new Error('pnpm-lock.yaml: no package entries found');
  return locked;
}

/** Semver order for plain x.y.z[-pre] versions. */
function compareVersions(a: string, b: string): number {
  const parse = (v: string): { parts: number[]; pre: string | undefined } => {
    const [core = '', pre] = v.split('+')[0]?.split(/-(.*)/s) ?? [];
    return { parts: core.split('.').map(Number), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i += 1) {
    const d = (x.parts[i] ?? 0) - (y.parts[i] ?? 0);
    if (d !== 0) return d;
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  return x.pre < y.pre ? -1 : 1;
}

/** The `dist.integrity` of a version's manifest in a packument, if it has one. */
function integrityOf(manifest: unknown): unknown {
  return isRecord(manifest) && isRecord(manifest['dist'])
    ? manifest['dist']['integrity']
    : undefined;
}

/**
 * A packument cut down to the locked versions: other versions, their times and the dist-tags
 * pointing elsewhere go; `latest` becomes the newest locked version. A locked version whose
 * integrity differs from the lockfile's is dropped too (the registry no longer serves what the
 * lockfile pinned).
 * @param versions - version → integrity, from the lockfile
 */
export function lockPackument(
  packument: Packument,
  versions: ReadonlyMap<string, string>,
): { packument: LockedPackument; mismatched: string[] } {
  const all = isRecord(packument.versions) ? packument.versions : {};
  const kept: Record<string, unknown> = {};
  const mismatched: string[] = [];
  for (const [version, integrity] of versions) {
    const manifest = all[version];
    if (!manifest) continue;
    const served = integrityOf(manifest);
    if (served !== undefined && served !== integrity) {
      mismatched.push(version);
      continue;
    }
    kept[version] = manifest;
  }
  const tags: Record<string, string> = {};
  const distTags = isRecord(packument['dist-tags']) ? packument['dist-tags'] : {};
  for (const [tag, version] of Object.entries(distTags)) {
    if (typeof version === 'string' && version in kept) tags[tag] = version;
  }
  // npm prefers `latest` for a bare name or `*`: keep the registry's when it is locked, else
  // the newest locked release (a prerelease only when nothing else is locked).
  if (tags['latest'] === undefined) {
    const sorted = Object.keys(kept).sort(compareVersions);
    const newest = sorted.filter((version) => !version.includes('-')).at(-1) ?? sorted.at(-1);
    if (newest !== undefined) tags['latest'] = newest;
  }
  const result: LockedPackument = { ...packument, versions: kept, 'dist-tags': tags };
  if (isRecord(packument.time)) {
    result.time = Object.fromEntries(
      Object.entries(packument.time).filter(([key]) => key in kept || !/^\d/.test(key)),
    );
  }
  return { packument: result, mismatched };
}

/** The package name of a packument request path, or null for any other path. */
function packumentName(pathname: string): string | null {
  const path = decoded(pathname).replace(/^\/+/, '');
  return /^(?:@[^/@]+\/)?[^/@]+$/.test(path) ? path : null;
}

/** The path decoded; '' when it cannot be. */
function decoded(pathname: string): string {
  try {
    return decodeURIComponent(pathname);
  } catch {
    return '';
  }
}

/**
 * The package and version of a tarball request (`/name/-/name-1.2.3.tgz`,
 * `/@scope/name/-/name-1.2.3.tgz`), or null for any other path.
 */
function tarballOf(pathname: string): { name: string; version: string } | null {
  const match = /^\/((?:@[^/@]+\/)?[^/@]+)\/-\/([^/]+)\.tgz$/.exec(decoded(pathname));
  if (!match) return null;
  const [, name = '', file = ''] = match;
  const base = name.split('/').at(-1) ?? name;
  return file.startsWith(`${base}-`) ? { name, version: file.slice(base.length + 1) } : null;
}

/**
 * An npm registry on 127.0.0.1 that reads through to `upstream`. With `locked`, packuments are
 * cut to the lockfile's versions and a package the lockfile lacks answers 404 (and is listed in
 * `refused`, so the check can name it); without it (`--latest`) everything passes through.
 * Tarballs always pass through: a version that is not in a served packument is never asked for.
 * @param options.timeoutMs - the limit on each request to the upstream
 */
export async function startMirror({
  locked,
  upstream = UPSTREAM,
  timeoutMs = 180_000,
}: {
  locked: LockedVersions | null;
  upstream?: string;
  timeoutMs?: number;
}): Promise<Mirror> {
  const refused = new Set<string>();
  const server = createServer((request, response) => {
    const fail = (status: number, error: string): void => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error }));
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') return fail(405, 'read-only');
    const url = new URL(request.url ?? '/', 'http://mirror');
    const name = packumentName(url.pathname);
    const versions = name === null || locked === null ? undefined : locked.get(name);
    if (name !== null && locked !== null && versions === undefined) {
      refused.add(name);
      return fail(404, `${name} is not in pnpm-lock.yaml`);
    }
    if (name === null && locked !== null) {
      // Pinned means pinned for every path: a tarball of a locked version, nothing else.
      const tarball = tarballOf(url.pathname);
      if (!tarball || !locked.get(tarball.name)?.has(tarball.version)) {
        refused.add(tarball ? `${tarball.name}@${tarball.version}` : url.pathname);
        return fail(404, `${url.pathname} is not a tarball of a version in pnpm-lock.yaml`);
      }
    }
    const headers: Record<string, string> = {};
    if (typeof request.headers.accept === 'string') headers['accept'] = request.headers.accept;
    fetch(new URL(url.pathname.replace(/^\/+/, ''), upstream), {
      headers,
      signal: AbortSignal.timeout(timeoutMs),
    })
      .then(async (upstreamResponse) => {
        if (!upstreamResponse.ok || versions === undefined) {
          response.writeHead(upstreamResponse.status, {
            'content-type':
              upstreamResponse.headers.get('content-type') ?? 'application/octet-stream',
          });
          if (upstreamResponse.body === null || request.method === 'HEAD') return response.end();
          // fetch's body is the web stream that node:stream/web describes.
          const body = upstreamResponse.body as ReadableStream<Uint8Array>;
          return Readable.fromWeb(body).pipe(response);
        }
        const packument: unknown = await upstreamResponse.json();
        if (!isRecord(packument)) throw new Error(`the packument of ${name} is not an object`);
        const cut = lockPackument(packument, versions);
        for (const version of cut.mismatched) refused.add(`${name}@${version} (integrity differs)`);
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(cut.packument));
      })
      .catch((error: unknown) => {
        if (!response.headersSent) fail(502, `upstream: ${messageOf(error)}`);
        else response.destroy(error instanceof Error ? error : new Error(String(error)));
      });
  });
  await new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolveListen(undefined));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/`,
    refused,
    stop: () =>
      new Promise((resolveClose) => {
        server.closeAllConnections();
        server.close(() => resolveClose(undefined));
      }),
  };
}

/** The entries of npm's hidden lockfile (`node_modules/.package-lock.json`) under `dir`, by path. */
function installedEntries(dir: string): [path: string, entry: Record<string, unknown>][] {
  const lockfile = join(dir, 'node_modules', '.package-lock.json');
  if (!existsSync(lockfile)) return [];
  const tree: unknown = JSON.parse(readFileSync(lockfile, 'utf8'));
  const packages = isRecord(tree) && isRecord(tree['packages']) ? tree['packages'] : {};
  return Object.entries(packages).flatMap(([path, entry]) =>
    isRecord(entry) ? [[path, entry] as [string, Record<string, unknown>]] : [],
  );
}

/**
 * Third-party packages installed under `dir` (npm's hidden lockfile) whose version is not
 * one that pnpm-lock.yaml holds: the drift a consumer installing today would get.
 * @param dir - a consumer project
 */
export function driftOf(dir: string, locked: LockedVersions): Drift[] {
  const drift = new Map<string, Drift>();
  for (const [path, entry] of installedEntries(dir)) {
    const name = path.split('node_modules/').at(-1);
    if (!name || name.startsWith(SCOPE) || entry['link']) continue;
    const version = String(entry['version']);
    const versions = locked.get(name);
    if (versions?.has(version)) continue;
    drift.set(`${name}@${version}`, { name, version, locked: [...(versions?.keys() ?? [])] });
  }
  return [...drift.values()];
}

/**
 * Optional peers named by the packages installed under `dir` (npm asks the registry about
 * them, to check a range, without installing them: pg's `pg-native`).
 * @param dir - a consumer project
 */
export function optionalPeersOf(dir: string): Set<string> {
  const names = new Set<string>();
  for (const [, entry] of installedEntries(dir)) {
    const meta = isRecord(entry['peerDependenciesMeta']) ? entry['peerDependenciesMeta'] : {};
    for (const [name, peer] of Object.entries(meta)) {
      if (isRecord(peer) && peer['optional']) names.add(name);
    }
  }
  return names;
}
