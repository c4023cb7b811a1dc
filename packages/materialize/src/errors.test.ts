import { describe, expect, it } from 'vitest';
import { isMaterializeError, MaterializeError, type MaterializeErrorCode } from './errors.js';

describe('MaterializeError', () => {
  // The package's own table: what a server answers, and what a caller may retry.
  it.each<[MaterializeErrorCode, number, boolean]>([
    ['NOT_CONFIGURED', 503, false],
    ['INVALID_OPTIONS', 500, false],
    ['INVALID_ARGUMENT', 500, false],
    ['UNAVAILABLE', 503, true],
    ['TIMEOUT', 503, true],
    ['AUTH_FAILED', 503, false],
    ['UNKNOWN_VIEW', 500, false],
    ['HISTORY_UNAVAILABLE', 500, false],
    ['CANCELLED', 503, false],
    ['CONNECTION_LOST', 503, true],
    ['CLOSED', 503, false],
    ['QUERY_FAILED', 500, false],
  ])('%s is status %i, retryable %s', (code, status, retryable) => {
    const error = new MaterializeError(code, 'x');
    expect(error.status).toBe(status);
    expect(error.retryable).toBe(retryable);
  });

  it('prefixes the message, keeps code, sqlstate and cause', () => {
    const cause = new Error('driver');
    const error = new MaterializeError('QUERY_FAILED', 'boom', { cause, sqlstate: '42601' });
    expect(error.message).toBe('@flowforge/materialize: boom');
    expect(error.reason).toBe('boom');
    expect(error.name).toBe('MaterializeError');
    expect(error.source).toBe('@flowforge/materialize');
    expect(error.code).toBe('QUERY_FAILED');
    expect(error.sqlstate).toBe('42601');
    expect(error.cause).toBe(cause);
    expect(new MaterializeError('CLOSED', 'x').sqlstate).toBeUndefined();
  });

  it('isMaterializeError narrows by code', () => {
    const error = new MaterializeError('CLOSED', 'x');
    expect(isMaterializeError(error)).toBe(true);
    expect(isMaterializeError(error, 'CLOSED', 'CANCELLED')).toBe(true);
    expect(isMaterializeError(error, 'CANCELLED')).toBe(false);
    expect(isMaterializeError(new Error('x'))).toBe(false);
    expect(isMaterializeError({ code: 'CLOSED' })).toBe(false);
  });
});
