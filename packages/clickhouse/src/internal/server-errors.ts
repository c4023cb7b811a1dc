import { networkFailureOf } from '@flowforge/kernel';
import { ClickHouseError, type ClickHouseErrorCode } from '../errors.js';

/** A server error as parsed from its text (either format) or from the driver's error object. */
export interface ServerError {
  readonly code: number;
  readonly type: string | undefined;
  readonly message: string;
}

/** Longest server message kept in our error (syntax errors echo the whole query). */
export const MAX_MESSAGE_LENGTH = 500;

// 18.16 (and everything before 20.x):
//   Code: 62, e.displayText() = DB::Exception: Syntax error: …, e.what() = DB::Exception
const OLD_FORMAT =
  /^Code: (\d+), e\.displayText\(\) = (?:[A-Za-z_:]*Exception: )?([\s\S]*?)(?:, e\.what\(\) = |$)/;
// 20.x and later:
//   Code: 62. DB::Exception: Syntax error: …. (SYNTAX_ERROR) (version 23.8.1.1)
// The type is the parenthesised capitals followed by `(version …)` or the end of
// a line: a syntax error echoes the query, and "(FORMAT) (line 2, col 1)" in it
// is not the type (@clickhouse/client's own parser takes the first one). What
// follows the type (the trailer of a streamed body on 25.11+) is ignored.
const NEW_FORMAT =
  /^Code: (\d+)\. (?:[A-Za-z_:]*Exception: )?([\s\S]*?)(?: \(([A-Z][A-Z0-9_]{2,})\)(?= \(version [^)]*\)|[ \t]*(?:\r?\n|$))|$)/;

/**
 * Parses a ClickHouse error text in the old (`Code: 62, e.displayText() = …`) or
 * the new (`Code: 62. DB::Exception: … (SYNTAX_ERROR)`) format, wherever it
 * starts in `text` (a streamed body carries rows before it). Undefined when
 * there is no `Code: N` in it.
 */
export function parseServerMessage(text: string): ServerError | undefined {
  const start = text.search(/Code: \d+[.,] /);
  if (start === -1) return undefined;
  const tail = text.slice(start);
  const match = OLD_FORMAT.exec(tail) ?? NEW_FORMAT.exec(tail);
  if (!match) return undefined;
  return { code: Number(match[1]), type: match[3], message: trimMessage(match[2] ?? '') };
}

/** One line, no trailing period or blanks, at most {@link MAX_MESSAGE_LENGTH} characters. */
export function trimMessage(message: string): string {
  const flat = message
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/[.\s]+$/, '');
  return flat.length > MAX_MESSAGE_LENGTH ? `${flat.slice(0, MAX_MESSAGE_LENGTH - 1)}…` : flat;
}

/** The code of our error for a ClickHouse server error code. */
export function codeForServerError(serverCode: number, message = ''): ClickHouseErrorCode {
  switch (serverCode) {
    case 62: // SYNTAX_ERROR
      return 'SYNTAX_ERROR';
    case 60: // UNKNOWN_TABLE
    case 81: // UNKNOWN_DATABASE
      return 'UNKNOWN_TABLE';
    case 16: // NO_SUCH_COLUMN_IN_TABLE
    case 42: // NUMBER_OF_ARGUMENTS_DOESNT_MATCH
    case 43: // ILLEGAL_TYPE_OF_ARGUMENT
    case 44: // ILLEGAL_COLUMN
    case 46: // UNKNOWN_FUNCTION
    case 47: // UNKNOWN_IDENTIFIER
    case 53: // TYPE_MISMATCH
    case 115: // UNKNOWN_SETTING
    case 184: // ILLEGAL_AGGREGATION
    case 215: // NOT_AN_AGGREGATE
    case 352: // AMBIGUOUS_COLUMN_NAME
    case 456: // UNKNOWN_QUERY_PARAMETER
    case 457: // BAD_QUERY_PARAMETER
      return 'QUERY_INVALID';
    case 164: // READONLY
      return 'READONLY';
    case 159: // TIMEOUT_EXCEEDED
    case 160: // TOO_SLOW
    case 209: // SOCKET_TIMEOUT
      return 'TIMEOUT';
    case 192: // UNKNOWN_USER
    case 193: // WRONG_PASSWORD
    case 194: // REQUIRED_PASSWORD
    case 195: // IP_ADDRESS_NOT_ALLOWED
    case 516: // AUTHENTICATION_FAILED
      return 'AUTH_FAILED';
    case 202: // TOO_MANY_SIMULTANEOUS_QUERIES
    case 203: // NO_FREE_CONNECTION
    case 210: // NETWORK_ERROR
    case 216: // QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING: a caller's own queryId still runs (try later)
      return 'UNAVAILABLE';
    default:
      // Some servers report readonly refusals under other codes; the text is stable.
      return /in readonly mode/.test(message) ? 'READONLY' : 'QUERY_FAILED';
  }
}

