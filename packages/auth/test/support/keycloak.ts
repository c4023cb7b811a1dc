/**
 * A real OpenID provider on loopback, shaped like Keycloak, for the tests of
 * `@flowforge/auth`.
 *
 * `oidc-provider` (a certified OP) serves the realm: discovery at
 * `${issuer}/.well-known/openid-configuration`, the JWKS at
 * `${issuer}/protocol/openid-connect/certs` and the token endpoint at
 * `${issuer}/protocol/openid-connect/token`, with issuer
 * `http://127.0.0.1:<port>/realms/<realm>` — the paths a Keycloak realm has.
 * Access tokens are issued by a real `client_credentials` grant and then shaped
 * like Keycloak's: header `typ: "JWT"`, claims `typ: "Bearer"`, `azp`,
 * `realm_access.roles`, `resource_access[clientId].roles`, `tenant_id`.
 *
 * One `node:http` server owns the port for the fixture's whole life; key changes
 * (`rotate`, `removeKey`) re-create the `Provider` behind it, because
 * oidc-provider only takes its keys at construction. The keys the provider signs
 * with and publishes are the very keys `sign()` uses.
 *
 * Plain support code: no vitest imports.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  SignJWT,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  type CryptoKey,
  type JWK,
} from 'jose';
import Provider, {
  errors,
  type Adapter,
  type AdapterPayload,
  type Configuration,
  type KoaContextWithOIDC,
  type ResourceServer,
} from 'oidc-provider';

/** The signing algorithms the fixture's keys use (Keycloak's default RS256, and ES256). */
export type KeycloakAlg = 'RS256' | 'ES256';

/** Options for {@link KeycloakFixture.issueToken}. */
export interface IssueTokenOptions {
  /** Signing algorithm; the newest key of that algorithm signs. Default `'RS256'`. */
  alg?: KeycloakAlg;
  /** The `tenant_id` claim. Default: a fresh UUID; `null` leaves the claim out. */
  tenantId?: string | null;
  /** The `sub` claim. Default: a fresh UUID. */
  sub?: string;
  /** `realm_access.roles`. Default `[]`. */
  realmRoles?: string[];
  /** `resource_access[clientId].roles`. Default `[]`. */
  clientRoles?: string[];
  /** The `aud` claim (a single string). Default: the fixture's `clientId`. */
  audience?: string;
  /**
   * Lifetime in seconds, a positive integer (the provider rejects anything else).
   * Default 300 (Keycloak's default). For expired tokens use {@link KeycloakFixture.sign}.
   */
  expiresIn?: number;
}

/** Options for {@link KeycloakFixture.sign}. */
export interface SignOptions {
  /** Which algorithm's newest key signs, when `kid` is not given. Default `'RS256'`. */
  alg?: KeycloakAlg;
  /** Sign with this key (its algorithm wins over `alg`). */
  kid?: string;
  /**
   * Merged over the default header `{ alg, kid, typ: 'JWT' }`. A member set to
   * `undefined` is removed (e.g. `{ kid: undefined }` for a token without a kid).
   * `alg` must stay one the key can sign with — build alg-confusion tokens by hand
   * from {@link KeycloakFixture.publicJwk}.
   */
  header?: Record<string, unknown>;
}

