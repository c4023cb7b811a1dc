import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

const backoff = { initialDelayMs: 100, maxDelayMs: 5_000 };

describe('backoffDelay', () => {
  it('doubles from the initial delay up to the cap, without jitter at random() = 0', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 1000].map((attempt) =>
      backoffDelay(attempt, backoff, () => 0),
    );
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  });

  it('takes off at most the jitter share', () => {
    expect(backoffDelay(1, backoff, () => 0.999_999)).toBe(50);
    expect(backoffDelay(1, { ...backoff, jitter: 0 }, () => 0.9)).toBe(100);
    expect(backoffDelay(2, { ...backoff, factor: 3 }, () => 0)).toBe(300);
    for (let i = 0; i < 1000; i += 1) {
      const delay = backoffDelay(3, backoff);
      expect(delay).toBeGreaterThanOrEqual(200);
      expect(delay).toBeLessThanOrEqual(400);
    }
  });

  it('is at least 1 ms and finite for any attempt', () => {
    expect(backoffDelay(0, { initialDelayMs: 0, maxDelayMs: 0 }, () => 0)).toBe(1);
    expect(backoffDelay(-5, backoff, () => 0)).toBe(100);
    expect(backoffDelay(Number.MAX_SAFE_INTEGER, backoff, () => 0)).toBe(5000);
  });
});
