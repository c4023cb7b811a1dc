import { describe, expect, it } from 'vitest';
import { AuthError } from '@flowforge/auth';
import { ClickHouseError } from '@flowforge/clickhouse';
import { DatabaseError } from '@flowforge/db';
import {
  FlowForgeError,
  defineErrors,
  errorGuard,
  type ErrorCatalog,
  type ErrorGuard,
} from '@flowforge/kernel';
import { MaterializeError } from '@flowforge/materialize';
import { RedisError } from '@flowforge/redis';
import { ServerError, isServerError, storeNotConfigured } from './errors.js';
import { createProblems, problemBody, titleOf, type ErrorAnswer } from './problems.js';

// An app's own errors, declared the way every package declares its own: the kit
// answers them from the catalog alone, with no mapping written for them.
type ShopErrorCode = 'WIDGET_NOT_QUERYABLE' | 'QUOTA_EXCEEDED' | 'RULE_REFUSED';
const SHOP_ERRORS: ErrorCatalog<ShopErrorCode> = defineErrors({
  source: 'sample-shop',
  name: 'ShopError',
  clientSafe: true,
  codes: {
    WIDGET_NOT_QUERYABLE: { status: 409, retryable: false },
    QUOTA_EXCEEDED: { status: 429, retryable: true },
    RULE_REFUSED: { status: 422, retryable: false },
  },
});
class ShopError extends FlowForgeError<ShopErrorCode> {
  readonly retryAfterSeconds: number | undefined;
  constructor(code: ShopErrorCode, reason: string, options?: { retryAfterSeconds?: number }) {
    super(SHOP_ERRORS, code, reason);
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}
const isShopError: ErrorGuard<ShopError> = errorGuard(ShopError);

// The same shape with messages that are not written for clients (a library's text).
type LedgerErrorCode = 'ENTRY_REFUSED' | 'LEDGER_DOWN';
const LEDGER_ERRORS: ErrorCatalog<LedgerErrorCode> = defineErrors({
  source: '@acme/ledger',
  name: 'LedgerError',
  codes: {
    ENTRY_REFUSED: { status: 422, retryable: false },
    LEDGER_DOWN: { status: 503, retryable: true },
  },
});
class LedgerError extends FlowForgeError<LedgerErrorCode> {
  constructor(code: LedgerErrorCode, reason: string) {
    super(LEDGER_ERRORS, code, reason);
  }
}

const problems = createProblems();
const answer = (error: unknown, scheme = 'Bearer'): ErrorAnswer =>
  problems.answer(error, { scheme });

describe('createProblems().answer', () => {
  it('takes the app’s Retry-After policy first, falling back to the kit’s', () => {
    const problems = createProblems({
      retryAfter: (error) => (error.source === '@flowforge/materialize' ? 5 : undefined),
    });
    const live = problems.answer(new MaterializeError('UNAVAILABLE', 'down'));
    expect(live.headers['retry-after']).toBe('5');
    const database = problems.answer(new DatabaseError('UNAVAILABLE', 'down'));
    expect(database.headers['retry-after']).toBe('1');
  });

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
    expect(check.log).toBeUndefined();
    const tenant = answer(new DatabaseError('TENANT_INVALID', 'not a uuid'));
    expect(tenant.problem).toEqual({
      title: 'Unauthorized',
      status: 401,
      detail: 'The credentials carry no usable tenant.',
    });
    expect(tenant.headers['www-authenticate']).toBe(
      'Bearer realm="flowforge", error="invalid_token"',
    );
  });

  it('answers a store that is down 503 with Retry-After 1 and the kit’s words, logged as a warning', () => {
    for (const [error, detail] of [
      [
        new DatabaseError('UNAVAILABLE', 'refused'),
        'The database is not available right now; try again.',
      ],
      [
        new ClickHouseError('TIMEOUT', 'slow'),
        'Analytics data is not available right now; try again.',
      ],
      [
        new MaterializeError('CONNECTION_LOST', 'gone'),
        'Live data is not available right now; try again.',
      ],
      [
        new RedisError('UNAVAILABLE', 'refused'),
        'The cache is not available right now; try again.',
      ],
      [
        new LedgerError('LEDGER_DOWN', 'socket hang up at 10.0.0.7:9000'),
        'A dependency is not available right now; try again.',
      ],
    ] as const) {
      expect(answer(error)).toEqual({
        problem: { title: 'Service Unavailable', status: 503, detail },
        headers: { 'retry-after': '1' },
        log: 'warn',
      });
    }
  });

