// Parameter binding: the only way a value reaches SQL in this package.
// Decision record: docs/decisions/004-client-side-parameter-binding-for-old-servers.md
import { isUuid } from '@flowforge/kernel';
import { ClickHouseError } from '../errors.js';

/** Values a query may bind, by placeholder name (`{name:Type}` in the SQL). */
export type QueryParams = Readonly<Record<string, unknown>>;

/** One `{name:Type}` placeholder found in the SQL's code (not in a string or comment). */
export interface Placeholder {
  readonly name: string;
  /** The type as written, whitespace removed: `Array(Nullable(String))`. */
  readonly type: string;
  readonly start: number;
  /** Index just past the closing `}`. */
  readonly end: number;
}

/** `server`: values go as `param_<name>`; `client`: each placeholder becomes a checked literal. */
export type BindingMode = 'server' | 'client';

/** What is sent: the SQL, and the values when the server binds them. */
export interface BoundQuery {
  readonly sql: string;
  readonly params: Record<string, unknown> | undefined;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PLACEHOLDER_START = /\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:/y;
const LOOKS_LIKE_PLACEHOLDER = /\{\s*[A-Za-z_][A-Za-z0-9_]*\s*:[^{}]*\}/;

function invalid(message: string): ClickHouseError {
  return new ClickHouseError('INVALID_ARGUMENT', message);
}

/**
 * Finds the placeholders in `sql`'s code, reading it as the servers lex it,
 * and refuses what they would read differently. Strings ('…', with `\` escapes
 * and `''`), quoted identifiers ("…", `…`), `$tag$…$tag$` strings, line
 * comments (`--`, `#`, `//`) and block comments are skipped; a placeholder
 * inside one of them is refused rather than silently left unbound. Refused too,
 * because some server would put a string boundary elsewhere (and a bound value
 * would land in code): a block comment inside a block comment (18.16 ends a
 * comment at the first `*\/`, newer servers nest them); a `$` outside a string
 * or comment other than a closed `$tag$` string at the start of a token (26.x
 * reads `a$x$` as one name, `1$x$` as a number then a `$x$` string, and earlier
 * servers allowed any tag); any non-ASCII character outside a string or comment
 * (26.x reads ‘…’ as a string and “…” as a quoted identifier, 18.16 neither).
 * @throws {ClickHouseError} INVALID_ARGUMENT
 */
export function scanPlaceholders(sql: string): Placeholder[] {
  const found: Placeholder[] = [];
  const length = sql.length;
  let i = 0;
  while (i < length) {
    const c = sql[i];
    if (c === "'" || c === '"' || c === '`') {
      i = skipQuoted(sql, i, c);
    } else if ((c === '-' && sql[i + 1] === '-') || (c === '/' && sql[i + 1] === '/')) {
      // `//` is a comment on 26.x and a syntax error on 18.16: never code we bind into.
      i = skipLine(sql, i);
    } else if (c === '#') {
      // A comment on servers ≥ 21.x (`# `, `#!`), a syntax error otherwise.
      i = skipLine(sql, i);
    } else if (c === '/' && sql[i + 1] === '*') {
      i = skipBlockComment(sql, i);
    } else if (c === '$') {
      i = skipHeredoc(sql, i);
    } else if (c === '{') {
      const placeholder = readPlaceholder(sql, i);
      if (placeholder) {
        found.push(placeholder);
        i = placeholder.end;
      } else {
        i += 1;
      }
    } else if (sql.charCodeAt(i) > 0x7f) {
      throw invalid(
        `a non-ASCII character outside a string or comment (offset ${i}) is refused: servers disagree about what it is (26.x reads ‘…’ as a string and “…” as a quoted identifier)`,
      );
    } else {
      i += 1;
    }
  }
  return found;
}

function refuseInside(sql: string, from: number, to: number, what: string): void {
  if (LOOKS_LIKE_PLACEHOLDER.test(sql.slice(from, to))) {
    throw invalid(`a {name:Type} placeholder inside ${what} is never bound: move it out of there`);
  }
}

function skipQuoted(sql: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (c === '\\') {
      i += 2;
    } else if (c === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
      } else {
        i += 1;
        break;
      }
    } else {
      i += 1;
    }
  }
  const end = Math.min(i, sql.length);
  refuseInside(sql, start, end, quote === "'" ? 'a string literal' : 'a quoted identifier');
  return end;
}

