/**
 * The real Keycloak of `scripts/services` (scripts/keycloak/keycloak.sh: Keycloak 26.7.3,
 * `start-dev` on 127.0.0.1:18080, management on 127.0.0.1:19000, the test realm
 * scripts/keycloak/realm-flowforge.json imported), for integration tests that need
 * tokens as Keycloak issues them: the token endpoint (password grant,
 * client_credentials, refresh, logout, introspection), an admin client for the REST
 * API (keys, key providers, throwaway realms), a readiness wait, and a loopback TCP
 * proxy to cut Keycloak off from one verifier without stopping it for everyone.
 *
 * Every value here is TEST-ONLY and documented in scripts/keycloak/NOTES.md.
 * Plain support code: no vitest imports.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** scripts/keycloak/keycloak.sh's defaults (KEYCLOAK_PORT, KEYCLOAK_MANAGEMENT_PORT, KEYCLOAK_REALM). */
export const KEYCLOAK_PORT = 18080;
/** What `KEYCLOAK_URL` is for the real Keycloak (`keycloak.sh env`). */
export const KEYCLOAK_URL: string = `http://127.0.0.1:${KEYCLOAK_PORT}`;
/** The management interface: `/health/ready`. */
export const KEYCLOAK_MANAGEMENT_URL = 'http://127.0.0.1:19000';
/** The imported test realm. */
export const KEYCLOAK_REALM = 'flowforge';
/** The realm file `keycloak.sh` imports; {@link createRealmCopy} imports it again under another name. */
const REALM_FILE = new URL('../../../../scripts/keycloak/realm-flowforge.json', import.meta.url);
const HINT = 'Run scripts/services start (or bash scripts/keycloak/keycloak.sh start)';

/** A confidential client of the realm. */
export interface RealmClient {
  readonly clientId: string;
  readonly clientSecret: string;
}

/** The API: audience mapper, direct access grants, a service account. Its id is KEYCLOAK_CLIENT_ID. */
export const API_CLIENT: RealmClient = {
  clientId: 'flowforge-api',
  clientSecret: 'flowforge-api-secret',
};
/** A client WITHOUT the flowforge-api audience mapper (its tokens have no `aud` at all). */
export const OTHER_CLIENT: RealmClient = {
  clientId: 'other-client',
  clientSecret: 'other-client-secret',
};

export const TENANT_A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
export const TENANT_B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

/** A user of the realm: fixed id (`sub`), password `<username>-password`. */
export interface RealmUser {
  readonly username: string;
  readonly password: string;
  readonly id: string;
  /** The `tenant_id` attribute, or null when the user has none (no claim at all). */
  readonly tenantId: string | null;
}

const user = (username: string, id: string, tenantId: string | null): RealmUser => ({
  username,
  password: `${username}-password`,
  id,
  tenantId,
});

/** The realm's users (scripts/keycloak/NOTES.md §6). */
export const USERS: {
  readonly alice: RealmUser;
  readonly bob: RealmUser;
  readonly carol: RealmUser;
  readonly nobody: RealmUser;
} = {
  /** tenant A; realm roles viewer, editor; client role widgets:write. */
  alice: user('alice', 'a11ce000-0000-4000-8000-000000000001', TENANT_A),
  /** tenant B; realm role viewer. */
  bob: user('bob', 'b0b00000-0000-4000-8000-000000000002', TENANT_B),
  /** tenant A; realm role admin; client role widgets:write. */
  carol: user('carol', 'ca201000-0000-4000-8000-000000000003', TENANT_A),
  /** no tenant_id attribute; realm role viewer. */
  nobody: user('nobody', '0b0d0000-0000-4000-8000-000000000004', null),
};

/** flowforge-api's service account (client_credentials): tenant A, realm role editor, client role widgets:write. */
export const SERVICE_ACCOUNT: { readonly id: string; readonly tenantId: string } = {
  id: '5e55ace0-0000-4000-8000-000000000005',
  tenantId: TENANT_A,
};