/** A Keycloak-shaped OpenID provider on loopback; see {@link startKeycloak}. */
export interface KeycloakFixture {
  /** `http://127.0.0.1:<port>` — what `KEYCLOAK_URL` would be. */
  readonly url: string;
  /** The realm name, e.g. `'flowforge'`. */
  readonly realm: string;
  /** `${url}/realms/${realm}`. */
  readonly issuer: string;
  /** `${issuer}/protocol/openid-connect/certs`. */
  readonly jwksUrl: string;
  /** `${issuer}/protocol/openid-connect/token` (client_credentials with `clientId` / `clientSecret`). */
  readonly tokenUrl: string;
  /** The confidential client the fixture issues tokens to, e.g. `'flowforge-api'`. */
  readonly clientId: string;
  /** That client's secret (HTTP Basic or `client_secret_post` at {@link tokenUrl}). */
  readonly clientSecret: string;
  /** Requests served to the JWKS endpoint so far (tests assert refetch behaviour). */
  readonly jwksRequests: () => number;
  /** The kids the JWKS currently publishes, oldest first. */
  readonly kids: () => string[];
  /**
   * An access token obtained by `client_credentials` from the real provider, signed
   * RS256 or ES256 with the newest key of that algorithm, Keycloak-shaped: header
   * `{ alg, kid, typ: 'JWT' }`; claims `iss`, `aud`, `sub`, `exp`, `iat`, `jti`,
   * `typ: 'Bearer'`, `azp`, `client_id`, `scope`, `tenant_id`, `realm_access`,
   * `resource_access`.
   */
  issueToken(options?: IssueTokenOptions): Promise<string>;
  /** Adds a new signing key (newest of its algorithm, so it signs from now on); it appears in the JWKS. Returns its kid. */
  rotate(alg?: KeycloakAlg): Promise<string>;
  /** Removes a key: it leaves the JWKS and can no longer sign. Throws for an unknown kid. */
  removeKey(kid: string): Promise<void>;
  /**
   * Signs an arbitrary payload with one of the fixture's private keys (the ones the
   * JWKS publishes) — for attack tests and for tokens shaped exactly like Keycloak's.
   * Default header `{ alg, kid, typ: 'JWT' }`. Unless the payload has the member
   * (even as `undefined`, which then leaves it out), `iss` = issuer, `iat` = now and
   * `exp` = now + 300 s are added.
   */
  sign(payload: Record<string, unknown>, options?: SignOptions): Promise<string>;
  /** The public JWK (`kty`, key material, `kid`, `alg`, `use`) of a key; default the newest RS256 key. */
  publicJwk(kid?: string): JWK;
  /** Takes the server down: the port refuses connections (open ones are cut). */
  stop(): Promise<void>;
  /** Brings the server back on the same port (no-op when running). */
  start(): Promise<void>;
  /** Stops for good. */
  close(): Promise<void>;
}

/** Options for {@link startKeycloak}. */
export interface StartKeycloakOptions {
  /** Realm name. Default `'flowforge'`. */
  realm?: string;
  /** The confidential client's id (and default audience). Default `'flowforge-api'`. */
  clientId?: string;
}

interface FixtureKey {
  readonly kid: string;
  readonly alg: KeycloakAlg;
  readonly privateKey: CryptoKey;
  readonly privateJwk: JWK;
  readonly publicJwk: JWK;
}

/** What one `issueToken` call asked for, looked up by the provider's hooks. */
interface TokenSpec {
  alg: KeycloakAlg;
  kid: string;
  sub: string;
  tenantId: string | null;
  realmRoles: string[];
  clientRoles: string[];
  audience: string;
  expiresIn: number;
}

const TICKET_HEADER = 'x-flowforge-fixture-ticket';
/** The RFC 8707 resource indicator every token is for (must be an absolute URI; `aud` is separate). */
const RESOURCE = 'urn:flowforge:fixture:api';
const SCOPE = 'profile email';
const DEFAULT_TTL = 300;
const OIDC = '/protocol/openid-connect';

async function createKey(alg: KeycloakAlg): Promise<FixtureKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicMaterial = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicMaterial);
  const meta = { kid, alg, use: 'sig' };
  return {
    kid,
    alg,
    privateKey,
    privateJwk: { ...(await exportJWK(privateKey)), ...meta },
    publicJwk: { ...publicMaterial, ...meta },
  };
}

/**
 * A plain in-memory storage adapter, shared by every `Provider` the fixture builds
 * (oidc-provider's own one warns on each construction). JWT access tokens by
 * client_credentials are not stored; this only keeps oidc-provider content.
 */
