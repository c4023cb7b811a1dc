import { describe, expect, it } from 'vitest';
import { liveEventOf } from './live-events.js';

describe('liveEventOf', () => {
  it('makes update, progress and reset events in the wire format browsers read', () => {
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
  });

  it('makes the event of one item object once', () => {
    const item = { kind: 'update' as const, mzTimestamp: 1n, mzDiff: 1, row: { id: 'x' } };
    const first = liveEventOf(item);
    expect(liveEventOf(item)).toBe(first);
    expect(liveEventOf({ ...item })).not.toBe(first);
    expect(liveEventOf({ ...item })).toEqual(first);
  });
});
