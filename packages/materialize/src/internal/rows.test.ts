import { describe, expect, it } from 'vitest';
import { isMaterializeError } from '../errors.js';
import { parseDiff, parseTimestamp, RowDecoder } from './rows.js';

const fields = ['mz_timestamp', 'mz_progressed', 'mz_diff', 'tenant_id', 'total'].map((name) => ({
  name,
}));

function refusal(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('RowDecoder', () => {
  it('decodes updates: bigint timestamp, number diff, the view columns by name', () => {
    const decoder = new RowDecoder<Record<string, unknown>>();
    expect(decoder.decode(fields, ['1700000000123', false, '-2', 't1', '42'])).toEqual({
      progressed: false,
      update: {
        kind: 'update',
        mzTimestamp: 1_700_000_000_123n,
        mzDiff: -2,
        row: { tenant_id: 't1', total: '42' },
      },
    });
  });

  it('decodes progress rows', () => {
    const decoder = new RowDecoder<Record<string, unknown>>();
    expect(decoder.decode(fields, ['18446744073709551615', true, null, null, null])).toEqual({
      progressed: true,
      timestamp: 2n ** 64n - 1n,
    });
  });

  it('keeps a column named __proto__ as data, never as the prototype', () => {
    const decoder = new RowDecoder<Record<string, unknown>>();
    const decoded = decoder.decode(
      [...fields.slice(0, 3), { name: '__proto__' }],
      ['1', false, '1', 'x'],
    );
    expect(decoded.progressed).toBe(false);
    if (decoded.progressed) return;
    const row = decoded.update.row;
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype);
    expect(Object.keys(row)).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(row, '__proto__')?.value).toBe('x');
  });

  it('refuses output that is not SUBSCRIBE … WITH (PROGRESS)', () => {
    const decoder = new RowDecoder<Record<string, unknown>>();
    const noProgress = [{ name: 'mz_timestamp' }, { name: 'mz_diff' }, { name: 'a' }];
    expect(
      isMaterializeError(
        refusal(() => decoder.decode(noProgress, ['1', '1', 'x'])),
        'QUERY_FAILED',
      ),
    ).toBe(true);
    expect(
      isMaterializeError(
        refusal(() => decoder.decode(fields, ['1', null, '1', 'a', 'b'])),
        'QUERY_FAILED',
      ),
    ).toBe(true);
  });
});

describe('parseTimestamp and parseDiff', () => {
  it('parse unsigned integers and safe integers', () => {
    expect(parseTimestamp('0')).toBe(0n);
    expect(parseDiff('9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
    expect(parseDiff('-9007199254740991')).toBe(-Number.MAX_SAFE_INTEGER);
  });

  it.each(['9007199254740992', '-9223372036854775808', '1.5', '', 'x', null])(
    'refuses the diff %j',
    (value) => {
      expect(
        isMaterializeError(
          refusal(() => parseDiff(value)),
          'QUERY_FAILED',
        ),
      ).toBe(true);
    },
  );

  it.each(['-1', '1.0', '1e3', '', null, 5])('refuses the timestamp %j', (value) => {
    expect(
      isMaterializeError(
        refusal(() => parseTimestamp(value)),
        'QUERY_FAILED',
      ),
    ).toBe(true);
  });
});
