/**
 * Engine: clickhouse-server 18.16, the shared one of scripts/services on 8123
 * (never stopped or reconfigured here). Queries, streams (backpressure, early
 * break), query ids, database, detection and compression over real HTTP.
 * Fixture data: written by a raw @clickhouse/client as `flowforge` into a table
 * of this file's own (dropped in afterAll).
 */
import { randomUUID } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { runWithRequestContext } from '@flowforge/observability';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClickHouse, type ClickHouse, type ClickHouseOptions } from '../src/index.js';
import { drain, expectCode } from './support/assert.js';
import { logCapture } from './support/log-capture.js';
import {
  createWriter,
  DATABASE,
  exec,
  READER,
  select,
  SHARED_URL,
  uniqueTable,
  WRITER,
} from './support/shared-server.js';

const TENANT_A = '0a0a0a0a-0000-4000-8000-00000000000a';
const TENANT_B = '0b0b0b0b-0000-4000-8000-00000000000b';
const table = uniqueTable('transport');
let writer: ClickHouseClient;
const handles: ClickHouse[] = [];

function open(options: Partial<ClickHouseOptions> = {}): ClickHouse {
  const handle = createClickHouse({
    url: SHARED_URL,
    ...READER,
    database: DATABASE,
    requestTimeoutMs: 15_000,
    ...options,
  });
  handles.push(handle);
  return handle;
}

beforeAll(async () => {
  writer = createWriter();
  await exec(
    writer,
    `CREATE TABLE ${DATABASE}.${table} (id UInt32, tenant_id UUID, name String, big UInt64) ENGINE = Memory`,
  );
  await writer.insert({
    table: `${DATABASE}.${table}`,
    format: 'JSONEachRow',
    values: Array.from({ length: 6 }, (_, i) => ({
      id: i + 1,
      tenant_id: i % 2 === 0 ? TENANT_A : TENANT_B,
      name: `row ${i + 1}`,
      big: (18446744073709551615n - BigInt(i)).toString(),
    })),
  });
});

afterAll(async () => {
  for (const handle of handles) await handle.close();
  await exec(writer, `DROP TABLE IF EXISTS ${DATABASE}.${table}`);
  await writer.close();
});

/**
 * How many queries with `queryId` still run, after polling (bounded: 10 s) for
 * none: 18.16 cancels a query whose socket closed when it next writes a block.
 */
