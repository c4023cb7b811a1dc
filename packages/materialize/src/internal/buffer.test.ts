import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMaterializeError } from '../errors.js';
import { UpdateBuffer, type Progress, type SubscribeRow, type Update } from './buffer.js';

type Row = { id: string };
type Item = Update<Row> | Progress;

const progress = (timestamp: bigint): SubscribeRow<Row> => ({ progressed: true, timestamp });
const update = (timestamp: bigint, id: string, diff = 1): SubscribeRow<Row> => ({
  progressed: false,
  update: { kind: 'update', mzTimestamp: timestamp, mzDiff: diff, row: { id } },
});

function feed(buffer: UpdateBuffer<Row>, rows: readonly SubscribeRow<Row>[]): Item[] {
  const out: Item[] = [];
  for (const row of rows) buffer.push(row, out);
  buffer.flush(out);
  return out;
}

const brief = (items: readonly Item[]): string[] =>
  items.map((item) =>
    item.kind === 'progress'
      ? `P${item.mzTimestamp}`
      : `${item.mzTimestamp}:${item.row.id}${item.mzDiff > 0 ? '+' : ''}${item.mzDiff}`,
  );

describe('UpdateBuffer', () => {
  it('holds an open timestamp back until a later progress row closes it', () => {
    const buffer = new UpdateBuffer<Row>({
      progress: true,
      start: { snapshot: false, asOf: undefined },
    });
    expect(brief(feed(buffer, [progress(10n), update(10n, 'a'), update(10n, 'b')]))).toEqual([
      'P10',
    ]);
    expect(buffer.buffered).toBe(2);
    expect(brief(feed(buffer, [update(10n, 'c', -1), progress(11n)]))).toEqual([
      '10:a+1',
      '10:b+1',
      '10:c-1',
      'P11',
    ]);
    expect(buffer.frontier).toBe(11n);
    expect(buffer.buffered).toBe(0);
  });

  it('closes a timestamp when a row at a later one arrives', () => {
    const buffer = new UpdateBuffer<Row>({
      progress: true,
      start: { snapshot: false, asOf: undefined },
    });
    expect(brief(feed(buffer, [progress(5n), update(5n, 'a'), update(7n, 'b')]))).toEqual([
      'P5',
      '5:a+1',
      'P6',
    ]);
    expect(buffer.frontier).toBe(6n);
  });

  it('yields no progress items unless asked, and the same updates', () => {
    const buffer = new UpdateBuffer<Row>({
      progress: false,
      start: { snapshot: false, asOf: undefined },
    });
    expect(
      brief(feed(buffer, [progress(5n), update(5n, 'a'), progress(6n), progress(9n)])),
    ).toEqual(['5:a+1']);
    expect(buffer.frontier).toBe(9n);
  });

  it('never moves the frontier back and drops updates below it', () => {
    const buffer = new UpdateBuffer<Row>({
      progress: true,
      start: { snapshot: false, asOf: undefined },
    });
    feed(buffer, [progress(10n)]);
    // A resumption AS OF P-1 starts with a progress row at P-1.
    expect(
      brief(feed(buffer, [progress(9n), update(9n, 'old'), update(10n, 'new'), progress(11n)])),
    ).toEqual(['10:new+1', 'P11']);
  });

  it('starts from resumeFrom: reports it once the server confirms, drops below it', () => {
    const buffer = new UpdateBuffer<Row>({
      progress: true,
      start: { snapshot: false, asOf: 19n },
      frontier: 20n,
    });
    expect(brief(feed(buffer, [progress(19n)]))).toEqual(['P20']);
    expect(
      brief(feed(buffer, [update(19n, 'x'), update(20n, 'y'), progress(19n), progress(21n)])),
    ).toEqual(['20:y+1', 'P21']);
    expect(buffer.resumePoint()).toEqual({ snapshot: false, asOf: 20n });
  });

  it('refuses rows out of timestamp order', () => {
    const buffer = new UpdateBuffer<Row>({
      progress: false,
      start: { snapshot: false, asOf: undefined },
    });
    feed(buffer, [update(5n, 'a')]);
    let error: unknown;
    try {
      feed(buffer, [update(4n, 'b')]);
    } catch (caught) {
      error = caught;
    }
    expect(isMaterializeError(error, 'QUERY_FAILED')).toBe(true);
  });

  describe('resumePoint', () => {
    it('is the original statement before anything is known', () => {
      const start = { snapshot: false, asOf: undefined };
      expect(new UpdateBuffer<Row>({ progress: false, start }).resumePoint()).toBe(start);
    });

    it('is AS OF P-1 without snapshot once a frontier P is known', () => {
      const buffer = new UpdateBuffer<Row>({
        progress: false,
        start: { snapshot: false, asOf: 3n },
      });
      feed(buffer, [progress(3n), update(4n, 'a'), progress(8n)]);
      expect(buffer.resumePoint()).toEqual({ snapshot: false, asOf: 7n });
    });

    it('re-snapshots AS OF the same time while the snapshot is unreleased', () => {
      const buffer = new UpdateBuffer<Row>({
        progress: false,
        start: { snapshot: true, asOf: undefined },
      });
      const out = feed(buffer, [progress(50n), update(50n, 'a'), update(50n, 'b')]);
      expect(out).toEqual([]);
      buffer.discardOpen();
      expect(buffer.resumePoint()).toEqual({ snapshot: true, asOf: 50n });
      // The snapshot is complete once a later time is: from then on, AS OF P-1.
      feed(buffer, [update(50n, 'a'), progress(51n)]);
      expect(buffer.resumePoint()).toEqual({ snapshot: false, asOf: 50n });
    });

    it('keeps the requested snapshot time when one was given', () => {
      const buffer = new UpdateBuffer<Row>({
        progress: false,
        start: { snapshot: true, asOf: 40n },
      });
      feed(buffer, [progress(40n)]);
      expect(buffer.resumePoint()).toEqual({ snapshot: true, asOf: 40n });
    });
  });

  it('delivers exactly the closed updates, in order, however a stream is split and resumed (fast-check)', () => {
    // A model of the server: a log of timestamps, each with its updates;
    // `upper` is the first open time. A subscription AS OF t (no snapshot)
    // sends a progress row at t, then, per closed time > t, its updates and a
    // progress row at time + 1. A connection may be lost after any row.
    const log = fc
      .array(
        fc.array(
          fc.integer({ min: -2, max: 2 }).filter((d) => d !== 0),
          { maxLength: 4 },
        ),
        {
          minLength: 1,
          maxLength: 12,
        },
      )
      .map((times) => times.map((diffs, index) => ({ time: BigInt(100 + index), diffs })));
    fc.assert(
      fc.property(log, fc.array(fc.nat(60), { maxLength: 6 }), (entries, cuts) => {
        const upper = BigInt(100 + entries.length);
        const stream = (asOf: bigint): SubscribeRow<Row>[] => {
          const rows: SubscribeRow<Row>[] = [progress(asOf)];
          for (const entry of entries) {
            if (entry.time <= asOf || entry.time >= upper) continue;
            entry.diffs.forEach((diff, index) => rows.push(update(entry.time, `r${index}`, diff)));
            rows.push(progress(entry.time + 1n));
          }
          return rows;
        };
        const buffer = new UpdateBuffer<Row>({
          progress: false,
          start: { snapshot: false, asOf: 99n },
        });
        const out: Item[] = [];
        let point = { snapshot: false, asOf: 99n as bigint | undefined };
        const remainingCuts = [...cuts];
        for (let round = 0; round < 10; round += 1) {
          const rows = stream(point.asOf ?? 99n);
          const cut = remainingCuts.shift();
          const upTo = cut === undefined ? rows.length : Math.min(cut, rows.length);
          for (const row of rows.slice(0, upTo)) buffer.push(row, out);
          if (cut === undefined || upTo === rows.length) break;
          buffer.discardOpen();
          point = buffer.resumePoint();
        }
        const expected = entries
          .filter((entry) => entry.time < upper)
          .flatMap((entry) =>
            entry.diffs.map(
              (diff, index) => `${entry.time}:r${index}${diff > 0 ? '+' : ''}${diff}`,
            ),
          );
        expect(brief(out)).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });
});
