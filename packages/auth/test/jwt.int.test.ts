import { createHmac, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '@flowforge/observability';
import {
  createAuth,
  createJwtVerifier,
  isAuthError,
  type Auth,
  type JwtVerifier,
  type Principal,
} from '../src/index.js';
import { startKeycloak, type KeycloakFixture } from './support/keycloak.js';

let keycloak: KeycloakFixture;
let auth: Auth;
const CLIENT = 'flowforge-api';

function authFor(
  fixture: KeycloakFixture,
  extra: { jwksCooldownMs?: number; jwksMaxAgeMs?: number } = {},
): Auth {
  return createAuth(
    {
      appEnv: 'production',
      keycloak: { issuer: fixture.issuer, jwksUrl: fixture.jwksUrl, clientId: CLIENT },
      algorithms: ['RS256', 'ES256'],
      clockToleranceSeconds: 30,
      jwksCooldownMs: extra.jwksCooldownMs ?? 30_000,
      jwksMaxAgeMs: extra.jwksMaxAgeMs ?? 600_000,
    },
    { metrics: createMetrics({ defaultMetrics: false }) },
  );
}

beforeAll(async () => {
  keycloak = await startKeycloak({ clientId: CLIENT });
  auth = authFor(keycloak);
});

afterAll(async () => {
  await keycloak?.close();
});

/** The status and code a header gets: what the HTTP layer would answer. */
async function outcome(header: string | string[] | undefined, using: Auth = auth): Promise<string> {
  try {
    const principal = await using.authenticateBearer(header);
    return `200 ${principal.method}`;
  } catch (error) {
    if (isAuthError(error)) return `${error.status} ${error.code}`;
    throw error;
  }
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = (): number => Math.floor(Date.now() / 1000);

/** The claims of a valid Keycloak access token (the fixture adds iss, iat and exp). */
function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub: randomUUID(),
    tenant_id: randomUUID(),
    typ: 'Bearer',
    azp: CLIENT,
    aud: 'account',
    realm_access: { roles: ['viewer'] },
    resource_access: { [CLIENT]: { roles: ['editor'] } },
    ...extra,
  };
}

describe('tokens from the real OpenID provider', () => {
  it.each(['RS256', 'ES256'] as const)(
    'accepts a %s access token and reads its principal',
    async (alg) => {
      const tenantId = randomUUID();
      const sub = randomUUID();
      const token = await keycloak.issueToken({
        alg,
        tenantId,
        sub,
        realmRoles: ['viewer', 'offline_access'],
        clientRoles: ['editor'],
      });
      const principal: Principal = await auth.authenticateBearer(`Bearer ${token}`);
      expect(principal).toMatchObject({ userId: sub, tenantId, method: 'jwt' });
      expect([...principal.roles].sort()).toEqual(['editor', 'offline_access', 'viewer']);
      expect(principal.claims.tenant_id).toBe(tenantId);
    },
  );

  it('accepts a token shaped exactly like Keycloak’s: header typ JWT, claim typ Bearer, aud "account", azp = client', async () => {
    const token = await keycloak.sign(claims());
    expect(await outcome(`Bearer ${token}`)).toBe('200 jwt');
  });

  it('callers arriving together at a cold verifier share its first JWKS fetch (no 503s)', async () => {
    const cold = authFor(keycloak);
    const tokens = await Promise.all(
      Array.from({ length: 50 }, () => keycloak.issueToken({ alg: 'ES256' })),
    );
    const outcomes = await Promise.all(tokens.map((token) => outcome(`Bearer ${token}`, cold)));
    expect(new Set(outcomes)).toEqual(new Set(['200 jwt']));
    expect(cold.jwksFetches()).toBe(1);
  });

  it('a repeated token is served from the cache, without another JWKS fetch', async () => {
    const token = await keycloak.issueToken();
    await auth.authenticateBearer(`Bearer ${token}`);
    const fetches = auth.jwksFetches();
    for (let i = 0; i < 50; i += 1) await auth.authenticateBearer(`Bearer ${token}`);
    expect(auth.jwksFetches()).toBe(fetches);
  });
});