async function runningAfterWaiting(queryId: string): Promise<number> {
  let running = 1;
  for (let attempt = 0; attempt < 200 && running > 0; attempt += 1) {
    const rows = await select<{ n: string }>(
      writer,
      `SELECT count() AS n FROM system.processes WHERE query_id = '${queryId}'`,
    );
    running = Number(rows[0]?.n);
    if (running > 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return running;
}

describe('18.16: query and stream', () => {
  it('query resolves to parsed rows; unqualified names resolve in `database`; UInt64 stays exact', async () => {
    const rows = await open().query<{ id: number; name: string; big: string }>(
      `SELECT id, name, big FROM ${table} WHERE id <= {max:UInt32} ORDER BY id`,
      { max: 2 },
    );
    expect(rows).toEqual([
      { id: 1, name: 'row 1', big: '18446744073709551615' },
      { id: 2, name: 'row 2', big: '18446744073709551614' },
    ]);
  });

  it('stream yields every row of a large result in order', async () => {
    let count = 0;
    let sum = 0n;
    for await (const row of open().stream<{ number: string }>(
      'SELECT number FROM system.numbers LIMIT {n:UInt32}',
      { n: 200_000 },
    )) {
      expect(BigInt(row.number)).toBe(BigInt(count));
      count += 1;
      sum += BigInt(row.number);
    }
    expect(count).toBe(200_000);
    expect(sum).toBe(19_999_900_000n);
  });

  it('breaking out of a stream aborts the request: the server stops an endless query', async () => {
    const handle = open();
    const queryId = `ff-test-break-${randomUUID()}`;
    let seen = 0;
    for await (const row of handle.stream<{ number: string }>(
      'SELECT number FROM system.numbers',
      undefined,
      { queryId, timeoutMs: 60_000 },
    )) {
      expect(row.number).toBe(String(seen));
      seen += 1;
      if (seen === 1_000) break;
    }
    expect(seen).toBe(1_000);
    // An endless query only ends because its socket was closed: 18.16 cancels
    // it when the next block cannot be written. Poll (bounded) until it is gone.
    expect(await runningAfterWaiting(queryId)).toBe(0);
    await expect(handle.query('SELECT 1 AS one')).resolves.toEqual([{ one: 1 }]);
  });

  it('return() while the first next() is still starting the query stops it on the server', async () => {
    const handle = open();
    await handle.health(); // detected: next() goes straight to the endless query
    const queryId = `ff-test-return-${randomUUID()}`;
    const rows = handle.stream<{ number: string }>('SELECT number FROM system.numbers', undefined, {
      queryId,
      timeoutMs: 60_000,
    });
    const iterator = rows[Symbol.asyncIterator]();
    const first = iterator.next(); // pending: the request is on its way
    await expect(iterator.return?.()).resolves.toEqual({ done: true, value: undefined });
    // The consumer left: no row is handed out after return()…
    await expect(first).resolves.toEqual({ done: true, value: undefined });
    // …and the request is aborted at once, not at the 60 s deadline.
    expect(await runningAfterWaiting(queryId)).toBe(0);
    await expect(handle.query('SELECT 1 AS one')).resolves.toEqual([{ one: 1 }]);
  });

  it('a stream sends nothing until iterated, and return() before the end is harmless', async () => {
    const handle = open();
    const rows = handle.stream<{ n: number }>('SELECT 1 AS n');
    const iterator = rows[Symbol.asyncIterator]();
    await expect(iterator.next()).resolves.toEqual({ done: false, value: { n: 1 } });
    await expect(iterator.return?.()).resolves.toEqual({ done: true, value: undefined });
    await expect(iterator.next()).resolves.toEqual({ done: true, value: undefined });
  });

  it('health reports up with a latency', async () => {
    const health = await open().health();
    expect(health.status).toBe('up');
    expect(typeof health.latencyMs).toBe('number');
  });
});

describe('18.16: query ids', () => {
  // The query finds itself in system.processes by a marker in its own text.
  const ownQueryId = async (handle: ClickHouse, options = {}): Promise<string> => {
    const marker = `ff-qid-${randomUUID()}`;
    const rows = await handle.query<{ query_id: string }>(
      `SELECT query_id FROM system.processes WHERE query LIKE '%${marker}%'`,
      undefined,
      options,
    );
    expect(rows).toHaveLength(1);
    return rows[0]!.query_id;
  };

  it('is <request id>:<random> for each query of a request', async () => {
    const handle = open();
    await handle.health(); // detection first: its own queries do not use the request's ids
    const requestId = `req-${randomUUID()}`;
    const ids = await runWithRequestContext({ request_id: requestId }, async () => [
      await ownQueryId(handle),
      await ownQueryId(handle),
      await ownQueryId(handle),
    ]);
    for (const id of ids) expect(id).toMatch(new RegExp(`^${requestId}:[0-9a-f]{16}$`));
    expect(new Set(ids).size).toBe(3);
  });

  it('two requests with the same request id (a client-sent X-Request-ID) run at once', async () => {
    const handle = open();
    await handle.health();
    const requestId = `req-${randomUUID()}`;
    // Request one keeps an endless query running (it starts at the first next())…
    const rows = handle.stream('SELECT number FROM system.numbers', undefined, {
      timeoutMs: 60_000,
    });
    const endless = rows[Symbol.asyncIterator]();
    await expect(
      runWithRequestContext({ request_id: requestId }, () => endless.next()),
    ).resolves.toMatchObject({ done: false });
    try {
      // …while request two, with the same id, runs its own (once: 216, "already running").
      const other = await runWithRequestContext({ request_id: requestId }, () =>
        ownQueryId(handle),
      );
      expect(other.startsWith(`${requestId}:`)).toBe(true);
      const running = await select<{ query_id: string }>(
        writer,
        `SELECT query_id FROM system.processes WHERE query_id LIKE '${requestId}%' AND query_id != '${other}'`,
      );
      expect(running).toHaveLength(1);
      expect(running[0]?.query_id).not.toBe(other);
    } finally {
      await endless.return?.();
    }
  });

  it('is a random UUID outside a request, and options.queryId overrides', async () => {
    const handle = open();
    expect(await ownQueryId(handle)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);
    const mine = `import:${randomUUID()}`;
    expect(await ownQueryId(handle, { queryId: mine })).toBe(mine);
  });
});

describe('18.16: what is sent per user', () => {
  const setting = async (handle: ClickHouse, name: string, options = {}): Promise<string> => {
    const rows = await handle.query<{ value: string }>(
      'SELECT value FROM system.settings WHERE name = {name:String}',
      { name },
      options,
    );
    return rows[0]!.value;
  };

  it('readonly=1 user: only readonly=1 (its own level, unchanged), no deadline setting', async () => {
    const handle = open();
    expect(await setting(handle, 'readonly')).toBe('1');
    expect(await setting(handle, 'max_execution_time')).toBe('0');
  });

  it('readonly=0 user: readonly=2 and the server-side deadline per query; caller settings apply', async () => {
    const handle = open({ ...WRITER });
    expect(await setting(handle, 'readonly')).toBe('2');
    expect(await setting(handle, 'max_execution_time', { timeoutMs: 4_200 })).toBe('5');
    expect(await setting(handle, 'max_result_rows', { settings: { max_result_rows: 1234 } })).toBe(
      '1234',
    );
    // readonly=2, not 1: a SETTINGS clause still works.
    await expect(handle.query('SELECT 1 AS x SETTINGS max_threads = 1')).resolves.toEqual([
      { x: 1 },
    ]);
  });

  it('detects once and logs what it found; detectionTtlMs: 0 detects before every query', async () => {
    const cached = logCapture();
    const handle = open({ logger: cached.logger });
    await handle.query('SELECT 1');
    await handle.query('SELECT 1');
    const detections = cached.lines.filter(
      (line) => line.msg === 'clickhouse: detected the server and user',
    );
    expect(detections).toHaveLength(1);
    expect(detections[0]).toMatchObject({
      server_version: '18.16.1',
      user_readonly: 1,
      parameter_binding: 'client',
      url: SHARED_URL,
      user: READER.user,
    });

    const eager = logCapture();
    const every = open({ logger: eager.logger, detectionTtlMs: 0 });
    await every.query('SELECT 1');
    await every.query('SELECT 1');
    expect(
      eager.lines.filter((line) => line.msg === 'clickhouse: detected the server and user'),
    ).toHaveLength(2);
  });

  it('parameterBinding "server" on 18.16 fails as the server does (no query parameters)', async () => {
    // readonly=1: param_x is a setting it may not override; readonly=0: an unknown setting.
    const reader = await expectCode(
      open({ parameterBinding: 'server' }).query('SELECT {x:UInt8}', { x: 1 }),
      'READONLY',
    );
    expect(reader.serverCode).toBe(164);
    const full = await expectCode(
      open({ ...WRITER, parameterBinding: 'server' }).query('SELECT {x:UInt8}', { x: 1 }),
      'QUERY_INVALID',
    );
    expect(full.serverCode).toBe(115);
  });

  it('compression: on for a readonly=0 user; stays off (and says so) for a readonly=1 user', async () => {
    const sql =
      'SELECT count() AS n, sum(number) AS s FROM (SELECT number FROM system.numbers LIMIT 100000)';
    const expected = [{ n: '100000', s: '4999950000' }];
    const full = open({ ...WRITER, compression: true });
    await expect(full.query(sql)).resolves.toEqual(expected);
    // The server saw the request for gzip (and the driver inflated the answer).
    expect(await setting(full, 'enable_http_compression')).toBe('1');
    expect(await setting(open({ ...WRITER }), 'enable_http_compression')).toBe('0');
    const { lines, logger } = logCapture();
    const reader = open({ compression: true, logger });
    await expect(reader.query(sql)).resolves.toEqual(expected);
    expect(await setting(reader, 'enable_http_compression')).toBe('0');
    expect(lines.some((line) => String(line.msg).includes('compression stays off'))).toBe(true);
  });
});

describe('18.16: tenant helper (client-side binding of the UUID)', () => {
  it('returns only the tenant’s rows', async () => {
    const handle = open();
    const sql = `SELECT id FROM ${table} WHERE tenant_id = {tenant_id:UUID} AND id > {after:UInt32} ORDER BY id`;
    await expect(handle.queryForTenant(TENANT_A, sql, { after: 0 })).resolves.toEqual([
      { id: 1 },
      { id: 3 },
      { id: 5 },
    ]);
    await expect(drain(handle.streamForTenant(TENANT_B, sql, { after: 2 }))).resolves.toEqual([
      { id: 4 },
      { id: 6 },
    ]);
    await expect(handle.queryForTenant(randomUUID(), sql, { after: 0 })).resolves.toEqual([]);
  });
});
