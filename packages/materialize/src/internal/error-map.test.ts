import { describe, expect, it } from 'vitest';
import { MaterializeError } from '../errors.js';
import {
  errorKind,
  scrubError,
  StatementTimeoutError,
  toMaterializeError,
  type MapContext,
} from './error-map.js';

/** What node-postgres's DatabaseError carries. */
function serverError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code, severity: 'ERROR' });
}

function systemError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });
}

const context: MapContext = {
  secret: 'hunter2',
  action: 'subscription to v',
  connectTimeoutMs: 5000,
  lost: 'CONNECTION_LOST',
};

describe('toMaterializeError', () => {
  it.each([
    ['28P01', 'password authentication failed for user "m"', 'AUTH_FAILED'],
    ['28000', 'role "x" does not exist', 'AUTH_FAILED'],
    ['42P01', "unknown catalog item 'nope'", 'UNKNOWN_VIEW'],
    ['42703', 'column "x" does not exist', 'INVALID_ARGUMENT'],
    ['XX000', 'Timestamp (5) is not valid for all inputs: [10]', 'HISTORY_UNAVAILABLE'],
    ['22000', 'could not find a valid timestamp for the query', 'HISTORY_UNAVAILABLE'],
    ['22000', 'some other data exception', 'QUERY_FAILED'],
    ['XX000', "unknown catalog item 'nope'", 'UNKNOWN_VIEW'],
    ['XX000', 'column "nope" does not exist', 'INVALID_ARGUMENT'],
    ['XX000', 'internal error', 'QUERY_FAILED'],
    ['53000', 'creating connection would violate max_connections limit', 'UNAVAILABLE'],
    ['25P03', 'terminating connection due to idle-in-transaction timeout', 'CONNECTION_LOST'],
    [
      '53200',
      'SUBSCRIBE fell behind: the client did not read results fast enough',
      'CONNECTION_LOST',
    ],
    ['53200', 'out of memory', 'QUERY_FAILED'],
    ['57014', 'canceling statement due to user request', 'CANCELLED'],
    ['57P01', 'terminating connection due to administrator command', 'CONNECTION_LOST'],
    ['08006', 'connection failure', 'CONNECTION_LOST'],
    ['53300', 'too many connections', 'UNAVAILABLE'],
    ['42601', 'syntax error at or near "x"', 'QUERY_FAILED'],
  ])('maps SQLSTATE %s to its code', (sqlstate, message, code) => {
    const mapped = toMaterializeError(serverError(sqlstate, message), context);
    expect(mapped.code).toBe(code);
    expect(mapped.sqlstate).toBe(sqlstate);
    expect(mapped.message).toMatch(/^@flowforge\/materialize: subscription to v: /);
  });

  it('classifies what Materialize ends a subscription with as resumable, a refused connection as connect', () => {
    expect(errorKind(serverError('25P03', 'terminating connection'))).toBe('lost');
    expect(errorKind(serverError('53200', 'SUBSCRIBE fell behind: …'))).toBe('lost');
    expect(errorKind(serverError('XX000', 'SUBSCRIBE fell behind: …'))).toBe('lost');
    expect(errorKind(serverError('53000', 'creating connection would violate …'))).toBe('connect');
    expect(errorKind(serverError('22000', 'could not find a valid timestamp'))).toBe('server');
  });

  it('maps by the SQLSTATE, not by the message', () => {
    expect(toMaterializeError(serverError('42601', 'unknown catalog item'), context).code).toBe(
      'QUERY_FAILED',
    );
  });

  it.each([
    [systemError('ECONNREFUSED'), 'connect', 'UNAVAILABLE'],
    [systemError('ENOTFOUND'), 'connect', 'UNAVAILABLE'],
    [new Error('Connection terminated due to connection timeout'), 'connect', 'UNAVAILABLE'],
    [new Error('timeout exceeded when trying to connect'), 'pool', 'TIMEOUT'],
    [new Error('Connection terminated unexpectedly'), 'lost', 'CONNECTION_LOST'],
    [systemError('ECONNRESET'), 'lost', 'CONNECTION_LOST'],
    [systemError('EPIPE'), 'lost', 'CONNECTION_LOST'],
    // The kernel's classification: undici's codes, and a code found on a cause.
    [systemError('UND_ERR_SOCKET'), 'lost', 'CONNECTION_LOST'],
    [new Error('wrapped', { cause: systemError('EHOSTUNREACH') }), 'connect', 'UNAVAILABLE'],
    [
      new Error('Client has encountered a connection error and is not queryable'),
      'lost',
      'CONNECTION_LOST',
    ],
    // Too many connections: a reconnect backs off and tries again.
    [serverError('53300', 'too many connections'), 'connect', 'UNAVAILABLE'],
    [new Error('something else'), 'other', 'QUERY_FAILED'],
  ])('classifies %s', (error, kind, code) => {
    expect(errorKind(error)).toBe(kind);
    expect(toMaterializeError(error, context).code).toBe(code);
  });

  it('a lost connection is UNAVAILABLE where no stream is running', () => {
    const mapped = toMaterializeError(new Error('Connection terminated unexpectedly'), {
      ...context,
      lost: 'UNAVAILABLE',
    });
    expect(mapped.code).toBe('UNAVAILABLE');
  });

  it('passes a MaterializeError through', () => {
    const error = new MaterializeError('CLOSED', 'closed');
    expect(toMaterializeError(error, context)).toBe(error);
  });

  it('takes our own bound on an unanswered statement as a lost connection', () => {
    const error = new StatementTimeoutError('FETCH', 10);
    expect(errorKind(error)).toBe('lost');
    expect(toMaterializeError(error, context).code).toBe('CONNECTION_LOST');
  });

  it('removes the password from the message and the cause', () => {
    const cause = serverError('XX000', 'bad password hunter2 and hunter2 again');
    Object.assign(cause, { detail: 'url postgres://u:hunter2@h' });
    const mapped = toMaterializeError(cause, context);
    expect(mapped.message).not.toContain('hunter2');
    // The kernel's marker, the one every FlowForge package writes.
    expect(mapped.message).toContain('[redacted]');
    expect(
      JSON.stringify({
        ...(mapped.cause as object),
        stack: (mapped.cause as Error).stack,
        message: (mapped.cause as Error).message,
      }),
    ).not.toContain('hunter2');
  });
});

describe('scrubError', () => {
  it('scrubs the plain and the percent-encoded secret from every text field, in place', () => {
    const error = Object.assign(new Error('a p@ss b'), { detail: 'url postgres://u:p%40ss@h' });
    expect(scrubError(error, 'p@ss')).toBe(error);
    expect(error.message).toBe('a [redacted] b');
    expect(error.detail).toBe('url postgres://u:[redacted]@h');
    expect(error.stack).not.toContain('p@ss');
  });

  it('scrubs nothing for an empty secret', () => {
    const error = new Error('nothing');
    expect(scrubError(error, '').message).toBe('nothing');
  });

  it('leaves non-errors alone', () => {
    expect(scrubError('hunter2', 'hunter2')).toBe('hunter2');
  });
});
