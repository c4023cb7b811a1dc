import { describe, expect, it } from 'vitest';
import { isMaterializeError, type MaterializeErrorCode } from '../errors.js';
import type { MaterializeOptions } from '../options.js';
import { backoffDelay } from '@flowforge/kernel';
import { resolveOptions } from './options.js';

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
    [
      'fetchTimeoutMs over one day (Materialize refuses it)',
      { url: URL_, fetchTimeoutMs: 86_400_001 },
    ],
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

  it('names every problem in one message, in the words of every FlowForge option', () => {
    let message = '';
    try {
      resolveOptions({
        url: 'mysql://u:s3cr%40t@h/db',
        name: 'a b',
        poolSize: 0,
        fetchBatchSize: 1.5,
        reconnect: { initialDelayMs: 500, maxDelayMs: 100, maxAttempts: 0 },
      });
    } catch (error) {
      if (!isMaterializeError(error, 'INVALID_OPTIONS')) throw error;
      message = error.message;
    }
    expect(message).toBe(
      '@flowforge/materialize: ' +
        [
          'url: expected the scheme postgres: or postgresql: (got mysql:)',
          'name: expected 1 to 64 letters, digits, _ . : or - (got "a b")',
          'reconnect.maxDelayMs: expected a positive whole number from 500 to 2147483647 (got 100)',
          'reconnect.maxAttempts: expected a positive whole number of at least 1, or Infinity (got 0)',
          'poolSize: expected a positive whole number from 1 to 1000 (got 0)',
          'fetchBatchSize: expected a positive whole number from 1 to 1000000 (got 1.5)',
        ].join('; '),
    );
  });

  it('never echoes the url, even one that does not parse', () => {
    let message = '';
    try {
      resolveOptions({ url: 'postgres://u:s3cr@t@[bad' });
    } catch (error) {
      if (!isMaterializeError(error, 'INVALID_OPTIONS')) throw error;
      message = error.message;
    }
    expect(message).toBe(
      '@flowforge/materialize: url: expected a URL such as postgres://user@host:6875/materialize',
    );
  });
});

describe("the reconnect backoff (the kernel's backoffDelay on resolved options)", () => {
  it('doubles from 100 ms per attempt up to the 10 s cap by default', () => {
    const { reconnect } = resolveOptions({ url: URL_ });
    // random 0: no jitter taken off, the base delay itself.
    const delays = [1, 2, 3, 7, 8, 500].map((attempt) => backoffDelay(attempt, reconnect, () => 0));
    expect(delays).toEqual([100, 200, 400, 6400, 10_000, 10_000]);
  });

  it('takes up to half of each delay off at random: [delay/2, delay]', () => {
    const reconnect = { initialDelayMs: 100, maxDelayMs: 1000, maxAttempts: Infinity };
    // The kernel draws delay × (1 − 0.5 × random): random 1 is the shortest wait.
    expect(backoffDelay(1, reconnect, () => 0)).toBe(100);
    expect(backoffDelay(1, reconnect, () => 1)).toBe(50);
    expect(backoffDelay(3, reconnect, () => 0)).toBe(400);
    expect(backoffDelay(5, reconnect, () => 0)).toBe(1000);
    expect(backoffDelay(500, reconnect, () => 0.5)).toBe(750);
  });
});
