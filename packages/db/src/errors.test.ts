import { isFlowForgeError } from '@flowforge/kernel';
import { describe, expect, it } from 'vitest';
import { DatabaseError, isDatabaseError, type DatabaseErrorCode } from './errors.js';

describe('DatabaseError', () => {
  it('answers each code with its HTTP status and retryability', () => {
    const table: Record<DatabaseErrorCode, [status: number, retryable: boolean]> = {
      NOT_CONFIGURED: [503, false],
      INVALID_OPTIONS: [500, false],
      UNAVAILABLE: [503, true],
      TIMEOUT: [503, true],
      QUERY_TIMEOUT: [503, true],
      UNIQUE_VIOLATION: [409, false],
      FOREIGN_KEY_VIOLATION: [400, false],
      NOT_NULL_VIOLATION: [400, false],
      CHECK_VIOLATION: [400, false],
      INVALID_INPUT: [400, false],
      SERIALIZATION_FAILURE: [503, true],
      TENANT_INVALID: [401, false],
      TENANT_VIOLATION: [500, false],
      PERMISSION_DENIED: [500, false],
      NESTED_TRANSACTION: [500, false],
      TRANSACTION_ABORTED: [500, false],
      MIGRATION_FAILED: [500, false],
      CLOSED: [503, false],
      QUERY_FAILED: [500, false],
    };
    for (const [code, [status, retryable]] of Object.entries(table)) {
      const error = new DatabaseError(code as DatabaseErrorCode, 'x');
      expect([code, error.status, error.retryable]).toEqual([code, status, retryable]);
    }
  });

  it('prefixes the message, keeps the reason, the cause and what the server said', () => {
    const cause = new Error('duplicate key');
    const error = new DatabaseError('UNIQUE_VIOLATION', 'duplicate key (SQLSTATE 23505)', {
      cause,
      sqlstate: '23505',
      constraint: 'notes_title_key',
      table: 'notes',
      column: 'title',
    });
    expect(error.name).toBe('DatabaseError');
    expect(error.message).toBe('@flowforge/db: duplicate key (SQLSTATE 23505)');
    expect(error.reason).toBe('duplicate key (SQLSTATE 23505)');
    expect(error.source).toBe('@flowforge/db');
    expect(error.clientSafe).toBe(false);
    expect(error.cause).toBe(cause);
    expect(error).toMatchObject({
      sqlstate: '23505',
      constraint: 'notes_title_key',
      table: 'notes',
      column: 'title',
    });
    const bare = new DatabaseError('CLOSED', 'the database handle is closed');
    expect([bare.sqlstate, bare.constraint, bare.table, bare.column]).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('is recognised by isDatabaseError (optionally by code) and by the kernel', () => {
    const error = new DatabaseError('TIMEOUT', 'statement timeout');
    expect(isDatabaseError(error)).toBe(true);
    expect(isDatabaseError(error, 'TIMEOUT', 'UNAVAILABLE')).toBe(true);
    expect(isDatabaseError(error, 'UNAVAILABLE')).toBe(false);
    expect(isDatabaseError(new Error('x'))).toBe(false);
    expect(isFlowForgeError(error, 'TIMEOUT')).toBe(true);
  });
});