/** The URLs of a realm. */
export interface RealmEndpoints {
  /** `http://127.0.0.1:18080/realms/<realm>` whatever origin is asked: `--hostname` pins it. */
  readonly issuer: string;
  readonly jwksUrl: string;
  readonly tokenUrl: string;
  readonly introspectionUrl: string;
  readonly logoutUrl: string;
}

/** The URLs of a realm, as Keycloak names them. `base` is another origin only for a proxy. */
export function realmEndpoints(
  realm: string = KEYCLOAK_REALM,
  base: string = KEYCLOAK_URL,
): RealmEndpoints {
  const issuer = `${KEYCLOAK_URL}/realms/${realm}`; // pinned by --hostname, whatever origin is asked
  const oidc = `${base}/realms/${realm}/protocol/openid-connect`;
  return {
    issuer,
    jwksUrl: `${oidc}/certs`,
    tokenUrl: `${oidc}/token`,
    introspectionUrl: `${oidc}/token/introspect`,
    logoutUrl: `${oidc}/logout`,
  };
}

const describeError = (error: unknown): string => {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const detail = typeof cause?.code === 'string' ? cause.code : cause?.message;
  const message = error instanceof Error ? error.message : String(error);
  return typeof detail === 'string' ? `${message} (${detail})` : message;
};

/**
 * Waits until Keycloak is ready (management `/health/ready` says UP) and the realm's
 * discovery document names the expected issuer. Throws, naming the command to run,
 * when that does not happen within `timeoutMs`: an integration test that cannot
 * reach its service fails rather than skipping.
 */
export async function waitForKeycloak(
  options: { realm?: string; timeoutMs?: number } = {},
): Promise<void> {
  const realm = options.realm ?? KEYCLOAK_REALM;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const { issuer } = realmEndpoints(realm);
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (;;) {
    try {
      const health = await fetch(`${KEYCLOAK_MANAGEMENT_URL}/health/ready`, {
        signal: AbortSignal.timeout(2_000),
      });
      const status = (await health.json().catch(() => ({}))) as { status?: unknown };
      if (!health.ok || status.status !== 'UP') {
        last = `${KEYCLOAK_MANAGEMENT_URL}/health/ready answered ${health.status} ${JSON.stringify(status)}`;
      } else {
        const discovery = await fetch(`${issuer}/.well-known/openid-configuration`, {
          signal: AbortSignal.timeout(2_000),
        });
        const body = (await discovery.json().catch(() => ({}))) as { issuer?: unknown };
        if (discovery.ok && body.issuer === issuer) return;
        last = `the discovery document of realm ${realm} answered ${discovery.status}, issuer ${String(body.issuer)}`;
      }
    } catch (error) {
      last = describeError(error);
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `Keycloak is not answering at ${KEYCLOAK_URL} (realm ${realm}) after ${timeoutMs / 1000} s: ${last}. ${HINT}`,
      );
    }
    await sleep(500);
  }
}

/** A token endpoint answer (Keycloak's field names). */
export interface TokenSet {
  readonly access_token: string;
  readonly expires_in: number;
  readonly token_type: string;
  readonly refresh_token?: string;
  readonly refresh_expires_in?: number;
  readonly id_token?: string;
  readonly session_state?: string;
  readonly scope?: string;
}

/** A token endpoint (or logout/introspection) refusal, with Keycloak's status and body. */
export class KeycloakRequestError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(what: string, status: number, body: unknown) {
    super(`${what} answered ${status}: ${JSON.stringify(body)}`);
    this.name = 'KeycloakRequestError';
    this.status = status;
    this.body = body;
  }
}

/** Which realm and client a request is made as. Defaults: realm flowforge, client flowforge-api. */
export interface GrantOptions {
  readonly realm?: string;
  readonly client?: RealmClient;
}

