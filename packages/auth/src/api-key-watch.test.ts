import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createApiKeyWatch } from './api-key-watch.js';
import { AuthError } from './errors.js';

// The lookups themselves run against real PostgreSQL: test/api-key-watch.int.test.ts.
const key = { tenantId: randomUUID(), apiKeyId: randomUUID() };

describe('createApiKeyWatch', () => {
  it('checks its options', () => {
    expect(createApiKeyWatch({ database: null }).intervalMs).toBe(30_000);
    const refusal = (options: Parameters<typeof createApiKeyWatch>[0]): AuthError => {
      try {
        createApiKeyWatch(options);
      } catch (error) {
        expect(error).toBeInstanceOf(AuthError);
        return error as AuthError;
      }
      throw new Error('expected INVALID_OPTIONS');
    };
    for (const intervalMs of [99, 3_600_001, 1.5]) {
      const error = refusal({ database: null, intervalMs });
      expect(error.code).toBe('INVALID_OPTIONS');
      expect(error.reason).toMatch(/^intervalMs: /);
    }
    expect(refusal({ database: {} as never }).reason).toContain('database');
  });

  it('watches API keys only: a principal without a key id is INPUT_INVALID', async () => {
    const watch = createApiKeyWatch({ database: null });
    const signal = new AbortController().signal;
    for (const other of [{ tenantId: key.tenantId }, { tenantId: 'x', apiKeyId: key.apiKeyId }]) {
      await expect(watch.until(other, signal)).rejects.toMatchObject({ code: 'INPUT_INVALID' });
    }
  });

  it('without a database: NOT_CONFIGURED', async () => {
    const watch = createApiKeyWatch({ database: null });
    const error: unknown = await watch
      .until(key, new AbortController().signal)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect(error).toMatchObject({ code: 'NOT_CONFIGURED', status: 503 });
  });

  it('an aborted signal: rejects with its reason and watches nothing', async () => {
    let lookups = 0;
    const watch = createApiKeyWatch({
      database: {
        withTenant: () => {
          lookups += 1;
          return Promise.reject(new Error('never called'));
        },
      },
      intervalMs: 100,
    });
    const reason = new Error('stream over');
    await expect(watch.until(key, AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(watch.watching).toBe(0);
    const controller = new AbortController();
    const waiting = watch.until(key, controller.signal);
    expect(watch.watching).toBe(1);
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    expect(watch.watching).toBe(0);
    await watch.close();
    expect(lookups).toBe(0);
  });
});
