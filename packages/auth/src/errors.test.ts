import { describe, expect, it } from 'vitest';
import { AuthError } from './errors.js';

describe('AuthError', () => {
  it('carries the HTTP status and an RFC 6750 challenge', () => {
    expect(new AuthError('TOKEN_EXPIRED', 'the token has expired').challenge('flowforge')).toBe(
      'Bearer realm="flowforge", error="invalid_token", error_description="the token has expired"',
    );
    expect(new AuthError('CREDENTIALS_MISSING', 'x').challenge('flowforge')).toBe(
      'Bearer realm="flowforge"',
    );
    expect(new AuthError('REQUEST_INVALID', 'x').status).toBe(400);
    expect(new AuthError('INSUFFICIENT_SCOPE', 'x').challenge('r')).toContain(
      'error="insufficient_scope"',
    );
    expect(new AuthError('IDP_UNAVAILABLE', 'x').status).toBe(503);
    expect(new AuthError('IDP_UNAVAILABLE', 'x').challenge('r')).toBeUndefined();
    expect(new AuthError('NO_PRINCIPAL', 'x').statusCode).toBe(500);
  });

  it('cannot break out of the quoted challenge', () => {
    expect(new AuthError('TOKEN_INVALID', 'a "quoted" \\ message').challenge('re"alm')).toBe(
      'Bearer realm="realm", error="invalid_token", error_description="a quoted  message"',
    );
  });
});
