import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { ALLOWED_JWT_ALGORITHMS, type JwtAlgorithm } from '@flowforge/config';
import { AuthError } from './errors.js';
import { createJwtVerifier, type JwtVerifier, type JwtVerifierOptions } from './jwt.js';

// The first cases never reach the JWKS (options fail first, tokens before key resolution);
// the later ones serve a key set through the `fetch` option.
const OPTIONS: JwtVerifierOptions = {
  issuer: 'http://127.0.0.1:1/realms/flowforge',
  jwksUrl: 'http://127.0.0.1:1/realms/flowforge/protocol/openid-connect/certs',
  audience: 'flowforge-api',
  fetch: () => Promise.reject(new Error('no network in unit tests')),
};

describe('createJwtVerifier', () => {
  it('refuses every algorithm outside config’s asymmetric list in one INVALID_OPTIONS', () => {
    const expected = `expected one of ${ALLOWED_JWT_ALGORITHMS.join(', ')}`;
    const create = (): unknown =>
      createJwtVerifier({
        ...OPTIONS,
        algorithms: ['HS256', 'RS256', 'none'] as unknown as JwtAlgorithm[],
      });
    expect(create).toThrow(AuthError);
    expect(create).toThrowError(
      expect.objectContaining({
        code: 'INVALID_OPTIONS',
        status: 500,
        retryable: false,
        message: `@flowforge/auth: algorithms: ${expected} (got "HS256"); algorithms: ${expected} (got "none")`,
      }),
    );
  });

  it('accepts each algorithm of the list, and the default', () => {
    expect(() =>
      createJwtVerifier({ ...OPTIONS, algorithms: ALLOWED_JWT_ALGORITHMS }),
    ).not.toThrow();
    expect(() => createJwtVerifier(OPTIONS)).not.toThrow();
  });

  it('refuses a token with an AuthError whose failure says why', async () => {
    const verifier = createJwtVerifier({ ...OPTIONS, maxTokenLength: 20 });
    const refusal = (token: string): Promise<unknown> =>
      verifier.verify(token).then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(await refusal('x'.repeat(21))).toMatchObject({
      code: 'TOKEN_INVALID',
      status: 401,
      failure: 'oversized',
      reason: 'the token is longer than 20 characters',
    });
    const malformed = await refusal('not.a.jwt');
    expect(malformed).toBeInstanceOf(AuthError);
    expect(malformed).toMatchObject({ code: 'TOKEN_INVALID', failure: 'malformed' });
  });
});

describe('token times, lifetime and tenant (row 9 of issue 16)', () => {
  // A real signature over a key set served by an injected fetch: no network, nothing stubbed in jose.
  const NOW_MS = Date.UTC(2026, 10, 28, 12);
  const NOW = NOW_MS / 1000;
  let privateKey: CryptoKey;
  let jwks: { keys: JWK[] };

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    jwks = {
      keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }],
    };
  });

  const verifier = (extra: Partial<JwtVerifierOptions> = {}) =>
    createJwtVerifier({
      ...OPTIONS,
      fetch: () => Promise.resolve(Response.json(jwks)),
      now: () => NOW_MS,
      clockToleranceSeconds: 30,
      ...extra,
    });

  const token = (claims: Record<string, unknown>): Promise<string> =>
    new SignJWT({
      iss: OPTIONS.issuer,
      aud: OPTIONS.audience,
      azp: OPTIONS.audience,
      typ: 'Bearer',
      sub: randomUUID(),
      tenant_id: randomUUID(),
      iat: NOW,
      exp: NOW + 300,
      ...claims,
    })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' })
      .sign(privateKey);

  const outcome = async (using: JwtVerifier, claims: Record<string, unknown>) => {
    const jwt = await token(claims);
    try {
      await using.verify(jwt);
      return 'accepted';
    } catch (error) {
      expect(error).toBeInstanceOf(AuthError);
      const { code, status, failure, message } = error as AuthError;
      // The reason says why; the token (or any part of it) is never in it.
      for (const part of jwt.split('.')) expect(message).not.toContain(part);
      return `${status} ${code} ${failure}`;
    }
  };

  it('refuses an iat beyond now + the clock tolerance; accepts one within it', async () => {
    const v = verifier();
    expect(await outcome(v, { iat: NOW + 3600, exp: NOW + 3900 })).toBe(
      '401 TOKEN_INVALID issued_in_future',
    );
    expect(await outcome(v, { iat: NOW + 31, exp: NOW + 331 })).toBe(
      '401 TOKEN_INVALID issued_in_future',
    );
    expect(await outcome(v, { iat: NOW + 30, exp: NOW + 330 })).toBe('accepted');
    expect(await outcome(v, { iat: NOW - 10, exp: NOW + 290 })).toBe('accepted');
  });

  it('refuses a lifetime (exp − iat) over maxTokenLifetimeSeconds, 3600 by default', async () => {
    const v = verifier();
    expect(await outcome(v, { exp: NOW + 10 * 365 * 86_400 })).toBe('401 TOKEN_INVALID lifetime');
    expect(await outcome(v, { exp: NOW + 3601 })).toBe('401 TOKEN_INVALID lifetime');
    expect(await outcome(v, { exp: NOW + 3600 })).toBe('accepted');
    // Keycloak's default access token (300 s) fits the tightest sensible setting.
    const tight = verifier({ maxTokenLifetimeSeconds: 300 });
    expect(await outcome(tight, { exp: NOW + 300 })).toBe('accepted');
    expect(await outcome(tight, { exp: NOW + 301 })).toBe('401 TOKEN_INVALID lifetime');
    // An old iat with a far exp is caught by the lifetime, not let through by its age.
    expect(await outcome(v, { iat: NOW - 86_400, exp: NOW + 60 })).toBe(
      '401 TOKEN_INVALID lifetime',
    );
  });

  it('refuses the nil UUID as tenant_id', async () => {
    const v = verifier();
    expect(await outcome(v, { tenant_id: '00000000-0000-0000-0000-000000000000' })).toBe(
      '401 TOKEN_INVALID tenant',
    );
    expect(await outcome(v, { tenant_id: '00000000-0000-4000-8000-000000000001' })).toBe(
      'accepted',
    );
  });

  it('does not hold a verification behind a readiness probe whose refresh hangs while its keys are fresh', async () => {
    let hang = false;
    let clock = NOW_MS;
    const v = verifier({
      now: () => clock,
      jwksTimeoutMs: 5_000,
      fetch: (_input, init) =>
        hang
          ? new Promise((_resolve, reject) => {
              init?.signal?.addEventListener('abort', () => reject(new Error('aborted')));
            })
          : Promise.resolve(Response.json(jwks)),
    });
    expect(await outcome(v, {})).toBe('accepted');
    // The IdP is black-holed and a probe starts a refresh; the keys are 30 s old, far within
    // their max age (10 min): a token with an unseen signature must not wait for the probe.
    hang = true;
    clock += 30_000;
    const probing = v.health();
    const started = performance.now();
    expect(await outcome(v, {})).toBe('accepted');
    expect(performance.now() - started).toBeLessThan(2_500);
    expect((await probing).status).toBe('degraded');
  });

  it('refuses a maxTokenLifetimeSeconds out of 60…2592000 with INVALID_OPTIONS', () => {
    for (const bad of [0, 59, 2_592_001, 1.5, Number.NaN, '3600']) {
      expect(() =>
        createJwtVerifier({ ...OPTIONS, maxTokenLifetimeSeconds: bad as number }),
      ).toThrowError(
        expect.objectContaining({
          code: 'INVALID_OPTIONS',
          message: expect.stringContaining('maxTokenLifetimeSeconds') as string,
        }),
      );
    }
    expect(() => createJwtVerifier({ ...OPTIONS, maxTokenLifetimeSeconds: 60 })).not.toThrow();
  });
});

