import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMaterializeError } from '../errors.js';
import {
  checkTimestamp,
  declareStatement,
  drainFetchStatement,
  fetchStatement,
  waitFetchStatement,
  quoteIdentifier,
  quoteLiteral,
  quoteViewName,
  subscribeQuery,
} from './sql.js';

function refusal(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** Reads back a `'…'` literal the way a standard_conforming_strings server does. */
function unquoteLiteral(literal: string): string {
  expect(literal.startsWith("'") && literal.endsWith("'")).toBe(true);
  const body = literal.slice(1, -1);
  // Every quote inside comes in pairs: a lone one would end the literal early.
  expect(body.replaceAll("''", '')).not.toContain("'");
  return body.replaceAll("''", "'");
}

describe('quoteIdentifier', () => {
  it('quotes plain identifiers, letter case kept', () => {
    expect(quoteIdentifier('tenant_id', 'column')).toBe('"tenant_id"');
    expect(quoteIdentifier('Widget_Totals', 'column')).toBe('"Widget_Totals"');
    expect(quoteIdentifier('_x9', 'column')).toBe('"_x9"');
    expect(quoteIdentifier('a'.repeat(63), 'column')).toBe(`"${'a'.repeat(63)}"`);
  });

  it.each([
    '',
    '9lives',
    'a-b',
    'a b',
    'a"b',
    'a;b',
    'é',
    'a'.repeat(64),
    'a.b',
    'a\u0000',
    'x" = \'1\' OR "1',
  ])('refuses %j', (name) => {
    expect(
      isMaterializeError(
        refusal(() => quoteIdentifier(name, 'column')),
        'INVALID_ARGUMENT',
      ),
    ).toBe(true);
  });

  it('refuses non-strings', () => {
    for (const value of [undefined, null, 1, {}, ['a']]) {
      expect(
        isMaterializeError(
          refusal(() => quoteIdentifier(value, 'column')),
          'INVALID_ARGUMENT',
        ),
      ).toBe(true);
    }
  });

  it('either refuses or emits exactly one quoted identifier (fast-check)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 70 }), (name) => {
        let quoted: string;
        try {
          quoted = quoteIdentifier(name, 'column');
        } catch (error) {
          expect(isMaterializeError(error, 'INVALID_ARGUMENT')).toBe(true);
          return;
        }
        expect(quoted).toBe(`"${name}"`);
        expect(quoted.slice(1, -1)).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('quoteViewName', () => {
  it('quotes each part of [[database.]schema.]name', () => {
    expect(quoteViewName('widget_totals')).toBe('"widget_totals"');
    expect(quoteViewName('public.widget_totals')).toBe('"public"."widget_totals"');
    expect(quoteViewName('materialize.public.v')).toBe('"materialize"."public"."v"');
  });

  it.each(['a.b.c.d', '.v', 'v.', 'a..b', 'public.v; DROP VIEW v', '"v"', 'v--'])(
    'refuses %j',
    (view) => {
      expect(
        isMaterializeError(
          refusal(() => quoteViewName(view)),
          'INVALID_ARGUMENT',
        ),
      ).toBe(true);
    },
  );
});

describe('quoteLiteral', () => {
  it('quotes strings with quotes doubled and backslashes as they are', () => {
    expect(quoteLiteral("it's", '"c"')).toBe("'it''s'");
    expect(quoteLiteral('a\\b', '"c"')).toBe("'a\\b'");
    expect(quoteLiteral("'; DROP TABLE x; --", '"c"')).toBe("'''; DROP TABLE x; --'");
    expect(quoteLiteral('', '"c"')).toBe("''");
  });

  it('writes numbers, bigints and booleans as SQL literals', () => {
    expect(quoteLiteral(42, '"c"')).toBe('42');
    expect(quoteLiteral(-7, '"c"')).toBe('-7');
    expect(quoteLiteral(-0, '"c"')).toBe('0');
    expect(quoteLiteral(1e21, '"c"')).toBe('1000000000000000000000');
    expect(quoteLiteral(0.5, '"c"')).toBe('0.5');
    expect(quoteLiteral(12345678901234567890n, '"c"')).toBe('12345678901234567890');
    expect(quoteLiteral(-3n, '"c"')).toBe('-3');
    expect(quoteLiteral(true, '"c"')).toBe('true');
    expect(quoteLiteral(false, '"c"')).toBe('false');
  });

  it.each([
    ['a NUL', 'a\u0000b'],
    ['a lone high surrogate', 'a\uD800'],
    ['a lone low surrogate', '\uDC00b'],
    ['NaN', Number.NaN],
    ['Infinity', Infinity],
    ['null', null],
    ['undefined', undefined],
    ['an object', { toString: () => "' OR 1=1 --" }],
    ['an array', ['a']],
    ['a date', new Date(0)],
    ['a symbol', Symbol('x')],
  ])('refuses %s', (_what, value) => {
    expect(
      isMaterializeError(
        refusal(() => quoteLiteral(value, '"c"')),
        'INVALID_ARGUMENT',
      ),
    ).toBe(true);
  });

  it('round-trips every well-formed string without NUL (fast-check)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), (value) => {
        fc.pre(!value.includes('\u0000'));
        expect(unquoteLiteral(quoteLiteral(value, '"c"'))).toBe(value);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses or round-trips any UTF-16 string (fast-check)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (value) => {
        let literal: string;
        try {
          literal = quoteLiteral(value, '"c"');
        } catch (error) {
          expect(isMaterializeError(error, 'INVALID_ARGUMENT')).toBe(true);
          return;
        }
        expect(unquoteLiteral(literal)).toBe(value);
        // What is sent is exactly what UTF-8 can carry.
        expect(Buffer.from(literal, 'utf8').toString('utf8')).toBe(literal);
      }),
      { numRuns: 2000 },
    );
  });

  it('writes every finite number so that it reads back as the same number (fast-check)', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (value) => {
        const literal = quoteLiteral(value, '"c"');
        expect(literal).toMatch(/^-?\d+(\.\d+)?(e[+-]\d+)?$/);
        expect(Number(literal)).toBe(value === 0 ? 0 : value);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('subscribeQuery and the statements', () => {
  it('builds the SELECT with quoted names and ANDed filters', () => {
    const query = subscribeQuery('public.widget_totals', ['tenant_id', 'total'], {
      tenant_id: "t'1",
      active: true,
      n: 3,
    });
    expect(declareStatement(query, false, undefined)).toBe(
      `DECLARE flowforge_subscribe CURSOR FOR SUBSCRIBE (SELECT "tenant_id", "total" FROM "public"."widget_totals" WHERE "tenant_id" = 't''1' AND "active" = true AND "n" = 3) WITH (SNAPSHOT = false, PROGRESS)`,
    );
    expect(declareStatement(query, true, 1_700_000_000_000n)).toMatch(
      /WITH \(SNAPSHOT = true, PROGRESS\) AS OF 1700000000000$/,
    );
  });

  it('selects * without columns and has no WHERE for an empty filter', () => {
    const query = subscribeQuery('v', undefined, {});
    expect(query).toEqual({ view: '"v"', columns: '*', where: '' });
  });

  it.each([
    ['empty columns', 'v', [], undefined],
    ['a duplicate column', 'v', ['a', 'a'], undefined],
    ['columns not an array', 'v', 'a', undefined],
    ['a bad column', 'v', ['a b'], undefined],
    ['a filter array', 'v', undefined, ['a']],
    ['a null filter', 'v', undefined, null],
    ['a bad filter key', 'v', undefined, { 'a = 1 OR b': 1 }],
    ['a bad filter value', 'v', undefined, { a: null }],
    ['a bad view', 'v v', undefined, undefined],
  ])('refuses %s', (_what, view, columns, filter) => {
    expect(
      isMaterializeError(
        refusal(() => subscribeQuery(view, columns, filter)),
        'INVALID_ARGUMENT',
      ),
    ).toBe(true);
  });

  it('FETCHes with the batch size and the timeout in ms', () => {
    expect(fetchStatement(1000, 250)).toBe(
      "FETCH 1000 flowforge_subscribe WITH (timeout = '250ms')",
    );
  });

  it('waits for one row with the timeout, drains a batch without one', () => {
    expect(waitFetchStatement(250)).toBe("FETCH 1 flowforge_subscribe WITH (timeout = '250ms')");
    expect(drainFetchStatement(500)).toBe("FETCH 500 flowforge_subscribe WITH (timeout = '0s')");
  });

  it('checks timestamps', () => {
    expect(checkTimestamp(5n, 'asOf', 0n)).toBe(5n);
    expect(checkTimestamp(2n ** 64n - 1n, 'asOf', 0n)).toBe(2n ** 64n - 1n);
    for (const bad of [-1n, 2n ** 64n, 5, '5', undefined]) {
      expect(
        isMaterializeError(
          refusal(() => checkTimestamp(bad, 'asOf', 0n)),
          'INVALID_ARGUMENT',
        ),
      ).toBe(true);
    }
    expect(isMaterializeError(refusal(() => checkTimestamp(0n, 'resumeFrom', 1n)))).toBe(true);
  });
});
