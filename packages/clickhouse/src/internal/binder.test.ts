import { describe, expect, it } from 'vitest';
import {
  bindParams,
  parseParamType,
  quoteString,
  scanPlaceholders,
  type BindingMode,
  type QueryParams,
} from './binder.js';
import { ADVERSARIAL_STRINGS } from '../../test/support/adversarial.js';
import { expectThrownCode } from '../../test/support/assert.js';

function bind(sql: string, params: QueryParams | undefined, mode: BindingMode = 'client') {
  return bindParams(sql, scanPlaceholders(sql), params, mode);
}

function invalidArgument(run: () => unknown): string {
  return expectThrownCode(run, 'INVALID_ARGUMENT').message;
}

/**
 * ClickHouse's reading of a quoted string literal (readQuotedString: `\` escapes
 * with \b \f \n \r \t \0 \a \v \xHH, any other escaped character stands for
 * itself; `''` is a quote), as a model to check the binder's output against.
 */
function readLiteral(literal: string): string {
  expect(literal.startsWith("'") && literal.endsWith("'")).toBe(true);
  const body = literal.slice(1, -1);
  const simple: Record<string, string> = {
    b: '\b',
    f: '\f',
    n: '\n',
    r: '\r',
    t: '\t',
    '0': '\0',
    a: '\x07',
    v: '\v',
  };
  let out = '';
  for (let i = 0; i < body.length; i += 1) {
    const c = body[i]!;
    if (c === "'") {
      // An unescaped quote inside the body would end the literal early.
      expect(body[i + 1], `unescaped quote at ${i} in ${literal}`).toBe("'");
      out += "'";
      i += 1;
    } else if (c === '\\') {
      const next = body[i + 1]!;
      if (next === 'x') {
        out += String.fromCharCode(parseInt(body.slice(i + 2, i + 4), 16));
        i += 3;
      } else {
        out += simple[next] ?? next;
        i += 1;
      }
    } else {
      out += c;
    }
  }
  return out;
}

