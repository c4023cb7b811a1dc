import { describe, expect, it } from 'vitest';
import { DatabaseError } from '../errors.js';
import { errorClass, toDatabaseError } from './sqlstate.js';

const serverError = (code: string, message = 'server said no', extra: object = {}): Error =>
  Object.assign(new Error(message), { code, ...extra });

describe('toDatabaseError', () => {
  it.each([
    ['23505', 'UNIQUE_VIOLATION'],
    ['23503', 'FOREIGN_KEY_VIOLATION'],
    ['23502', 'NOT_NULL_VIOLATION'],
    ['23514', 'CHECK_VIOLATION'],
    ['23P01', 'CHECK_VIOLATION'],
    ['22P02', 'INVALID_INPUT'],
    ['22003', 'INVALID_INPUT'],
    ['40001', 'SERIALIZATION_FAILURE'],
    ['40P01', 'SERIALIZATION_FAILURE'],
    ['25P02', 'TRANSACTION_ABORTED'],
    ['57014', 'TIMEOUT'],
    ['55P03', 'TIMEOUT'],
    ['57P01', 'UNAVAILABLE'],
    ['57P03', 'UNAVAILABLE'],
    ['08006', 'UNAVAILABLE'],
    ['53300', 'UNAVAILABLE'],
    ['28P01', 'UNAVAILABLE'],
    ['3D000', 'UNAVAILABLE'],
    ['42501', 'PERMISSION_DENIED'],
    ['42P01', 'QUERY_FAILED'],
  ])('SQLSTATE %s → %s', (sqlstate, code) => {
    const mapped = toDatabaseError(serverError(sqlstate));
    expect(mapped.code).toBe(code);
    expect(mapped.sqlstate).toBe(sqlstate);
  });

  it('tells a row-level security refusal from other 42501s', () => {
    const mapped = toDatabaseError(
      serverError('42501', 'new row violates row-level security policy for table "notes"'),
    );
    expect(mapped.code).toBe('TENANT_VIOLATION');
  });

  it('a role switch the login may not make says how to fix the roles', () => {
    const mapped = toDatabaseError(
      serverError('42501', 'permission denied to set role "flowforge_app"'),
    );
    expect(mapped.code).toBe('PERMISSION_DENIED');
    expect(mapped.sqlstate).toBe('42501');
    expect(mapped.message).toMatch(
      /^@flowforge\/db: permission denied to set role "flowforge_app" \(SQLSTATE 42501\): /,
    );
    expect(mapped.message).toContain('must be a member of flowforge_app');
    expect(mapped.message).toContain('GRANT flowforge_app TO <login role>');
    expect(mapped.message).toContain("log in as the app's login role");
    // Any other 42501 keeps the server's words only.
    expect(toDatabaseError(serverError('42501', 'permission denied for table notes')).message).toBe(
      '@flowforge/db: permission denied for table notes (SQLSTATE 42501)',
    );
  });

  it('keeps the server fields and the original as cause', () => {
    const original = serverError('23505', 'duplicate key', {
      constraint: 'notes_tenant_title_key',
      table: 'notes',
      column: undefined,
    });
    const mapped = toDatabaseError(original);
    expect(mapped).toBeInstanceOf(DatabaseError);
    expect(mapped.cause).toBe(original);
    expect(mapped).toMatchObject({ constraint: 'notes_tenant_title_key', table: 'notes' });
    expect(mapped.column).toBeUndefined();
    expect(mapped.message).toBe('@flowforge/db: duplicate key (SQLSTATE 23505)');
  });

  it.each([
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    [new Error('Connection terminated unexpectedly')],
    [new Error('timeout exceeded when trying to connect')],
    [new Error('Client has encountered a connection error and is not queryable')],
    // Node connecting to every address of a host (::1 and 127.0.0.1), and a wrapped socket error.
    [new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], 'connect')],
    [new Error('read failed', { cause: Object.assign(new Error('y'), { code: 'EPIPE' }) })],
  ])('a lost or refused connection is UNAVAILABLE: %s', (error) => {
    const mapped = toDatabaseError(error);
    expect(mapped.code).toBe('UNAVAILABLE');
    expect(mapped.retryable).toBe(true);
    expect(errorClass(mapped)).toBe('connection');
  });

  it('a used-up pool is CLOSED', () => {
    expect(toDatabaseError(new Error('Cannot use a pool after calling end on the pool')).code).toBe(
      'CLOSED',
    );
  });

  it('anything else is QUERY_FAILED, and a DatabaseError passes through unchanged', () => {
    expect(toDatabaseError('a string').code).toBe('QUERY_FAILED');
    expect(toDatabaseError(new TypeError('bug')).code).toBe('QUERY_FAILED');
    const already = new DatabaseError('TIMEOUT', 'x');
    expect(toDatabaseError(already)).toBe(already);
  });

  it('classes errors for metrics by SQLSTATE class', () => {
    expect(errorClass(toDatabaseError(serverError('23505')))).toBe('23');
    expect(errorClass(toDatabaseError(serverError('57014')))).toBe('57');
    expect(errorClass(new DatabaseError('CLOSED', 'x'))).toBe('closed');
    expect(errorClass(new DatabaseError('QUERY_TIMEOUT', 'x'))).toBe('deadline');
    expect(errorClass(new DatabaseError('NESTED_TRANSACTION', 'x'))).toBe('client');
  });
});
