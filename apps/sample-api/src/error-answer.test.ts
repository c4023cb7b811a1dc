import { describe, expect, it } from 'vitest';
import { AuthError } from '@flowforge/auth';
import { ClickHouseError } from '@flowforge/clickhouse';
import { DatabaseError } from '@flowforge/db';
import { MaterializeError } from '@flowforge/materialize';
import { RedisError } from '@flowforge/redis';
import { answerError } from './error-answer.js';
import { storeNotConfigured, widgetNotQueryable } from './errors.js';

const answer = (error: unknown, scheme = 'Bearer') => answerError(error, 'flowforge', scheme);

describe('answerError', () => {
  it('answers a database conflict 409 with a fixed detail, never the server message', () => {
    const error = new DatabaseError('UNIQUE_VIOLATION', 'duplicate key value (name)=(secret)', {
      sqlstate: '23505',
    });
    expect(answer(error)).toEqual({
      problem: {
        title: 'Conflict',
        status: 409,
        detail: 'A record with these values already exists.',
      },
      headers: {},
      log: undefined,
    });
  });

  it('answers a refused value 400 and a tenant-less principal 401 with a challenge', () => {
    const check = answer(new DatabaseError('CHECK_VIOLATION', 'value 42 violates'));
    expect(check.problem).toEqual({
      title: 'Bad Request',
      status: 400,
      detail: 'The request has values the data model refuses.',
    });
    const tenant = answer(new DatabaseError('TENANT_INVALID', 'not a uuid'));
    expect(tenant.problem.status).toBe(401);
    expect(tenant.headers['www-authenticate']).toBe(
      'Bearer realm="flowforge", error="invalid_token"',
    );
  });

  it('answers a store that is down 503 with Retry-After 1 and logs a warning', () => {
    for (const [error, detail] of [
      [
        new DatabaseError('UNAVAILABLE', 'refused'),
        'The database is not available right now; try again.',
      ],
      [
        new ClickHouseError('TIMEOUT', 'slow'),
        'Widget data is not available right now; try again.',
      ],
      [
        new MaterializeError('CONNECTION_LOST', 'gone'),
        'Live data is not available right now; try again.',
      ],
      [
        new RedisError('UNAVAILABLE', 'refused'),
        'The cache is not available right now; try again.',
      ],
    ] as const) {
      expect(answer(error)).toEqual({
        problem: { title: 'Service Unavailable', status: 503, detail },
        headers: { 'retry-after': '1' },
        log: 'warn',
      });
    }
  });

  it('answers a store that is not configured 503 naming the variable, Retry-After 60', () => {
    expect(answer(storeNotConfigured('ClickHouse', 'CLICKHOUSE_URL'))).toEqual({
      problem: {
        title: 'Service Unavailable',
        status: 503,
        detail: 'ClickHouse is not configured: set CLICKHOUSE_URL.',
      },
      headers: { 'retry-after': '60' },
      log: 'warn',
    });
  });

  it('answers a widget that cannot be read 409 with its client-safe reason', () => {
    expect(answer(widgetNotQueryable('Only live widgets stream.')).problem).toEqual({
      title: 'Conflict',
      status: 409,
      detail: 'Only live widgets stream.',
    });
    // Without the route's translation, a view that does not exist is the server's problem.
    expect(answer(new MaterializeError('UNKNOWN_VIEW', 'no view x')).problem.status).toBe(500);
  });

  it('answers auth errors with their status, client-safe message and the scheme of the route', () => {
    const expired = answer(new AuthError('TOKEN_EXPIRED', 'The token has expired.'));
    expect(expired.problem).toEqual({
      title: 'Unauthorized',
      status: 401,
      detail: 'The token has expired.',
    });
    expect(expired.headers['www-authenticate']).toContain('Bearer realm="flowforge"');
    const key = answer(new AuthError('CREDENTIALS_MISSING', 'An API key is required.'), 'ApiKey');
    expect(key.headers['www-authenticate']).toBe('ApiKey realm="flowforge"');
    const idp = answer(new AuthError('IDP_UNAVAILABLE', 'The identity provider is unreachable.'));
    expect(idp.problem.status).toBe(503);
    expect(idp.headers['retry-after']).toBe('5');
  });

  it('answers a closed handle (this instance shutting down) 503 with Retry-After 1', () => {
    expect(answer(new DatabaseError('CLOSED', 'closed')).headers).toEqual({ 'retry-after': '1' });
    expect(answer(new DatabaseError('NOT_CONFIGURED', 'no URL')).headers).toEqual({
      'retry-after': '60',
    });
  });

  it('challenges a tenant-less API key with the scheme of the route', () => {
    expect(
      answer(new DatabaseError('TENANT_INVALID', 'x'), 'ApiKey').headers['www-authenticate'],
    ).toBe('ApiKey realm="flowforge", error="invalid_token"');
  });

  it('describes nothing of a bug: a 500 without detail, logged as an error', () => {
    for (const error of [new RedisError('WRONG_TYPE', 'WRONGTYPE key'), new Error('boom'), null]) {
      expect(answer(error)).toEqual({
        problem: { title: 'Internal Server Error', status: 500 },
        headers: {},
        log: 'error',
      });
    }
  });

  it('keeps the status and reason phrase of the framework’s own 4xx, with its message', () => {
    expect(answer({ statusCode: 415, message: 'Unsupported Media Type: text/plain' })).toEqual({
      problem: {
        title: 'Unsupported Media Type',
        status: 415,
        detail: 'Unsupported Media Type: text/plain',
      },
      headers: {},
      log: undefined,
    });
    expect(answer({ statusCode: 200, message: 'odd' }).problem.status).toBe(500);
  });
});