describe('scanPlaceholders', () => {
  it('finds placeholders in code, with nested types, spaces and repeated names', () => {
    const sql =
      "SELECT { a : UInt8 }, {b:Array(Nullable(String))}, {c:DateTime('UTC')} WHERE x = {a:UInt8}";
    expect(scanPlaceholders(sql).map(({ name, type }) => [name, type])).toEqual([
      ['a', 'UInt8'],
      ['b', 'Array(Nullable(String))'],
      ['c', "DateTime('UTC')"],
      ['a', 'UInt8'],
    ]);
  });

  it('leaves braces that are not placeholders alone (map literals, JSON in strings)', () => {
    expect(scanPlaceholders("SELECT {'a': 1}, '{\"k\": 1}', {1:2}")).toEqual([]);
  });

  it.each([
    ["SELECT '{x:String}'", 'string literal'],
    ["SELECT 'it''s {x:String}'", 'string literal'],
    ["SELECT 'a\\' {x:String}'", 'string literal'],
    ['SELECT "{x:String}"', 'quoted identifier'],
    ['SELECT `{x:String}`', 'quoted identifier'],
    ['SELECT 1 -- {x:String}', 'comment'],
    ['SELECT 1 # {x:String}', 'comment'],
    ['SELECT 1 /* {x:String} */', 'comment'],
    ['SELECT $$ {x:String} $$', 'heredoc'],
    ['SELECT $tag$ {x:String} $tag$', 'heredoc'],
  ])('refuses a placeholder inside a %s (%s)', (sql, what) => {
    expect(invalidArgument(() => scanPlaceholders(sql))).toContain(what);
  });

  it('refuses nested block comments (18.16 and newer servers end them differently)', () => {
    expect(invalidArgument(() => scanPlaceholders('SELECT 1 /* a /* b */ {x:UInt8} */'))).toMatch(
      /nested block comments/,
    );
  });

  it('finds code placeholders after strings and comments that contain quotes and braces', () => {
    const sql = "SELECT 'a''b\\'c' /* ' */ -- '\n, {x:UInt8} AS x # }\n";
    expect(scanPlaceholders(sql).map((p) => p.name)).toEqual(['x']);
  });

  it('reads `//` as a comment (26.x does): a quote in it opens no string', () => {
    // 26.x: `// '` is a comment, so ' {v:String} ' is a string; read as code,
    // the scanner would bind inside the server's string.
    expect(invalidArgument(() => scanPlaceholders("SELECT 1 // '\n, ' {v:String} ' AS n"))).toMatch(
      /string literal/,
    );
    expect(invalidArgument(() => scanPlaceholders('SELECT 1 // {v:String}'))).toMatch(/comment/);
  });

  it('still reads closed $tag$ strings at the start of a token, and skips them', () => {
    expect(
      scanPlaceholders("SELECT $$it's$$ AS a, $x1$ '{ $x1$ AS b, {v:UInt8} AS c").map(
        (p) => p.name,
      ),
    ).toEqual(['v']);
  });

  it.each([
    // 26.x: `a$x$` is one name, so '$x$' is a string and ' {v:String} ' another.
    ["SELECT 1 AS a$x$, '$x$' AS m, ' {v:String} ' AS n", /inside a name or after a number/],
    ['SELECT 1 AS a$b, {v:UInt8}', /inside a name or after a number/],
    // 26.x: a number, then a $x$ string.
    ["SELECT 1$x$, ' $x$ , ' {v:String}", /inside a name or after a number/],
    ['SELECT {v:UInt8} AS x, $ab', /does not open a \$tag\$/],
    ["SELECT $ ', $ AS a, ' {v:String} ', $ ', $", /does not open a \$tag\$/],
    ['SELECT $x$ AS y, {v:UInt8}', /never closed/],
  ])('refuses a `$` servers read differently: %s', (sql, message) => {
    expect(invalidArgument(() => scanPlaceholders(sql))).toMatch(message);
  });

  it.each([
    // 26.x reads ‘…’ as a string: the ' inside it opens nothing.
    ["SELECT ‘'’ AS a, ' {v:String} ' AS b", 7],
    ['SELECT “x” FROM t WHERE a = {v:String}', 7],
    ['SELECT 1\u00a0AS x', 8],
    ['SELECT é', 7],
  ])('refuses a non-ASCII character outside strings and comments: %s', (sql, offset) => {
    expect(invalidArgument(() => scanPlaceholders(sql))).toContain(`offset ${offset}`);
  });

  it('accepts non-ASCII text inside strings, quoted identifiers and comments', () => {
    const sql = 'SELECT \'é ‘x’ 中\' AS `naïve`, "ü" -- “\n/* ‘ */ {v:String}';
    expect(scanPlaceholders(sql).map((p) => p.name)).toEqual(['v']);
  });
});

describe('parseParamType', () => {
  it('knows the allow-list', () => {
    for (const type of [
      'String',
      'FixedString(16)',
      'UUID',
      'Int8',
      'Int16',
      'Int32',
      'Int64',
      'UInt8',
      'UInt16',
      'UInt32',
      'UInt64',
      'Float32',
      'Float64',
      'Bool',
      'Date',
      'DateTime',
      'Array(Array(Int64))',
      'Array(Nullable(UUID))',
      'Nullable(String)',
    ]) {
      expect(parseParamType(type), type).toBeDefined();
    }
  });

  it('refuses everything else', () => {
    for (const type of [
      'Decimal(10,2)',
      'DateTime64(3)',
      'Map(String,UInt8)',
      'Int128',
      'LowCardinality(String)',
      'Nullable(Array(String))',
      'Nullable(Nullable(String))',
      'FixedString(0)',
      "Enum8('a'=1)",
      'string',
      "DateTime('UTC')",
    ]) {
      expect(parseParamType(type), type).toBeUndefined();
    }
  });
});