/** A well-formed token of the realm's issuer, signed by a key the realm never published. */
function signedWithUnknownKid(
  privateKey: Parameters<SignJWT['sign']>[0],
  kid: string,
  iat: number,
): Promise<string> {
  return new SignJWT({ ...claims(), iss: keycloak.issuer })
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .setIssuedAt(iat)
    .setExpirationTime('5m')
    .sign(privateKey);
}

/** The verifier's answer as a word: `accepted` or the AuthError code. */
function codeOfVerify(verifier: JwtVerifier, token: string): Promise<string> {
  return verifier.verify(token).then(
    () => 'accepted',
    (error: unknown) => (isAuthError(error) ? error.code : 'other'),
  );
}

describe('the attack suite (RFC 8725, OWASP JWT cheat sheet)', () => {
  it('alg none', async () => {
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims(), iss: keycloak.issuer, iat: now(), exp: now() + 300 })}.`;
    expect(await outcome(`Bearer ${token}`)).toBe('401 TOKEN_INVALID');
  });

  it('HS256 signed with the public key as the HMAC secret', async () => {
    const jwk = keycloak.publicJwk();
    const payload = b64({ ...claims(), iss: keycloak.issuer, iat: now(), exp: now() + 300 });
    for (const secret of [JSON.stringify(jwk), String(jwk.n)]) {
      const header = b64({ alg: 'HS256', typ: 'JWT', kid: jwk.kid });
      const signature = createHmac('sha256', secret)
        .update(`${header}.${payload}`)
        .digest('base64url');
      expect(await outcome(`Bearer ${header}.${payload}.${signature}`)).toBe('401 TOKEN_INVALID');
    }
  });

  it('an unknown kid is refused, and many of them cost exactly one JWKS refetch per cooldown', async () => {
    let clock = Date.now();
    const verifier = createJwtVerifier({
      issuer: keycloak.issuer,
      jwksUrl: keycloak.jwksUrl,
      audience: CLIENT,
      jwksCooldownMs: 30_000,
      now: () => clock,
    });
    await verifier.verify(await keycloak.issueToken());
    expect(verifier.jwksFetches()).toBe(1);
    const { privateKey } = await generateKeyPair('RS256');
    // Issued before the verifier's last fetch (beyond the clock tolerance): a rotation since
    // would not explain them, so only the cooldown lets them refetch (the next test covers
    // tokens issued after the last fetch).
    const unknownKid = (i: number): Promise<string> =>
      signedWithUnknownKid(privateKey, `attacker-${i}`, Math.floor(Date.now() / 1000) - 120);
    const codeOf = (token: string): Promise<string> => codeOfVerify(verifier, token);
    // Within the cooldown after the first fetch: no refetch at all.
    for (let i = 0; i < 100; i += 1)
      expect(await codeOf(await unknownKid(i))).toBe('TOKEN_INVALID');
    expect(verifier.jwksFetches()).toBe(1);
    // Past it: the unknown kids refetch once between them (a rotation may have happened).
    clock += 31_000;
    const requestsBefore = keycloak.jwksRequests();
    const tokens = await Promise.all(Array.from({ length: 100 }, (_, i) => unknownKid(1_000 + i)));
    const codes = await Promise.all(tokens.map(codeOf));
    expect(new Set(codes)).toEqual(new Set(['TOKEN_INVALID']));
    expect(keycloak.jwksRequests() - requestsBefore).toBe(1);
  });

  it('an unknown kid in a token issued after the last fetch refetches early, at most once a second; an older one does not', async () => {
    const verifier = createJwtVerifier({
      issuer: keycloak.issuer,
      jwksUrl: keycloak.jwksUrl,
      audience: CLIENT,
      jwksCooldownMs: 30_000,
    });
    await verifier.verify(await keycloak.issueToken());
    const { privateKey } = await generateKeyPair('RS256');
    const unknownKid = (i: number, iat: number): Promise<string> =>
      signedWithUnknownKid(privateKey, `rotated-${i}`, iat);
    const codeOf = (token: string): Promise<string> => codeOfVerify(verifier, token);
    const nowSeconds = (): number => Math.floor(Date.now() / 1000);

    // Issued well before the last fetch (beyond the clock tolerance): no early refetch.
    let requestsBefore = keycloak.jwksRequests();
    expect(await codeOf(await unknownKid(0, nowSeconds() - 120))).toBe('TOKEN_INVALID');
    expect(keycloak.jwksRequests() - requestsBefore).toBe(0);

    // A fresh iat (what a key rotated to since would carry, and what a forger claims): one
    // shared refetch per second at most, however many such tokens arrive.
    const burst = await Promise.all(
      Array.from({ length: 50 }, (_, i) => unknownKid(100 + i, nowSeconds())),
    );
    await new Promise((wake) => setTimeout(wake, 1_100)); // a slot is open: no wait
    requestsBefore = keycloak.jwksRequests();
    expect(new Set(await Promise.all(burst.map(codeOf)))).toEqual(new Set(['TOKEN_INVALID']));
    expect(keycloak.jwksRequests() - requestsBefore).toBe(1);
    requestsBefore = keycloak.jwksRequests();
    for (let i = 0; i < 3; i += 1) {
      expect(await codeOf(await unknownKid(200 + i, nowSeconds()))).toBe('TOKEN_INVALID');
    }
    // Three tokens one after another: each waited for the next one-second slot.
    expect(keycloak.jwksRequests() - requestsBefore).toBe(3);
  });

  it('kid, jku, x5u and jwk header injection', async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const attackerJwk = { ...(await exportJWK(publicKey)), kid: 'attacker', alg: 'RS256' };
    const forged = (header: Record<string, unknown>) =>
      new SignJWT({ ...claims(), iss: keycloak.issuer })
        .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...header })
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
    const attempts = [
      await forged({ kid: '../../../../dev/null' }),
      await forged({ kid: "x' or '1'='1" }),
      await forged({ kid: 'attacker', jwk: attackerJwk }),
      await forged({ kid: 'attacker', jku: 'http://127.0.0.1:1/jwks.json' }),
      await forged({ kid: 'attacker', x5u: 'http://127.0.0.1:1/cert.pem' }),
      // A real key of the realm, but the header also points elsewhere: refused outright.
      await keycloak.sign(claims(), { header: { jku: 'http://127.0.0.1:1/jwks.json' } }),
      await keycloak.sign(claims(), { header: { jwk: attackerJwk } }),
    ];
    for (const token of attempts)
      expect(await outcome(`Bearer ${token}`)).toBe('401 TOKEN_INVALID');
  });

  it('a crit header it does not understand, on a token the realm signed', async () => {
    const token = await keycloak.sign(claims(), {
      header: { crit: ['x-flowforge'], 'x-flowforge': 1 },
    });
    expect(await outcome(`Bearer ${token}`)).toBe('401 TOKEN_INVALID');
    expect(await outcome(`Bearer ${await keycloak.sign(claims())}`)).toBe('200 jwt');
  });

  it('expired, beyond the clock tolerance; and not yet valid', async () => {
    const expired = await keycloak.sign(claims({ iat: now() - 600, exp: now() - 60 }));
    expect(await outcome(`Bearer ${expired}`)).toBe('401 TOKEN_EXPIRED');
    const withinTolerance = await keycloak.sign(claims({ iat: now() - 600, exp: now() - 5 }));
    expect(await outcome(`Bearer ${withinTolerance}`)).toBe('200 jwt');
    const early = await keycloak.sign(claims({ nbf: now() + 120 }));
    expect(await outcome(`Bearer ${early}`)).toBe('401 TOKEN_INVALID');
  });

  it('issued an hour in the future, valid for ten years, or for the nil tenant (issue 16, row 9)', async () => {
    const counted = createMetrics({ defaultMetrics: false });
    const strict = createAuth(
      {
        appEnv: 'production',
        keycloak: { issuer: keycloak.issuer, jwksUrl: keycloak.jwksUrl, clientId: CLIENT },
      },
      { metrics: counted },
    );
    const future = await keycloak.sign(claims({ iat: now() + 3600, exp: now() + 3900 }));
    const decade = await keycloak.sign(claims({ exp: now() + 10 * 365 * 86_400 }));
    const nil = await keycloak.sign(claims({ tenant_id: '00000000-0000-0000-0000-000000000000' }));
    for (const token of [future, decade, nil]) {
      expect(await outcome(`Bearer ${token}`, strict)).toBe('401 TOKEN_INVALID');
    }
    const metrics = await counted.render();
    for (const reason of ['issued_in_future', 'lifetime', 'tenant']) {
      expect(metrics).toContain(`flowforge_auth_failures_total{reason="${reason}"} 1`);
    }
    // The provider's own tokens (300 s, Keycloak's default) still pass, also with the limit at 300.
    const tight = createAuth({
      appEnv: 'production',
      keycloak: { issuer: keycloak.issuer, jwksUrl: keycloak.jwksUrl, clientId: CLIENT },
      maxTokenLifetimeSeconds: 300,
    });
    expect(await outcome(`Bearer ${await keycloak.issueToken()}`, tight)).toBe('200 jwt');
    expect(await outcome(`Bearer ${await keycloak.issueToken()}`, strict)).toBe('200 jwt');
  });

  it('wrong issuer; wrong audience (neither aud nor azp is this API)', async () => {
    const foreignIssuer = await keycloak.sign(claims({ iss: 'http://127.0.0.1:9/realms/other' }));
    expect(await outcome(`Bearer ${foreignIssuer}`)).toBe('401 TOKEN_INVALID');
    const foreignAudience = await keycloak.sign(claims({ aud: 'other-api', azp: 'other-client' }));
    expect(await outcome(`Bearer ${foreignAudience}`)).toBe('401 TOKEN_INVALID');
    const rightAudience = await keycloak.sign(
      claims({ aud: ['account', CLIENT], azp: 'other-client' }),
    );
    expect(await outcome(`Bearer ${rightAudience}`)).toBe('200 jwt');
    // Our client's token for another API: azp is ours, but aud names that API.
    const otherApi = await keycloak.sign(claims({ aud: 'billing-api', azp: CLIENT }));
    expect(await outcome(`Bearer ${otherApi}`)).toBe('401 TOKEN_INVALID');
  });

  it('missing or non-UUID tenant_id; missing sub; missing exp or iat', async () => {
    for (const extra of [
      { tenant_id: undefined },
      { tenant_id: 'acme' },
      { tenant_id: 42 },
      { sub: undefined },
      { sub: '' },
      { exp: undefined },
      { iat: undefined },
    ]) {
      const token = await keycloak.sign(claims(extra));
      expect([extra, await outcome(`Bearer ${token}`)]).toEqual([extra, '401 TOKEN_INVALID']);
    }
  });

  it('ID and refresh tokens, and a JWT-typed token without the access-token claim', async () => {
    for (const typ of ['ID', 'Refresh', undefined]) {
      const token = await keycloak.sign(claims({ typ }));
      expect(await outcome(`Bearer ${token}`)).toBe('401 TOKEN_INVALID');
    }
  });

  it('a tampered payload; a tampered signature', async () => {
    const token = await keycloak.issueToken();
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const body = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    const tampered = `${header}.${b64({ ...body, tenant_id: randomUUID() })}.${signature}`;
    expect(await outcome(`Bearer ${tampered}`)).toBe('401 TOKEN_INVALID');
    const flipped = `${header}.${payload}.${signature.slice(0, -4)}${signature.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    expect(await outcome(`Bearer ${flipped}`)).toBe('401 TOKEN_INVALID');
  });

  it('an oversized token; garbage base64; a Basic scheme; two Authorization headers', async () => {
    const token = await keycloak.sign(claims({ padding: 'x'.repeat(9_000) }));
    expect(await outcome(`Bearer ${token}`)).toBe('401 TOKEN_INVALID');
    expect(await outcome('Bearer @@@@.####.$$$$')).toBe('400 REQUEST_INVALID');
    expect(await outcome('Bearer Zm9v.YmFy.YmF6')).toBe('401 TOKEN_INVALID');
    expect(await outcome('Basic dXNlcjpwYXNzd29yZA==')).toBe('401 CREDENTIALS_MISSING');
    const valid = await keycloak.issueToken();
    expect(await outcome([`Bearer ${valid}`, `Bearer ${valid}`])).toBe('400 REQUEST_INVALID');
  });

  it('with APP_ENV=production, "dev-token" and no token are 401', async () => {
    expect(await outcome('Bearer dev-token')).toBe('401 TOKEN_INVALID');
    expect(await outcome(undefined)).toBe('401 CREDENTIALS_MISSING');
  });

  it('no error message echoes the token', async () => {
    const token = await keycloak.sign(claims({ exp: now() - 3600, iat: now() - 7200 }));
    try {
      await auth.authenticateBearer(`Bearer ${token}`);
      expect.unreachable();
    } catch (error) {
      expect(JSON.stringify({ message: (error as Error).message })).not.toContain(
        token.split('.')[1]!,
      );
    }
  });
});

