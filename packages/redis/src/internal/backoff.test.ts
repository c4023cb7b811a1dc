import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_RETRY } from './backoff.js';

describe('backoffDelay', () => {
  const noJitter = { ...DEFAULT_RETRY, jitter: 0 };

  it('grows exponentially from initialDelayMs and stops at maxDelayMs', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => backoffDelay(attempt, noJitter));
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    expect(backoffDelay(10_000, noJitter)).toBe(5000);
  });

  it('takes up to `jitter` of each delay off at random', () => {
    expect(backoffDelay(3, DEFAULT_RETRY, () => 0)).toBe(400);
    expect(backoffDelay(3, DEFAULT_RETRY, () => 1)).toBe(200);
    expect(backoffDelay(3, DEFAULT_RETRY, () => 0.5)).toBe(300);
    for (let attempt = 1; attempt < 50; attempt += 1) {
      const delay = backoffDelay(attempt, DEFAULT_RETRY);
      expect(delay).toBeGreaterThanOrEqual(50);
      expect(delay).toBeLessThanOrEqual(5000);
    }
  });

  it('never gives up: every attempt gets a number', () => {
    expect(Number.isFinite(backoffDelay(Number.MAX_SAFE_INTEGER, DEFAULT_RETRY))).toBe(true);
    expect(backoffDelay(0, noJitter)).toBe(100);
  });
});