describe('bindParams: presence', () => {
  it('needs a value for every placeholder and a placeholder for every value', () => {
    expect(invalidArgument(() => bind('SELECT {a:UInt8}', {}))).toMatch(/has no value/);
    expect(invalidArgument(() => bind('SELECT {a:UInt8}', undefined))).toMatch(/has no value/);
    expect(invalidArgument(() => bind('SELECT 1', { a: 1 }))).toMatch(/no \{a:Type\} placeholder/);
    expect(invalidArgument(() => bind('SELECT {a:UInt8}', { a: 1, b: 2 }))).toMatch(/"b"/);
    expect(invalidArgument(() => bind('SELECT {a:UInt8}', { a: undefined }))).toMatch(/undefined/);
    expect(invalidArgument(() => bind('SELECT 1', { 'a-b': 1 }))).toMatch(/not an identifier/);
    expect(invalidArgument(() => bind('SELECT 1', [1] as unknown as QueryParams))).toMatch(
      /must be an object/,
    );
  });

  it('does not take inherited properties as values', () => {
    const params = Object.create({ a: 1 }) as QueryParams;
    expect(invalidArgument(() => bind('SELECT {a:UInt8}', params))).toMatch(/has no value/);
  });

  it('passes SQL without placeholders through unchanged, in both modes', () => {
    expect(bind('SELECT 1', undefined, 'client')).toEqual({ sql: 'SELECT 1', params: undefined });
    expect(bind('SELECT 1', {}, 'server')).toEqual({ sql: 'SELECT 1', params: undefined });
  });
});