describe('key rotation and outages', () => {
  it('a token of a newly added key verifies after one refetch; once the key is removed, even its cached verdict is dropped', async () => {
    const rotating = authFor(keycloak, { jwksCooldownMs: 0 });
    await rotating.authenticateBearer(`Bearer ${await keycloak.issueToken()}`);
    const kid = await keycloak.rotate('ES256');
    const token = await keycloak.sign(claims(), { kid });
    const before = rotating.jwksFetches();
    expect(await outcome(`Bearer ${token}`, rotating)).toBe('200 jwt');
    expect(rotating.jwksFetches()).toBe(before + 1);
    expect(await outcome(`Bearer ${token}`, rotating)).toBe('200 jwt'); // served from the cache
    await keycloak.removeKey(kid);
    // Anything that refetches (here an unknown kid) brings the new key set: the cached
    // verdict rests on the old one and no longer counts.
    const { privateKey } = await generateKeyPair('RS256');
    const unknown = await new SignJWT({ ...claims(), iss: keycloak.issuer })
      .setProtectedHeader({ alg: 'RS256', kid: 'unknown-after-removal', typ: 'JWT' })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    expect(await outcome(`Bearer ${unknown}`, rotating)).toBe('401 TOKEN_INVALID');
    expect(await outcome(`Bearer ${token}`, rotating)).toBe('401 TOKEN_INVALID');
  });

  it('a key set that arrives malformed is not used: the last good keys stay', async () => {
    let serveGarbage = false;
    const garbling: typeof fetch = (input, init) =>
      serveGarbage
        ? Promise.resolve(new Response(JSON.stringify({ keys: [{ kty: 'RSA' }, 'garbage'] })))
        : fetch(input, init);
    const verifier = createJwtVerifier({
      issuer: keycloak.issuer,
      jwksUrl: keycloak.jwksUrl,
      audience: CLIENT,
      jwksCooldownMs: 0,
      jwksMaxAgeMs: 0,
      cacheSize: 0,
      fetch: garbling,
    });
    const token = await keycloak.issueToken();
    await verifier.verify(token);
    serveGarbage = true;
    await expect(verifier.verify(token)).resolves.toMatchObject({ method: 'jwt' });
  });

  it('keeps verifying with the last good keys while the IdP is down; 503 when it never had keys', async () => {
    const warm = authFor(keycloak, { jwksCooldownMs: 0, jwksMaxAgeMs: 0 });
    const cold = authFor(keycloak, { jwksCooldownMs: 0 });
    let attempts = 0;
    const counting: typeof fetch = (input, init) => {
      attempts += 1;
      return fetch(input, init);
    };
    const backingOff = createAuth(
      {
        appEnv: 'production',
        keycloak: { issuer: keycloak.issuer, jwksUrl: keycloak.jwksUrl, clientId: CLIENT },
        fetch: counting,
      },
      {},
    );
    const first = await keycloak.issueToken();
    await warm.authenticateBearer(`Bearer ${first}`);
    const second = await keycloak.sign(claims());
    await keycloak.stop();
    try {
      // Max age 0: every use tries a refresh, which fails; the old keys still verify.
      expect(await outcome(`Bearer ${second}`, warm)).toBe('200 jwt');
      expect(await outcome(`Bearer ${await keycloak.sign(claims())}`, cold)).toBe(
        '503 IDP_UNAVAILABLE',
      );
      // With no keys, anonymous callers' tokens do not each cause a fetch: at most one a second.
      for (let i = 0; i < 20; i += 1) {
        const another = await keycloak.sign(claims());
        expect(await outcome(`Bearer ${another}`, backingOff)).toBe('503 IDP_UNAVAILABLE');
      }
      expect(attempts).toBe(1);
    } finally {
      await keycloak.start();
    }
    // Once back, the cold one gets keys.
    expect(await outcome(`Bearer ${await keycloak.sign(claims())}`, cold)).toBe('200 jwt');
  });

  it('health(): ok, degraded while the IdP is down with keys at hand, down without any', async () => {
    const warm = authFor(keycloak, { jwksCooldownMs: 0 });
    const cold = authFor(keycloak, { jwksCooldownMs: 0 });
    await warm.authenticateBearer(`Bearer ${await keycloak.issueToken()}`);
    expect(await warm.health()).toMatchObject({ status: 'ok' });
    const fetchesBefore = keycloak.jwksRequests();
    await keycloak.stop();
    try {
      // Past the one-second floor between probes.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const degraded = await warm.health();
      expect(degraded).toMatchObject({ status: 'degraded', error: 'fetch failed (ECONNREFUSED)' });
      expect(degraded.keysFetchedAt).toEqual(expect.any(Number));
      // Cached keys still verify, as degraded says.
      expect(await outcome(`Bearer ${await keycloak.sign(claims())}`, warm)).toBe('200 jwt');
      expect(await cold.health()).toEqual({
        status: 'down',
        keysFetchedAt: null,
        error: 'fetch failed (ECONNREFUSED)',
      });
    } finally {
      await keycloak.start();
    }
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await warm.health()).toMatchObject({ status: 'ok' });
    expect(await cold.health()).toMatchObject({ status: 'ok' });
    expect(keycloak.jwksRequests() - fetchesBefore).toBe(2);
  });

  it('an unknown kid while the IdP is down is 503 (a rotation we cannot fetch), 401 once it answers', async () => {
    const auth = authFor(keycloak, { jwksCooldownMs: 0 });
    await auth.authenticateBearer(`Bearer ${await keycloak.issueToken()}`);
    const { privateKey } = await generateKeyPair('RS256');
    const unseen = await new SignJWT({ ...claims(), iss: keycloak.issuer })
      .setProtectedHeader({ alg: 'RS256', kid: 'rotated-while-down', typ: 'JWT' })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    await keycloak.stop();
    try {
      expect(await outcome(`Bearer ${unseen}`, auth)).toBe('503 IDP_UNAVAILABLE');
      // Tokens signed with the keys it has keep working meanwhile.
      expect(await outcome(`Bearer ${await keycloak.sign(claims())}`, auth)).toBe('200 jwt');
    } finally {
      await keycloak.start();
    }
    // The IdP answers and does not publish that key: now it is the token's fault.
    expect(await outcome(`Bearer ${unseen}`, auth)).toBe('401 TOKEN_INVALID');
  });
});
