import { networkFailureOf, redactSecrets } from '@flowforge/kernel';
import { MaterializeError, type MaterializeErrorCode } from '../errors.js';

/**
 * SQLSTATEs that mean the session is gone or going: admin/crash shutdown,
 * cannot connect now, class 08 (connection exception), and 25P03: Materialize
 * ends a session idle in a transaction past `idle_in_transaction_session_timeout`
 * (120 s by default) and answers the client's next message (a FETCH) with it
 * (docs/decisions/015-materialize-server-behaviour.md).
 */
const LOST_STATES = new Set(['57P01', '57P02', '57P03', '25P03']);

/**
 * Too many connections: PostgreSQL's 53300, Materialize's 53000 at connect
 * (`max_connections`): the server refuses new sessions for now.
 */
const REFUSED_STATES = new Set(['53300', '53000']);

/**
 * The subscription was retired because its consumer fell behind
 * (`subscribe_max_buffered_bytes`): 53200 from current releases; matched by its
 * text too, for a release that sends it as XX000.
 */
function fellBehind(error: ServerError): boolean {
  return (
    (error.code === '53200' || error.code === 'XX000') &&
    error.message.startsWith('SUBSCRIBE fell behind')
  );
}

/**
 * The `AS OF` is before what the view still keeps: 22000 "could not find a
 * valid timestamp for the query" (current releases), XX000 "Timestamp (…) is
 * not valid for all inputs" (older ones). Materialize has no SQLSTATE of its
 * own for it, so the message decides.
 */
function historyUnavailable(error: ServerError): boolean {
  return (
    (error.code === '22000' && /could not find a valid timestamp/i.test(error.message)) ||
    (error.code === 'XX000' && /not valid for all inputs/i.test(error.message))
  );
}

/** A statement got no answer within its bound: the connection is taken as dead. */
export class StatementTimeoutError extends Error {
  readonly timeoutMs: number;

