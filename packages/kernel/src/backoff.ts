/** How long to wait between attempts to reconnect. */
export interface Backoff {
  /** The delay before the first retry, in ms. */
  readonly initialDelayMs: number;
  /** The longest delay, in ms, however many attempts failed. */
  readonly maxDelayMs: number;
  /** How much the delay grows per attempt. @default 2 */
  readonly factor?: number;
  /**
   * The share of each delay taken off at random, 0 to 1, so clients that lost
   * one server do not come back in step. @default 0.5
   */
  readonly jitter?: number;
}

/**
 * The delay before attempt `attempt` (1-based): `initialDelayMs × factor^(attempt−1)`,
 * capped at `maxDelayMs`, less a random share of up to `jitter` of it; at
 * least 1 ms. `random` is injectable for tests.
 *
 * @example
 * ```ts
 * import { backoffDelay } from '@flowforge/kernel';
 *
 * const backoff = { initialDelayMs: 100, maxDelayMs: 5_000 };
 * console.log(backoffDelay(1, backoff, () => 0)); // 100
 * console.log(backoffDelay(4, backoff, () => 0)); // 800
 * console.log(backoffDelay(30, backoff, () => 0)); // 5000
 * ```
 */
export function backoffDelay(
  attempt: number,
  backoff: Backoff,
  random: () => number = Math.random,
): number {
  const factor = backoff.factor ?? 2;
  const jitter = backoff.jitter ?? 0.5;
  // Past 64 doublings every delay is the cap; the bound keeps `factor ** n` finite.
  const exponent = Math.max(0, Math.min(attempt - 1, 64));
  const base = Math.min(backoff.maxDelayMs, backoff.initialDelayMs * factor ** exponent);
  return Math.max(1, Math.round(base * (1 - jitter * random())));
}
