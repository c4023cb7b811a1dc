/**
 * Engine: clickhouse-server 18.16, the shared one of scripts/services on 8123.
 * Its errors come in the old text format ("Code: 62, e.displayText() = …"),
 * which @clickhouse/client does not parse: every one must still arrive as a
 * ClickHouseError with the right code and the server's number. Also the
 * handle's own endings: deadline (TIMEOUT), signal (CANCELLED), close (CLOSED).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createClickHouse, type ClickHouse, type ClickHouseOptions } from '../src/index.js';
import { consume, expectCode } from './support/assert.js';
import {
  createWriter,
  DATABASE,
  exec,
  READER,
  select,
  SHARED_URL,
  WRITER,
} from './support/shared-server.js';

const handles: ClickHouse[] = [];
afterAll(async () => {
  for (const handle of handles) await handle.close();
});

function open(options: Partial<ClickHouseOptions> = {}): ClickHouse {
  const handle = createClickHouse({ url: SHARED_URL, ...READER, database: DATABASE, ...options });
  handles.push(handle);
  return handle;
}

describe('18.16: authentication', () => {
  it('a wrong password is AUTH_FAILED (193), and neither message nor cause carries it', async () => {
    const password = 'wrong-LEAKCHECK-password';
    const error = await expectCode(open({ password }).query('SELECT 1'), 'AUTH_FAILED');
    expect(error.serverCode).toBe(193);
    expect(error.retryable).toBe(false);
    expect(error.message).not.toContain('LEAKCHECK');
    expect(String((error.cause as Error).message)).not.toContain('LEAKCHECK');
    await expectCode(open({ password }).health(), 'AUTH_FAILED');
  });

  it('an unknown user is AUTH_FAILED (192)', async () => {
    const error = await expectCode(
      open({ user: 'nobody_here', password: 'x' }).query('SELECT 1'),
      'AUTH_FAILED',
    );
    expect(error.serverCode).toBe(192);
  });

  it('credentials in the URL are used, and never shown', async () => {
    const wrong = open({
      url: 'http://flowforge_reader:wrong-LEAKCHECK@127.0.0.1:8123',
      user: 'ignored',
      password: 'ignored',
    });
    const error = await expectCode(wrong.query('SELECT 1'), 'AUTH_FAILED');
    expect(error.message).not.toContain('LEAKCHECK');
    const right = open({
      url: 'http://flowforge_reader:flowforge_reader@127.0.0.1:8123',
      user: 'ignored',
      password: 'ignored',
    });
    await expect(right.query('SELECT 1 AS x')).resolves.toEqual([{ x: 1 }]);
  });
});

describe('18.16: old-format server errors', () => {
  it.each<[string, string, string, number]>([
    ['a syntax error', 'SELEC 1', 'SYNTAX_ERROR', 62],
    ['an unknown table', 'SELECT * FROM flowforge.no_such_table', 'UNKNOWN_TABLE', 60],
    ['an unknown database', 'SELECT * FROM no_such_db.t', 'UNKNOWN_TABLE', 81],
    ['an unknown identifier', 'SELECT no_such_column FROM system.one', 'QUERY_INVALID', 47],
    ['an unknown function', 'SELECT no_such_function(1)', 'QUERY_INVALID', 46],
    ['a type mismatch', "SELECT 1 + 'a'", 'QUERY_INVALID', 43],
    ['any other error', 'SELECT throwIf(1)', 'QUERY_FAILED', 395],
  ])('%s → %s', async (_what, sql, code, serverCode) => {
    const error = await expectCode(open().query(sql), code as 'SYNTAX_ERROR');
    expect(error.serverCode).toBe(serverCode);
    expect(error.serverType).toBeUndefined(); // 18.16 sends no error name
    expect(error.queryId).toMatch(/^[0-9a-f-]{36}$/);
    expect(error.message).toMatch(new RegExp(`\\(ClickHouse code ${serverCode}\\)$`));
    expect(error.message).not.toMatch(/e\.displayText|e\.what/);
  });

  it('an unknown `database` option is UNKNOWN_TABLE (81) on the first query', async () => {
    const error = await expectCode(
      open({ database: 'no_such_db' }).query('SELECT 1'),
      'UNKNOWN_TABLE',
    );
    expect(error.serverCode).toBe(81);
  });

  it('an error after rows were sent: the rows arrive, then QUERY_FAILED with the server code', async () => {
    const sql = 'SELECT number, throwIf(number = 250000) AS t FROM system.numbers LIMIT 300000';
    const error = await expectCode(open().query(sql), 'QUERY_FAILED');
    expect(error.serverCode).toBe(395);

    let rows = 0;
    const failure = await expectCode(
      consume(open().stream(sql), (count) => {
        rows = count;
      }),
      'QUERY_FAILED',
    );
    expect(failure.serverCode).toBe(395);
    expect(rows).toBeGreaterThan(0);
    expect(rows).toBeLessThanOrEqual(250_000);
  });
});

describe('18.16: deadlines, signals, close', () => {
  it('SELECT sleep(3) with timeoutMs 500 is TIMEOUT (the handle’s deadline), for both users', async () => {
    for (const handle of [open(), open(WRITER)]) {
      const error = await expectCode(
        handle.query('SELECT sleep(3)', undefined, { timeoutMs: 500 }),
        'TIMEOUT',
      );
      expect(error.serverCode).toBeUndefined();
      expect(error.retryable).toBe(true);
    }
  });

  it('a readonly=1 user’s query given up on (deadline, signal) is killed on the server', async () => {
    // It cannot carry max_execution_time, and this query reads without end and
    // writes nothing until done: 18.16 would never notice the closed socket.
    const sql = 'SELECT count() FROM system.numbers';
    const writer = createWriter();
    const timedOut = `ff-test-kill-${randomUUID()}`;
    const cancelled = `ff-test-kill-${randomUUID()}`;
    const running = async (queryId: string): Promise<number> => {
      let count = 1;
      for (let attempt = 0; attempt < 200 && count > 0; attempt += 1) {
        const rows = await select<{ n: string }>(
          writer,
          `SELECT count() AS n FROM system.processes WHERE query_id = '${queryId}'`,
        );
        count = Number(rows[0]?.n);
        if (count > 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return count;
    };
    try {
      const handle = open();
      await expectCode(
        handle.query(sql, undefined, { timeoutMs: 300, queryId: timedOut }),
        'TIMEOUT',
      );
      expect(await running(timedOut)).toBe(0);

      const signal = new AbortController();
      const query = handle.query(sql, undefined, { signal: signal.signal, queryId: cancelled });
      setTimeout(() => signal.abort(), 300);
      await expectCode(query, 'CANCELLED');
      expect(await running(cancelled)).toBe(0);
    } finally {
      // Whatever happened above, leave nothing running on the shared server.
      await exec(writer, `KILL QUERY WHERE query_id IN ('${timedOut}', '${cancelled}') SYNC`);
      await writer.close();
    }
  });

  it('the server’s own max_execution_time is TIMEOUT (159)', async () => {
    const error = await expectCode(
      open(WRITER).query('SELECT sleep(3)', undefined, {
        timeoutMs: 15_000,
        settings: { max_execution_time: 1 },
      }),
      'TIMEOUT',
    );
    expect(error.serverCode).toBe(159);
  });

  it('a deadline reached mid-stream is TIMEOUT, after the rows read so far', async () => {
    let rows = 0;
    await expectCode(
      consume(
        open().stream('SELECT number FROM system.numbers', undefined, { timeoutMs: 300 }),
        async (count) => {
          rows = count;
          // A slow consumer: the deadline covers reading, not only the first byte.
          if (count % 1_000 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
        },
      ),
      'TIMEOUT',
    );
    expect(rows).toBeGreaterThan(0);
  });

  it('aborting the signal is CANCELLED: while the server works, and mid-stream', async () => {
    const waiting = new AbortController();
    const running = open().query('SELECT sleep(3)', undefined, { signal: waiting.signal });
    setTimeout(() => waiting.abort(), 100);
    await expectCode(running, 'CANCELLED');

    const streaming = new AbortController();
    let rows = 0;
    await expectCode(
      consume(
        open().stream('SELECT number FROM system.numbers', undefined, {
          signal: streaming.signal,
          timeoutMs: 60_000,
        }),
        (count) => {
          rows = count;
          if (count === 500) streaming.abort();
        },
      ),
      'CANCELLED',
    );
    expect(rows).toBeGreaterThanOrEqual(500);
  });

  it('close() while a query runs ends it with CLOSED; later calls are CLOSED too', async () => {
    const handle = open();
    const running = handle.query('SELECT sleep(3)');
    setTimeout(() => void handle.close(), 100);
    await expectCode(running, 'CLOSED');
    await expectCode(handle.query('SELECT 1'), 'CLOSED');
  });
});
