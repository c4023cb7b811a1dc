/**
 * Engine: clickhouse-server 18.16, the shared one of scripts/services on 8123.
 * FlowForge never writes to ClickHouse, and the server is what refuses: for
 * the readonly=1 user through its profile (the handle sends no settings), for
 * the full-access user through the readonly=2 the handle adds to every query.
 * After every refusal the writer (a raw client as `flowforge`) checks that the
 * fixture table is unchanged.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClickHouse, type ClickHouse } from '../src/index.js';
import { expectCode } from './support/assert.js';
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

const table = uniqueTable('readonly');
const qualified = `${DATABASE}.${table}`;
let writer: ClickHouseClient;
const handles: ClickHouse[] = [];

beforeAll(async () => {
  writer = createWriter();
  await exec(
    writer,
    `CREATE TABLE ${qualified} (id UInt32, name String) ENGINE = MergeTree ORDER BY id`,
  );
  await exec(writer, `INSERT INTO ${qualified} VALUES (1, 'one'), (2, 'two')`);
});

afterAll(async () => {
  for (const handle of handles) await handle.close();
  await exec(writer, `DROP TABLE IF EXISTS ${qualified}`);
  await exec(writer, `DROP TABLE IF EXISTS ${qualified}_created`);
  await exec(writer, `DROP TABLE IF EXISTS ${qualified}_renamed`);
  await writer.close();
});

/**
 * Every kind of statement that changes something, as the app could (wrongly)
 * send it, and how 18.16 refuses it. The handle sends every statement with
 * `FORMAT JSONEachRow` appended (as @clickhouse/client's query() does): 18.16
 * cannot even parse SYSTEM, SET and INSERT … SELECT with it (62); everything
 * it can parse reaches the readonly check (164).
 */
const WRITES: readonly [string, string, 'READONLY' | 'SYNTAX_ERROR'][] = [
  ['INSERT … VALUES', `INSERT INTO ${qualified} VALUES (3, 'three')`, 'READONLY'],
  ['INSERT … SELECT', `INSERT INTO ${qualified} SELECT 4, 'four'`, 'SYNTAX_ERROR'],
  ['CREATE TABLE', `CREATE TABLE ${qualified}_created (x UInt8) ENGINE = Memory`, 'READONLY'],
  [
    'CREATE TABLE … AS SELECT',
    `CREATE TABLE ${qualified}_created ENGINE = Memory AS SELECT 1 AS x`,
    'READONLY',
  ],
  ['DROP TABLE', `DROP TABLE ${qualified}`, 'READONLY'],
  ['TRUNCATE', `TRUNCATE TABLE ${qualified}`, 'READONLY'],
  ['ALTER … DELETE', `ALTER TABLE ${qualified} DELETE WHERE 1`, 'READONLY'],
  ['ALTER … ADD COLUMN', `ALTER TABLE ${qualified} ADD COLUMN extra UInt8`, 'READONLY'],
  ['RENAME', `RENAME TABLE ${qualified} TO ${qualified}_renamed`, 'READONLY'],
  ['DETACH', `DETACH TABLE ${qualified}`, 'READONLY'],
  ['OPTIMIZE', `OPTIMIZE TABLE ${qualified}`, 'READONLY'],
  ['SYSTEM', 'SYSTEM FLUSH LOGS', 'SYNTAX_ERROR'],
  ['SET readonly = 0', 'SET readonly = 0', 'SYNTAX_ERROR'],
  ['SETTINGS readonly = 0', `SELECT count() FROM ${qualified} SETTINGS readonly = 0`, 'READONLY'],
];

async function expectTableUnchanged(): Promise<void> {
  await expect(select(writer, `SELECT id, name FROM ${qualified} ORDER BY id`)).resolves.toEqual([
    { id: 1, name: 'one' },
    { id: 2, name: 'two' },
  ]);
  await expect(
    select(
      writer,
      `SELECT name FROM system.columns WHERE database = '${DATABASE}' AND table = '${table}' ORDER BY name`,
    ),
  ).resolves.toEqual([{ name: 'id' }, { name: 'name' }]);
  await expect(
    select(
      writer,
      `SELECT count() AS n FROM system.tables WHERE database = '${DATABASE}' AND name LIKE '${table}_%'`,
    ),
  ).resolves.toEqual([{ n: '0' }]);
}

describe.each([
  ['flowforge_reader (profile readonly=1; the handle sends no settings)', READER],
  ['flowforge (full access; the handle sends readonly=2 per query)', WRITER],
])('18.16, user %s', (_name, credentials) => {
  const open = (): ClickHouse => {
    const handle = createClickHouse({ url: SHARED_URL, ...credentials, database: DATABASE });
    handles.push(handle);
    return handle;
  };

  it.each(WRITES)('refuses %s', async (_what, sql, code) => {
    const handle = open();
    const error = await expectCode(handle.query(sql), code);
    expect(error.serverCode).toBe(code === 'READONLY' ? 164 : 62);
    expect(error.retryable).toBe(false);
    await expectTableUnchanged();
  });

  it('still reads', async () => {
    await expect(open().query(`SELECT id, name FROM ${table} ORDER BY id`)).resolves.toEqual([
      { id: 1, name: 'one' },
      { id: 2, name: 'two' },
    ]);
  });
});

describe('18.16: per-query settings', () => {
  it('a readonly=1 user’s query with settings is refused before sending (READONLY, no server code)', async () => {
    const handle = createClickHouse({ url: SHARED_URL, ...READER });
    handles.push(handle);
    const error = await expectCode(
      handle.query('SELECT 1', undefined, { settings: { max_result_rows: 10 } }),
      'READONLY',
    );
    expect(error.serverCode).toBeUndefined();
  });

  it('a full-access user’s settings apply, and readonly stays on', async () => {
    const handle = createClickHouse({ url: SHARED_URL, ...WRITER });
    handles.push(handle);
    await expect(
      handle.query(
        "SELECT name, value FROM system.settings WHERE name IN ('readonly', 'max_threads') ORDER BY name",
        undefined,
        { settings: { max_threads: 3 } },
      ),
    ).resolves.toEqual([
      { name: 'max_threads', value: '3' },
      { name: 'readonly', value: '2' },
    ]);
  });
});
