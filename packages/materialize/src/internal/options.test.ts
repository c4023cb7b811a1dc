import { describe, expect, it } from 'vitest';
import { isMaterializeError, type MaterializeErrorCode } from '../errors.js';
import type { MaterializeOptions } from '../options.js';
import { backoffDelay, resolveOptions } from './options.js';

const URL_ = 'postgres://materialize:s3cr%40t@127.0.0.1:6875/materialize';

function codeOf(options: MaterializeOptions): MaterializeErrorCode | undefined {
  try {
    resolveOptions(options);
  } catch (error) {
    if (isMaterializeError(error)) {
      expect(error.message).not.toContain('s3cr');
      return error.code;
    }
    throw error;
  }
  return undefined;
}

describe('resolveOptions', () => {
  it('applies the defaults', () => {
    const resolved = resolveOptions({ url: URL_ });
    expect(resolved).toMatchObject({
      name: 'materialize',
      poolSize: 5,
      connectTimeoutMs: 5000,
      fetchBatchSize: 1000,
      fetchTimeoutMs: 1000,
      optional: false,
      reconnect: { initialDelayMs: 100, maxDelayMs: 10_000, maxAttempts: Infinity },
      safeUrl: 'postgres://127.0.0.1:6875/materialize',
      password: 's3cr@t',
    });
  });

  it('takes settings.materialize as it is', () => {
    expect(resolveOptions({ url: URL_, poolSize: 9 }).poolSize).toBe(9);
  });

  it('is NOT_CONFIGURED without a url', () => {
    expect(codeOf({ url: null })).toBe('NOT_CONFIGURED');
    expect(codeOf({})).toBe('NOT_CONFIGURED');
    expect(codeOf({ url: '' })).toBe('NOT_CONFIGURED');
  });

  it.each<[string, MaterializeOptions]>([
    ['a non-URL', { url: 'not a url' }],
    ['another scheme', { url: 'mysql://h/db' }],
    ['a bad escape in the password', { url: 'postgres://u:%zz@h/db' }],
    ['poolSize 0', { url: URL_, poolSize: 0 }],
    ['a fractional poolSize', { url: URL_, poolSize: 1.5 }],
    ['fetchTimeoutMs 0', { url: URL_, fetchTimeoutMs: 0 }],
    ['fetchBatchSize 0', { url: URL_, fetchBatchSize: 0 }],
    ['connectTimeoutMs -1', { url: URL_, connectTimeoutMs: -1 }],
    ['a bad name', { url: URL_, name: 'a b' }],
    [
      'maxDelayMs below initialDelayMs',
      { url: URL_, reconnect: { initialDelayMs: 500, maxDelayMs: 100 } },
    ],
    ['maxAttempts 0', { url: URL_, reconnect: { maxAttempts: 0 } }],
    ['optional not a boolean', { url: URL_, optional: 'yes' as unknown as boolean }],
  ])('refuses %s (INVALID_OPTIONS)', (_what, options) => {
    expect(codeOf(options)).toBe('INVALID_OPTIONS');
  });
});

describe('backoffDelay', () => {
  const reconnect = { initialDelayMs: 100, maxDelayMs: 1000, maxAttempts: Infinity };

  it('doubles per attempt up to the cap, jittered into [delay/2, delay]', () => {
    expect(backoffDelay(reconnect, 1, () => 1)).toBe(100);
    expect(backoffDelay(reconnect, 1, () => 0)).toBe(50);
    expect(backoffDelay(reconnect, 3, () => 1)).toBe(400);
    expect(backoffDelay(reconnect, 5, () => 1)).toBe(1000);
    expect(backoffDelay(reconnect, 500, () => 0.5)).toBe(750);
  });
});