/** Messages of a connection lost mid-response (Node's http client), and of a proxy in between. */
const UNAVAILABLE_MESSAGES =
  /socket hang up|^aborted$|other side closed|Premature close|502 Bad Gateway|503 Service Unavailable|504 Gateway Time-?out|^\s*<(?:!doctype|html)/i;

/** Why the handle itself ended a query, when it did. */
export type AbortReason = 'timeout' | 'cancelled' | 'closed';

const ABORT_MESSAGES: Record<AbortReason, (timeoutMs: number) => string> = {
  timeout: (timeoutMs) => `the query did not finish within its deadline of ${timeoutMs} ms`,
  cancelled: () => 'the query was cancelled by its signal',
  closed: () => 'the ClickHouse handle was closed',
};

const ABORT_CODES: Record<AbortReason, ClickHouseErrorCode> = {
  timeout: 'TIMEOUT',
  cancelled: 'CANCELLED',
  closed: 'CLOSED',
};

/** What the mapping knows about the query besides the error. */
export interface FailureContext {
  readonly queryId?: string | undefined;
  /** Set when the handle aborted the request itself: that, not the driver's error, is the cause. */
  readonly aborted?: AbortReason | undefined;
  readonly timeoutMs?: number;
}

interface ErrorShape {
  readonly code?: unknown;
  readonly type?: unknown;
  readonly message?: unknown;
}

/**
 * Turns whatever the driver threw into a {@link ClickHouseError} (the original
 * as `cause`); a ClickHouseError passes through as it is.
 *
 * Server errors arrive three ways: as @clickhouse/client's ClickHouseError
 * (`code` "62", `type` "SYNTAX_ERROR") from servers ≥ 20.x and from chdb (whose
 * copy of that class is another class: matched by shape, not instanceof); as a
 * plain Error whose message is 18.16's old-format text, which the driver does not
 * parse; and as text inside a streamed body.
 */
export function toClickHouseError(error: unknown, context: FailureContext = {}): ClickHouseError {
  if (error instanceof ClickHouseError) return error;
  const queryId = context.queryId === undefined ? {} : { queryId: context.queryId };
  if (context.aborted !== undefined) {
    return new ClickHouseError(
      ABORT_CODES[context.aborted],
      ABORT_MESSAGES[context.aborted](context.timeoutMs ?? 0),
      { cause: error, ...queryId },
    );
  }
  const shape: ErrorShape = typeof error === 'object' && error !== null ? error : {};
  const message = typeof shape.message === 'string' ? shape.message : String(error);
  const code = typeof shape.code === 'string' ? shape.code : undefined;

  if (code !== undefined && /^\d+$/.test(code) && typeof shape.type === 'string') {
    // chdb keeps the engine's full text as the cause: better than the driver's cut.
    const full = parseServerMessage(causeMessage(error));
    if (full !== undefined && full.code === Number(code)) return fromServer(full, error, queryId);
    return fromServer(
      { code: Number(code), type: shape.type, message: trimMessage(message) },
      error,
      queryId,
    );
  }
  const parsed = parseServerMessage(message);
  if (parsed) return fromServer(parsed, error, queryId);

  if (message === 'Timeout error.') {
    return new ClickHouseError('TIMEOUT', 'no answer from ClickHouse within the socket timeout', {
      cause: error,
      ...queryId,
    });
  }
  // Refused and broken connections alike: ClickHouse may answer the next query.
  if (networkFailureOf(error) !== undefined || UNAVAILABLE_MESSAGES.test(message)) {
    return new ClickHouseError('UNAVAILABLE', `cannot reach ClickHouse: ${firstLine(message)}`, {
      cause: error,
      ...queryId,
    });
  }
  return new ClickHouseError('QUERY_FAILED', firstLine(message), { cause: error, ...queryId });
}

function fromServer(
  parsed: ServerError,
  cause: unknown,
  queryId: { queryId?: string },
): ClickHouseError {
  const code = codeForServerError(parsed.code, parsed.message);
  const type = parsed.type === undefined ? '' : ` ${parsed.type}`;
  return new ClickHouseError(code, `${parsed.message} (ClickHouse code ${parsed.code}${type})`, {
    cause,
    serverCode: parsed.code,
    ...(parsed.type === undefined ? {} : { serverType: parsed.type }),
    ...queryId,
  });
}

function causeMessage(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Error ? cause.message : '';
}

function firstLine(message: string): string {
  return trimMessage(message.split('\n', 1)[0] ?? '');
}
