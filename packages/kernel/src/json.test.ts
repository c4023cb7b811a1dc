import { describe, expect, it } from 'vitest';
import { jsonDepthExceeds } from './json.js';

const MAX_JSON_DEPTH = 32;

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