  it('takes the app’s words for a store that is down (`unavailable`), merged over the kit’s', () => {
    const own = createProblems({
      unavailable: {
        '@flowforge/clickhouse': 'Widget data is not available right now; try again.',
        '@acme/ledger': 'The ledger is resting.',
      },
    });
    expect(own.answer(new ClickHouseError('UNAVAILABLE', 'refused')).problem.detail).toBe(
      'Widget data is not available right now; try again.',
    );
    expect(own.answer(new LedgerError('LEDGER_DOWN', 'x')).problem.detail).toBe(
      'The ledger is resting.',
    );
    // The kit's words for the stores the app did not name are kept.
    expect(own.answer(new RedisError('UNAVAILABLE', 'refused')).problem.detail).toBe(
      'The cache is not available right now; try again.',
    );
  });

  it('answers a store that is not configured 503 naming the variable, Retry-After 60', () => {
    const error = storeNotConfigured('ClickHouse', 'CLICKHOUSE_URL');
    expect(isServerError(error, 'NOT_CONFIGURED')).toBe(true);
    expect(error.retryable).toBe(false);
    expect(answer(error)).toEqual({
      problem: {
        title: 'Service Unavailable',
        status: 503,
        detail: 'ClickHouse is not configured: set CLICKHOUSE_URL.',
      },
      headers: { 'retry-after': '60' },
      // A refusal in words for clients: the access line (warn, reason) is the one line.
      log: undefined,
    });
  });

  it('answers an app-defined error from its catalog alone: status and client-safe reason', () => {
    const error = new ShopError('WIDGET_NOT_QUERYABLE', 'Only live widgets stream.');
    expect(isShopError(error, 'WIDGET_NOT_QUERYABLE')).toBe(true);
    expect(answer(error)).toEqual({
      problem: { title: 'Conflict', status: 409, detail: 'Only live widgets stream.' },
      headers: {},
      log: undefined,
    });
    expect(answer(new ShopError('RULE_REFUSED', 'Names are at most 80 characters.'))).toEqual({
      problem: {
        title: 'Unprocessable Entity',
        status: 422,
        detail: 'Names are at most 80 characters.',
      },
      headers: {},
      log: undefined,
    });
    // Without the route's translation, a view that does not exist is the server's problem.
    expect(answer(new MaterializeError('UNKNOWN_VIEW', 'no view x')).problem).toEqual({
      title: 'Internal Server Error',
      status: 500,
    });
  });

  it('never shows the message of a 4xx that is not client-safe; `clientDetail` gives words for its code', () => {
    const error = new LedgerError('ENTRY_REFUSED', 'row {"iban":"DE89…"} refused by trigger');
    expect(answer(error).problem).toEqual({ title: 'Unprocessable Entity', status: 422 });
    const own = createProblems({
      clientDetail: {
        ENTRY_REFUSED: 'The ledger refused this entry.',
        UNIQUE_VIOLATION: 'That name is taken.',
      },
    });
    expect(own.answer(error).problem.detail).toBe('The ledger refused this entry.');
    expect(own.answer(new DatabaseError('UNIQUE_VIOLATION', 'x')).problem.detail).toBe(
      'That name is taken.',
    );
    // The kit's words for the codes the app did not name are kept.
    expect(own.answer(new DatabaseError('TENANT_INVALID', 'x')).problem.detail).toBe(
      'The credentials carry no usable tenant.',
    );
  });

