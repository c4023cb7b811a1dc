import { describe, expect, it } from 'vitest';
import { isMaterializeError } from './errors.js';
import { liveEventOf } from './live-events.js';
import type { LiveItem } from './shared.js';

const WIDGET = { name: 'widget_id', value: '3f2a0c1e-0000-4000-8000-000000000001' };

describe('liveEventOf', () => {
  it('makes update, progress, reset and status events in the wire format browsers read', () => {
    expect(
      liveEventOf({
        kind: 'update',
        mzTimestamp: 17n,
        mzDiff: -1,
        row: { id: 'a', n: 2, big: 3n },
      }),
    ).toEqual({
      event: 'update',
      data: '{"mz_timestamp":"17","mz_diff":-1,"row":{"id":"a","n":2,"big":"3"}}',
    });
    expect(liveEventOf({ kind: 'progress', mzTimestamp: 18n })).toEqual({
      event: 'progress',
      id: '18',
      data: '{"mz_timestamp":"18"}',
    });
    expect(liveEventOf({ kind: 'reset' })).toEqual({ event: 'reset', data: '{}' });
    expect(liveEventOf({ kind: 'status', upstream: 'lost' })).toEqual({
      event: 'status',
      data: '{"upstream":"lost"}',
    });
    expect(liveEventOf({ kind: 'status', upstream: 'live' })).toEqual({
      event: 'status',
      data: '{"upstream":"live"}',
    });
  });

  it('makes the event of one item object once', () => {
    const item = { kind: 'update' as const, mzTimestamp: 1n, mzDiff: 1, row: { id: 'x' } };
    const first = liveEventOf(item);
    expect(liveEventOf(item)).toBe(first);
    expect(liveEventOf({ ...item })).not.toBe(first);
    expect(liveEventOf({ ...item })).toEqual(first);
  });

  it('with a label, puts its field first in every event and gives progress no id', () => {
    const field = `"widget_id":"${WIDGET.value}"`;
    const row = { id: 'a', total: '12345678901234567890', big: 2n ** 70n };
    expect(liveEventOf({ kind: 'update', mzTimestamp: 17n, mzDiff: 2, row }, WIDGET)).toEqual({
      event: 'update',
      data: `{${field},"mz_timestamp":"17","mz_diff":2,"row":{"id":"a","total":"12345678901234567890","big":"1180591620717411303424"}}`,
    });
    expect(liveEventOf({ kind: 'progress', mzTimestamp: 2n ** 64n - 1n }, WIDGET)).toEqual({
      event: 'progress',
      data: `{${field},"mz_timestamp":"18446744073709551615"}`,
    });
    expect(liveEventOf({ kind: 'reset' }, WIDGET)).toEqual({ event: 'reset', data: `{${field}}` });
    expect(liveEventOf({ kind: 'status', upstream: 'lost' }, WIDGET)).toEqual({
      event: 'status',
      data: `{${field},"upstream":"lost"}`,
    });
    // Every data is JSON whose first field is the label.
    for (const item of [
      { kind: 'update', mzTimestamp: 1n, mzDiff: 1, row: { quote: '"\\\n' } },
      { kind: 'progress', mzTimestamp: 1n },
      { kind: 'reset' },
      { kind: 'status', upstream: 'live' },
    ] as const) {
      const parsed = JSON.parse(liveEventOf(item, { name: 'w"id', value: 'a"\\b' }).data) as object;
      expect(Object.entries(parsed)[0]).toEqual(['w"id', 'a"\\b']);
    }
  });

  it('makes a labelled event once per item object and label value, and the same row encoding for each', () => {
    const item: LiveItem<unknown> = { kind: 'update', mzTimestamp: 5n, mzDiff: 1, row: { id: 1 } };
    const unlabelled = liveEventOf(item);
    const first = liveEventOf(item, WIDGET);
    expect(liveEventOf(item, { ...WIDGET })).toBe(first);
    const other = liveEventOf(item, { name: 'widget_id', value: 'another' });
    expect(other).not.toBe(first);
    expect(other.data).toBe(
      '{"widget_id":"another","mz_timestamp":"5","mz_diff":1,"row":{"id":1}}',
    );
    expect(liveEventOf(item, { name: 'w', value: WIDGET.value }).data).toMatch(/^\{"w":/);
    expect(liveEventOf(item)).toBe(unlabelled);
    // A status object of a shared subscription: one event per widget however many viewers.
    const status: LiveItem<unknown> = Object.freeze({ kind: 'status', upstream: 'lost' });
    expect(liveEventOf(status, WIDGET)).toBe(liveEventOf(status, { ...WIDGET }));
  });

  it("refuses a label named like one of the items' fields, or that is not a string", () => {
    const progress: LiveItem<unknown> = { kind: 'progress', mzTimestamp: 1n };
    for (const name of ['mz_timestamp', 'mz_diff', 'row', 'upstream']) {
      let error: unknown;
      try {
        liveEventOf(progress, { name, value: 'x' });
      } catch (thrown) {
        error = thrown;
      }
      expect(isMaterializeError(error, 'INVALID_ARGUMENT')).toBe(true);
    }
    expect(() => liveEventOf(progress, { name: 'widget_id', value: 7 as never })).toThrow(
      /label value must be a string/,
    );
  });
});
