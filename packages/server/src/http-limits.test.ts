import { describe, expect, it } from 'vitest';
import { isServerError } from './errors.js';
import { httpServerOptions, jsonDepthExceeds, MAX_JSON_DEPTH } from './http-limits.js';

/** `depth` arrays nested in one another, built without recursion. */
function nested(depth: number): unknown {
  let value: unknown = 0;
  for (let i = 0; i < depth; i += 1) value = [value];
  return value;
}

describe('jsonDepthExceeds', () => {
  it('counts objects and arrays as levels; scalars are depth 0', () => {
    expect(jsonDepthExceeds(7, 0)).toBe(false);
    expect(jsonDepthExceeds(null, 0)).toBe(false);
    expect(jsonDepthExceeds({}, 0)).toBe(true);
    expect(jsonDepthExceeds({}, 1)).toBe(false);
    expect(jsonDepthExceeds({ a: [{ b: 1 }] }, 3)).toBe(false);
    expect(jsonDepthExceeds({ a: [{ b: 1 }] }, 2)).toBe(true);
    expect(jsonDepthExceeds(nested(MAX_JSON_DEPTH), MAX_JSON_DEPTH)).toBe(false);
    expect(jsonDepthExceeds(nested(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)).toBe(true);
  });

  it('walks 100,000 levels without overflowing the stack, and finds depth in any branch', () => {
    expect(jsonDepthExceeds(nested(100_000), MAX_JSON_DEPTH)).toBe(true);
    expect(jsonDepthExceeds({ shallow: 1, deep: { x: nested(40) } }, MAX_JSON_DEPTH)).toBe(true);
    expect(jsonDepthExceeds([1, 'a', { b: [true, null] }], MAX_JSON_DEPTH)).toBe(false);
  });
});

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
