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
    // AS OF 10 without a snapshot: nothing at 10 will come, so 11 is the frontier.
    expect(brief(feed(buffer, [progress(10n), update(11n, 'a'), update(11n, 'b')]))).toEqual([
      'P11',
    ]);
    expect(buffer.buffered).toBe(2);
    expect(brief(feed(buffer, [update(11n, 'c', -1), progress(12n)]))).toEqual([
      '11:a+1',
      '11:b+1',
      '11:c-1',
      'P12',
    ]);
    expect(buffer.frontier).toBe(12n);
    expect(buffer.buffered).toBe(0);
  });

  it('closes a timestamp when a row at a later one arrives', () => {
    const buffer = new UpdateBuffer<Row>({
      progress: true,
      start: { snapshot: false, asOf: undefined },
    });
    // A row at 8 means every time before 8 is complete: the frontier is 8, not 7.
    expect(brief(feed(buffer, [progress(5n), update(6n, 'a'), update(8n, 'b')]))).toEqual([
      'P6',
      '6:a+1',
      'P8',
    ]);
    expect(buffer.frontier).toBe(8n);
  });

  it('reports no frontier before a snapshot is released: a checkpoint never skips it', () => {
    const buffer = new UpdateBuffer<Row>({
      progress: true,
      start: { snapshot: true, asOf: undefined },
    });
    expect(brief(feed(buffer, [progress(50n), update(50n, 'a')]))).toEqual([]);
    expect(buffer.frontier).toBeUndefined();
    expect(brief(feed(buffer, [update(50n, 'b'), progress(51n)]))).toEqual([
      '50:a+1',
      '50:b+1',
      'P51',
    ]);
  });

  it('yields no progress items unless asked, and the same updates', () => {
    const buffer = new UpdateBuffer<Row>({
      progress: false,
      start: { snapshot: false, asOf: undefined },
    });
    expect(
      brief(feed(buffer, [progress(5n), update(6n, 'a'), progress(7n), progress(9n)])),
    ).toEqual(['6:a+1']);
    expect(buffer.frontier).toBe(9n);
  });

  it('never moves the frontier back and drops updates below it', () => {
    const buffer = new UpdateBuffer<Row>({
      progress: true,
      start: { snapshot: false, asOf: undefined },
    });
    feed(buffer, [progress(10n), update(11n, 'seen'), progress(12n)]);
    expect(buffer.frontier).toBe(12n);
    // A resumption AS OF P-1 starts with a progress row at P-1; a server that
    // (wrongly) repeats older updates cannot make them appear twice.
    buffer.discardOpen();
    expect(
      brief(feed(buffer, [progress(11n), update(11n, 'seen'), update(12n, 'new'), progress(13n)])),
    ).toEqual(['12:new+1', 'P13']);
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
      // The snapshot again, whole, then a later time: from then on, AS OF P-1.
      const again = feed(buffer, [
        progress(50n),
        update(50n, 'a'),
        update(50n, 'b'),
        progress(51n),
      ]);
      expect(brief(again)).toEqual(['50:a+1', '50:b+1']);
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