async function postForm(
  what: string,
  url: string,
  client: RealmClient,
  form: Record<string, string>,
): Promise<Response> {
  try {
    return await fetch(url, {
      method: 'POST',
      body: new URLSearchParams({
        client_id: client.clientId,
        // a public client (admin-cli) sends no secret
        ...(client.clientSecret === '' ? {} : { client_secret: client.clientSecret }),
        ...form,
      }),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (error) {
    throw new Error(`${what} at ${url} failed: ${describeError(error)}. ${HINT}`, {
      cause: error,
    });
  }
}

async function tokenRequest(
  form: Record<string, string>,
  options: GrantOptions,
): Promise<TokenSet> {
  const client = options.client ?? API_CLIENT;
  const what = `the token endpoint (${form.grant_type}, ${client.clientId})`;
  const response = await postForm(what, realmEndpoints(options.realm).tokenUrl, client, form);
  const body = (await response.json().catch(() => null)) as Partial<TokenSet> | null;
  if (!response.ok || typeof body?.access_token !== 'string') {
    throw new KeycloakRequestError(what, response.status, body);
  }
  return body as TokenSet;
}

/** A user's tokens by the password grant (direct access grants). `scope: 'openid'` adds an ID token. */
export function passwordGrant(
  who: Pick<RealmUser, 'username' | 'password'>,
  options: GrantOptions & { readonly scope?: string } = {},
): Promise<TokenSet> {
  return tokenRequest(
    {
      grant_type: 'password',
      username: who.username,
      password: who.password,
      ...(options.scope ? { scope: options.scope } : {}),
    },
    options,
  );
}

/** The client's service-account token (client_credentials; no refresh token). */
export function clientCredentialsGrant(options: GrantOptions = {}): Promise<TokenSet> {
  return tokenRequest({ grant_type: 'client_credentials' }, options);
}

/** New tokens for a refresh token. */
export function refreshGrant(refreshToken: string, options: GrantOptions = {}): Promise<TokenSet> {
  return tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken }, options);
}

/** Ends the session a refresh token belongs to (the OIDC logout endpoint, back channel): 204. */
export async function logoutSession(
  refreshToken: string,
  options: GrantOptions = {},
): Promise<void> {
  const client = options.client ?? API_CLIENT;
  const what = 'the logout endpoint';
  const response = await postForm(what, realmEndpoints(options.realm).logoutUrl, client, {
    refresh_token: refreshToken,
  });
  if (response.status !== 204) {
    throw new KeycloakRequestError(what, response.status, await response.text());
  }
}

/** Keycloak's own view of a token (RFC 7662): `{ active: false }` once revoked or expired. */
export async function introspect(
  token: string,
  options: GrantOptions = {},
): Promise<Record<string, unknown> & { active: boolean }> {
  const client = options.client ?? API_CLIENT;
  const what = 'the introspection endpoint';
  const response = await postForm(what, realmEndpoints(options.realm).introspectionUrl, client, {
    token,
  });
  const body = (await response.json().catch(() => null)) as { active?: unknown } | null;
  if (!response.ok || typeof body?.active !== 'boolean') {
    throw new KeycloakRequestError(what, response.status, body);
  }
  return body as Record<string, unknown> & { active: boolean };
}

/** The realm's JWKS as served (`/protocol/openid-connect/certs`). */
export async function fetchJwks(
  realm: string = KEYCLOAK_REALM,
): Promise<{ keys: Record<string, unknown>[] }> {
  const response = await fetch(realmEndpoints(realm).jwksUrl);
  if (!response.ok)
    throw new KeycloakRequestError('the JWKS', response.status, await response.text());
  return (await response.json()) as { keys: Record<string, unknown>[] };
}

/** One key of `GET /admin/realms/{realm}/keys`. */
export interface RealmKey {
  readonly kid: string;
  readonly algorithm: string;
  readonly providerId: string;
  readonly providerPriority: number;
  readonly status: 'ACTIVE' | 'PASSIVE' | 'DISABLED';
  readonly use: 'SIG' | 'ENC';
}

/** A key provider component (`GET /admin/realms/{realm}/components?type=…KeyProvider`). */
export interface KeyProvider {
  readonly id: string;
  readonly name: string;
  readonly providerId: string;
  readonly providerType: string;
  readonly parentId: string;
  readonly config: Record<string, string[]>;
}

const KEY_PROVIDER = 'org.keycloak.keys.KeyProvider';

/**
 * The admin REST API as the master realm's bootstrap admin (admin / admin-password,
 * client admin-cli). The master realm's access tokens live 60 s: a new one is fetched
 * when the last has less than 15 s left.
 */
export class KeycloakAdmin {
  #token: string | undefined;
  #expiresAt = 0;

  async #accessToken(): Promise<string> {
    if (this.#token !== undefined && Date.now() < this.#expiresAt - 15_000) return this.#token;
    const tokens = await passwordGrant(
      { username: 'admin', password: 'admin-password' },
      { realm: 'master', client: { clientId: 'admin-cli', clientSecret: '' } },
    );
    this.#token = tokens.access_token;
    this.#expiresAt = Date.now() + tokens.expires_in * 1000;
    return this.#token;
  }

  /** `method` on `/admin/realms{path}`; throws unless the status is `expected`. */
  async request(method: string, path: string, expected: number, body?: unknown): Promise<Response> {
    const url = `${KEYCLOAK_URL}/admin/realms${path}`;
    const response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${await this.#accessToken()}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
    if (response.status !== expected) {
      throw new KeycloakRequestError(`${method} ${url}`, response.status, await response.text());
    }
    return response;
  }

  async #json<T>(path: string): Promise<T> {
    return (await (await this.request('GET', path, 200)).json()) as T;
  }

  /** The realm's keys with their status (`ACTIVE`, `PASSIVE`, `DISABLED`) and which kid signs (`active.RS256`). */
  keys(realm: string): Promise<{ active: Record<string, string>; keys: RealmKey[] }> {
    return this.#json(`/${realm}/keys`);
  }

  /** The realm's key providers (rsa-generated, rsa-enc-generated, hmac-generated, aes-generated, …). */
  keyProviders(realm: string): Promise<KeyProvider[]> {
    return this.#json(
      `/${realm}/components?parent=${encodeURIComponent(realm)}&type=${encodeURIComponent(KEY_PROVIDER)}`,
    );
  }

  /**
   * Adds an `rsa-generated` RS256 key provider (201; its id is in `Location`).
   * `active: false` adds it passive: published in the JWKS, not signing.
   */
  async addRsaKey(
    realm: string,
    options: { name: string; priority: number; active?: boolean },
  ): Promise<string> {
    const response = await this.request('POST', `/${realm}/components`, 201, {
      name: options.name,
      providerId: 'rsa-generated',
      providerType: KEY_PROVIDER,
      parentId: realm, // the realm id: the same as its name for the realms these tests use
      config: {
        priority: [String(options.priority)],
        enabled: ['true'],
        active: [String(options.active ?? true)],
        algorithm: ['RS256'],
        keySize: ['2048'],
      },
    });
    const id = response.headers.get('location')?.split('/').at(-1);
    if (!id) throw new Error('POST components answered 201 without a Location');
    return id;
  }

  /**
   * Changes a key provider's `active` (signs; published when enabled) and/or `enabled`
   * (published at all) flags, keeping its key material (204).
   */
  async setKeyProvider(
    realm: string,
    id: string,
    flags: { active?: boolean; enabled?: boolean },
  ): Promise<void> {
    const current = await this.#json<KeyProvider>(`/${realm}/components/${id}`);
    const config = { ...current.config };
    if (flags.active !== undefined) config.active = [String(flags.active)];
    if (flags.enabled !== undefined) config.enabled = [String(flags.enabled)];
    await this.request('PUT', `/${realm}/components/${id}`, 204, { ...current, config });
  }

  /** Removes a component (a key provider and its keys): 204. */
  async deleteComponent(realm: string, id: string): Promise<void> {
    await this.request('DELETE', `/${realm}/components/${id}`, 204);
  }

  /** Creates a realm from its representation (201). */
  async createRealm(representation: Record<string, unknown>): Promise<void> {
    await this.request('POST', '', 201, representation);
  }

  /** Deletes a realm (204; 404 when it is already gone is fine). */
  async deleteRealm(realm: string): Promise<void> {
    const response = await fetch(`${KEYCLOAK_URL}/admin/realms/${realm}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${await this.#accessToken()}` },
      signal: AbortSignal.timeout(30_000),
    });
    if (response.status !== 204 && response.status !== 404) {
      throw new KeycloakRequestError(
        `DELETE realm ${realm}`,
        response.status,
        await response.text(),
      );
    }
  }
}

