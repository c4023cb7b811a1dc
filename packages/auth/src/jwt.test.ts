import { describe, expect, it } from 'vitest';
import { ALLOWED_JWT_ALGORITHMS, type JwtAlgorithm } from '@flowforge/config';
import { AuthError } from './errors.js';
import { createJwtVerifier, type JwtVerifierOptions } from './jwt.js';

// Nothing here reaches the JWKS: options fail first, and tokens before key resolution.
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