  it('answers auth errors with their status, client-safe message and the scheme of the route', () => {
    const expired = answer(new AuthError('TOKEN_EXPIRED', 'The token has expired.'));
    expect(expired.problem).toEqual({
      title: 'Unauthorized',
      status: 401,
      detail: 'The token has expired.',
    });
    expect(expired.headers['www-authenticate']).toBe(
      'Bearer realm="flowforge", error="invalid_token", error_description="The token has expired."',
    );
    const key = answer(new AuthError('CREDENTIALS_MISSING', 'An API key is required.'), 'ApiKey');
    expect(key.headers['www-authenticate']).toBe('ApiKey realm="flowforge"');
    const scope = answer(new AuthError('INSUFFICIENT_SCOPE', 'The admin role is required.'));
    expect(scope.problem.status).toBe(403);
    expect(scope.headers['www-authenticate']).toContain('error="insufficient_scope"');
    // Bad input to an API-key function is not an authentication failure: no challenge.
    expect(answer(new AuthError('INPUT_INVALID', 'The name is blank.')).headers).toEqual({});
    const idp = answer(new AuthError('IDP_UNAVAILABLE', 'The identity provider is unreachable.'));
    expect(idp).toEqual({
      problem: {
        title: 'Service Unavailable',
        status: 503,
        detail: 'The identity provider is unreachable.',
      },
      headers: { 'retry-after': '5' },
      log: undefined,
    });
  });

