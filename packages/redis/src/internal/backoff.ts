import type { RetryOptions } from '../options.js';

export type ResolvedRetry = Required<RetryOptions>;

export const DEFAULT_RETRY: ResolvedRetry = {
  initialDelayMs: 100,
  maxDelayMs: 5_000,
  factor: 2,
  jitter: 0.5,
};

/**
 * The delay before reconnect attempt `attempt` (1-based): `initialDelayMs ×
 * factor^(attempt−1)`, capped at `maxDelayMs`, less a random share of up to
 * `jitter` of it. Never gives up: ioredis reconnects for as long as it gets a number.
 */
export function backoffDelay(
  attempt: number,
  retry: ResolvedRetry,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, Math.min(attempt - 1, 64));
  const base = Math.min(retry.maxDelayMs, retry.initialDelayMs * retry.factor ** exponent);
  return Math.max(0, Math.round(base * (1 - retry.jitter * random())));
}
