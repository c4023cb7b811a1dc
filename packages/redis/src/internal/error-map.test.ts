import { describe, expect, it } from 'vitest';
import { RedisError } from '../errors.js';
import { replyPrefix, toRedisError } from './error-map.js';

/** A reply error as ioredis 6 builds it (its class names itself ReplyError). */
function replyError(message: string, command?: { name: string; args: string[] }): Error {
  const error = new Error(message);
  Object.defineProperty(error, 'name', { value: 'ReplyError' });
  if (command) Object.assign(error, { command });
  return error;
}

function named(name: string, message: string, extra: Record<string, unknown> = {}): Error {
  const error = new Error(message);
  Object.defineProperty(error, 'name', { value: name });
  return Object.assign(error, extra);
}

describe('toRedisError', () => {
  it.each([
    ['WRONGPASS invalid username-password pair or user is disabled.', 'AUTH_FAILED', 'WRONGPASS'],
    ['NOAUTH Authentication required.', 'AUTH_FAILED', 'NOAUTH'],
    ["NOPERM this user has no permissions to run the 'get' command", 'PERMISSION_DENIED', 'NOPERM'],
    ["READONLY You can't write against a read only replica.", 'READ_ONLY', 'READONLY'],
    [
      'WRONGTYPE Operation against a key holding the wrong kind of value',
      'WRONG_TYPE',
      'WRONGTYPE',
    ],
    ['CLUSTERDOWN The cluster is down', 'CLUSTER_DOWN', 'CLUSTERDOWN'],
    ["CROSSSLOT Keys in request don't hash to the same slot", 'INVALID_ARGUMENT', 'CROSSSLOT'],
    ['LOADING Redis is loading the dataset in memory', 'UNAVAILABLE', 'LOADING'],
    ['MASTERDOWN Link with MASTER is down', 'UNAVAILABLE', 'MASTERDOWN'],
    ['TRYAGAIN Multiple keys request during rehashing of slot', 'UNAVAILABLE', 'TRYAGAIN'],
    ['BUSY Redis is busy running a script.', 'UNAVAILABLE', 'BUSY'],
    ['ERR unknown command', 'COMMAND_FAILED', 'ERR'],
    ['OOM command not allowed when used memory > maxmemory', 'COMMAND_FAILED', 'OOM'],
    ['NOSCRIPT', 'COMMAND_FAILED', 'NOSCRIPT'],
  ])('maps the reply %s to %s by its first word only', (message, code, reply) => {
    const mapped = toRedisError(replyError(message));
    expect(mapped).toBeInstanceOf(RedisError);
    expect(mapped.code).toBe(code);
    expect(mapped.reply).toBe(reply);
    expect(mapped.message.startsWith('@flowforge/redis: ')).toBe(true);
    expect(mapped.cause).toBeInstanceOf(Error);
  });

  it('does not quote the rest of the reply, which may echo arguments', () => {
    const mapped = toRedisError(
      replyError("ERR unknown command 'x', with args beginning with: 'secret'"),
    );
    expect(mapped.message).not.toContain('secret');
  });

  it.each([
    [new Error('Command timed out'), 'TIMEOUT'],
    [
      named('MaxRetriesPerRequestError', 'Reached the max retries per request limit (which is 0).'),
      'UNAVAILABLE',
    ],
    [new Error("Stream isn't writeable and enableOfflineQueue options is false"), 'UNAVAILABLE'],
    [new Error('Connection is closed.'), 'UNAVAILABLE'],
    [new Error("Cluster isn't ready and enableOfflineQueue options is false"), 'UNAVAILABLE'],
    [named('ClusterAllFailedError', 'Failed to refresh slots cache.'), 'UNAVAILABLE'],
    [new Error('None of startup nodes is available'), 'UNAVAILABLE'],
    [
      new Error('Too many Cluster redirections. Last error: Error: Connection is closed.'),
      'UNAVAILABLE',
    ],
    [new Error('All sentinels are unreachable. Retrying from scratch after 10ms.'), 'UNAVAILABLE'],
    [named('AbortError', 'Command aborted due to connection close'), 'UNAVAILABLE'],
    [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), {
        code: 'ECONNREFUSED',
        syscall: 'connect',
      }),
      'UNAVAILABLE',
    ],
    [Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 'UNAVAILABLE'],
    [Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' }), 'UNAVAILABLE'],
    [Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }), 'UNAVAILABLE'],
    [Object.assign(new Error('getaddrinfo ENOTFOUND redis'), { code: 'ENOTFOUND' }), 'UNAVAILABLE'],
    // Node's connect to a host with several addresses fails with every attempt's error.
    [
      new AggregateError(
        [
          Object.assign(new Error('connect ECONNREFUSED ::1:6379'), { code: 'ECONNREFUSED' }),
          Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), {
            code: 'ECONNREFUSED',
          }),
        ],
        '',
      ),
      'UNAVAILABLE',
    ],
    [
      new Error('wrapped', {
        cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      }),
      'UNAVAILABLE',
    ],
    [
      new Error('Connection in subscriber mode, only subscriber commands may be used'),
      'COMMAND_FAILED',
    ],
    [new TypeError('something else'), 'COMMAND_FAILED'],
    ['a string', 'COMMAND_FAILED'],
    [undefined, 'COMMAND_FAILED'],
  ])('maps %s to %s', (error, code) => {
    expect(toRedisError(error).code).toBe(code);
  });

  it('passes a RedisError through unchanged', () => {
    const error = new RedisError('CLOSED', 'closed');
    expect(toRedisError(error)).toBe(error);
  });

  it('drops the arguments ioredis hangs on the cause (HELLO and AUTH carry the password)', () => {
    const cause = replyError('WRONGPASS invalid username-password pair', {
      name: 'hello',
      args: ['3', 'AUTH', 'default', 'hunter2'],
    });
    const mapped = toRedisError(cause);
    expect(JSON.stringify(mapped.cause)).not.toContain('hunter2');
    expect((mapped.cause as { command: unknown }).command).toEqual({ name: 'hello' });
  });
});

describe('replyPrefix', () => {
  it('is the first word, or the whole reply', () => {
    expect(replyPrefix('WRONGTYPE Operation against')).toBe('WRONGTYPE');
    expect(replyPrefix('NOSCRIPT')).toBe('NOSCRIPT');
  });
});
