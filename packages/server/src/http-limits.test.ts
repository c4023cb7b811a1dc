import { describe, expect, it } from 'vitest';
import { isServerError } from './errors.js';
import { httpServerOptions } from './http-limits.js';

describe('httpServerOptions', () => {
  it('bounds a slow client by default: 30 s for a request, 10 s for its headers, checked every second', () => {
    expect(httpServerOptions()).toEqual({
      requestTimeout: 30_000,
      headersTimeout: 10_000,
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: 1_000,
    });
    expect(httpServerOptions({ requestTimeoutMs: 5_000 })).toMatchObject({
      requestTimeout: 5_000,
      headersTimeout: 5_000,
    });
  });

  it('refuses values out of range, and a headers timeout over the request timeout (Node would throw)', () => {
    for (const bad of [
      { requestTimeoutMs: 0 },
      { headersTimeoutMs: 999 },
      { requestTimeoutMs: 1.5 },
    ]) {
      expect(() => httpServerOptions(bad)).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTIONS' }) as Error,
      );
    }
    let error: unknown;
    try {
      httpServerOptions({ requestTimeoutMs: 2_000, headersTimeoutMs: 3_000 });
    } catch (caught) {
      error = caught;
    }
    expect(isServerError(error, 'INVALID_OPTIONS')).toBe(true);
    expect((error as Error).message).toContain('must not exceed requestTimeoutMs');
  });
});
