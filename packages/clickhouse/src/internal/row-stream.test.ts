import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ClickHouseError } from '../errors.js';
import type { Execution } from './query-lifecycle.js';
import { RowStream } from './row-stream.js';
import { RowReader } from './rows.js';

/** An execution over a body of `chunks`, recording how it ended. */
function execution(...chunks: string[]): { execution: Execution; ends: string[] } {
  const ends: string[] = [];
  const reader = new RowReader(Readable.from(chunks.map((chunk) => Buffer.from(chunk))));
  return {
    ends,
    execution: {
      reader,
      queryId: 'q',
      complete: () => void ends.push('complete'),
      stop: () => {
        ends.push('stop');
        reader.destroy();
      },
      fail: (error) => {
        ends.push('fail');
        return new ClickHouseError('QUERY_FAILED', String(error));
      },
    },
  };
}

describe('RowStream', () => {
  it('starts the query on the first next(), yields every row, then completes once', async () => {
    const { execution: running, ends } = execution('{"n":1}\n{"n":2}\n', '{"n":3}\n');
    let starts = 0;
    const stream = new RowStream<{ n: number }>(() => {
      starts += 1;
      return Promise.resolve(running);
    });
    expect(starts).toBe(0);
    const rows: number[] = [];
    for await (const row of stream) rows.push(row.n);
    expect(rows).toEqual([1, 2, 3]);
    expect(starts).toBe(1);
    expect(ends).toEqual(['complete']);
    await expect(stream.next()).resolves.toEqual({ done: true, value: undefined });
  });

  it('stops the query when the consumer breaks out', async () => {
    const { execution: running, ends } = execution('{"n":1}\n{"n":2}\n');
    for await (const row of new RowStream<{ n: number }>(() => Promise.resolve(running))) {
      expect(row).toEqual({ n: 1 });
      break;
    }
    expect(ends).toEqual(['stop']);
  });

  it('stops a query that return() overtook while it was starting', async () => {
    const { execution: running, ends } = execution('{"n":1}\n');
    let started: (value: Execution) => void = () => undefined;
    const stream = new RowStream(() => new Promise<Execution>((resolve) => (started = resolve)));
    const pending = stream.next();
    await stream.return();
    started(running);
    await expect(pending).resolves.toEqual({ done: true, value: undefined });
    expect(ends).toEqual(['stop']);
  });

  it('rejects with the execution’s error for a broken body, and with a start error as it is', async () => {
    const { execution: running, ends } = execution('{"n":1}\nnot json\n');
    const stream = new RowStream(() => Promise.resolve(running));
    await expect(stream.next()).resolves.toEqual({ done: false, value: { n: 1 } });
    await expect(stream.next()).rejects.toMatchObject({ code: 'QUERY_FAILED' });
    expect(ends).toEqual(['fail']);
    await expect(stream.next()).resolves.toEqual({ done: true, value: undefined });

    const refused = new ClickHouseError('INVALID_ARGUMENT', 'x');
    await expect(new RowStream(() => Promise.reject(refused)).next()).rejects.toBe(refused);
  });
});
