import { describe, expect, it } from 'vitest';
import { ClickHouseError, type ClickHouseErrorCode } from '../errors.js';
import {
  codeForServerError,
  MAX_MESSAGE_LENGTH,
  parseServerMessage,
  toClickHouseError,
  trimMessage,
} from './server-errors.js';

// Verbatim from the 18.16 server of scripts/services and from chdb 3.4 (26.7).
const OLD_SYNTAX =
  'Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1: SELEC 1. Expected one of: SYSTEM query, SELECT subquery, e.what() = DB::Exception\n';
const OLD_READONLY =
  "Code: 164, e.displayText() = DB::Exception: Cannot modify 'readonly' setting in readonly mode, e.what() = DB::Exception";
const NEW_SYNTAX =
  "Code: 62. DB::Exception: Syntax error: failed at position 1 ('SELEC'): SELEC 1. Expected one of: token. (SYNTAX_ERROR) (version 26.7.2.1)";
const NEW_STREAM_TRAILER =
  "\r\n__exception__\r\nk3x9\nCode: 395. DB::Exception: Value passed to 'throwIf' function is non zero: while executing 'FUNCTION throwIf(x)'. (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO) (version 25.11.1.1)\n137 k3x9\r\n__exception__\r\n";

/** @clickhouse/client's ClickHouseError (or chdb's copy of it): matched by shape. */
function driverError(code: string, type: string, message: string): Error {
  return Object.assign(new Error(message), { code, type });
}

describe('parseServerMessage', () => {
  it('parses the old format (18.16), including messages with newlines', () => {
    expect(parseServerMessage(OLD_SYNTAX)).toEqual({
      code: 62,
      type: undefined,
      message:
        'Syntax error: failed at position 1: SELEC 1. Expected one of: SYSTEM query, SELECT subquery',
    });
    expect(parseServerMessage(OLD_READONLY)?.message).toBe(
      "Cannot modify 'readonly' setting in readonly mode",
    );
    expect(
      parseServerMessage(
        'Code: 62, e.displayText() = DB::Exception: Syntax error: SELEC 1 \nFORMAT JSONEachRow. Expected, e.what() = DB::Exception',
      )?.message,
    ).toBe('Syntax error: SELEC 1 FORMAT JSONEachRow. Expected');
  });

  it('takes the type at the end, not capitals in parentheses inside the echoed query', () => {
    expect(
      parseServerMessage(
        'Code: 62. DB::Exception: Syntax error: failed at position 24 (FORMAT) (line 2, col 1): FORMAT JSONEachRow. Expected one of: token. (SYNTAX_ERROR)',
      ),
    ).toEqual({
      code: 62,
      type: 'SYNTAX_ERROR',
      message:
        'Syntax error: failed at position 24 (FORMAT) (line 2, col 1): FORMAT JSONEachRow. Expected one of: token',
    });
  });

  it('parses the new format, with and without a type', () => {
    expect(parseServerMessage(NEW_SYNTAX)).toEqual({
      code: 62,
      type: 'SYNTAX_ERROR',
      message: "Syntax error: failed at position 1 ('SELEC'): SELEC 1. Expected one of: token",
    });
    expect(parseServerMessage('Code: 516. DB::Exception: bob: Authentication failed')).toEqual({
      code: 516,
      type: undefined,
      message: 'bob: Authentication failed',
    });
  });

  it('finds the error after rows in a streamed body (18.16 line, 25.11+ tagged block)', () => {
    expect(
      parseServerMessage(
        '{"n":"1"}\nCode: 395, e.displayText() = DB::Exception: Value passed to \'throwIf\' function is non zero, e.what() = DB::Exception\n',
      ),
    ).toMatchObject({ code: 395, message: "Value passed to 'throwIf' function is non zero" });
    expect(parseServerMessage(NEW_STREAM_TRAILER)).toEqual({
      code: 395,
      type: 'FUNCTION_THROW_IF_VALUE_IS_NON_ZERO',
      message:
        "Value passed to 'throwIf' function is non zero: while executing 'FUNCTION throwIf(x)'",
    });
  });

  it('gives undefined for text without a server error', () => {
    expect(parseServerMessage('connect ECONNREFUSED 127.0.0.1:1')).toBeUndefined();
    expect(parseServerMessage('<html><body>502 Bad Gateway</body></html>')).toBeUndefined();
  });
});