function skipLine(sql: string, start: number): number {
  const newline = sql.indexOf('\n', start);
  const end = newline === -1 ? sql.length : newline + 1;
  refuseInside(sql, start, end, 'a comment');
  return end;
}

function skipBlockComment(sql: string, start: number): number {
  const close = sql.indexOf('*/', start + 2);
  const end = close === -1 ? sql.length : close + 2;
  if (sql.slice(start + 2, end).includes('/*')) {
    throw invalid('nested block comments are not supported: servers disagree about where they end');
  }
  refuseInside(sql, start, end, 'a comment');
  return end;
}

/** Whether a `$` at `start` continues a name or number token instead of starting one. */
const WORD_BEFORE = /[A-Za-z0-9_$]/;

function skipHeredoc(sql: string, start: number): number {
  const refuse = (why: string): ClickHouseError =>
    invalid(
      `a \`$\` at offset ${start} ${why}: servers disagree about where strings are around it`,
    );
  if (start > 0 && WORD_BEFORE.test(sql[start - 1]!))
    throw refuse('inside a name or after a number');
  const tag = /\$[A-Za-z0-9_]*\$/y;
  tag.lastIndex = start;
  const open = tag.exec(sql);
  if (!open) throw refuse('that does not open a $tag$…$tag$ string');
  const close = sql.indexOf(open[0], start + open[0].length);
  if (close === -1) throw refuse(`that opens a ${open[0]} string never closed`);
  const end = close + open[0].length;
  refuseInside(sql, start, end, 'a heredoc string');
  return end;
}

/** `{name:Type}` at `start`, the type may nest parentheses and quote strings (`DateTime('UTC')`). */
function readPlaceholder(sql: string, start: number): Placeholder | undefined {
  PLACEHOLDER_START.lastIndex = start;
  const head = PLACEHOLDER_START.exec(sql);
  if (!head) return undefined;
  let i = PLACEHOLDER_START.lastIndex;
  let depth = 0;
  let type = '';
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'") {
      const end = skipQuotedRaw(sql, i);
      type += sql.slice(i, end);
      i = end;
      continue;
    }
    if (c === '}' && depth === 0) return { name: head[1]!, type, start, end: i + 1 };
    if (c === '(') depth += 1;
    else if (c === ')') depth -= 1;
    if (depth < 0 || c === '{' || c === '}' || c === ';') return undefined;
    if (!/\s/.test(c)) type += c;
    i += 1;
  }
  return undefined;
}

function skipQuotedRaw(sql: string, start: number): number {
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === '\\') i += 2;
    else if (sql[i] === "'") return i + 1;
    else i += 1;
  }
  return sql.length;
}

// ---------------------------------------------------------------- types

/** The types the client-side binder knows (a strict allow-list). */
export type ParamType =
  | { readonly kind: 'String' }
  | { readonly kind: 'FixedString'; readonly bytes: number }
  | { readonly kind: 'UUID' }
  | { readonly kind: 'Int'; readonly name: string; readonly min: bigint; readonly max: bigint }
  | { readonly kind: 'Float'; readonly name: 'Float32' | 'Float64' }
  | { readonly kind: 'Bool' }
  | { readonly kind: 'Date' }
  | { readonly kind: 'DateTime' }
  | { readonly kind: 'Array'; readonly of: ParamType; readonly text: string }
  | { readonly kind: 'Nullable'; readonly of: ParamType; readonly text: string };

const INTEGERS: Record<string, readonly [bigint, bigint]> = {
  Int8: [-(2n ** 7n), 2n ** 7n - 1n],
  Int16: [-(2n ** 15n), 2n ** 15n - 1n],
  Int32: [-(2n ** 31n), 2n ** 31n - 1n],
  Int64: [-(2n ** 63n), 2n ** 63n - 1n],
  UInt8: [0n, 2n ** 8n - 1n],
  UInt16: [0n, 2n ** 16n - 1n],
  UInt32: [0n, 2n ** 32n - 1n],
  UInt64: [0n, 2n ** 64n - 1n],
};

/**
 * Parses a placeholder's type (whitespace already removed) against the
 * allow-list; undefined for anything else (Decimal, DateTime64, Map, Enum, …).
 */