function memoryAdapter(): (name: string) => Adapter {
  const store = new Map<string, AdapterPayload>();
  return (name) => {
    const at = (id: string): string => `${name}:${id}`;
    const findWhere = (match: (payload: AdapterPayload) => boolean) => {
      for (const [key, payload] of store) {
        if (key.startsWith(`${name}:`) && match(payload)) return Promise.resolve(payload);
      }
      return Promise.resolve(undefined);
    };
    return {
      upsert: (id, payload) => {
        store.set(at(id), payload);
        return Promise.resolve();
      },
      find: (id) => Promise.resolve(store.get(at(id))),
      findByUserCode: (userCode) => findWhere((payload) => payload.userCode === userCode),
      findByUid: (uid) => findWhere((payload) => payload.uid === uid),
      consume: (id) => {
        const payload = store.get(at(id));
        if (payload) payload.consumed = Math.floor(Date.now() / 1000);
        return Promise.resolve();
      },
      destroy: (id) => {
        store.delete(at(id));
        return Promise.resolve();
      },
      revokeByGrantId: (grantId) => {
        for (const [key, payload] of store) if (payload.grantId === grantId) store.delete(key);
        return Promise.resolve();
      },
    };
  };
}

/**
 * Starts a Keycloak-shaped OpenID provider on `127.0.0.1` (a free port) with one
 * RS256 and one ES256 signing key and one confidential client allowed the
 * `client_credentials` grant. `close()` it when done.
 */
