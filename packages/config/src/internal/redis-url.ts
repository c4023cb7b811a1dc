/** A parsed REDIS_URL, without its credentials (those are kept apart so they can be redacted). */
export type RedisTopology =
  | {
      /** One server: `redis://` or `rediss://`. */
      readonly mode: 'standalone';
      /** True for the `rediss` scheme (TLS). */
      readonly tls: boolean;
      /** The server; the port defaults to 6379. */
      readonly node: RedisNode;
      /** The database number from the URL path. @default 0 */
      readonly db: number;
    }
  | {
      /** Sentinel-managed primary: `redis-sentinel://` or `rediss-sentinel://`. */
      readonly mode: 'sentinel';
      /** True for the `rediss-sentinel` scheme (TLS). */
      readonly tls: boolean;
      /** The Sentinels to ask for the primary; ports default to 26379. */
      readonly sentinels: readonly RedisNode[];
      /** The monitored master's name, the first path segment. */
      readonly masterName: string;
      /** The database number after the master name. @default 0 */
      readonly db: number;
    }
  | {
      /** Redis Cluster: `redis-cluster://` or `rediss-cluster://` (database 0 only). */
      readonly mode: 'cluster';
      /** True for the `rediss-cluster` scheme (TLS). */
      readonly tls: boolean;
      /** The seed nodes the cluster map is discovered from; ports default to 6379. */
      readonly nodes: readonly RedisNode[];
    };

/** One host and port taken from REDIS_URL. */
export interface RedisNode {
  /** Host name or IP address (IPv6 without brackets). */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
}

export interface ParsedRedisUrl {
  readonly url: string;
  readonly topology: RedisTopology;
  readonly username: string | null;
  readonly password: string;
}

const SCHEME = /^(rediss?)(?:-(sentinel|cluster))?:\/\/(.*)$/;

/**
 * Parses the three REDIS_URL forms. WHATWG URL cannot parse several hosts in one
 * authority (`h1:1,h2:2`), so the authority is split by hand. Error messages
 * never include the value.
 */
export function parseRedisUrl(value: string): ParsedRedisUrl | string {
  const match = SCHEME.exec(value);
  if (!match) return 'expected a redis://, rediss://, redis-sentinel:// or redis-cluster:// URL';
  const [, scheme, kind, rest = ''] = match;
  const tls = scheme === 'rediss';
  const slash = rest.indexOf('/');
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : (rest.slice(slash + 1).split('?')[0] ?? '');
  const at = authority.lastIndexOf('@');
  const userinfo = at === -1 ? '' : authority.slice(0, at);
  const hostList = at === -1 ? authority : authority.slice(at + 1);

  const colon = userinfo.indexOf(':');
  const rawUser = colon === -1 ? userinfo : userinfo.slice(0, colon);
  const rawPassword = colon === -1 ? '' : userinfo.slice(colon + 1);
  let username: string | null;
  let password: string;
  try {
    username = rawUser === '' ? null : decodeURIComponent(rawUser);
    password = decodeURIComponent(rawPassword);
  } catch {
    return 'has badly percent-encoded credentials';
  }

  const nodes: RedisNode[] = [];
  for (const part of hostList.split(',')) {
    const node = parseNode(part, kind === 'sentinel' ? 26379 : 6379);
    if (typeof node === 'string') return node;
    nodes.push(node);
  }
  const [first] = nodes;
  if (!first) return 'expected at least one host';

  if (kind === 'sentinel') {
    const [masterName = '', db = '0'] = path.split('/');
    if (!/^[A-Za-z0-9._-]+$/.test(masterName))
      return 'expected the master name as the path: /<master>';
    if (!/^\d{1,2}$/.test(db)) return 'expected a database number after the master name';
    return {
      topology: { mode: 'sentinel', tls, sentinels: nodes, masterName, db: Number(db) },
      username,
      password,
      url: value,
    };
  }
  if (kind === 'cluster') {
    if (path !== '') return 'a cluster URL takes no path (Redis Cluster has only database 0)';
    return { topology: { mode: 'cluster', tls, nodes }, username, password, url: value };
  }
  if (nodes.length > 1)
    return 'a standalone URL takes one host (use redis-sentinel:// or redis-cluster://)';
  const db = path === '' ? '0' : path;
  if (!/^\d{1,2}$/.test(db)) return 'expected a database number as the path';
  return {
    topology: { mode: 'standalone', tls, node: first, db: Number(db) },
    username,
    password,
    url: value,
  };
}

function parseNode(part: string, defaultPort: number): RedisNode | string {
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(part);
  const plain = /^([A-Za-z0-9.-]+)(?::(\d+))?$/.exec(part);
  const found = bracketed ?? plain;
  if (!found?.[1]) return 'has an invalid host';
  const port = found[2] === undefined ? defaultPort : Number(found[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return 'has an invalid port';
  return { host: found[1], port };
}