  constructor(statement: string, timeoutMs: number) {
    super(`no answer to ${statement} within ${timeoutMs} ms`);
    this.name = 'StatementTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/** A server error as node-postgres delivers it (DatabaseError). */
interface ServerError {
  readonly code: string;
  readonly message: string;
}

function isServerError(error: unknown): error is ServerError & Error {
  if (!(error instanceof Error)) return false;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof severity === 'string';
}

/**
 * What an error means for a subscription or a statement:
 * - `lost`: the connection is gone (socket closed or reset, shutdown, our own
 *   bound on an unanswered statement, the session timed out idle in its
 *   transaction) or the server ended the subscription because its consumer fell
 *   behind: resume, or CONNECTION_LOST;
 * - `connect`: no connection could be made: UNAVAILABLE (or retried when resuming);
 * - `pool`: no pooled connection became free in time: TIMEOUT;
 * - `server`: the server answered with an error: mapped by SQLSTATE.
 */
export type ErrorKind = 'lost' | 'connect' | 'pool' | 'server' | 'other';

/**
 * Classifies a driver error. node-postgres gives some conditions no code, only
 * a fixed message of its own (pg 8: "Connection terminated unexpectedly",
 * "Connection terminated due to connection timeout", "timeout exceeded when
 * trying to connect"): those alone are matched by message.
 */
export function errorKind(error: unknown): ErrorKind {
  if (error instanceof MaterializeError) return 'other';
  // Our own bound on an unanswered statement: the connection is as good as gone.
  if (error instanceof StatementTimeoutError) return 'lost';
  if (isServerError(error)) {
    if (LOST_STATES.has(error.code) || error.code.startsWith('08') || fellBehind(error)) {
      return 'lost';
    }
    // Too many connections: the server refuses new sessions for now (a reconnect backs off and retries).
    if (REFUSED_STATES.has(error.code)) return 'connect';
    return 'server';
  }
  // Node's and undici's codes, on the error, its causes or an AggregateError's members.
  const network = networkFailureOf(error);
  if (network !== undefined) return network === 'connect' ? 'connect' : 'lost';
  const message = error instanceof Error ? error.message : '';
  if (message === 'timeout exceeded when trying to connect') return 'pool';
  if (message.startsWith('Connection terminated due to connection timeout')) return 'connect';
  if (
    message.startsWith('Connection terminated') ||
    message.includes('not queryable') ||
    message === 'Client was closed and is not queryable'
  ) {
    return 'lost';
  }
  return 'other';
}

/**
 * Maps a server error (SQLSTATE) to its code. Materialize sends planning errors
 * as XX000 (`AdapterError::code`, src/adapter/src/error.rs), so an unknown view
 * or column is told by its message there; PostgreSQL's 42P01/42703 are kept.
 */
function serverCode(error: ServerError): MaterializeErrorCode {
  const { code: sqlstate, message } = error;
  if (historyUnavailable(error)) return 'HISTORY_UNAVAILABLE';
  switch (sqlstate) {
    case '28P01':
    case '28000':
      return 'AUTH_FAILED';
    case '42P01':
      return 'UNKNOWN_VIEW';
    case '42703':
      return 'INVALID_ARGUMENT';
    case '57014':
      return 'CANCELLED';
    case '53300':
    case '53000':
      return 'UNAVAILABLE';
    case 'XX000':
      if (/^unknown catalog item /.test(message)) return 'UNKNOWN_VIEW';
      if (/^column .+ does not exist$/.test(message)) return 'INVALID_ARGUMENT';
      return 'QUERY_FAILED';
    default:
      return LOST_STATES.has(sqlstate) || sqlstate.startsWith('08')
        ? 'UNAVAILABLE'
        : 'QUERY_FAILED';
  }
}

const SCRUBBED_FIELDS = ['message', 'stack', 'detail', 'hint', 'where', 'internalQuery'] as const;

/**
 * Removes the password (as written and percent-encoded) from a driver error's
 * text fields, in place (it becomes the `cause` of a MaterializeError, and
 * causes get logged).
 */
export function scrubError<T>(error: T, secret: string): T {
  if (secret === '' || !(error instanceof Error)) return error;
  const record = error as unknown as Record<string, unknown>;
  for (const field of SCRUBBED_FIELDS) {
    const value = record[field];
    if (typeof value !== 'string') continue;
    const scrubbed = redactSecrets(value, [secret]);
    if (scrubbed !== value) {
      try {
        record[field] = scrubbed;
      } catch {
        // A read-only field: leave it; the message of our own error is scrubbed regardless.
      }
    }
  }
  return error;
}

/** Context for {@link toMaterializeError}. */
export interface MapContext {
  /** Removed from every message and cause. */
  readonly secret: string;
  /** What was being done, for the message ("health check", "subscription to …"). */
  readonly action: string;
  /** Milliseconds of the bound that applied, for TIMEOUT/UNAVAILABLE messages. */
  readonly connectTimeoutMs: number;
  /** A lost connection maps to this (UNAVAILABLE at start, CONNECTION_LOST mid-stream). */
  readonly lost: 'UNAVAILABLE' | 'CONNECTION_LOST';
}

/** Maps any error to a MaterializeError, password scrubbed. */
export function toMaterializeError(error: unknown, context: MapContext): MaterializeError {
  if (error instanceof MaterializeError) return error;
  const cause = scrubError(error, context.secret);
  const text = redactSecrets(error instanceof Error ? error.message : String(error), [
    context.secret,
  ]);
  if (isServerError(error)) {
    const code = errorKind(error) === 'lost' ? context.lost : serverCode(error);
    return new MaterializeError(code, `${context.action}: ${text} (SQLSTATE ${error.code})`, {
      cause,
      sqlstate: error.code,
    });
  }
  switch (errorKind(error)) {
    case 'connect':
      return new MaterializeError(
        'UNAVAILABLE',
        `${context.action}: cannot connect to Materialize (${text})`,
        { cause },
      );
    case 'pool':
      return new MaterializeError(
        'TIMEOUT',
        `${context.action}: no pooled connection became free within connectTimeoutMs (${context.connectTimeoutMs} ms); each live subscription holds one (poolSize)`,
        { cause },
      );
    case 'lost':
      return new MaterializeError(
        context.lost,
        `${context.action}: the connection to Materialize was lost (${text})`,
        { cause },
      );
    default:
      return new MaterializeError('QUERY_FAILED', `${context.action}: ${text}`, { cause });
  }
}
