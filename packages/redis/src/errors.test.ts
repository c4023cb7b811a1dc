import { isFlowForgeError } from '@flowforge/kernel';
import { describe, expect, it } from 'vitest';
import { RedisError, isRedisError, type RedisErrorCode } from './errors.js';

describe('RedisError', () => {
  it.each<[RedisErrorCode, number, boolean]>([
    ['NOT_CONFIGURED', 503, false],
    ['INVALID_OPTIONS', 500, false],
    ['INVALID_ARGUMENT', 500, false],
    ['UNAVAILABLE', 503, true],
    ['TIMEOUT', 503, true],
    ['AUTH_FAILED', 503, false],
    ['PERMISSION_DENIED', 500, false],
    ['READ_ONLY', 500, false],
    ['WRONG_TYPE', 500, false],
    ['CLUSTER_DOWN', 503, true],
    ['COMMAND_FAILED', 500, false],
    ['CLOSED', 503, false],
  ])('%s answers %i and is retryable: %s', (code, status, retryable) => {
    const error = new RedisError(code, 'x');
    expect(error.status).toBe(status);
    expect(error.retryable).toBe(retryable);
  });

  it('is a FlowForgeError prefixed with the package, with the reply word and the cause', () => {
    const cause = new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
    const error = new RedisError('WRONG_TYPE', 'the key holds another type of value', {
      cause,
      reply: 'WRONGTYPE',
    });
    expect(error.name).toBe('RedisError');
    expect(error.message).toBe('@flowforge/redis: the key holds another type of value');
    expect(error.reason).toBe('the key holds another type of value');
    expect(error.source).toBe('@flowforge/redis');
    expect(error.reply).toBe('WRONGTYPE');
    expect(error.cause).toBe(cause);
    expect(isFlowForgeError(error, 'WRONG_TYPE')).toBe(true);
    expect(new RedisError('CLOSED', 'closed').reply).toBeUndefined();
  });

  it('is told apart by isRedisError, optionally by code', () => {
    const error = new RedisError('TIMEOUT', 'late');
    expect(isRedisError(error)).toBe(true);
    expect(isRedisError(error, 'UNAVAILABLE', 'TIMEOUT')).toBe(true);
    expect(isRedisError(error, 'CLOSED')).toBe(false);
    expect(isRedisError(new Error('TIMEOUT'))).toBe(false);
  });
});
