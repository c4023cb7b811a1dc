import { isFlowForgeError } from '@flowforge/kernel';
import { describe, expect, it } from 'vitest';
import { AuthError, isAuthError, type AuthErrorCode } from './errors.js';

describe('AuthError', () => {
  it('answers each code with its HTTP status and retryability', () => {
    const table: Record<AuthErrorCode, [status: number, retryable: boolean]> = {
      CREDENTIALS_MISSING: [401, false],
      REQUEST_INVALID: [400, false],
      INPUT_INVALID: [400, false],
      TOKEN_INVALID: [401, false],
      TOKEN_EXPIRED: [401, false],
      API_KEY_INVALID: [401, false],
      TICKET_INVALID: [401, false],
      INSUFFICIENT_SCOPE: [403, false],
      TOO_MANY_FAILURES: [429, true],
      IDP_UNAVAILABLE: [503, true],
      STORE_UNAVAILABLE: [503, true],
      TICKETS_FULL: [503, true],
      NOT_CONFIGURED: [503, false],
      NO_PRINCIPAL: [500, false],
      INVALID_OPTIONS: [500, false],
    };
    for (const [code, [status, retryable]] of Object.entries(table)) {
      const error = new AuthError(code as AuthErrorCode, 'x');
      // statusCode is what Fastify reads; it stays on AuthError alone.
      expect([code, error.status, error.statusCode, error.retryable]).toEqual([
        code,
        status,
        status,
        retryable,
      ]);
    }
  });

  it('is client-safe, prefixed, and carries the cause and a refused token’s failure', () => {
    const cause = new Error('jose said no');
    const error = new AuthError('TOKEN_EXPIRED', 'the token has expired', {
      cause,
      failure: 'expired',
    });
    expect(error.name).toBe('AuthError');
    expect(error.message).toBe('@flowforge/auth: the token has expired');
    expect(error.reason).toBe('the token has expired');
    expect(error.source).toBe('@flowforge/auth');
    expect(error.clientSafe).toBe(true);
    expect(error.cause).toBe(cause);
    expect(error.failure).toBe('expired');
    expect(new AuthError('CREDENTIALS_MISSING', 'x').failure).toBeUndefined();
  });

  it('carries the seconds a throttled client should wait, for Retry-After; no challenge on a 429', () => {
    const error = new AuthError('TOO_MANY_FAILURES', 'too many failed attempts', {
      retryAfterSeconds: 42,
    });
    expect(error).toMatchObject({ status: 429, retryable: true, retryAfterSeconds: 42 });
    expect(error.challenge('r', 'ApiKey')).toBeUndefined();
    expect(new AuthError('API_KEY_INVALID', 'x').retryAfterSeconds).toBeUndefined();
  });

  it('is recognised by isAuthError (optionally by code) and by the kernel', () => {
    const error = new AuthError('IDP_UNAVAILABLE', 'down');
    expect(isAuthError(error)).toBe(true);
    expect(isAuthError(error, 'IDP_UNAVAILABLE', 'STORE_UNAVAILABLE')).toBe(true);
    expect(isAuthError(error, 'TOKEN_INVALID')).toBe(false);
    expect(isAuthError(new Error('x'))).toBe(false);
    expect(isFlowForgeError(error, 'IDP_UNAVAILABLE')).toBe(true);
  });

  it('gives an RFC 6750 challenge described by the reason, for 400/401/403 only', () => {
    expect(new AuthError('TOKEN_EXPIRED', 'the token has expired').challenge('flowforge')).toBe(
      'Bearer realm="flowforge", error="invalid_token", error_description="the token has expired"',
    );
    expect(new AuthError('CREDENTIALS_MISSING', 'x').challenge('flowforge')).toBe(
      'Bearer realm="flowforge"',
    );
    expect(new AuthError('API_KEY_INVALID', 'invalid API key').challenge('r', 'ApiKey')).toBe(
      'ApiKey realm="r", error="invalid_token", error_description="invalid API key"',
    );
    expect(new AuthError('TICKET_INVALID', 'invalid stream ticket').challenge('r')).toBe(
      'Bearer realm="r", error="invalid_token", error_description="invalid stream ticket"',
    );
    expect(new AuthError('INSUFFICIENT_SCOPE', 'x').challenge('r')).toContain(
      'error="insufficient_scope"',
    );
    expect(new AuthError('INPUT_INVALID', 'x').challenge('r')).toBeUndefined();
    expect(new AuthError('IDP_UNAVAILABLE', 'x').challenge('r')).toBeUndefined();
    expect(new AuthError('INVALID_OPTIONS', 'x').challenge('r')).toBeUndefined();
  });

  it('cannot break out of the quoted challenge', () => {
    expect(new AuthError('TOKEN_INVALID', 'a "quoted" \\ message').challenge('re"alm')).toBe(
      'Bearer realm="realm", error="invalid_token", error_description="a quoted  message"',
    );
  });
});
