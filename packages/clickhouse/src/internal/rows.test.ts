import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ClickHouseError } from '../errors.js';
import { RowReader } from './rows.js';
import { toClickHouseError } from './server-errors.js';

async function readAll(reader: RowReader): Promise<unknown[]> {
  const rows: unknown[] = [];
  for (;;) {
    let row: unknown;
    while ((row = reader.take()) !== undefined) rows.push(row);
    if (!(await reader.fill())) return rows;
  }
}

async function failure(reader: RowReader): Promise<ClickHouseError> {
  try {
    await readAll(reader);
  } catch (error) {
    return toClickHouseError(error);
  }
  throw new Error('expected the body to fail');
}

const body = (...chunks: (string | Buffer)[]): Readable =>
  Readable.from(chunks.map((chunk) => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk)));

describe('RowReader', () => {
  it('reads rows split anywhere across chunks, and counts them', async () => {
    const reader = new RowReader(body('{"a":1}\n{"a"', ':2}\n', '{"a":3', '}\n'));
    expect(await readAll(reader)).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }]);
    expect(reader.rows).toBe(3);
  });

  it('reassembles a multi-byte character split between chunks', async () => {
    const bytes = Buffer.from('{"s":"é😀"}\n');
    const chunks = Array.from(bytes, (byte) => Buffer.from([byte]));
    expect(await readAll(new RowReader(body(...chunks)))).toEqual([{ s: 'é😀' }]);
  });

  it('takes nothing before a chunk was read, and an empty body has no rows', async () => {
    const reader = new RowReader(body());
    expect(reader.take()).toBeUndefined();
    expect(await readAll(reader)).toEqual([]);
  });

  it('turns 18.16’s exception line after rows into that server error', async () => {
    const reader = new RowReader(
      body(
        '{"n":"1"}\n{"n":"2"}\nCode: 395, e.displayText() = DB::Exception: Value passed',
        " to 'throwIf' function is non zero, e.what() = DB::Exception\n",
      ),
    );
    const rows: unknown[] = [];
    await expect(
      (async () => {
        for (;;) {
          let row: unknown;
          while ((row = reader.take()) !== undefined) rows.push(row);
          if (!(await reader.fill())) return;
        }
      })(),
    ).rejects.toThrow(/Code: 395/);
    expect(rows).toEqual([{ n: '1' }, { n: '2' }]);
    const error = await failure(
      new RowReader(
        body('Code: 395, e.displayText() = DB::Exception: boom, e.what() = DB::Exception\n'),
      ),
    );
    expect(error).toMatchObject({ code: 'QUERY_FAILED', serverCode: 395 });
  });

  it('turns a 25.11+ tagged exception block into that server error', async () => {
    const error = await failure(
      new RowReader(
        body(
          '{"n":"1"}\n\r\n__exception__\r\nk3x9\nCode: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED) (version 25.11.1.1)\n96 k3x9\r\n__exception__\r\n',
        ),
      ),
    );
    expect(error).toMatchObject({ serverCode: 241, serverType: 'MEMORY_LIMIT_EXCEEDED' });
  });

  it('refuses a body that is not JSONEachRow, without echoing it', async () => {
    const error = await failure(new RowReader(body('{"n":1}\nsecret row text\n')));
    expect(error.code).toBe('QUERY_FAILED');
    expect(error.serverCode).toBeUndefined();
    expect(error.message).not.toContain('secret');
  });

  it('refuses a last line without its newline that is not an error', async () => {
    const error = await failure(new RowReader(body('{"n":1}\n{"n":')));
    expect(error.code).toBe('QUERY_FAILED');
  });

  it('destroys the stream it reads', () => {
    const stream = body('{"n":1}\n');
    const reader = new RowReader(stream);
    reader.destroy();
    reader.destroy();
    expect(stream.destroyed).toBe(true);
  });
});