describe('health(): the identity provider for readiness', () => {
  const jwks = { keys: [] as JWK[] };
  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    jwks.keys.push({ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' });
  });

  /** An IdP whose answer the test sets: up, refusing, or hanging until the fetch is aborted. */
  function idp() {
    const state = { mode: 'up' as 'up' | 'refused' | 'hang', fetches: 0 };
    const fetch: typeof globalThis.fetch = (_input, init) => {
      state.fetches += 1;
      if (state.mode === 'up') return Promise.resolve(Response.json(jwks));
      if (state.mode === 'refused') {
        return Promise.reject(new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }));
      }
      return new Promise((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(new Error('aborted')));
      });
    };
    return { state, fetch };
  }

  it('ok after a fetch; probes at most once per cooldown, reporting the last fetch between', async () => {
    const { state, fetch } = idp();
    let clock = 1_000_000;
    const v = createJwtVerifier({ ...OPTIONS, fetch, now: () => clock, jwksCooldownMs: 30_000 });
    expect(await v.health()).toEqual({ status: 'ok', keysFetchedAt: 1_000_000 });
    expect(state.fetches).toBe(1);
    state.mode = 'refused';
    clock += 29_000;
    for (let i = 0; i < 20; i += 1) expect((await v.health()).status).toBe('ok');
    expect(state.fetches).toBe(1);
    clock += 1_000;
    expect(await v.health()).toEqual({
      status: 'degraded',
      keysFetchedAt: 1_000_000,
      error: 'fetch failed (ECONNREFUSED)',
    });
    expect(state.fetches).toBe(2);
    state.mode = 'up';
    clock += 30_000;
    expect(await v.health()).toEqual({ status: 'ok', keysFetchedAt: clock });
    expect(v.jwksFetches()).toBe(2);
  });

  it('down when no keys were ever had; degraded, not waiting past a second, when the IdP hangs', async () => {
    const { state, fetch } = idp();
    state.mode = 'refused';
    let clock = 5_000_000;
    const v = createJwtVerifier({ ...OPTIONS, fetch, now: () => clock, jwksTimeoutMs: 5_000 });
    expect(await v.health()).toEqual({
      status: 'down',
      keysFetchedAt: null,
      error: 'fetch failed (ECONNREFUSED)',
    });
    state.mode = 'up';
    clock += 30_000;
    expect((await v.health()).status).toBe('ok');
    state.mode = 'hang';
    clock += 30_000;
    // The probe stops waiting after a second; the fetch runs on to its own timeout.
    expect(await v.health()).toEqual({
      status: 'degraded',
      keysFetchedAt: 5_030_000,
      error: 'the JWKS did not answer within 1000 ms',
    });
  });
});
