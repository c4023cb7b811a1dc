import { describe, expect, it } from 'vitest';
import { ClickHouseError, isClickHouseError } from './errors.js';

describe('ClickHouseError', () => {
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
      serverCode: 62,
      queryId: 'q',
    });
    expect(error.cause).toBe(cause);
    expect(new ClickHouseError('CLOSED', 'x').cause).toBeUndefined();
  });

  it('is retryable for UNAVAILABLE and TIMEOUT only', () => {
    expect(new ClickHouseError('UNAVAILABLE', 'x').retryable).toBe(true);
    expect(new ClickHouseError('TIMEOUT', 'x').retryable).toBe(true);
    expect(new ClickHouseError('READONLY', 'x').retryable).toBe(false);
    expect(new ClickHouseError('CANCELLED', 'x').retryable).toBe(false);
  });

  it('isClickHouseError narrows, optionally by code', () => {
    const error = new ClickHouseError('READONLY', 'x');
    expect(isClickHouseError(error)).toBe(true);
    expect(isClickHouseError(error, 'READONLY', 'TIMEOUT')).toBe(true);
    expect(isClickHouseError(error, 'TIMEOUT')).toBe(false);
    expect(isClickHouseError(new Error('x'))).toBe(false);
  });
});