describe('bindParams: client mode literals', () => {
  const literal = (type: string, value: unknown): string =>
    bind(`SELECT {v:${type}}`, { v: value }).sql.slice('SELECT  '.length, -1);

  it('substitutes every occurrence and nothing else, each literal between spaces', () => {
    expect(bind("SELECT {a:UInt8}, '{', {a:UInt8}", { a: 7 }).sql).toBe("SELECT  7 , '{',  7 ");
  });

  it('never glues a literal to what is around it', () => {
    expect(bind('SELECT 10-{n:Int8}', { n: -5 }).sql).toBe('SELECT 10- -5 ');
    expect(bind('SELECT {a:UInt8}{b:UInt8}', { a: 1, b: 2 }).sql).toBe('SELECT  1  2 ');
    expect(bind('SELECT t{n:UInt8}', { n: 1 }).sql).toBe('SELECT t 1 ');
  });

  it('types every literal as the placeholder says', () => {
    expect(literal('String', "it's")).toBe("'it\\'s'");
    // A surrogate pair is well formed: only a lone half is refused.
    expect(literal('String', 'a\uD83D\uDE00b')).toBe("'a\uD83D\uDE00b'");
    expect(literal('FixedString(4)', 'ab')).toBe("toFixedString('ab', 4)");
    expect(literal('UUID', '0F2C1A4E-8B7D-4C3E-9A1B-2D3E4F5A6B7C')).toBe(
      "toUUID('0f2c1a4e-8b7d-4c3e-9a1b-2d3e4f5a6b7c')",
    );
    expect(literal('Int64', -(2n ** 63n))).toBe('-9223372036854775808');
    expect(literal('UInt64', '18446744073709551615')).toBe('18446744073709551615');
    expect(literal('Int8', -128)).toBe('-128');
    expect(literal('UInt32', '007')).toBe('7');
    expect(literal('Float64', 1.5e300)).toBe("toFloat64('1.5e+300')");
    expect(literal('Float32', -0.25)).toBe("toFloat32('-0.25')");
    expect(literal('Float64', -0)).toBe("toFloat64('-0')");
    expect(literal('Float32', 3.4028234663852886e38)).toBe("toFloat32('3.4028234663852886e+38')");
    expect(literal('Bool', true)).toBe('toUInt8(1)');
    expect(literal('Bool', 0)).toBe('toUInt8(0)');
    expect(literal('Date', '2024-02-29')).toBe("toDate('2024-02-29')");
    expect(literal('Date', new Date('2024-02-29T23:59:59Z'))).toBe("toDate('2024-02-29')");
    expect(literal('DateTime', '2024-02-29 23:59:59')).toBe("toDateTime('2024-02-29 23:59:59')");
    expect(literal('DateTime', new Date(1_700_000_000_999))).toBe('toDateTime(1700000000)');
    expect(literal('DateTime', 0)).toBe('toDateTime(0)');
    expect(literal('Date', '1970-01-01')).toBe("toDate('1970-01-01')");
    expect(literal('Date', '2105-12-31')).toBe("toDate('2105-12-31')");
    expect(literal('DateTime', '2105-12-31 23:59:59')).toBe("toDateTime('2105-12-31 23:59:59')");
    expect(literal('DateTime', 4_291_747_199)).toBe('toDateTime(4291747199)');
    expect(literal('Array(UInt8)', [])).toBe('CAST([] AS Array(UInt8))');
    expect(literal('Array(Nullable(String))', ['a', null])).toBe(
      "CAST([CAST('a' AS Nullable(String)), CAST(NULL AS Nullable(String))] AS Array(Nullable(String)))",
    );
    expect(literal('Array(Array(UInt8))', [[1], []])).toBe(
      'CAST([CAST([1] AS Array(UInt8)), CAST([] AS Array(UInt8))] AS Array(Array(UInt8)))',
    );
    expect(literal('Nullable(UInt64)', null)).toBe('CAST(NULL AS Nullable(UInt64))');
    expect(literal('Nullable(UInt64)', 5)).toBe('CAST(5 AS Nullable(UInt64))');
  });

  it('types integer array elements when negatives meet values ≥ 2^32 (18.16: Int64 and UInt64 have no common type)', () => {
    expect(literal('Array(Int64)', ['-9223372036854775808', '9223372036854775807'])).toBe(
      'CAST([CAST(-9223372036854775808 AS Int64), CAST(9223372036854775807 AS Int64)] AS Array(Int64))',
    );
    expect(literal('Array(Int64)', [-1, 2 ** 32])).toBe(
      'CAST([CAST(-1 AS Int64), CAST(4294967296 AS Int64)] AS Array(Int64))',
    );
    // Literals that have a common type stay plain (an IN list stays short).
    expect(literal('Array(Int64)', [-1, 2 ** 32 - 1])).toBe(
      'CAST([-1, 4294967295] AS Array(Int64))',
    );
    expect(literal('Array(UInt64)', [0, 2n ** 64n - 1n])).toBe(
      'CAST([0, 18446744073709551615] AS Array(UInt64))',
    );
  });

  it.each([
    ['String', 5, /got a number/],
    ['String', 'a\uD800b', /lone UTF-16 surrogate/],
    ['String', '\uDC00', /lone UTF-16 surrogate/],
    ['FixedString(2)', 'éé', /longer than 2 bytes/],
    ['UUID', 'not-a-uuid', /8-4-4-4-12/],
    ['UUID', '0f2c1a4e8b7d4c3e9a1b2d3e4f5a6b7c', /8-4-4-4-12/],
    ['UInt8', 256, /out of range/],
    ['UInt8', -1, /out of range/],
    ['Int64', 2n ** 63n, /out of range/],
    ['UInt64', 2n ** 64n, /out of range/],
    ['Int32', 1.5, /safe integer/],
    ['Int64', 2 ** 53, /safe integer/],
    ['Int32', '1e3', /safe integer/],
    ['Int32', ' 1', /safe integer/],
    ['Float64', Number.NaN, /finite/],
    ['Float64', Infinity, /finite/],
    ['Float64', '1.5', /finite/],
    ['Float32', 1e300, /out of Float32 range/],
    ['Float32', -3.5e38, /out of Float32 range/],
    ['Array(Float32)', [1, 1e39], /v\[1\].*out of Float32 range/],
    ['Bool', 'true', /true, false, 1 or 0/],
    ['Date', '2023-02-29', /YYYY-MM-DD/],
    ['Date', '2024-1-01', /YYYY-MM-DD/],
    ['Date', new Date(Number.NaN), /YYYY-MM-DD/],
    ['Date', '1900-01-01', /out of range 1970-01-01\.\.2105-12-31/],
    ['Date', '1969-12-31', /out of range/],
    ['Date', '2106-01-01', /out of range/],
    ['Date', new Date('1969-12-31T12:00:00Z'), /out of range/],
    ['DateTime', '2024-01-01T00:00:00', /hh:mm:ss/],
    ['DateTime', '2024-01-01 24:00:00', /hh:mm:ss/],
    ['DateTime', -1, /1970-01-01 00:00:00\.\.2105-12-31 23:59:59/],
    ['DateTime', 4_291_747_200, /1970-01-01 00:00:00\.\.2105-12-31 23:59:59/],
    ['DateTime', 2 ** 32, /2105-12-31 23:59:59/],
    ['DateTime', '2200-01-01 00:00:00', /out of range 1970-01-01 00:00:00\.\.2105-12-31 23:59:59/],
    ['DateTime', '2106-01-01 00:00:00', /out of range/],
    ['DateTime', '1969-12-31 23:59:59', /out of range/],
    ['DateTime', new Date('2106-01-01T00:00:00Z'), /2105-12-31 23:59:59/],
    ['Array(UInt8)', 'abc', /got a string/],
    ['Array(UInt8)', [1, 300], /v\[1\].*out of range/],
    ['UInt8', null, /got null/],
    ['Nullable(UInt8)', undefined, /undefined/],
  ])('refuses {v:%s} = %s', (type, value, message) => {
    expect(invalidArgument(() => bind(`SELECT {v:${type}}`, { v: value }))).toMatch(message);
  });

  it('refuses types outside the allow-list, and no literal is produced', () => {
    for (const type of ['Decimal(10, 2)', 'DateTime64(3)', 'Map(String, UInt8)', 'Int128']) {
      expect(invalidArgument(() => bind(`SELECT {v:${type}}`, { v: 1 }))).toMatch(
        /cannot be bound on this server/,
      );
    }
  });

  it('escapes backslash, quote and control characters, and nothing else', () => {
    expect(quoteString("a\\b'c\n\t\x00\x1f\x7fé{x:String}")).toBe(
      "'a\\\\b\\'c\\x0a\\x09\\x00\\x1f\\x7fé{x:String}'",
    );
  });

  it('reads back every adversarial string exactly (ClickHouse literal rules as a model)', () => {
    expect(ADVERSARIAL_STRINGS.length).toBeGreaterThan(40);
    for (const value of ADVERSARIAL_STRINGS) {
      const { sql } = bind('SELECT {s:String} AS s', { s: value });
      const quoted = sql.slice('SELECT  '.length, -'  AS s'.length);
      // readLiteral also fails on a quote that would end the literal early.
      expect(readLiteral(quoted)).toBe(value);
    }
  });
});

