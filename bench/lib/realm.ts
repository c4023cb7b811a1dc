// The Keycloak stand-in of the benchmarks: signing keys, their JWKS served on loopback
// at Keycloak's path, and access tokens shaped like Keycloak's.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import {
  SignJWT,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
} from 'jose';
import { listeningPort } from './harness.ts';

/** The client id of the API (the `azp` of its tokens, the audience it expects). */
export const CLIENT_ID = 'flowforge-api';
/** The realm's name in Keycloak's paths. */
export const REALM = 'bench';
/** Keycloak's default `aud` of an access token; the client id is in `azp`. */
export const TOKEN_AUDIENCE = 'account';

/** The signature algorithms a realm can sign with (RS256 is Keycloak's default). */
export type Algorithm = 'RS256' | 'ES256';

/** What an access token is issued for. */
interface TokenRequest {
  tenantId: string;
  /** realm roles */
  roles: string[];
  /** the `sub`; a fresh UUID when not given */
  userId?: string;
  /** the realm's first algorithm when not given */
  alg?: Algorithm;
}

/** A running realm; `close()` stops its JWKS server. */
export interface Realm {
  /** KEYCLOAK_URL of an app. */
  url: string;
  /** The `iss` of its tokens. */
  issuer: string;
  /** Where its JWKS is served. */
  jwksUrl: string;
  /** The same JWKS without a fetch (what a raw jose baseline verifies against). */
  localJwks: ReturnType<typeof createLocalJWKSet>;
  /** How many times the JWKS was fetched. */
  fetches: () => number;
  /** A Keycloak-shaped access token, valid for an hour. */
  token: (request: TokenRequest) => Promise<string>;
  close: () => Promise<void>;
}

/** Starts a realm with a key for each of `algorithms`; its JWKS lists them in that order. */
export async function startRealm(algorithms: readonly Algorithm[]): Promise<Realm> {
  const keys = new Map<Algorithm, { privateKey: CryptoKey; kid: string }>();
  const jwks: JSONWebKeySet = { keys: [] };
  for (const alg of algorithms) {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const kid = `bench-${alg.toLowerCase()}`;
    keys.set(alg, { privateKey, kid });
    const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    jwks.keys.push(jwk);
  }
  const body = JSON.stringify(jwks);
  let fetches = 0;
  const server = createHttpServer((request, response) => {
    if (request.url === `/realms/${REALM}/protocol/openid-connect/certs`) {
      fetches += 1;
      response.writeHead(200, { 'content-type': 'application/json' }).end(body);
    } else {
      response.writeHead(404).end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${listeningPort(server)}`;
  const issuer = `${url}/realms/${REALM}`;
  return {
    url,
    issuer,
    jwksUrl: `${issuer}/protocol/openid-connect/certs`,
    localJwks: createLocalJWKSet(jwks),
    fetches: () => fetches,
    async token({ tenantId, roles, userId = randomUUID(), alg = algorithms[0] }) {
      const key = alg === undefined ? undefined : keys.get(alg);
      if (alg === undefined || key === undefined) throw new Error(`the realm has no ${alg} key`);
      return new SignJWT({
        typ: 'Bearer',
        azp: CLIENT_ID,
        tenant_id: tenantId,
        sid: randomUUID(),
        scope: 'openid profile email',
        email_verified: true,
        preferred_username: 'bench-user',
        realm_access: { roles },
        resource_access: { account: { roles: ['manage-account', 'view-profile'] } },
      })
        .setProtectedHeader({ alg, kid: key.kid, typ: 'JWT' })
        .setIssuer(issuer)
        .setAudience(TOKEN_AUDIENCE)
        .setSubject(userId)
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(key.privateKey);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