/** A realm created for one test file; {@link RealmCopy.delete} removes it. */
export interface RealmCopy {
  /** The realm's name (and id). */
  readonly name: string;
  delete(): Promise<void>;
}

/**
 * Imports scripts/keycloak/realm-flowforge.json again as a new realm `<prefix>-<random>`
 * (clients, roles, mappers, user profile, and flowforge-api's service account with its
 * tenant_id; the human users are left out: their ids are global in Keycloak, and tests
 * that change a realm's keys only need client_credentials). Tests that rotate or delete
 * keys use one, so the shared realm other tests and engineers rely on never changes.
 * Takes 1–4 s here.
 */
export async function createRealmCopy(
  admin: KeycloakAdmin,
  prefix = 'ff-test',
): Promise<RealmCopy> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  const source = JSON.parse(await readFile(REALM_FILE, 'utf8')) as Record<string, unknown> & {
    users: { username: string; realmRoles?: string[]; id?: string }[];
  };
  const defaultRoles = `default-roles-${String(source.realm)}`;
  const users = source.users
    .filter((candidate) => candidate.username === `service-account-${API_CLIENT.clientId}`)
    .map(({ id: _id, ...rest }) => ({
      ...rest,
      realmRoles: (rest.realmRoles ?? []).map((role) =>
        role === defaultRoles ? `default-roles-${name}` : role,
      ),
    }));
  await admin.createRealm({ ...source, id: name, realm: name, users });
  return { name, delete: () => admin.deleteRealm(name) };
}