describe('bindParams: server mode', () => {
  it('keeps the SQL and sends checked, normalised values', () => {
    const bound = bind(
      'SELECT {u:UUID}, {n:Int64}, {big:UInt64}, {d:DateTime}, {a:Array(UInt8)}, {m:Map(String, UInt8)}',
      {
        u: '0F2C1A4E-8B7D-4C3E-9A1B-2D3E4F5A6B7C',
        n: '42',
        big: 2n ** 63n,
        d: new Date(1_700_000_000_000),
        a: [1, 2],
        m: { a: 1 },
      },
      'server',
    );
    expect(bound.sql).toContain('{u:UUID}');
    expect(bound.params).toEqual({
      u: '0f2c1a4e-8b7d-4c3e-9a1b-2d3e4f5a6b7c',
      n: 42,
      big: 2n ** 63n,
      d: 1_700_000_000,
      a: [1, 2],
      m: { a: 1 },
    });
  });

  it('sends floats as text at the top level (-0 keeps its sign), as numbers inside arrays', () => {
    expect(
      bind(
        'SELECT {a:Float64}, {b:Float32}, {c:Array(Float64)}',
        { a: -0, b: 0.5, c: [1.5] },
        'server',
      ).params,
    ).toEqual({ a: '-0', b: '0.5', c: [1.5] });
  });

  it('refuses {name:Identifier} (a value that becomes a name) unless allowed', () => {
    const sql = 'SELECT * FROM {t:Identifier}';
    expect(invalidArgument(() => bind(sql, { t: 'secrets' }, 'server'))).toMatch(
      /allowIdentifierParams/,
    );
    expect(invalidArgument(() => bind('SELECT {t:identifier}', { t: 'x' }, 'server'))).toMatch(
      /allowIdentifierParams/,
    );
    expect(bindParams(sql, scanPlaceholders(sql), { t: 'events' }, 'server', true).params).toEqual({
      t: 'events',
    });
    // Client-side binding has no identifiers at all.
    expect(
      invalidArgument(() => bindParams(sql, scanPlaceholders(sql), { t: 'x' }, 'client', true)),
    ).toMatch(/cannot be bound on this server/);
  });

  it('checks the allow-listed types the same way as client mode', () => {
    expect(invalidArgument(() => bind('SELECT {u:UUID}', { u: 'x' }, 'server'))).toMatch(
      /8-4-4-4-12/,
    );
    expect(invalidArgument(() => bind('SELECT {n:UInt8}', { n: 256 }, 'server'))).toMatch(
      /out of range/,
    );
    expect(
      invalidArgument(() => bind('SELECT {m:Map(String,UInt8)}', { m: undefined }, 'server')),
    ).toMatch(/undefined/);
  });
});
