import { describe, expect, it } from 'vitest';
import { isMaterializeError, MaterializeError } from './errors.js';

describe('MaterializeError', () => {
  it('prefixes the message, keeps code, sqlstate and cause', () => {
    const cause = new Error('driver');
    const error = new MaterializeError('QUERY_FAILED', 'boom', { cause, sqlstate: '42601' });
    expect(error.message).toBe('@flowforge/materialize: boom');
    expect(error.name).toBe('MaterializeError');
    expect(error.code).toBe('QUERY_FAILED');
    expect(error.sqlstate).toBe('42601');
    expect(error.cause).toBe(cause);
    expect(error.retryable).toBe(false);
  });

  it('is retryable for UNAVAILABLE, TIMEOUT and CONNECTION_LOST only', () => {
    expect(new MaterializeError('UNAVAILABLE', 'x').retryable).toBe(true);
    expect(new MaterializeError('TIMEOUT', 'x').retryable).toBe(true);
    expect(new MaterializeError('CONNECTION_LOST', 'x').retryable).toBe(true);
    expect(new MaterializeError('CANCELLED', 'x').retryable).toBe(false);
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
