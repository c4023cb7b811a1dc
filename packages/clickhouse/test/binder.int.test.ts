/**
 * Engine: clickhouse-server 18.16, the shared one of scripts/services on 8123,
 * which has no query parameters: every value below goes through the
 * client-side binder as a literal. The proof that the binder is exact is the
 * server's own answer: `SELECT {s:String}` returns each adversarial string
 * unchanged (test/support/adversarial.ts, a seeded table), and every other
 * allow-listed type comes back as the value bound.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createClickHouse } from '../src/index.js';
import { ADVERSARIAL_STRINGS } from './support/adversarial.js';
import { expectCode } from './support/assert.js';
import { READER, SHARED_URL } from './support/shared-server.js';

const clickhouse = createClickHouse({ url: SHARED_URL, ...READER, parameterBinding: 'client' });
afterAll(() => clickhouse.close());

describe('18.16, client-side binding: strings', () => {
  it.each(
    ADVERSARIAL_STRINGS.map((value, index) => [index, JSON.stringify(value).slice(0, 60), value]),
  )(
    'SELECT {s:String} returns adversarial string #%i (%s) unchanged',
    async (_index, _shown, value) => {
      const rows = await clickhouse.query<{ s: string; n: string }>(
        'SELECT {s:String} AS s, lengthUTF8({s:String}) AS n',
        { s: value },
      );
      expect(rows).toEqual([{ s: value, n: String([...value].length) }]);
    },
  );

  it('all of them at once, as an Array(String) and as Nullable(String)', async () => {
    const rows = await clickhouse.query<{ a: string[]; n: (string | null)[] }>(
      'SELECT {a:Array(String)} AS a, [{x:Nullable(String)}, {y:Nullable(String)}] AS n',
      { a: ADVERSARIAL_STRINGS, x: null, y: "it's" },
    );
    expect(rows).toEqual([{ a: ADVERSARIAL_STRINGS, n: [null, "it's"] }]);
  });

  it('a value can never become SQL: the statement count and the data stay what the SQL says', async () => {
    const rows = await clickhouse.query<{ c: string }>(
      'SELECT count() AS c FROM system.one WHERE {s:String} = {s:String}',
      { s: "x' OR '1'='1" },
    );
    expect(rows).toEqual([{ c: '1' }]);
    const none = await clickhouse.query("SELECT 1 FROM system.one WHERE {s:String} = 'x'", {
      s: "x' OR '1'='1",
    });
    expect(none).toEqual([]);
  });
});

describe('18.16, client-side binding: other types', () => {
  it('integers at their limits come back exact', async () => {
    const rows = await clickhouse.query<Record<string, string>>(
      'SELECT toString({a:Int64}) AS a, toString({b:UInt64}) AS b, toString({c:Int8}) AS c, toString({d:UInt32}) AS d',
      { a: -(2n ** 63n), b: '18446744073709551615', c: -128, d: 4_294_967_295 },
    );
    expect(rows).toEqual([
      { a: '-9223372036854775808', b: '18446744073709551615', c: '-128', d: '4294967295' },
    ]);
  });

  it('an integer works where 18.16 wants a number literal (LIMIT), and next to a minus', async () => {
    const rows = await clickhouse.query(
      'SELECT number, 10-{n:Int8} AS d FROM system.numbers LIMIT {limit:UInt32}',
      { n: -5, limit: 2 },
    );
    expect(rows).toEqual([
      { number: '0', d: 15 },
      { number: '1', d: 15 },
    ]);
  });

  it('UUID, floats, Bool, Date, DateTime, FixedString, Nullable and nested arrays', async () => {
    const rows = await clickhouse.query(
      `SELECT {u:UUID} AS u, toTypeName({u:UUID}) AS ut, {f:Float64} AS f, {b:Bool} AS b,
              {d:Date} AS d, toString({t:DateTime}) = {ts:String} AS same_time,
              {fs:FixedString(4)} AS fs, toTypeName({fs:FixedString(4)}) AS fst,
              {nn:Nullable(UInt64)} AS nn, toTypeName({nn:Nullable(UInt64)}) AS nnt,
              {aa:Array(Array(Int32))} AS aa, toTypeName({aa:Array(Array(Int32))}) AS aat`,
      {
        u: '0F2C1A4E-8B7D-4C3E-9A1B-2D3E4F5A6B7C',
        f: -1.25e-7,
        b: true,
        d: '2024-02-29',
        t: '2024-02-29 23:59:58',
        ts: '2024-02-29 23:59:58',
        fs: 'ab',
        nn: null,
        aa: [[1, -2], []],
      },
    );
    expect(rows).toEqual([
      {
        u: '0f2c1a4e-8b7d-4c3e-9a1b-2d3e4f5a6b7c',
        ut: 'UUID',
        f: -1.25e-7,
        b: 1,
        d: '2024-02-29',
        same_time: 1,
        fs: 'ab\u0000\u0000',
        fst: 'FixedString(4)',
        nn: null,
        nnt: 'Nullable(UInt64)',
        aa: [[1, -2], []],
        aat: 'Array(Array(Int32))',
      },
    ]);
  });

  it('a DateTime from a Date is that instant', async () => {
    const instant = new Date('2024-06-01T12:00:00Z');
    const rows = await clickhouse.query<{ t: number }>(
      'SELECT toUnixTimestamp({t:DateTime}) AS t',
      {
        t: instant,
      },
    );
    expect(rows).toEqual([{ t: instant.getTime() / 1000 }]);
  });

  it('an Int64 array with both extremes comes back exact (its elements typed; once: "no supertype")', async () => {
    const extremes = ['-9223372036854775808', '9223372036854775807'];
    await expect(
      clickhouse.query('SELECT {a:Array(Int64)} AS a, toTypeName({a:Array(Int64)}) AS t', {
        a: extremes,
      }),
    ).resolves.toEqual([{ a: extremes, t: 'Array(Int64)' }]);
  });

  it('-0, the largest Float32 and the calendar’s ends come back as bound', async () => {
    const [row] = await clickhouse.query<Record<string, unknown>>(
      `SELECT {z:Float64} AS z, {m:Float32} AS m, toString({first:Date}) AS first,
              toString({last:Date}) AS last, toUnixTimestamp({end:DateTime}) AS end`,
      {
        z: -0,
        m: 3.4028234663852886e38,
        first: '1970-01-02',
        last: '2105-12-31',
        end: '2105-12-31 23:59:59',
      },
    );
    expect(Object.is(row?.z, -0)).toBe(true);
    expect(row).toMatchObject({
      m: 3.4028235e38,
      first: '1970-01-02',
      last: '2105-12-31',
      end: 4_291_747_199,
    });
  });

  it.each<[string, string, unknown]>([
    // 18.16 would answer inf (JSON null), 0000-00-00, 0 or a wrapped time: refused instead.
    ['a Float32 beyond its range', 'SELECT {f:Float32}', 1e300],
    ['a Date before 1970', 'SELECT {d:Date}', '1900-01-01'],
    ['a Date after 2105', 'SELECT {d:Date}', '2106-01-01'],
    ['a DateTime after 2105', 'SELECT {t:DateTime}', '2200-01-01 00:00:00'],
  ])('refuses %s (INVALID_ARGUMENT, nothing sent)', async (_what, sql, value) => {
    const name = /\{(\w+):/.exec(sql)![1]!;
    await expectCode(clickhouse.query(sql, { [name]: value }), 'INVALID_ARGUMENT');
  });

  it('refuses a type outside the allow-list (INVALID_ARGUMENT, nothing sent)', async () => {
    await expectCode(
      clickhouse.query('SELECT {d:Decimal(10, 2)}', { d: '1.5' }),
      'INVALID_ARGUMENT',
    );
  });
});
