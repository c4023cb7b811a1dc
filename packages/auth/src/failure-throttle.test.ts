import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, createMetrics } from '@flowforge/observability';
import { describe, expect, it } from 'vitest';
import { AuthError } from './errors.js';
import {
  clientOfAddress,
  createFailureThrottle,
  type CounterStore,
  type FailureThrottle,
} from './failure-throttle.js';

/** What `assertAllowed` says: `allowed`, or the refusal's code, status and wait. */
async function verdict(throttle: FailureThrottle, client: string): Promise<unknown> {
  try {
    await throttle.assertAllowed(client);
    return 'allowed';
  } catch (error) {
    expect(error).toBeInstanceOf(AuthError);
    const { code, status, retryAfterSeconds, reason } = error as AuthError;
    return { code, status, retryAfterSeconds, reason };
  }
}

function logLines(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'info',
    destination: {
      write: (chunk: string) => {
        for (const line of chunk.split('\n').filter(Boolean)) {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        }
      },
    },
  });
  return { logger, lines };
}

describe('createFailureThrottle in memory', () => {
  it('allows max failures per client, then refuses with 429 and the seconds left in the window', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const { logger, lines } = logLines();
    const throttle = createFailureThrottle({ max: 3, windowSeconds: 60, metrics, logger });
    expect(throttle).toMatchObject({ max: 3, windowSeconds: 60, backend: 'memory' });
    for (let i = 0; i < 3; i += 1) {
      expect(await verdict(throttle, '198.51.100.7')).toBe('allowed');
      await throttle.recordFailure('198.51.100.7');
    }
    const refused = (await verdict(throttle, '198.51.100.7')) as { retryAfterSeconds: number };
    expect(refused).toMatchObject({ code: 'TOO_MANY_FAILURES', status: 429 });
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(59);
    expect(refused.retryAfterSeconds).toBeLessThanOrEqual(60);
    // Other clients count on their own.
    expect(await verdict(throttle, '198.51.100.8')).toBe('allowed');
    expect(await metrics.render()).toContain('flowforge_auth_failures_total{reason="throttled"} 1');
    expect(lines.filter((line) => String(line.msg).includes('reached the limit'))).toEqual([
      expect.objectContaining({ level: 'warn', client: '198.51.100.7', max: 3 }),
    ]);
  });

  it('lets the client try again once its window has passed', async () => {
    const throttle = createFailureThrottle({ max: 1, windowSeconds: 1 });
    await throttle.recordFailure('c');
    expect(await verdict(throttle, 'c')).toMatchObject({ retryAfterSeconds: 1 });
    await sleep(1_100);
    expect(await verdict(throttle, 'c')).toBe('allowed');
  });

  it('reset forgets a client’s failures', async () => {
    const throttle = createFailureThrottle({ max: 1 });
    await throttle.recordFailure('c');
    expect(await verdict(throttle, 'c')).toMatchObject({ code: 'TOO_MANY_FAILURES' });
    await throttle.reset('c');
    expect(await verdict(throttle, 'c')).toBe('allowed');
  });

  it('defaults to 10 failures per 60 s (AUTH_API_KEY_MAX_FAILURES, AUTH_API_KEY_FAILURE_WINDOW_SECONDS)', async () => {
    const throttle = createFailureThrottle();
    expect(throttle).toMatchObject({ max: 10, windowSeconds: 60, backend: 'memory' });
    for (let i = 0; i < 9; i += 1) await throttle.recordFailure('c');
    expect(await verdict(throttle, 'c')).toBe('allowed');
    await throttle.recordFailure('c');
    expect(await verdict(throttle, 'c')).toMatchObject({ code: 'TOO_MANY_FAILURES' });
  });

  it('counts an odd client id (a custom clientOf) under a fixed-size key', async () => {
    const throttle = createFailureThrottle({ max: 1 });
    const long = `proxy-chain ${'x'.repeat(10_000)}`;
    await throttle.recordFailure(long);
    expect(await verdict(throttle, long)).toMatchObject({ code: 'TOO_MANY_FAILURES' });
    expect(await verdict(throttle, `${long}y`)).toBe('allowed');
  });

  it('refuses bad options with one INVALID_OPTIONS', () => {
    expect(() =>
      createFailureThrottle({
        max: 0,
        windowSeconds: 1.5,
        store: { prefix: 'p:' } as unknown as CounterStore,
      }),
    ).toThrowError(
      expect.objectContaining({
        code: 'INVALID_OPTIONS',
        message: expect.stringMatching(
          /max: .*windowSeconds: .*store: expected a CounterStore/,
        ) as string,
      }),
    );
  });
});

describe('createFailureThrottle over a store that fails', () => {
  /** A store whose every call fails, as a Redis that is down does. */
  const broken = (): CounterStore & { calls: number } => {
    const store = {
      prefix: 'flowforge:auth:failures:',
      calls: 0,
      fail(): Promise<never> {
        store.calls += 1;
        return Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6379'));
      },
      get: () => store.fail(),
      set: () => store.fail(),
      incr: () => store.fail(),
      expire: () => store.fail(),
      pttl: () => store.fail(),
      del: () => store.fail(),
    };
    return store;
  };

  it('throttles in memory instead (the insurance limiter): neither open nor refusing everyone', async () => {
    const store = broken();
    const { logger, lines } = logLines();
    const throttle = createFailureThrottle({ max: 2, windowSeconds: 60, store, logger });
    expect(throttle.backend).toBe('store');
    expect(await verdict(throttle, 'a')).toBe('allowed');
    await throttle.recordFailure('a');
    await throttle.recordFailure('a');
    expect(await verdict(throttle, 'a')).toMatchObject({ code: 'TOO_MANY_FAILURES' });
    expect(await verdict(throttle, 'b')).toBe('allowed');
    await throttle.reset('a');
    expect(await verdict(throttle, 'a')).toBe('allowed');
    expect(store.calls).toBeGreaterThan(0);
    // One warning for the outage, not one per call.
    expect(lines.filter((line) => String(line.msg).includes('the store failed'))).toHaveLength(1);
  });
});

describe('clientOfAddress', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['::FFFF:203.0.113.9', '203.0.113.9'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::6', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['64:ff9b::192.0.2.33', '64:ff9b:0:0::/64'],
    [undefined, 'unknown'],
    ['', 'unknown'],
  ])('%s counts as %s', (address, client) => {
    expect(clientOfAddress(address)).toBe(client);
  });
});