export async function startKeycloak(options: StartKeycloakOptions = {}): Promise<KeycloakFixture> {
  const realm = options.realm ?? 'flowforge';
  const clientId = options.clientId ?? 'flowforge-api';
  const clientSecret = randomBytes(24).toString('base64url');
  const realmPath = `/realms/${realm}`;
  const jwksPath = `${realmPath}${OIDC}/certs`;

  const keys: FixtureKey[] = await Promise.all([createKey('RS256'), createKey('ES256')]);
  const tickets = new Map<string, TokenSpec>();
  let lastServerError: unknown;
  let jwksCount = 0;

  const newest = (alg: KeycloakAlg): FixtureKey => {
    const key = keys.findLast((candidate) => candidate.alg === alg);
    if (!key) throw new Error(`the Keycloak fixture has no ${alg} key left`);
    return key;
  };
  const byKid = (kid: string): FixtureKey => {
    const key = keys.find((candidate) => candidate.kid === kid);
    if (!key) throw new Error(`the Keycloak fixture has no key with kid ${kid}`);
    return key;
  };

  /** The spec of the `issueToken` call behind a token request, or defaults for a plain client. */
  const specFor = (ctx: KoaContextWithOIDC): TokenSpec => {
    const spec = tickets.get(ctx.get(TICKET_HEADER));
    if (spec) return spec;
    // A plain client (no issueToken ticket): the newest RS256 key, else the newest key.
    const key = keys.findLast((candidate) => candidate.alg === 'RS256') ?? keys.at(-1);
    if (!key) throw new Error('the Keycloak fixture has no signing key left');
    return {
      alg: key.alg,
      kid: key.kid,
      sub: randomUUID(),
      tenantId: randomUUID(),
      realmRoles: [],
      clientRoles: [],
      audience: clientId,
      expiresIn: DEFAULT_TTL,
    };
  };
  /** Per-request memo so every hook of one token request sees the same defaults. */
  const specs = new WeakMap<KoaContextWithOIDC, TokenSpec>();
  const spec = (ctx: KoaContextWithOIDC): TokenSpec => {
    let found = specs.get(ctx);
    if (!found) {
      found = specFor(ctx);
      specs.set(ctx, found);
    }
    return found;
  };

  const adapter = memoryAdapter();
  const cookieKeys = [randomBytes(32).toString('base64url')];
  let issuer = '';
  const createProvider = (signingKeys: readonly FixtureKey[]): Provider => {
    const configuration: Configuration = {
      clients: [
        {
          client_id: clientId,
          client_secret: clientSecret,
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          scope: SCOPE,
          token_endpoint_auth_method: 'client_secret_basic',
          // The client is validated against the keystore; keep its (unused) ID token alg signable.
          id_token_signed_response_alg: signingKeys[0]?.alg ?? 'RS256',
        },
      ],
      clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
      jwks: { keys: signingKeys.map((key) => key.privateJwk) },
      scopes: ['openid', 'profile', 'email'],
      adapter,
      cookies: { keys: cookieKeys },
      ttl: { ClientCredentials: (ctx) => spec(ctx).expiresIn },
      routes: {
        authorization: `${OIDC}/auth`,
        token: `${OIDC}/token`,
        userinfo: `${OIDC}/userinfo`,
        jwks: `${OIDC}/certs`,
        end_session: `${OIDC}/logout`,
        revocation: `${OIDC}/revoke`,
        introspection: `${OIDC}/token/introspect`,
      },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        introspection: { enabled: true },
        revocation: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => RESOURCE,
          useGrantedResource: () => true,
          getResourceServerInfo: (ctx, resourceIndicator): ResourceServer => {
            if (resourceIndicator !== RESOURCE) {
              throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
            }
            const wanted = spec(ctx);
            return {
              scope: SCOPE,
              audience: wanted.audience,
              accessTokenTTL: wanted.expiresIn,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: wanted.alg, kid: wanted.kid } },
            };
          },
        },
      },
      extraTokenClaims: (ctx) => {
        const wanted = spec(ctx);
        return {
          typ: 'Bearer',
          azp: clientId,
          ...(wanted.tenantId === null ? {} : { tenant_id: wanted.tenantId }),
          realm_access: { roles: wanted.realmRoles },
          resource_access: { [clientId]: { roles: wanted.clientRoles } },
        };
      },
      formats: {
        customizers: {
          jwt: (ctx, _token, parts) => {
            // Keycloak: header typ "JWT" (oidc-provider says "at+jwt"), our subject.
            parts.header = { ...parts.header, typ: 'JWT' };
            parts.payload.sub = spec(ctx).sub;
          },
        },
      },
    };
    const provider = new Provider(issuer, configuration);
    provider.on('server_error', (_ctx, error) => {
      lastServerError = error;
    });
    return provider;
  };

  let handle: ReturnType<Provider['callback']> = () => Promise.resolve();
  /** Builds a provider for `next` first, so a failure leaves the running one and the keys as they were. */
  const useKeys = (next: readonly FixtureKey[]): void => {
    const callback = createProvider(next).callback();
    keys.splice(0, keys.length, ...next);
    handle = callback;
  };

  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '/').split('?', 1)[0] ?? '/';
    if (path === jwksPath) jwksCount += 1;
    // No keep-alive: once stop() has run, the very next request is refused instead of
    // failing on a pooled socket the server has just cut.
    response.setHeader('connection', 'close');
    if (path !== realmPath && !path.startsWith(`${realmPath}/`)) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: 'Realm does not exist' }));
      return;
    }
    // Mount the provider at the realm path the way express does: oidc-provider
    // derives its mount path from `req.originalUrl` minus `req.url`.
    const original = request.url ?? '/';
    const rest = original.slice(realmPath.length);
    (request as IncomingMessage & { originalUrl: string }).originalUrl = original;
    request.url = rest.startsWith('/') ? rest : `/${rest}`;
    void handle(request, response);
  });

  let port = 0;
  let running = false;
  let closed = false;
  const listen = async (): Promise<void> => {
    server.listen({ port, host: '127.0.0.1' });
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
    running = true;
  };

  await listen();
  const url = `http://127.0.0.1:${port}`;
  issuer = `${url}${realmPath}`;
  useKeys(keys);

  const stop = async (): Promise<void> => {
    if (!running) return;
    running = false;
    const closing = once(server, 'close');
    server.close();
    server.closeAllConnections();
    await closing;
  };

  const fixture: KeycloakFixture = {
    url,
    realm,
    issuer,
    jwksUrl: `${issuer}${OIDC}/certs`,
    tokenUrl: `${issuer}${OIDC}/token`,
    clientId,
    clientSecret,
    jwksRequests: () => jwksCount,
    kids: () => keys.map((key) => key.kid),

    async issueToken(tokenOptions = {}) {
      const alg = tokenOptions.alg ?? 'RS256';
      const expiresIn = tokenOptions.expiresIn ?? DEFAULT_TTL;
      if (!Number.isSafeInteger(expiresIn) || expiresIn <= 0) {
        throw new RangeError(
          `issueToken: expiresIn must be a positive integer (got ${expiresIn}); sign() makes expired tokens`,
        );
      }
      const ticket = randomUUID();
      tickets.set(ticket, {
        alg,
        kid: newest(alg).kid,
        sub: tokenOptions.sub ?? randomUUID(),
        tenantId: tokenOptions.tenantId === undefined ? randomUUID() : tokenOptions.tenantId,
        realmRoles: [...(tokenOptions.realmRoles ?? [])],
        clientRoles: [...(tokenOptions.clientRoles ?? [])],
        audience: tokenOptions.audience ?? clientId,
        expiresIn,
      });
      try {
        lastServerError = undefined;
        const response = await fetch(fixture.tokenUrl, {
          method: 'POST',
          headers: {
            authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
            [TICKET_HEADER]: ticket,
          },
          body: new URLSearchParams({
            grant_type: 'client_credentials',
            scope: SCOPE,
            resource: RESOURCE,
          }),
        });
        const body = (await response.json()) as { access_token?: string };
        if (!response.ok || typeof body.access_token !== 'string') {
          throw new Error(`token request failed: ${response.status} ${JSON.stringify(body)}`, {
            cause: lastServerError,
          });
        }
        return body.access_token;
      } finally {
        tickets.delete(ticket);
      }
    },

    async rotate(alg = 'RS256') {
      const key = await createKey(alg);
      useKeys([...keys, key]);
      return key.kid;
    },

    removeKey(kid) {
      return Promise.resolve().then(() => {
        byKid(kid); // throws for an unknown kid
        useKeys(keys.filter((key) => key.kid !== kid));
      });
    },

    async sign(payload, signOptions = {}) {
      const key =
        signOptions.kid === undefined ? newest(signOptions.alg ?? 'RS256') : byKid(signOptions.kid);
      const now = Math.floor(Date.now() / 1000);
      const claims: Record<string, unknown> = {
        ...('iss' in payload ? {} : { iss: issuer }),
        ...('iat' in payload ? {} : { iat: now }),
        ...('exp' in payload ? {} : { exp: now + DEFAULT_TTL }),
        ...payload,
      };
      const header = Object.fromEntries(
        Object.entries({ alg: key.alg, kid: key.kid, typ: 'JWT', ...signOptions.header }).filter(
          ([, value]) => value !== undefined,
        ),
      ) as { alg: string };
      // A crit header is signed as given (jose refuses unknown crit unless told it is understood).
      const critical = (header as { crit?: unknown }).crit;
      const crit = Array.isArray(critical)
        ? Object.fromEntries(critical.map((name) => [String(name), true]))
        : undefined;
      return new SignJWT(claims)
        .setProtectedHeader(header)
        .sign(key.privateKey, crit ? { crit } : undefined);
    },

    publicJwk(kid) {
      const key = kid === undefined ? newest('RS256') : byKid(kid);
      return structuredClone(key.publicJwk);
    },

    stop,

    async start() {
      if (closed) throw new Error('the Keycloak fixture is closed');
      if (running) return;
      await listen();
    },

    async close() {
      closed = true;
      await stop();
    },
  };
  return fixture;
}