  it('names the configured realm in every challenge', () => {
    const own = createProblems({ realm: 'embed' });
    expect(
      own.answer(new AuthError('CREDENTIALS_MISSING', 'x'), { scheme: 'ApiKey' }).headers,
    ).toEqual({ 'www-authenticate': 'ApiKey realm="embed"' });
    expect(own.answer(new DatabaseError('TENANT_INVALID', 'x')).headers).toEqual({
      'www-authenticate': 'Bearer realm="embed", error="invalid_token"',
    });
    // No context: the scheme is Bearer.
    expect(own.answer(new AuthError('CREDENTIALS_MISSING', 'x')).headers).toEqual({
      'www-authenticate': 'Bearer realm="embed"',
    });
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

  it('sends Retry-After on a 429 too: 5 unless the error says', () => {
    expect(answer(new ShopError('QUOTA_EXCEEDED', 'At most 10 exports a day.'))).toEqual({
      problem: { title: 'Too Many Requests', status: 429, detail: 'At most 10 exports a day.' },
      headers: { 'retry-after': '5' },
      log: undefined,
    });
    const streams = new ServerError(
      'TOO_MANY_STREAMS',
      'At most 2 live streams per user at once.',
      {
        retryAfterSeconds: 5,
      },
    );
    expect(answer(streams).headers).toEqual({ 'retry-after': '5' });
    expect(answer(streams).problem.detail).toBe('At most 2 live streams per user at once.');
  });

  it('lets `retryAfterSeconds` on an error win over the default', () => {
    expect(
      answer(new ShopError('QUOTA_EXCEEDED', 'x', { retryAfterSeconds: 3600 })).headers,
    ).toEqual({ 'retry-after': '3600' });
    const shutting = new ServerError('SHUTTING_DOWN', 'The server is shutting down; reconnect.', {
      retryAfterSeconds: 0,
    });
    expect(answer(shutting).headers).toEqual({ 'retry-after': '0' });
    const full = new ServerError('STREAMS_FULL', 'Every slot is taken.', { retryAfterSeconds: 30 });
    expect(answer(full)).toEqual({
      problem: { title: 'Service Unavailable', status: 503, detail: 'Every slot is taken.' },
      headers: { 'retry-after': '30' },
      log: undefined,
    });
  });

  it('sends Retry-After as whole seconds only: a fraction rounds up, a value that is no delay is ignored', () => {
    // RFC 9110 §10.2.3: delay-seconds is 1*DIGIT.
    const after = (retryAfterSeconds: number): string | undefined =>
      answer(new ShopError('QUOTA_EXCEEDED', 'x', { retryAfterSeconds })).headers['retry-after'];
    expect(after(1.5)).toBe('2');
    expect(after(-1)).toBe('5');
    expect(after(Number.NaN)).toBe('5');
    expect(after(Infinity)).toBe('5');
  });

  it('tries the app’s `map` first, and falls back to the kit when it answers undefined', () => {
    class ZodLikeError extends Error {
      readonly issues = [{ path: ['name'], message: 'Required' }];
    }
    const seen: unknown[] = [];
    const own = createProblems({
      map(error, context) {
        seen.push(context.scheme);
        if (error instanceof ZodLikeError) {
          return {
            problem: { title: 'Unprocessable Entity', status: 422, detail: 'name: Required' },
            headers: {},
            log: undefined,
          };
        }
        // Tried before the kit: it may answer one of ours its own way.
        if (isShopError(error, 'WIDGET_NOT_QUERYABLE')) {
          return { problem: { title: 'Gone', status: 410 }, headers: {}, log: undefined };
        }
        return undefined;
      },
    });
    expect(own.answer(new ZodLikeError('invalid'), { scheme: 'ApiKey' }).problem).toEqual({
      title: 'Unprocessable Entity',
      status: 422,
      detail: 'name: Required',
    });
    expect(own.answer(new ShopError('WIDGET_NOT_QUERYABLE', 'x')).problem.status).toBe(410);
    expect(own.answer(new DatabaseError('UNAVAILABLE', 'x')).problem.status).toBe(503);
    expect(own.answer(new Error('boom')).problem).toEqual({
      title: 'Internal Server Error',
      status: 500,
    });
    expect(seen).toEqual(['ApiKey', undefined, undefined, undefined]);
  });

  it('describes nothing of a bug: a 500 without detail, logged as an error', () => {
    for (const error of [
      new RedisError('WRONG_TYPE', 'WRONGTYPE key'),
      new ServerError('INVALID_OPTIONS', 'readiness already has a check named "db"'),
      new Error('boom: password=hunter2'),
      null,
      undefined,
      'a thrown string',
      42,
    ]) {
      expect(answer(error)).toEqual({
        problem: { title: 'Internal Server Error', status: 500 },
        headers: {},
        log: 'error',
      });
    }
  });

  it('keeps the status and reason phrase of a framework’s own 4xx (`statusCode`), with its message', () => {
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
    expect(answer({ statusCode: 404.5, message: 'odd' }).problem.status).toBe(500);
    expect(answer({ statusCode: 400, message: '' }).problem).toEqual({
      title: 'Bad Request',
      status: 400,
    });
  });

  it('reads Express’s `status` (http-errors) as well as `statusCode`', () => {
    // What express.json() passes to next() for a body over its limit: both fields set.
    const tooLarge = Object.assign(new Error('request entity too large'), {
      status: 413,
      statusCode: 413,
      expose: true,
      type: 'entity.too.large',
    });
    expect(answer(tooLarge)).toEqual({
      problem: { title: 'Payload Too Large', status: 413, detail: 'request entity too large' },
      headers: {},
      log: undefined,
    });
    // Only `status`, as some middleware sets it.
    expect(
      answer(Object.assign(new Error('Unexpected token } in JSON'), { status: 400 })).problem,
    ).toEqual({ title: 'Bad Request', status: 400, detail: 'Unexpected token } in JSON' });
  });

  it('does not describe a framework’s 5xx, and logs it as an error', () => {
    expect(answer({ statusCode: 502, message: 'upstream 10.0.0.7 refused' })).toEqual({
      problem: { title: 'Bad Gateway', status: 502 },
      headers: {},
      log: 'error',
    });
  });
});

describe('problemBody', () => {
  it('adds about:blank, the request id and its URN as the instance', () => {
    expect(problemBody('req-1', { title: 'Not Found', status: 404, detail: 'No route.' })).toEqual({
      type: 'about:blank',
      title: 'Not Found',
      status: 404,
      detail: 'No route.',
      instance: 'urn:request:req-1',
      request_id: 'req-1',
    });
    expect(
      problemBody('req-2', { type: 'https://errors.example/quota', title: 'x', status: 429 }).type,
    ).toBe('https://errors.example/quota');
  });
});

describe('titleOf', () => {
  it('is the reason phrase, or a generic one for a status Node does not name', () => {
    expect(titleOf(503)).toBe('Service Unavailable');
    expect(titleOf(599)).toBe('Internal Server Error');
    expect(titleOf(499)).toBe('Bad Request');
  });
});