export function parseParamType(text: string): ParamType | undefined {
  const simple = SIMPLE_TYPES[text];
  if (simple) return simple;
  const integer = INTEGERS[text];
  if (integer) return { kind: 'Int', name: text, min: integer[0], max: integer[1] };
  const fixed = /^FixedString\(([1-9][0-9]{0,5})\)$/.exec(text);
  if (fixed) return { kind: 'FixedString', bytes: Number(fixed[1]) };
  const wrapper = /^(Array|Nullable)\((.+)\)$/.exec(text);
  if (wrapper) {
    const of = parseParamType(wrapper[2]!);
    if (!of) return undefined;
    if (wrapper[1] === 'Array') return { kind: 'Array', of, text };
    // ClickHouse has no Nullable(Array(…)) nor Nullable(Nullable(…)).
    if (of.kind === 'Array' || of.kind === 'Nullable') return undefined;
    return { kind: 'Nullable', of, text };
  }
  return undefined;
}

const SIMPLE_TYPES: Record<string, ParamType> = {
  String: { kind: 'String' },
  UUID: { kind: 'UUID' },
  Float32: { kind: 'Float', name: 'Float32' },
  Float64: { kind: 'Float', name: 'Float64' },
  Bool: { kind: 'Bool' },
  Boolean: { kind: 'Bool' },
  Date: { kind: 'Date' },
  DateTime: { kind: 'DateTime' },
};

// ---------------------------------------------------------------- values

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;
// 18.16's calendar ends with 2105: a later (or pre-1970) Date or DateTime string
// silently becomes 0000-00-00, or wraps; 26.x saturates at its own bounds.
// One range for every server and form, so a filter never quietly shifts.
const MIN_DATE = '1970-01-01';
const MAX_DATE = '2105-12-31';
const MAX_DATE_TIME = 4_291_747_199; // 2105-12-31 23:59:59 UTC
const DATE_TIME_RANGE = '1970-01-01 00:00:00..2105-12-31 23:59:59';
// A positive integer literal ≥ 2^32 is a UInt64 on 18.16, which has no common
// type with a negative one (Int*): such an array needs typed elements.
const UINT32_END = 2n ** 32n;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a Date';
  return `a ${typeof value}`;
}

function misfit(name: string, type: string, value: unknown, why?: string): ClickHouseError {
  return invalid(
    `param "${name}" does not fit {${name}:${type}}: got ${describe(value)}${why ? ` (${why})` : ''}`,
  );
}

