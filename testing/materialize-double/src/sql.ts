/** SQL: tokens, statements, and a parser of the statements the double serves. */
import { BOOL_TEXT, INTEGER_TEXT } from './values.js';

/** A statement failed with this SQLSTATE; the session answers with an ErrorResponse. */
export class SqlError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

type TokenKind = 'word' | 'quoted' | 'string' | 'number' | 'symbol';

interface Token {
  readonly kind: TokenKind;
  /** Words folded to lower case; quoted identifiers and strings unescaped. */
  readonly text: string;
  readonly start: number;
  readonly end: number;
}

export interface Statement {
  /** The statement as sent (between semicolons, trimmed). */
  readonly source: string;
  readonly tokens: readonly Token[];
  /** A quote or comment opened in it never closes. */
  readonly unterminated: boolean;
}

const isWordStart = (code: number): boolean =>
  (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || code === 95 || code > 127;
const isWordPart = (code: number): boolean =>
  isWordStart(code) || (code >= 48 && code <= 57) || code === 36;
const isDigit = (code: number): boolean => code >= 48 && code <= 57;

/** Reads a quoted run starting at `start` (the quote); a doubled quote is one quote. Null if unterminated. */
function readQuoted(
  sql: string,
  start: number,
  quote: string,
): { readonly text: string; readonly end: number } | null {
  let text = '';
  let position = start + 1;
  for (;;) {
    const close = sql.indexOf(quote, position);
    if (close < 0) return null;
    text += sql.slice(position, close);
    if (sql[close + 1] === quote) {
      text += quote;
      position = close + 2;
    } else {
      return { text, end: close + 1 };
    }
  }
}

/** Splits a simple query into statements at semicolons outside quotes and comments. */
export function splitStatements(sql: string): Statement[] {
  const statements: Statement[] = [];
  let tokens: Token[] = [];
  let segmentStart = 0;
  const finish = (end: number, unterminated: boolean): void => {
    if (tokens.length > 0 || unterminated) {
      statements.push({ source: sql.slice(segmentStart, end).trim(), tokens, unterminated });
    }
    tokens = [];
  };
  let position = 0;
  while (position < sql.length) {
    const code = sql.charCodeAt(position);
    const char = sql[position] ?? '';
    if (code <= 32) {
      position += 1;
    } else if (char === '-' && sql[position + 1] === '-') {
      const newline = sql.indexOf('\n', position);
      position = newline < 0 ? sql.length : newline + 1;
    } else if (char === '/' && sql[position + 1] === '*') {
      const close = sql.indexOf('*/', position + 2);
      if (close < 0) {
        finish(sql.length, true);
        return statements;
      }
      position = close + 2;
    } else if (char === "'" || char === '"') {
      const quoted = readQuoted(sql, position, char);
      if (quoted === null) {
        finish(sql.length, true);
        return statements;
      }
      tokens.push({
        kind: char === "'" ? 'string' : 'quoted',
        text: quoted.text,
        start: position,
        end: quoted.end,
      });
      position = quoted.end;
    } else if (isDigit(code) || (char === '.' && isDigit(sql.charCodeAt(position + 1)))) {
      const match = /^(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?/.exec(sql.slice(position, position + 64));
      const length = match?.[0].length ?? 1;
      tokens.push({
        kind: 'number',
        text: sql.slice(position, position + length),
        start: position,
        end: position + length,
      });
      position += length;
    } else if (isWordStart(code)) {
      let end = position + 1;
      while (end < sql.length && isWordPart(sql.charCodeAt(end))) end += 1;
      tokens.push({
        kind: 'word',
        text: sql.slice(position, end).toLowerCase(),
        start: position,
        end,
      });
      position = end;
    } else if (char === ';') {
      finish(position, false);
      position += 1;
      segmentStart = position;
    } else {
      tokens.push({ kind: 'symbol', text: char, start: position, end: position + 1 });
      position += 1;
    }
  }
  finish(sql.length, false);
  return statements;
}

export interface Literal {
  readonly kind: 'string' | 'number' | 'boolean';
  readonly text: string;
}

export interface SubscribeRequest {
  readonly object: string;
  /** Selected columns; null for `*` or a bare object. */
  readonly columns: readonly string[] | null;
  readonly filters: readonly { readonly column: string; readonly literal: Literal }[];
  readonly snapshot: boolean;
  readonly progress: boolean;
  readonly asOf: bigint | null;
  readonly asOfAtLeast: boolean;
}

type Command =
  | { readonly kind: 'begin' }
  | { readonly kind: 'commit' }
  | { readonly kind: 'rollback' }
  | { readonly kind: 'declare'; readonly cursor: string; readonly subscribe: SubscribeRequest }
  | {
      readonly kind: 'fetch';
      readonly cursor: string;
      readonly count: number;
      readonly timeoutMs: number | null;
      /** The timeout as written, for the out-of-range message. */
      readonly timeoutText: string | null;
    }
  | { readonly kind: 'close'; readonly cursor: string | null }
  | { readonly kind: 'select-integer'; readonly value: string; readonly column: string }
  | { readonly kind: 'select-backend-pid' }
  | { readonly kind: 'select-cancel-backend'; readonly pid: number }
  | { readonly kind: 'select-mz-version' }
  | { readonly kind: 'set'; readonly name: string; readonly value: string | null };

/** Statements the double recognises but does not implement: 0A000 rather than a syntax error. */
const UNSUPPORTED_WORDS = new Set([
  'abort',
  'alter',
  'analyze',
  'copy',
  'create',
  'deallocate',
  'delete',
  'discard',
  'drop',
  'execute',
  'explain',
  'grant',
  'insert',
  'listen',
  'move',
  'notify',
  'prepare',
  'reset',
  'revoke',
  'savepoint',
  'release',
  'show',
  'subscribe',
  'table',
  'truncate',
  'update',
  'values',
  'with',
]);

const INTERVAL_UNITS: Readonly<Record<string, number>> = {
  '': 1000,
  ms: 1,
  msec: 1,
  msecs: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  secs: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hrs: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
};

/**
 * `'0s'`, `'250ms'`, `'2 seconds'`, `'1m'`, `'2 days'` … → milliseconds; anything else is
 * 22007. A bare number is seconds for an interval, milliseconds for a duration setting
 * (`unitless`).
 */
export function parseInterval(text: string, unitless = 1000): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = (match?.[2] ?? '').toLowerCase();
  const factor = match === null ? undefined : unit === '' ? unitless : INTERVAL_UNITS[unit];
  if (match === null || factor === undefined) {
    throw new SqlError('22007', 'invalid input syntax for type interval');
  }
  return Math.round(Number(match[1]) * factor);
}

/** A recursive-descent parser over one statement's tokens. Error messages name only the first word. */
export class StatementParser {
  readonly #tokens: readonly Token[];
  readonly #statementWord: string;
  #position = 0;

  constructor(tokens: readonly Token[]) {
    this.#tokens = tokens;
    const first = tokens[0];
    this.#statementWord = first?.kind === 'word' ? first.text.toUpperCase() : 'statement';
  }

  parse(): Command {
    const first = this.#tokens[0];
    if (first?.kind !== 'word') {
      throw new SqlError('42601', 'syntax error at or near the start of the statement');
    }
    this.#position = 1;
    switch (first.text) {
      case 'begin':
        this.#acceptWord('work', 'transaction');
        this.#transactionModes();
        return { kind: 'begin' };
      case 'start':
        this.#expectWord('transaction');
        this.#transactionModes();
        return { kind: 'begin' };
      case 'commit':
      case 'end':
        this.#acceptWord('work', 'transaction');
        this.#expectEnd();
        return { kind: 'commit' };
      case 'rollback':
        this.#acceptWord('work', 'transaction');
        if (this.#isWord('to')) throw this.#unsupported('ROLLBACK TO SAVEPOINT');
        this.#expectEnd();
        return { kind: 'rollback' };
      case 'declare':
        return this.#declare();
      case 'fetch':
        return this.#fetch();
      case 'close': {
        if (this.#acceptWord('all') !== null) {
          this.#expectEnd();
          return { kind: 'close', cursor: null };
        }
        const cursor = this.#identifier('a cursor name');
        this.#expectEnd();
        return { kind: 'close', cursor };
      }
      case 'select':
        return this.#select();
      case 'set': {
        this.#acceptWord('session', 'local');
        const name = this.#identifier('a parameter name');
        if (!this.#acceptSymbol('=')) this.#acceptWord('to');
        const first = this.#tokens[this.#position];
        const value =
          first === undefined || (first.kind === 'word' && first.text === 'default')
            ? null
            : first.text;
        while (!this.#atEnd()) this.#position += 1; // further values are accepted and ignored
        return { kind: 'set', name, value };
      }
      default:
        if (UNSUPPORTED_WORDS.has(first.text)) throw this.#unsupported(this.#statementWord);
        throw new SqlError('42601', `syntax error at or near "${this.#statementWord}"`);
    }
  }

  #declare(): Command {
    const cursor = this.#identifier('a cursor name');
    this.#acceptWord('binary', 'insensitive', 'asensitive');
    if (this.#acceptWord('no') !== null) this.#expectWord('scroll');
    if (this.#isWord('scroll')) throw this.#unsupported('SCROLL cursors');
    this.#expectWord('cursor');
    if (this.#acceptWord('without') !== null) this.#expectWord('hold');
    if (this.#isWord('with')) throw this.#unsupported('WITH HOLD cursors');
    this.#expectWord('for');
    if (this.#acceptWord('subscribe') === null) {
      throw this.#unsupported('cursors other than SUBSCRIBE (DECLARE … CURSOR FOR SUBSCRIBE …)');
    }
    return { kind: 'declare', cursor, subscribe: this.#subscribe() };
  }

  #subscribe(): SubscribeRequest {
    this.#acceptWord('to');
    let object: string;
    let columns: string[] | null = null;
    const filters: { column: string; literal: Literal }[] = [];
    if (this.#acceptSymbol('(')) {
      this.#expectWord('select');
      if (!this.#acceptSymbol('*')) {
        columns = [this.#identifier('a column name')];
        while (this.#acceptSymbol(',')) columns.push(this.#identifier('a column name'));
      }
      this.#expectWord('from');
      object = this.#qualifiedName();
      if (this.#acceptWord('where') !== null) {
        do filters.push(this.#condition());
        while (this.#acceptWord('and') !== null);
      }
      this.#expectSymbol(')');
    } else {
      object = this.#qualifiedName();
    }
    let snapshot = true;
    let progress = false;
    let asOf: bigint | null = null;
    let asOfAtLeast = false;
    while (!this.#atEnd()) {
      if (this.#acceptWord('with') !== null) {
        this.#expectSymbol('(');
        do {
          const option = this.#acceptWord('snapshot', 'progress');
          if (option === null) throw this.#syntax('SNAPSHOT or PROGRESS');
          const value = this.#optionValue();
          if (option === 'snapshot') snapshot = value;
          else progress = value;
        } while (this.#acceptSymbol(','));
        this.#expectSymbol(')');
      } else if (this.#acceptWord('as') !== null) {
        this.#expectWord('of');
        if (this.#acceptWord('at') !== null) {
          this.#expectWord('least');
          asOfAtLeast = true;
        }
        const timestamp = this.#next('a timestamp');
        if (timestamp.kind !== 'number' || !INTEGER_TEXT.test(timestamp.text)) {
          throw this.#unsupported('AS OF other than an integer timestamp');
        }
        asOf = BigInt(timestamp.text);
      } else if (this.#isWord('envelope') || this.#isWord('within') || this.#isWord('up')) {
        throw this.#unsupported('ENVELOPE, WITHIN TIMESTAMP ORDER BY and UP TO');
      } else {
        throw this.#syntax('WITH (…) or AS OF');
      }
    }
    return { object, columns, filters, snapshot, progress, asOf, asOfAtLeast };
  }

  /** `SNAPSHOT`, `SNAPSHOT = false`, `PROGRESS true`, `PROGRESS = 'true'`. */
  #optionValue(): boolean {
    const hasEquals = this.#acceptSymbol('=');
    const token = this.#tokens[this.#position];
    if (token === undefined || (token.kind === 'symbol' && !hasEquals)) return true;
    this.#position += 1;
    const text = token.text.toLowerCase();
    if ((token.kind === 'word' || token.kind === 'string') && BOOL_TEXT[text] !== undefined) {
      return BOOL_TEXT[text] === 't';
    }
    throw this.#syntax('true or false');
  }

  #condition(): { column: string; literal: Literal } {
    const column = this.#identifier('a column name');
    if (this.#isWord('is')) throw this.#unsupported('IS [NOT] NULL');
    this.#expectSymbol('=');
    const negative = this.#acceptSymbol('-');
    const token = this.#next('a literal');
    if (token.kind === 'number') {
      return {
        column,
        literal: { kind: 'number', text: negative ? `-${token.text}` : token.text },
      };
    }
    if (negative) throw this.#syntax('a number');
    if (token.kind === 'string') return { column, literal: { kind: 'string', text: token.text } };
    if (token.kind === 'word' && (token.text === 'true' || token.text === 'false')) {
      return { column, literal: { kind: 'boolean', text: token.text } };
    }
    if (token.kind === 'word' && token.text === 'null') throw this.#unsupported('NULL comparisons');
    throw this.#syntax('a literal');
  }

  #fetch(): Command {
    this.#acceptWord('forward');
    let count = 1;
    const token = this.#tokens[this.#position];
    const after = this.#tokens[this.#position + 1];
    if (token?.kind === 'number') {
      if (!INTEGER_TEXT.test(token.text)) throw this.#syntax('an integer count');
      count = Number(token.text);
      this.#position += 1;
    } else if (token?.kind === 'word' && token.text === 'all' && after !== undefined) {
      count = Number.POSITIVE_INFINITY;
      this.#position += 1;
    } else if (token?.kind === 'word' && token.text === 'next' && after !== undefined) {
      this.#position += 1;
    }
    this.#acceptWord('from', 'in');
    const cursor = this.#identifier('a cursor name');
    let timeoutMs: number | null = null;
    let timeoutText: string | null = null;
    if (this.#acceptWord('with') !== null) {
      this.#expectSymbol('(');
      this.#expectWord('timeout');
      this.#acceptSymbol('=');
      const value = this.#next('an interval');
      if (value.kind !== 'string') throw this.#syntax("an interval such as '1s'");
      timeoutMs = parseInterval(value.text);
      timeoutText = value.text;
      this.#expectSymbol(')');
    }
    this.#expectEnd();
    return { kind: 'fetch', cursor, count, timeoutMs, timeoutText };
  }

  #select(): Command {
    const negative = this.#acceptSymbol('-');
    const token = this.#next('a select list');
    if (token.kind === 'number' && INTEGER_TEXT.test(token.text)) {
      let column = '?column?';
      if (this.#acceptWord('as') !== null) column = this.#identifier('a column alias');
      this.#expectEnd();
      return {
        kind: 'select-integer',
        value: BigInt(`${negative ? '-' : ''}${token.text}`).toString(),
        column,
      };
    }
    if (!negative && token.kind === 'word') {
      if (token.text === 'pg_backend_pid' || token.text === 'mz_version') {
        this.#expectSymbol('(');
        this.#expectSymbol(')');
        this.#expectEnd();
        return token.text === 'mz_version'
          ? { kind: 'select-mz-version' }
          : { kind: 'select-backend-pid' };
      }
      if (token.text === 'pg_cancel_backend') {
        this.#expectSymbol('(');
        const pid = this.#next('a pid');
        if (pid.kind !== 'number' || !INTEGER_TEXT.test(pid.text)) throw this.#syntax('a pid');
        this.#expectSymbol(')');
        this.#expectEnd();
        return { kind: 'select-cancel-backend', pid: Number(pid.text) };
      }
    }
    throw this.#unsupported(
      'SELECT other than SELECT <integer>, pg_backend_pid(), pg_cancel_backend(<pid>), mz_version()',
    );
  }

  #transactionModes(): void {
    // ISOLATION LEVEL …, READ ONLY / WRITE, [NOT] DEFERRABLE: accepted, no effect.
    while (!this.#atEnd()) {
      const token = this.#next('a transaction mode');
      if (token.kind !== 'word' && token.text !== ',') throw this.#syntax('a transaction mode');
    }
  }

  #qualifiedName(): string {
    let name = this.#identifier('an object name');
    for (let parts = 1; parts < 3 && this.#acceptSymbol('.'); parts += 1)
      name = this.#identifier('an object name');
    return name;
  }

  #identifier(what: string): string {
    const token = this.#tokens[this.#position];
    if (token === undefined || (token.kind !== 'word' && token.kind !== 'quoted'))
      throw this.#syntax(what);
    this.#position += 1;
    return token.text;
  }

  #next(what: string): Token {
    const token = this.#tokens[this.#position];
    if (token === undefined) throw this.#syntax(what);
    this.#position += 1;
    return token;
  }

  #atEnd(): boolean {
    return this.#position >= this.#tokens.length;
  }

  #isWord(word: string): boolean {
    const token = this.#tokens[this.#position];
    return token?.kind === 'word' && token.text === word;
  }

  #acceptWord(...words: string[]): string | null {
    const token = this.#tokens[this.#position];
    if (token?.kind !== 'word' || !words.includes(token.text)) return null;
    this.#position += 1;
    return token.text;
  }

  #expectWord(word: string): void {
    if (this.#acceptWord(word) === null) throw this.#syntax(word.toUpperCase());
  }

  #acceptSymbol(symbol: string): boolean {
    const token = this.#tokens[this.#position];
    if (token?.kind !== 'symbol' || token.text !== symbol) return false;
    this.#position += 1;
    return true;
  }

  #expectSymbol(symbol: string): void {
    if (!this.#acceptSymbol(symbol)) throw this.#syntax(`"${symbol}"`);
  }

  #expectEnd(): void {
    if (!this.#atEnd()) throw this.#syntax('the end of the statement');
  }

  #syntax(expected: string): SqlError {
    return new SqlError('42601', `syntax error in ${this.#statementWord}: expected ${expected}`);
  }

  #unsupported(what: string): SqlError {
    return new SqlError('0A000', `the Materialize double does not support ${what}`);
  }
}
