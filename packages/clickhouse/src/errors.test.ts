import { isFlowForgeError } from '@flowforge/kernel';
import { describe, expect, it } from 'vitest';
import { ClickHouseError, isClickHouseError, type ClickHouseErrorCode } from './errors.js';

describe('ClickHouseError', () => {
  it.each<[ClickHouseErrorCode, number, boolean]>([
    ['NOT_CONFIGURED', 503, false],
    ['INVALID_OPTIONS', 500, false],
    ['INVALID_ARGUMENT', 500, false],
    ['SYNTAX_ERROR', 500, false],
    ['UNKNOWN_TABLE', 500, false],
    ['QUERY_INVALID', 500, false],
    ['READONLY', 500, false],
    ['TIMEOUT', 503, true],
    ['AUTH_FAILED', 503, false],
    ['UNAVAILABLE', 503, true],
    ['CANCELLED', 503, false],
    ['CLOSED', 503, false],
    ['QUERY_FAILED', 500, false],
  ])('%s: status %i, retryable %s', (code, status, retryable) => {
    const error = new ClickHouseError(code, 'x');
    expect({ status: error.status, retryable: error.retryable }).toEqual({ status, retryable });
    expect(isFlowForgeError(error, code)).toBe(true);
  });

  it('prefixes the message, keeps cause and server details', () => {
    const cause = new Error('driver');
    const error = new ClickHouseError('SYNTAX_ERROR', 'bad', {
      cause,
      serverCode: 62,
      serverType: 'SYNTAX_ERROR',
      queryId: 'q',
    });
    expect(error.message).toBe('@flowforge/clickhouse: bad');
    expect(error).toMatchObject({
      name: 'ClickHouseError',
      code: 'SYNTAX_ERROR',
      source: '@flowforge/clickhouse',
      reason: 'bad',
      serverCode: 62,
      serverType: 'SYNTAX_ERROR',
      queryId: 'q',
    });
    expect(error.cause).toBe(cause);
    const bare = new ClickHouseError('CLOSED', 'x');
    expect(bare.cause).toBeUndefined();
    expect([bare.serverCode, bare.serverType, bare.queryId]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('isClickHouseError narrows, optionally by code', () => {
    const error = new ClickHouseError('READONLY', 'x');
    expect(isClickHouseError(error)).toBe(true);
    expect(isClickHouseError(error, 'READONLY', 'TIMEOUT')).toBe(true);
    expect(isClickHouseError(error, 'TIMEOUT')).toBe(false);
    expect(isClickHouseError(new Error('x'))).toBe(false);
  });
});