/** Backslash, single quote and control characters escaped per ClickHouse's string-literal rules. */
export function quoteString(value: string): string {
  return `'${value.replace(ESCAPED, escapeChar)}'`;
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const ESCAPED = /[\\'\x00-\x1f\x7f]/g;

function escapeChar(char: string): string {
  if (char === '\\') return '\\\\';
  if (char === "'") return "\\'";
  return `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

function validDate(year: number, month: number, day: number): boolean {
  const date = new Date(Date.UTC(year, month - 1, day));
  return (
    date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day
  );
}

function dateOf(value: Date): string {
  return value.toISOString().slice(0, 10);
}

/** `-0` keeps its sign (`String(-0)` is "0"); everything else prints as JavaScript does. */
function floatText(value: number): string {
  return Object.is(value, -0) ? '-0' : String(value);
}

/** A value checked against its type, as the literal for client binding and the value for the server. */
interface Checked {
  readonly literal: string;
  readonly server: unknown;
}

function checkInteger(
  type: Extract<ParamType, { kind: 'Int' }>,
  name: string,
  value: unknown,
): Checked {
  let big: bigint;
  if (typeof value === 'bigint') big = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) big = BigInt(value);
  else if (typeof value === 'string' && /^-?[0-9]{1,40}$/.test(value)) big = BigInt(value);
  else
    throw misfit(name, type.name, value, 'expected a safe integer, a bigint or a decimal string');
  if (big < type.min || big > type.max) {
    throw misfit(name, type.name, value, `out of range ${type.min}..${type.max}`);
  }
  // A plain number literal, so that it works where 18.16 wants a number (LIMIT,
  // OFFSET, tuple index). Its type is the smallest that holds it; Array and
  // Nullable CAST theirs. For the server: a number when exact (arrays need it
  // unquoted; the driver prints a bigint the same way).
  const exact = Number(big);
  return {
    literal: big.toString(),
    server: Number.isSafeInteger(exact) ? exact : big,
  };
}

function checkString(name: string, type: string, value: unknown): string {
  if (typeof value !== 'string') throw misfit(name, type, value);
  // A lone surrogate would be sent as U+FFFD: the server would not see the caller's string.
  if (!value.isWellFormed()) throw misfit(name, type, value, 'contains a lone UTF-16 surrogate');
  return value;
}

/**
 * `inArray`: the value is an element of an Array, where the driver prints
 * strings quoted, so numbers must stay numbers.
 */
function check(type: ParamType, name: string, value: unknown, inArray = false): Checked {
  if (value === undefined) {
    throw invalid(`param "${name}" is undefined: pass null for a Nullable type`);
  }
  switch (type.kind) {
    case 'String': {
      const text = checkString(name, 'String', value);
      return { literal: quoteString(text), server: text };
    }
    case 'FixedString': {
      const text = checkString(name, `FixedString(${type.bytes})`, value);
      if (Buffer.byteLength(text) > type.bytes) {
        throw misfit(name, `FixedString(${type.bytes})`, value, `longer than ${type.bytes} bytes`);
      }
      return { literal: `toFixedString(${quoteString(text)}, ${type.bytes})`, server: text };
    }
    case 'UUID': {
      if (!isUuid(value)) throw misfit(name, 'UUID', value, 'expected 8-4-4-4-12 hex digits');
      const uuid = value.toLowerCase();
      return { literal: `toUUID('${uuid}')`, server: uuid };
    }
    case 'Int':
      return checkInteger(type, name, value);
    case 'Float': {
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw misfit(name, type.name, value, 'expected a finite number');
      }
      // Out of Float32's range the server makes it inf (JSON null) without a word.
      if (type.name === 'Float32' && !Number.isFinite(Math.fround(value))) {
        throw misfit(name, type.name, value, 'out of Float32 range ±3.4028234663852886e38');
      }
      const text = floatText(value);
      // As text where the driver sends it unquoted (a number would lose -0's sign).
      return { literal: `to${type.name}('${text}')`, server: inArray ? value : text };
    }
    case 'Bool': {
      const bit = value === true || value === 1 ? 1 : value === false || value === 0 ? 0 : -1;
      if (bit === -1) throw misfit(name, 'Bool', value, 'expected true, false, 1 or 0');
      // 18.16 has no Bool type: a UInt8 0/1 is what it compares and returns.
      return { literal: `toUInt8(${bit})`, server: bit === 1 };
    }
    case 'Date': {
      let text: string;
      if (value instanceof Date && !Number.isNaN(value.getTime())) text = dateOf(value);
      else if (typeof value === 'string') text = value;
      else throw misfit(name, 'Date', value, "expected 'YYYY-MM-DD' or a Date");
      const parts = DATE.exec(text);
      if (!parts || !validDate(Number(parts[1]), Number(parts[2]), Number(parts[3]))) {
        throw misfit(name, 'Date', value, "expected 'YYYY-MM-DD'");
      }
      if (text < MIN_DATE || text > MAX_DATE) {
        throw misfit(name, 'Date', value, `out of range ${MIN_DATE}..${MAX_DATE}`);
      }
      return { literal: `toDate('${text}')`, server: text };
    }
    case 'DateTime': {
      if (typeof value === 'string') {
        const parts = DATE_TIME.exec(value);
        const valid =
          parts !== null &&
          validDate(Number(parts[1]), Number(parts[2]), Number(parts[3])) &&
          Number(parts[4]) < 24 &&
          Number(parts[5]) < 60 &&
          Number(parts[6]) < 60;
        if (!valid) throw misfit(name, 'DateTime', value, "expected 'YYYY-MM-DD hh:mm:ss'");
        // Read in the server's time zone: checked as UTC (exact on a UTC server).
        if (value < `${MIN_DATE} 00:00:00` || value > `${MAX_DATE} 23:59:59`) {
          throw misfit(name, 'DateTime', value, `out of range ${DATE_TIME_RANGE}`);
        }
        return { literal: `toDateTime('${value}')`, server: value };
      }
      const seconds =
        value instanceof Date
          ? Math.floor(value.getTime() / 1000)
          : typeof value === 'number' && Number.isSafeInteger(value)
            ? value
            : Number.NaN;
      if (!(seconds >= 0 && seconds <= MAX_DATE_TIME)) {
        throw misfit(
          name,
          'DateTime',
          value,
          `expected a Date or Unix seconds within ${DATE_TIME_RANGE} UTC`,
        );
      }
      return { literal: `toDateTime(${seconds})`, server: seconds };
    }
    case 'Array': {
      if (!Array.isArray(value)) throw misfit(name, type.text, value);
      const items = value.map((item: unknown, index) =>
        check(type.of, `${name}[${index}]`, item, true),
      );
      const { of } = type;
      const literals =
        of.kind === 'Int' && needsTypedElements(items)
          ? items.map((item) => `CAST(${item.literal} AS ${of.name})`)
          : items.map((item) => item.literal);
      return {
        literal: `CAST([${literals.join(', ')}] AS ${type.text})`,
        server: items.map((item) => item.server),
      };
    }
    case 'Nullable': {
      if (value === null) return { literal: `CAST(NULL AS ${type.text})`, server: null };
      const inner = check(type.of, name, value, inArray);
      return { literal: `CAST(${inner.literal} AS ${type.text})`, server: inner.server };
    }
  }
}

/** Integer literals mixing negatives with values ≥ 2^32 (Int* and UInt64 on 18.16: no common type). */
function needsTypedElements(items: readonly Checked[]): boolean {
  let negative = false;
  let large = false;
  for (const item of items) {
    const big = BigInt(item.literal);
    if (big < 0n) negative = true;
    else if (big >= UINT32_END) large = true;
  }
  return negative && large;
}

/**
 * Binds `params` to the placeholders of `sql`: every placeholder needs a value
 * and every value a placeholder. Values of the allow-listed types are checked
 * in both modes (the same call fails the same way on every server); in client
 * mode any other type is refused, in server mode it goes to the server as is,
 * except `Identifier` (a value that becomes a table or column name, not a
 * value), refused unless `allowIdentifiers`.
 * @throws {ClickHouseError} INVALID_ARGUMENT
 */
export function bindParams(
  sql: string,
  placeholders: readonly Placeholder[],
  params: QueryParams | undefined,
  mode: BindingMode,
  allowIdentifiers = false,
): BoundQuery {
  const given = params ?? {};
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw invalid('params must be an object of values by placeholder name');
  }
  for (const name of Object.keys(given)) {
    if (!NAME.test(name)) throw invalid(`param name ${JSON.stringify(name)} is not an identifier`);
    if (!placeholders.some((placeholder) => placeholder.name === name)) {
      throw invalid(`param "${name}" has no {${name}:Type} placeholder in the SQL`);
    }
  }
  if (placeholders.length === 0) return { sql, params: undefined };

  const literals = new Map<Placeholder, string>();
  const server: Record<string, unknown> = {};
  for (const placeholder of placeholders) {
    const { name } = placeholder;
    if (!Object.hasOwn(given, name)) {
      throw invalid(`placeholder {${name}:${placeholder.type}} has no value in params`);
    }
    const value = given[name];
    if (!allowIdentifiers && placeholder.type.toLowerCase() === 'identifier') {
      throw invalid(
        `{${name}:${placeholder.type}} makes a value part of the SQL (a name, not a value): refused unless the handle has allowIdentifierParams`,
      );
    }
    const type = parseParamType(placeholder.type);
    if (!type) {
      if (mode === 'client') {
        throw invalid(
          `type ${placeholder.type} of {${name}} cannot be bound on this server (no server-side parameters); client-side binding knows ${KNOWN_TYPES}`,
        );
      }
      if (value === undefined) throw invalid(`param "${name}" is undefined`);
      server[name] = value;
      continue;
    }
    const checked = check(type, name, value);
    literals.set(placeholder, checked.literal);
    server[name] = checked.server;
  }
  if (mode === 'server') return { sql, params: server };

  // Spaces around every literal: `x-{n:Int8}` with -5 must not become the
  // comment `x--5`, nor `{a:UInt8}{b:UInt8}` one number, nor `t{n:UInt8}` a name.
  let out = '';
  let from = 0;
  for (const placeholder of placeholders) {
    out += `${sql.slice(from, placeholder.start)} ${literals.get(placeholder)!} `;
    from = placeholder.end;
  }
  return { sql: out + sql.slice(from), params: undefined };
}

const KNOWN_TYPES =
  'String, FixedString(N), UUID, Int8–Int64, UInt8–UInt64, Float32, Float64, Bool, Date, DateTime, Array(T), Nullable(T)';