describe('trimMessage', () => {
  it('flattens whitespace, drops the trailing period, caps the length', () => {
    expect(trimMessage('  a\n b.  ')).toBe('a b');
    const long = trimMessage('x'.repeat(10_000));
    expect(long).toHaveLength(MAX_MESSAGE_LENGTH);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('codeForServerError', () => {
  it.each<[number, ClickHouseErrorCode]>([
    [62, 'SYNTAX_ERROR'],
    [60, 'UNKNOWN_TABLE'],
    [81, 'UNKNOWN_TABLE'],
    [47, 'QUERY_INVALID'],
    [46, 'QUERY_INVALID'],
    [16, 'QUERY_INVALID'],
    [42, 'QUERY_INVALID'],
    [43, 'QUERY_INVALID'],
    [44, 'QUERY_INVALID'],
    [53, 'QUERY_INVALID'],
    [115, 'QUERY_INVALID'],
    [184, 'QUERY_INVALID'],
    [215, 'QUERY_INVALID'],
    [352, 'QUERY_INVALID'],
    [456, 'QUERY_INVALID'],
    [457, 'QUERY_INVALID'],
    [164, 'READONLY'],
    [159, 'TIMEOUT'],
    [160, 'TIMEOUT'],
    [209, 'TIMEOUT'],
    [192, 'AUTH_FAILED'],
    [193, 'AUTH_FAILED'],
    [194, 'AUTH_FAILED'],
    [195, 'AUTH_FAILED'],
    [516, 'AUTH_FAILED'],
    [202, 'UNAVAILABLE'],
    [203, 'UNAVAILABLE'],
    [210, 'UNAVAILABLE'],
    [395, 'QUERY_FAILED'],
    [241, 'QUERY_FAILED'],
    [216, 'UNAVAILABLE'],
  ])('server code %i → %s', (serverCode, code) => {
    expect(codeForServerError(serverCode)).toBe(code);
  });

  it('reads a readonly refusal under another code from its stable text', () => {
    expect(codeForServerError(497, 'Cannot execute query in readonly mode')).toBe('READONLY');
  });
});

describe('toClickHouseError', () => {
  it('maps 18.16 errors, which the driver leaves as plain Errors with the old text', () => {
    const error = toClickHouseError(new Error(OLD_SYNTAX), { queryId: 'q-1' });
    expect(error).toBeInstanceOf(ClickHouseError);
    expect(error).toMatchObject({
      code: 'SYNTAX_ERROR',
      serverCode: 62,
      serverType: undefined,
      queryId: 'q-1',
    });
    expect(error.message).toMatch(
      /^@flowforge\/clickhouse: Syntax error: .* \(ClickHouse code 62\)$/,
    );
    expect(toClickHouseError(new Error(OLD_READONLY)).code).toBe('READONLY');
    expect(
      toClickHouseError(
        new Error(
          'Code: 193, e.displayText() = DB::Exception: Wrong password for user flowforge, e.what() = DB::Exception\n',
        ),
      ).code,
    ).toBe('AUTH_FAILED');
  });

  it('maps the driver’s (and chdb’s) ClickHouseError by shape', () => {
    const error = toClickHouseError(
      driverError('60', 'UNKNOWN_TABLE', "Unknown table expression identifier 'default.nope'. "),
    );
    expect(error).toMatchObject({
      code: 'UNKNOWN_TABLE',
      serverCode: 60,
      serverType: 'UNKNOWN_TABLE',
    });
    expect(error.message).toBe(
      "@flowforge/clickhouse: Unknown table expression identifier 'default.nope' (ClickHouse code 60 UNKNOWN_TABLE)",
    );
    expect(toClickHouseError(driverError('164', 'READONLY', 'x')).code).toBe('READONLY');
    // chdb: the driver's cut message, the engine's full text as the cause.
    const chdb = Object.assign(
      driverError('62', 'FORMAT', 'Syntax error: failed at position 24 '),
      {
        cause: new Error(
          'Code: 62. DB::Exception: Syntax error: failed at position 24 (FORMAT) (line 2, col 1): x. (SYNTAX_ERROR)',
        ),
      },
    );
    expect(toClickHouseError(chdb)).toMatchObject({
      code: 'SYNTAX_ERROR',
      serverType: 'SYNTAX_ERROR',
      message:
        '@flowforge/clickhouse: Syntax error: failed at position 24 (FORMAT) (line 2, col 1): x (ClickHouse code 62 SYNTAX_ERROR)',
    });
    expect(toClickHouseError(driverError('516', 'AUTHENTICATION_FAILED', 'x')).code).toBe(
      'AUTH_FAILED',
    );
  });

  it('maps connection failures to UNAVAILABLE', () => {
    for (const error of [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      new Error('socket hang up'),
      Object.assign(new Error('aborted'), { code: 'ECONNRESET' }),
      Object.assign(new Error('getaddrinfo ENOTFOUND nowhere'), { code: 'ENOTFOUND' }),
      // The kernel's classification: every address refused, a cause, undici's codes.
      new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], 'connect'),
      new Error('fetch failed', { cause: Object.assign(new Error('x'), { code: 'EPIPE' }) }),
      Object.assign(new Error('closed'), { code: 'UND_ERR_CLOSED' }),
      Object.assign(new Error('getaddrinfo EAI_FAIL nowhere'), { code: 'EAI_FAIL' }),
      new Error('<html><head><title>502 Bad Gateway</title></head></html>'),
      new Error('503 Service Unavailable'),
      new Error(
        'Code: 202, e.displayText() = DB::Exception: Too many simultaneous queries. Maximum: 100, e.what() = DB::Exception',
      ),
    ]) {
      const mapped = toClickHouseError(error);
      expect(mapped.code, error.message).toBe('UNAVAILABLE');
      expect(mapped.retryable).toBe(true);
      expect(mapped.cause).toBe(error);
    }
  });

  it('maps the driver’s socket timeout to TIMEOUT', () => {
    expect(toClickHouseError(new Error('Timeout error.')).code).toBe('TIMEOUT');
  });

  it('lets the handle’s own abort reason win over whatever the driver threw', () => {
    const driver = new Error('The user aborted a request.');
    expect(toClickHouseError(driver, { aborted: 'timeout', timeoutMs: 500 })).toMatchObject({
      code: 'TIMEOUT',
      message: '@flowforge/clickhouse: the query did not finish within its deadline of 500 ms',
    });
    expect(toClickHouseError(driver, { aborted: 'cancelled' }).code).toBe('CANCELLED');
    expect(toClickHouseError(driver, { aborted: 'closed' }).code).toBe('CLOSED');
    expect(toClickHouseError(new Error(OLD_SYNTAX), { aborted: 'cancelled' }).code).toBe(
      'CANCELLED',
    );
  });

  it('maps anything else to QUERY_FAILED, first line only, and passes its own errors through', () => {
    const other = toClickHouseError(new Error('something odd\nsecond line'));
    expect(other).toMatchObject({ code: 'QUERY_FAILED', serverCode: undefined });
    expect(other.message).toBe('@flowforge/clickhouse: something odd');
    expect(toClickHouseError('a string').code).toBe('QUERY_FAILED');
    const own = new ClickHouseError('INVALID_ARGUMENT', 'x');
    expect(toClickHouseError(own, { aborted: 'timeout' })).toBe(own);
  });
});
