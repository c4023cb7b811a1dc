import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JSONWebKeySet,
} from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startKeycloak, type KeycloakFixture } from './support/keycloak.js';

// The fixture the other @flowforge/auth tests stand on: prove it behaves like a
// Keycloak realm before trusting it.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function jwksOf(keycloak: KeycloakFixture): Promise<JSONWebKeySet> {
  const response = await fetch(keycloak.jwksUrl);
  expect(response.status).toBe(200);
  return (await response.json()) as JSONWebKeySet;
}

async function kidsServed(keycloak: KeycloakFixture): Promise<string[]> {
  return (await jwksOf(keycloak)).keys.map((key) => key.kid ?? '');
}

/** A verifier like the one under test: fresh remote JWKS, issuer and audience checked. */
function verify(keycloak: KeycloakFixture, token: string, audience = 'flowforge-api') {
  return jwtVerify(token, createRemoteJWKSet(new URL(keycloak.jwksUrl)), {
    issuer: keycloak.issuer,
    audience,
  });
}

describe('the Keycloak fixture', () => {
  let keycloak: KeycloakFixture;
  beforeAll(async () => {
    keycloak = await startKeycloak();
  });
  afterAll(async () => {
    await keycloak.close();
  });

  it('has Keycloak URLs on loopback', () => {
    expect(keycloak.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(keycloak.realm).toBe('flowforge');
    expect(keycloak.clientId).toBe('flowforge-api');
    expect(keycloak.issuer).toBe(`${keycloak.url}/realms/flowforge`);
    expect(keycloak.jwksUrl).toBe(`${keycloak.issuer}/protocol/openid-connect/certs`);
    expect(keycloak.tokenUrl).toBe(`${keycloak.issuer}/protocol/openid-connect/token`);
  });

  it('serves the discovery document under the issuer', async () => {
    const response = await fetch(`${keycloak.issuer}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    const discovery = (await response.json()) as Record<string, unknown>;
    expect(discovery).toMatchObject({
      issuer: keycloak.issuer,
      jwks_uri: keycloak.jwksUrl,
      token_endpoint: keycloak.tokenUrl,
    });
    expect(discovery.grant_types_supported).toContain('client_credentials');
  });

  it('publishes one RS256 and one ES256 public key', async () => {
    const { keys } = await jwksOf(keycloak);
    expect(keys.map((key) => [key.alg, key.use])).toEqual([
      ['RS256', 'sig'],
      ['ES256', 'sig'],
    ]);
    expect(keys.map((key) => key.kid)).toEqual(keycloak.kids());
    for (const key of keys) expect(key).not.toHaveProperty('d');
  });

  it('answers 404 outside the realm', async () => {
    const response = await fetch(`${keycloak.url}/realms/other/.well-known/openid-configuration`);
    expect(response.status).toBe(404);
  });

  it.each(['RS256', 'ES256'] as const)(
    'issues a Keycloak-shaped %s access token that verifies against the JWKS',
    async (alg) => {
      const token = await keycloak.issueToken({
        alg,
        realmRoles: ['flowforge-admin'],
        clientRoles: ['flows:write'],
      });
      const { payload, protectedHeader } = await verify(keycloak, token);

      expect(protectedHeader).toEqual({ alg, kid: expect.any(String) as string, typ: 'JWT' });
      expect(keycloak.kids()).toContain(protectedHeader.kid);
      expect(payload).toMatchObject({
        iss: keycloak.issuer,
        aud: 'flowforge-api',
        typ: 'Bearer',
        azp: 'flowforge-api',
        client_id: 'flowforge-api',
        realm_access: { roles: ['flowforge-admin'] },
        resource_access: { 'flowforge-api': { roles: ['flows:write'] } },
      });
      expect(payload.sub).toMatch(UUID);
      expect(payload.tenant_id).toMatch(UUID);
      expect(payload.jti).toEqual(expect.any(String));
      expect(payload.exp! - payload.iat!).toBe(300);
    },
  );

  it('takes sub, tenant, audience and lifetime from the options', async () => {
    const sub = '0b8d2c4e-1111-4f5e-9a7b-2c3d4e5f6a7b';
    const tenantId = '7a6f5e4d-2222-4c3b-8a19-0f1e2d3c4b5a';
    const token = await keycloak.issueToken({ sub, tenantId, audience: 'account', expiresIn: 60 });
    const { payload } = await verify(keycloak, token, 'account');
    expect(payload).toMatchObject({ sub, tenant_id: tenantId, aud: 'account' });
    expect(payload.exp! - payload.iat!).toBe(60);
    expect(payload.realm_access).toEqual({ roles: [] });
  });

  it('leaves tenant_id out for tenantId: null', async () => {
    const { payload } = await verify(keycloak, await keycloak.issueToken({ tenantId: null }));
    expect(payload).not.toHaveProperty('tenant_id');
  });

  it('rejects a lifetime the provider cannot issue', async () => {
    await expect(keycloak.issueToken({ expiresIn: 0 })).rejects.toThrow(/positive integer/);
  });

  it('issues to a plain client_credentials request as well', async () => {
    const response = await fetch(keycloak.tokenUrl, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: keycloak.clientId,
        client_secret: keycloak.clientSecret,
      }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { access_token: string; token_type: string };
    expect(body.token_type).toBe('Bearer');
    const { payload } = await verify(keycloak, body.access_token);
    expect(payload).toMatchObject({ typ: 'Bearer', azp: 'flowforge-api' });
  });

  it('refuses a wrong client secret', async () => {
    const response = await fetch(keycloak.tokenUrl, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: keycloak.clientId,
        client_secret: 'wrong',
      }),
    });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: 'invalid_client' });
  });

  it('signs a token shaped exactly like Keycloak’s with a published key', async () => {
    const token = await keycloak.sign({
      sub: 'f3a1c9e2-3333-4d4c-9b8a-7e6f5d4c3b2a',
      aud: 'account',
      typ: 'Bearer',
      azp: 'flowforge-api',
      realm_access: { roles: ['offline_access'] },
      resource_access: { 'flowforge-api': { roles: ['flows:read'] } },
    });
    const { payload, protectedHeader } = await verify(keycloak, token, 'account');
    expect(protectedHeader).toEqual({ alg: 'RS256', kid: keycloak.kids()[0], typ: 'JWT' });
    expect(payload.iss).toBe(keycloak.issuer);
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(payload.resource_access).toEqual({ 'flowforge-api': { roles: ['flows:read'] } });
  });

  it('signs with the key and header asked for, and leaves out members set to undefined', async () => {
    const kid = keycloak.kids()[1]!;
    const token = await keycloak.sign(
      { aud: 'flowforge-api', exp: undefined, iat: 1 },
      { kid, header: { typ: 'at+jwt' } },
    );
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', kid, typ: 'at+jwt' });
    const { payload } = await verify(keycloak, token);
    expect(payload).toEqual({ aud: 'flowforge-api', iat: 1, iss: keycloak.issuer });

    const noKid = await keycloak.sign({ aud: 'flowforge-api' }, { header: { kid: undefined } });
    expect(decodeProtectedHeader(noKid)).toEqual({ alg: 'RS256', typ: 'JWT' });
  });

  it('hands out public JWKs only', async () => {
    const [rsKid, esKid] = keycloak.kids();
    const rs = keycloak.publicJwk();
    expect(rs).toMatchObject({ kty: 'RSA', kid: rsKid, alg: 'RS256', use: 'sig' });
    expect(keycloak.publicJwk(esKid)).toMatchObject({
      kty: 'EC',
      crv: 'P-256',
      kid: esKid,
      alg: 'ES256',
    });
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(rs).not.toHaveProperty(member);
    expect((await jwksOf(keycloak)).keys).toContainEqual(rs);
    // The copy is the caller's to tamper with.
    rs.n = 'tampered';
    expect(keycloak.publicJwk().n).not.toBe('tampered');
    expect(() => keycloak.publicJwk('nope')).toThrow(/no key with kid nope/);
  });
});

describe('key rotation', () => {
  let keycloak: KeycloakFixture;
  beforeAll(async () => {
    keycloak = await startKeycloak({ realm: 'rotation', clientId: 'rotation-api' });
  });
  afterAll(async () => {
    await keycloak.close();
  });

  it('takes the realm and client from the options', async () => {
    expect(keycloak.issuer).toBe(`${keycloak.url}/realms/rotation`);
    const { payload } = await verify(keycloak, await keycloak.issueToken(), 'rotation-api');
    expect(payload).toMatchObject({
      azp: 'rotation-api',
      resource_access: { 'rotation-api': { roles: [] } },
    });
  });

  it('publishes a rotated key and signs with it, then drops a removed one', async () => {
    const [oldKid, esKid] = keycloak.kids();
    const oldToken = await keycloak.issueToken();
    const { keys: before } = await jwksOf(keycloak);

    const newKid = await keycloak.rotate();
    expect(newKid).not.toBe(oldKid);
    expect(await kidsServed(keycloak)).toEqual([oldKid, esKid, newKid]);

    const newToken = await keycloak.issueToken();
    expect(decodeProtectedHeader(newToken).kid).toBe(newKid);
    expect(decodeProtectedHeader(await keycloak.sign({ aud: 'rotation-api' })).kid).toBe(newKid);
    // Both keys verify while both are published.
    await verify(keycloak, oldToken, 'rotation-api');
    await verify(keycloak, newToken, 'rotation-api');

    await keycloak.removeKey(oldKid!);
    expect(await kidsServed(keycloak)).toEqual([esKid, newKid]);
    await expect(verify(keycloak, oldToken, 'rotation-api')).rejects.toBeInstanceOf(
      errors.JWKSNoMatchingKey,
    );
    await verify(keycloak, newToken, 'rotation-api');
    // A verifier that cached the old set still knows the old key, and not the new one.
    const cached = createLocalJWKSet({ keys: before });
    await jwtVerify(oldToken, cached, { issuer: keycloak.issuer });
    await expect(jwtVerify(newToken, cached)).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
  });

  it('rotates ES256 keys too', async () => {
    const kid = await keycloak.rotate('ES256');
    expect(keycloak.publicJwk(kid)).toMatchObject({ kty: 'EC', alg: 'ES256' });
    const token = await keycloak.issueToken({ alg: 'ES256' });
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', kid });
    await verify(keycloak, token, 'rotation-api');
  });

  it('cannot sign with an algorithm whose keys are all gone', async () => {
    for (const kid of keycloak.kids()) {
      if (keycloak.publicJwk(kid).alg === 'ES256') await keycloak.removeKey(kid);
    }
    await expect(keycloak.issueToken({ alg: 'ES256' })).rejects.toThrow(/no ES256 key/);
    await expect(keycloak.sign({}, { alg: 'ES256' })).rejects.toThrow(/no ES256 key/);
    await expect(keycloak.removeKey('nope')).rejects.toThrow(/no key with kid nope/);
    await verify(keycloak, await keycloak.issueToken(), 'rotation-api');
  });
});

describe('availability', () => {
  let keycloak: KeycloakFixture | undefined;
  afterEach(async () => {
    await keycloak?.close();
    keycloak = undefined;
  });

  it('counts JWKS requests', async () => {
    keycloak = await startKeycloak();
    expect(keycloak.jwksRequests()).toBe(0);
    const jwks = createRemoteJWKSet(new URL(keycloak.jwksUrl));
    const token = await keycloak.issueToken();
    await jwtVerify(token, jwks);
    await jwtVerify(token, jwks);
    expect(keycloak.jwksRequests()).toBe(1); // jose caches the set
    await fetch(`${keycloak.issuer}/.well-known/openid-configuration`);
    expect(keycloak.jwksRequests()).toBe(1);
    await fetch(`${keycloak.jwksUrl}?refresh=1`);
    expect(keycloak.jwksRequests()).toBe(2);
  });

  it('goes down (connection refused) and comes back on the same URL', async () => {
    keycloak = await startKeycloak();
    const { jwksUrl } = keycloak;
    const token = await keycloak.issueToken();
    await jwksOf(keycloak);

    await keycloak.stop();
    await keycloak.stop(); // idempotent
    for (let attempt = 0; attempt < 2; attempt += 1) {
      await expect(fetch(jwksUrl)).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
    }
    await expect(verify(keycloak, token)).rejects.toThrow();
    await expect(keycloak.issueToken()).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });

    await keycloak.start();
    await keycloak.start(); // idempotent
    expect(keycloak.jwksUrl).toBe(jwksUrl);
    await verify(keycloak, token);
    await verify(keycloak, await keycloak.issueToken());
    expect(keycloak.jwksRequests()).toBe(3);
  });

  it('cannot start again after close', async () => {
    const closing = await startKeycloak();
    await closing.close();
    await expect(fetch(closing.jwksUrl)).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
    await expect(closing.start()).rejects.toThrow(/closed/);
  });
});