/** A loopback TCP proxy to Keycloak that can be cut (connections refused) and restored on the same port. */
export interface TcpProxy {
  /** `http://127.0.0.1:<port>`: a base URL for {@link realmEndpoints}. */
  readonly url: string;
  readonly port: number;
  /** Drops every proxied connection and closes the listener: new connections are refused. */
  stop(): Promise<void>;
  /** Listens again on the same port (no-op when running). */
  start(): Promise<void>;
}

/** Starts a proxy from a free loopback port to `127.0.0.1:targetPort` (Keycloak by default). */
export async function startTcpProxy(targetPort: number = KEYCLOAK_PORT): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const listen = async (): Promise<void> => {
    const next = net.createServer((downstream) => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      for (const [socket, other] of [
        [downstream, upstream],
        [upstream, downstream],
      ] as const) {
        sockets.add(socket);
        socket.on('error', () => other.destroy());
        socket.on('close', () => {
          sockets.delete(socket);
          other.destroy();
        });
        socket.pipe(other);
      }
    });
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => {
        next.off('error', reject);
        resolve();
      });
    });
    port = (next.address() as AddressInfo).port;
    server = next;
  };
  await listen();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async stop() {
      const current = server;
      server = undefined;
      if (!current) return;
      const closed = new Promise<void>((resolve) => current.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await closed;
    },
    async start() {
      if (!server) await listen();
    },
  };
}

/**
 * Polls `probe` every `intervalMs` until it returns something other than `undefined`,
 * and returns that; throws naming `what` after `timeoutMs`. For bounded waits on
 * eventually-true conditions (a refetch that has happened), never for timing assertions.
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    const result = await probe();
    if (result !== undefined) return result;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${options.timeoutMs ?? 20_000} ms waiting for ${what}`);
    }
    await sleep(options.intervalMs ?? 100);
  }
}
