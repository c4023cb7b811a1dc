import { networkFailureOf } from '@flowforge/kernel';
import { DatabaseError, type DatabaseErrorCode } from '../errors.js';

/** The fields node-postgres and PGlite put on a server error (and Node on a socket error). */
interface DriverErrorShape {
  readonly code?: unknown;
  readonly message?: unknown;
  readonly constraint?: unknown;
  readonly table?: unknown;
  readonly column?: unknown;
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

/**
 * node-postgres reports a lost or refused connection with plain Errors (no
 * `code`, so the kernel's `networkFailureOf` cannot see them); these are its
 * messages (pg 8.x, pg-pool 3.x). Matching them is the only way to tell them
 * from a bug, and an unknown message still maps to QUERY_FAILED, never lost.
 */
const CONNECTION_MESSAGES = [
  'Connection terminated',
  'connection error and is not queryable',
  'Client was closed and is not queryable',
  'timeout exceeded when trying to connect',
  'timeout expired',
  'Connection terminated due to connection timeout',
];

const CLOSED_MESSAGES = [
  'Cannot use a pool after calling end on the pool',
  'driver has already been destroyed',
  'PGlite is closed',
  'PGlite instance is already closed',
];

function codeForSqlstate(sqlstate: string, message: string): DatabaseErrorCode {
  switch (sqlstate) {
    case '23505':
      return 'UNIQUE_VIOLATION';
    case '23503':
      return 'FOREIGN_KEY_VIOLATION';
    case '23502':
      return 'NOT_NULL_VIOLATION';
    case '23514':
    case '23P01':
      return 'CHECK_VIOLATION';
    case '40001':
    case '40P01':
      return 'SERIALIZATION_FAILURE';
    case '25P02':
      return 'TRANSACTION_ABORTED';
    case '57014': // statement_timeout (or a cancel)
    case '55P03': // lock_timeout
    case '25P03': // idle_in_transaction_session_timeout
      return 'TIMEOUT';
    case '57P01': // admin_shutdown: the server is restarting
    case '57P02': // crash_shutdown
    case '57P03': // cannot_connect_now: still starting
    case '57P05': // idle_session_timeout
    case '53300': // too_many_connections
    case '53100': // disk_full
    case '53200': // out_of_memory
    case '3D000': // the database does not exist
    case '28000': // login refused
    case '28P01': // bad password
      return 'UNAVAILABLE';
    case '42501':
      // Row-level security has no SQLSTATE of its own, only this message.
      return message.includes('row-level security') ? 'TENANT_VIOLATION' : 'PERMISSION_DENIED';
    default:
      if (sqlstate.startsWith('08')) return 'UNAVAILABLE';
      if (sqlstate.startsWith('22')) return 'INVALID_INPUT';
      return 'QUERY_FAILED';
  }
}

/** PostgreSQL's refusal of `SET ROLE` (PostgreSQL 15: the whole message; 16+ adds a detail). */
const SET_ROLE_REFUSED = /^permission denied to set role "([^"]+)"/;

/**
 * What to do about a server error whose fix is not obvious from the server's
 * words, or undefined. A refused role switch is a deployment mistake (the
 * login role is not a member of the app role, typically DATABASE_URL naming
 * the schema owner), and it only shows on the first `withTenant`.
 */
function hintFor(sqlstate: string, message: string): string | undefined {
  const role = sqlstate === '42501' ? SET_ROLE_REFUSED.exec(message)?.[1] : undefined;
  if (role === undefined) return undefined;
  return (
    `withTenant switches to the role ${role}, so the login role must be a member of ${role}: ` +
    `GRANT ${role} TO <login role> (as a superuser), or log in as the app's login role ` +
    `(DATABASE_URL names the app's login, never the schema owner)`
  );
}

/**
 * Turns whatever a driver threw into a {@link DatabaseError} (the original as
 * `cause`); a DatabaseError passes through as it is.
 */
export function toDatabaseError(error: unknown): DatabaseError {
  if (error instanceof DatabaseError) return error;
  const shape: DriverErrorShape = typeof error === 'object' && error !== null ? error : {};
  const message = typeof shape.message === 'string' ? shape.message : String(error);
  const code = typeof shape.code === 'string' ? shape.code : undefined;
  if (code !== undefined && SQLSTATE.test(code)) {
    const hint = hintFor(code, message);
    return new DatabaseError(
      codeForSqlstate(code, message),
      `${message} (SQLSTATE ${code})${hint ? `: ${hint}` : ''}`,
      {
        cause: error,
        sqlstate: code,
        ...stringField('constraint', shape.constraint),
        ...stringField('table', shape.table),
        ...stringField('column', shape.column),
      },
    );
  }
  if (CLOSED_MESSAGES.some((text) => message.includes(text))) {
    return new DatabaseError('CLOSED', 'the database handle is closed', { cause: error });
  }
  if (
    networkFailureOf(error) !== undefined ||
    CONNECTION_MESSAGES.some((text) => message.includes(text))
  ) {
    return new DatabaseError('UNAVAILABLE', `cannot reach PostgreSQL: ${message}`, {
      cause: error,
    });
  }
  return new DatabaseError('QUERY_FAILED', message, { cause: error });
}

function stringField<K extends string>(key: K, value: unknown): Partial<Record<K, string>> {
  return typeof value === 'string' ? ({ [key]: value } as Record<K, string>) : {};
}

/**
 * The SQLSTATE class for metrics: `23`, `57`, …, `connection` when no connection
 * could be had or it was lost, `deadline` when a query got no answer within
 * `queryTimeoutMs`.
 */
export function errorClass(error: DatabaseError): string {
  if (error.sqlstate !== undefined) return error.sqlstate.slice(0, 2);
  switch (error.code) {
    case 'UNAVAILABLE':
      return 'connection';
    case 'QUERY_TIMEOUT':
      return 'deadline';
    case 'CLOSED':
      return 'closed';
    default:
      return 'client';
  }
}
