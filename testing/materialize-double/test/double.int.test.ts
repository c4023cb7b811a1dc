/**
 * Conformance of the Materialize wire double (this package's src/),
 * driven by a real node-postgres client over loopback: what FlowForge's client
 * relies on (startup, transactions, DECLARE … SUBSCRIBE, FETCH, PROGRESS, AS OF,
 * cancellation) and the control API other tests use to misbehave on demand.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  startMaterializeDouble,
  type DoubleRow,
  type MaterializeDouble,
  type MaterializeDoubleOptions,
} from '../src/index.js';

type Row = Record<string, unknown>;

const T0 = 1_700_000_000_000n;
const TENANT_A = '00000000-0000-4000-8000-00000000000a';
const TENANT_B = '00000000-0000-4000-8000-00000000000b';
const ORDER_COLUMNS = [
  { name: 'id', type: 'int8' },
  { name: 'tenant_id', type: 'uuid' },
  { name: 'status', type: 'text' },
  { name: 'amount', type: 'numeric' },
  { name: 'paid', type: 'bool' },
] as const;
const order = (id: number, status = 'open', tenant = TENANT_A): DoubleRow => ({
  id,
  tenant_id: tenant,
  status,
  amount: `${id}.50`,
  paid: id % 2 === 0,
});

const doubles: MaterializeDouble[] = [];
const clients: pg.Client[] = [];
let mz: MaterializeDouble;

async function startDouble(options: MaterializeDoubleOptions = {}): Promise<MaterializeDouble> {
  const double = await startMaterializeDouble(options);
  doubles.push(double);
  return double;
}

beforeEach(async () => {
  mz = await startDouble();
  mz.defineView('orders', ORDER_COLUMNS, [order(1), order(2, 'shipped')]);
});

afterEach(async () => {
  // Bounded: a client whose server vanished must not hold the suite.
  await Promise.all(
    clients
      .splice(0)
      .map((client) => Promise.race([client.end().catch(() => undefined), sleep(2000)])),
  );
  await Promise.all(doubles.splice(0).map((double) => double.stop()));
});

/** A connected client whose 'error' events (dropped connections) are recorded, not thrown. */
async function connect(url = mz.url): Promise<pg.Client & { readonly errors: Error[] }> {
  const errors: Error[] = [];
  const client = Object.assign(new pg.Client({ connectionString: url }), { errors });
  client.on('error', (error) => errors.push(error));
  clients.push(client);
  await client.connect();
  return client;
}

/** pg sets these from BackendKeyData; @types/pg does not declare them. */
function backendKey(client: pg.Client): { readonly processID: number; readonly secretKey: number } {
  return client as unknown as { readonly processID: number; readonly secretKey: number };
}

async function rows(client: pg.Client, sql: string): Promise<Row[]> {
  return (await client.query<Row>(sql)).rows;
}

/** BEGIN; DECLARE c CURSOR FOR <subscribe>. */
async function declare(client: pg.Client, subscribe: string, cursor = 'c'): Promise<void> {
  await client.query('BEGIN');
  await client.query(`DECLARE ${cursor} CURSOR FOR ${subscribe}`);
}

/** Everything ready now, without waiting. */
async function fetchReady(client: pg.Client, cursor = 'c'): Promise<Row[]> {
  return rows(client, `FETCH ALL ${cursor} WITH (timeout = '0s')`);
}

/** Rows as short strings: `progress@T` or `T diff id`. */
function brief(list: readonly Row[], column = 'id'): string[] {
  return list.map((row) =>
    row.mz_progressed === true
      ? `progress@${String(row.mz_timestamp)}`
      : `${String(row.mz_timestamp)} ${String(row.mz_diff)} ${String(row[column])}`,
  );
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const sessionOf = (double: MaterializeDouble, client: pg.Client) =>
  double.sessions().find((session) => session.pid === backendKey(client).processID);

/** Tracks whether a promise settled, without awaiting it. */
function track<T>(promise: Promise<T>): {
  readonly promise: Promise<T>;
  readonly settled: () => boolean;
} {
  let settled = false;
  const tracked = promise.finally(() => {
    settled = true;
  });
  tracked.catch(() => undefined); // observed by the test through `promise`
  return { promise: tracked, settled: () => settled };
}

/** Writes a 16-byte CancelRequest on a fresh socket; resolves with the bytes the server answered before closing. */
async function sendCancelRequest(
  port: number,
  processID: number,
  secretKey: number,
): Promise<number> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let answered = 0;
  socket.on('data', (chunk: Buffer) => {
    answered += chunk.length;
  });
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(processID, 8);
  packet.writeInt32BE(secretKey, 12);
  socket.write(packet);
  await once(socket, 'close');
  return answered;
}

const quoteLiteral = (text: string): string => `'${text.replaceAll("'", "''")}'`;

describe('startup', () => {
  it('accepts trust connections and answers SELECT 1 with an int4 column', async () => {
    const client = await connect();
    const result = await client.query<Row>('SELECT 1');
    expect(result.rows).toEqual([{ '?column?': 1 }]);
    expect(result.fields.map((field) => [field.name, field.dataTypeID])).toEqual([
      ['?column?', 23],
    ]);
    expect(await rows(client, 'select -42 as answer')).toEqual([{ answer: -42 }]);
  });

  it('requires the cleartext password when one is set; a wrong one is FATAL 28P01', async () => {
    const secured = await startDouble({ password: 'p@ss word', user: 'flowforge' });
    expect(secured.url).toBe(
      `postgres://flowforge:p%40ss%20word@127.0.0.1:${secured.port}/materialize`,
    );
    const client = await connect(secured.url);
    expect(await rows(client, 'SELECT 7')).toEqual([{ '?column?': 7 }]);

    const wrongPassword = new pg.Client({
      host: '127.0.0.1',
      port: secured.port,
      user: 'flowforge',
      password: 'nope',
    });
    await expect(wrongPassword.connect()).rejects.toMatchObject({
      code: '28P01',
      severity: 'FATAL',
    });
    const wrongUser = new pg.Client({
      host: '127.0.0.1',
      port: secured.port,
      user: 'intruder',
      password: 'p@ss word',
    });
    await expect(wrongUser.connect()).rejects.toMatchObject({ code: '28P01' });
    expect(secured.sessions()).toHaveLength(1);
  });

  it('sends BackendKeyData and the parameter statuses Materialize sends', async () => {
    const parameters: Record<string, string> = {};
    const client = new pg.Client({ connectionString: mz.url });
    clients.push(client);
    client.connection.on(
      'parameterStatus',
      (message: { parameterName: string; parameterValue: string }) => {
        parameters[message.parameterName] = message.parameterValue;
      },
    );
    await client.connect();
    expect(parameters).toMatchObject({
      server_version: '9.5.0',
      client_encoding: 'UTF8',
      standard_conforming_strings: 'on',
      TimeZone: 'UTC',
    });
    const key = backendKey(client);
    expect(key.processID).toBeGreaterThan(0);
    expect(typeof key.secretKey).toBe('number');
    expect(await rows(client, 'SELECT pg_backend_pid()')).toEqual([
      { pg_backend_pid: key.processID },
    ]);
    expect(mz.sessions().map((session) => session.pid)).toEqual([key.processID]);
    const [version] = await rows(client, 'SELECT mz_version()');
    expect(version?.mz_version).toMatch(/^v0\.\d+\.\d+ \(double\)$/);
    expect(parameters.mz_version).toBe(version?.mz_version);
  });
});

describe('simple query protocol', () => {
  it('answers several statements in one message, each with its own result', async () => {
    const client = await connect();
    const results = (await client.query(
      'SELECT 1; select 2 ; -- a comment; with a semicolon\n SELECT 3',
    )) as unknown as pg.QueryResult<Row>[];
    expect(results.map((result) => result.rows)).toEqual([
      [{ '?column?': 1 }],
      [{ '?column?': 2 }],
      [{ '?column?': 3 }],
    ]);
    expect(mz.statementLog().slice(-3)).toEqual([
      'SELECT 1',
      'select 2',
      '-- a comment; with a semicolon\n SELECT 3',
    ]);
  });

  it('skips the rest of a message after an error; the transaction is then failed', async () => {
    const client = await connect();
    expect(client.getTransactionStatus()).toBe('I');
    await expect(client.query('BEGIN; SELECT no_such_function(); COMMIT')).rejects.toMatchObject({
      code: '0A000',
    });
    expect(sessionOf(mz, client)).toMatchObject({ inTransaction: true, failed: true }); // COMMIT was skipped
    expect(client.getTransactionStatus()).toBe('E');
    await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    expect((await client.query('COMMIT')).command).toBe('ROLLBACK'); // COMMIT of a failed transaction
    expect(sessionOf(mz, client)).toMatchObject({ inTransaction: false, failed: false });
    expect(await rows(client, 'SELECT 1')).toHaveLength(1);
  });

  it('rejects unknown statements (42601) and unsupported ones (0A000) naming only the first word', async () => {
    const client = await connect();
    await expect(client.query("FROBNICATE 'secret literal'")).rejects.toMatchObject({
      code: '42601',
      message: 'syntax error at or near "FROBNICATE"',
    });
    const unsupported = client.query("INSERT INTO orders VALUES ('do not echo')");
    await expect(unsupported).rejects.toMatchObject({ code: '0A000' });
    await expect(unsupported).rejects.not.toThrow(/do not echo/);
    await expect(client.query("SELECT 'unterminated")).rejects.toMatchObject({ code: '42601' });
    expect((await client.query('SET cluster = quickstart')).command).toBe('SET');
    expect((await client.query('')).rows).toEqual([]);
  });

  it('answers the extended protocol with 0A000 and the connection stays usable', async () => {
    const client = await connect();
    await expect(client.query('SELECT $1::int', [1])).rejects.toMatchObject({
      code: '0A000',
      message: 'the Materialize double supports the simple query protocol only',
    });
    expect(await rows(client, 'SELECT 5')).toEqual([{ '?column?': 5 }]);
  });
});

describe('transactions and cursors', () => {
  it('refuses DECLARE outside a transaction block (25P01)', async () => {
    const client = await connect();
    await expect(client.query('DECLARE c CURSOR FOR SUBSCRIBE orders')).rejects.toMatchObject({
      code: '25P01',
      message: 'DECLARE CURSOR can only be used in transaction blocks',
    });
  });

  it('allows one DECLARE per transaction (25000), then 25P02 until ROLLBACK', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders');
    expect(client.getTransactionStatus()).toBe('T');
    await expect(client.query('DECLARE d CURSOR FOR SUBSCRIBE orders')).rejects.toMatchObject({
      code: '25000',
    });
    expect(client.getTransactionStatus()).toBe('E');
    await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    await expect(client.query('FETCH c')).rejects.toMatchObject({ code: '25P02' });
    expect((await client.query('ROLLBACK')).command).toBe('ROLLBACK');
    expect(sessionOf(mz, client)).toMatchObject({
      inTransaction: false,
      failed: false,
      cursor: null,
    });
    await declare(client, 'SUBSCRIBE orders', 'again');
    expect(await fetchReady(client, 'again')).toHaveLength(2);
  });

  it('reports unknown views and unknown columns as XX000, as Materialize sends planning errors', async () => {
    const client = await connect();
    await client.query('BEGIN');
    await expect(
      client.query('DECLARE c CURSOR FOR SUBSCRIBE materialize.public.nope'),
    ).rejects.toMatchObject({
      code: 'XX000',
      message: "unknown catalog item 'nope'",
    });
    await client.query('ROLLBACK');
    await client.query('BEGIN');
    await expect(
      client.query("DECLARE c CURSOR FOR SUBSCRIBE (SELECT id FROM orders WHERE colour = 'red')"),
    ).rejects.toMatchObject({ code: 'XX000', message: 'column "colour" does not exist' });
    await client.query('ROLLBACK');
  });

  it('FETCH on an unknown cursor is 34000; CLOSE ends the cursor', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders');
    expect(sessionOf(mz, client)?.cursor).toBe('c');
    expect((await client.query('CLOSE c')).command).toBe('CLOSE');
    expect(sessionOf(mz, client)?.cursor).toBeNull();
    await expect(client.query('FETCH c')).rejects.toMatchObject({
      code: '34000',
      message: 'cursor "c" does not exist',
    });
    await client.query('ROLLBACK');
    await client.query('BEGIN');
    await expect(client.query('CLOSE nope')).rejects.toMatchObject({ code: '34000' });
  });

  it('COMMIT closes the cursor and its subscription', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders');
    expect(sessionOf(mz, client)?.pendingRows).toBe(2);
    expect((await client.query('COMMIT')).command).toBe('COMMIT');
    expect(sessionOf(mz, client)).toMatchObject({ cursor: null, pendingRows: 0 });
    mz.insert('orders', [order(3)]);
    expect(sessionOf(mz, client)?.pendingRows).toBe(0);
  });
});

describe('SUBSCRIBE output', () => {
  it('describes mz_timestamp numeric, mz_progressed bool, mz_diff int8, then the view columns', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders WITH (PROGRESS)');
    const result = await client.query<Row>("FETCH ALL c WITH (timeout = '0s')");
    expect(result.fields.map((field) => [field.name, field.dataTypeID])).toEqual([
      ['mz_timestamp', 1700],
      ['mz_progressed', 16],
      ['mz_diff', 20],
      ['id', 20],
      ['tenant_id', 2950],
      ['status', 25],
      ['amount', 1700],
      ['paid', 16],
    ]);
    expect(result.command).toBe('FETCH');
    expect(result.rowCount).toBe(4);
    const at = T0.toString();
    expect(result.rows).toEqual([
      {
        mz_timestamp: at,
        mz_progressed: true,
        mz_diff: null,
        id: null,
        tenant_id: null,
        status: null,
        amount: null,
        paid: null,
      },
      {
        mz_timestamp: at,
        mz_progressed: false,
        mz_diff: '1',
        id: '1',
        tenant_id: TENANT_A,
        status: 'open',
        amount: '1.50',
        paid: false,
      },
      {
        mz_timestamp: at,
        mz_progressed: false,
        mz_diff: '1',
        id: '2',
        tenant_id: TENANT_A,
        status: 'shipped',
        amount: '2.50',
        paid: true,
      },
      {
        mz_timestamp: (T0 + 1n).toString(),
        mz_progressed: true,
        mz_diff: null,
        id: null,
        tenant_id: null,
        status: null,
        amount: null,
        paid: null,
      },
    ]);
  });

  it('has no mz_progressed column without PROGRESS', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE (SELECT status FROM orders)');
    const result = await client.query<Row>("FETCH ALL c WITH (timeout = '0s')");
    expect(result.fields.map((field) => field.name)).toEqual(['mz_timestamp', 'mz_diff', 'status']);
    expect(result.rows).toEqual([
      { mz_timestamp: T0.toString(), mz_diff: '1', status: 'open' },
      { mz_timestamp: T0.toString(), mz_diff: '1', status: 'shipped' },
    ]);
  });

  it('encodes values as PostgreSQL prints them', async () => {
    mz.defineView(
      'values',
      [
        { name: 'f', type: 'float8' },
        { name: 'ts', type: 'timestamptz' },
        { name: 'j', type: 'jsonb' },
        { name: 'u', type: 'uuid' },
        { name: 'b', type: 'bool' },
        { name: 'n', type: 'int4' },
        { name: 't', type: 'text' },
      ],
      [
        {
          f: Infinity,
          ts: Date.UTC(2026, 10, 28, 14),
          j: '{"a": [1, true]}',
          u: TENANT_A.toUpperCase(),
          b: 'true',
          n: 7,
          t: 'é😀',
        },
        {
          f: Number.NaN,
          ts: '2026-11-28 14:00:00.25+00',
          j: 'plain',
          u: null,
          b: false,
          n: -1n,
          t: null,
        },
      ],
    );
    const client = await connect();
    await declare(client, 'SUBSCRIBE "values"');
    const raw = await client.query<Row>({
      text: "FETCH ALL c WITH (timeout = '0s')",
      types: { getTypeParser: () => (value: string) => value },
    } as pg.QueryConfig);
    expect(raw.rows.map(({ mz_timestamp: _t, mz_diff: _d, ...row }) => row)).toEqual([
      {
        f: 'Infinity',
        ts: '2026-11-28 14:00:00+00',
        j: '{"a":[1,true]}',
        u: TENANT_A,
        b: 't',
        n: '7',
        t: 'é😀',
      },
      {
        f: 'NaN',
        ts: '2026-11-28 14:00:00.25+00',
        j: '"plain"',
        u: null,
        b: 'f',
        n: '-1',
        t: null,
      },
    ]);
    expect(() => mz.insert('values', [{ u: 'not-a-uuid' }])).toThrow(TypeError);
    expect(() => mz.insert('values', [{ nope: 1 }])).toThrow(/no column "nope"/);
  });
});

describe('time: SNAPSHOT, AS OF, PROGRESS', () => {
  it('SNAPSHOT true (the default) emits the contents at the AS OF; false skips them', async () => {
    const written = mz.insert('orders', [order(3)]);
    const withSnapshot = await connect();
    await declare(withSnapshot, 'SUBSCRIBE orders');
    expect(brief(await fetchReady(withSnapshot))).toEqual([
      `${written} 1 1`,
      `${written} 1 2`,
      `${written} 1 3`,
    ]);

    const withoutSnapshot = await connect();
    await declare(withoutSnapshot, 'SUBSCRIBE orders WITH (SNAPSHOT = false)');
    expect(await fetchReady(withoutSnapshot)).toEqual([]);
    const next = mz.insert('orders', [order(4)]);
    expect(brief(await fetchReady(withoutSnapshot))).toEqual([`${next} 1 4`]);
    expect(brief(await fetchReady(withSnapshot))).toEqual([`${next} 1 4`]);
  });

  it('AS OF T is inclusive: the snapshot at T, then every later timestamp in order', async () => {
    const t1 = mz.insert('orders', [order(3)]);
    const t2 = mz.commit('orders', [
      { row: order(1), diff: -1 },
      { row: order(4), diff: 1 },
    ]);
    const t3 = mz.insert('orders', [order(5)]);
    const client = await connect();
    await declare(client, `SUBSCRIBE orders AS OF ${t2}`);
    expect(brief(await fetchReady(client))).toEqual([
      `${t2} 1 2`,
      `${t2} 1 3`,
      `${t2} 1 4`,
      `${t3} 1 5`,
    ]);
    expect(t1 < t2).toBe(true);
  });

  it('AS OF in the future emits nothing until that timestamp closes', async () => {
    const client = await connect();
    const future = mz.upper + 2n;
    await declare(client, `SUBSCRIBE orders WITH (PROGRESS) AS OF ${future}`);
    expect(brief(await fetchReady(client))).toEqual([`progress@${future}`]);
    mz.insert('orders', [order(3)]); // at upper, below the AS OF
    expect(await fetchReady(client)).toEqual([]);
    mz.advance(); // closes future - 1
    expect(await fetchReady(client)).toEqual([]);
    const atFuture = mz.insert('orders', [order(4)]);
    expect(atFuture).toBe(future);
    expect(brief(await fetchReady(client))).toEqual([
      `${future} 1 1`,
      `${future} 1 2`,
      `${future} 1 3`,
      `${future} 1 4`,
      `progress@${future + 1n}`,
    ]);
  });

  it('AS OF below the compaction frontier: DECLARE succeeds, the first FETCH is 22000; AT LEAST moves up to it', async () => {
    const t1 = mz.insert('orders', [order(3)]);
    const t2 = mz.insert('orders', [order(4)]);
    mz.compact('orders', t2);
    const client = await connect();
    await declare(client, `SUBSCRIBE orders AS OF ${t1}`);
    await expect(client.query("FETCH 10 c WITH (timeout = '0s')")).rejects.toMatchObject({
      code: '22000',
      message: 'could not find a valid timestamp for the query',
    });
    expect(sessionOf(mz, client)?.failed).toBe(true);
    await client.query('ROLLBACK');
    await declare(client, `SUBSCRIBE orders WITH (SNAPSHOT) AS OF AT LEAST ${t1}`);
    expect(brief(await fetchReady(client))).toEqual([
      `${t2} 1 1`,
      `${t2} 1 2`,
      `${t2} 1 3`,
      `${t2} 1 4`,
    ]);
  });

  it('PROGRESS: first row at the AS OF, then a progress row at each new upper', async () => {
    const client = await connect();
    const asOf = mz.upper - 1n;
    await declare(client, 'SUBSCRIBE orders WITH (SNAPSHOT false, PROGRESS true)');
    expect(brief(await fetchReady(client))).toEqual([`progress@${asOf}`, `progress@${asOf + 1n}`]);
    const empty = mz.advance(); // no rows: still a progress row
    expect(brief(await fetchReady(client))).toEqual([`progress@${empty}`]);
    const written = mz.insert('orders', [order(3)]);
    expect(brief(await fetchReady(client))).toEqual([`${written} 1 3`, `progress@${written + 1n}`]);
    const jumped = mz.advance(10n);
    expect(brief(await fetchReady(client))).toEqual([`progress@${jumped}`]);
  });

  it('resumes losslessly: progress P seen → AS OF P-1 with SNAPSHOT false gives exactly the updates at >= P', async () => {
    mz.insert('orders', [order(3)]);
    const first = await connect();
    await declare(first, 'SUBSCRIBE orders WITH (PROGRESS)');
    const seen = await fetchReady(first);
    const lastProgress = seen.filter((row) => row.mz_progressed === true).at(-1);
    const p = BigInt(String(lastProgress?.mz_timestamp));
    expect(p).toBe(mz.upper);
    // Updates the first subscriber has not fetched yet, at P and later, with a retraction.
    mz.insert('orders', [order(4)]);
    mz.commit('orders', [
      { row: order(3), diff: -1 },
      { row: order(3, 'shipped'), diff: 1 },
    ]);
    mz.advance(3n);
    mz.insert('orders', [order(5)]);
    const resumed = await connect();
    await declare(resumed, `SUBSCRIBE orders WITH (PROGRESS, SNAPSHOT = false) AS OF ${p - 1n}`);
    const afterResume = (await fetchReady(resumed)).filter((row) => row.mz_progressed !== true);
    const continued = (await fetchReady(first)).filter((row) => row.mz_progressed !== true);
    expect(afterResume.map((row) => BigInt(String(row.mz_timestamp)) >= p)).not.toContain(false);
    expect(brief(afterResume, 'status')).toEqual(brief(continued, 'status'));
    expect(afterResume).toHaveLength(4);
  });

  it('consolidates within a timestamp (after projection), never across', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders WITH (SNAPSHOT = false)');
    mz.apply('orders', [
      { row: order(7), diff: 1 },
      { row: order(8), diff: 1 },
      { row: order(7), diff: 1 },
      { row: order(8), diff: -1 },
    ]);
    mz.apply('orders', [{ row: order(9), diff: 1 }]);
    expect(await fetchReady(client)).toEqual([]); // the timestamp is still open
    const at = mz.upper;
    mz.advance();
    const removed = mz.remove('orders', [order(9)]);
    expect(brief(await fetchReady(client))).toEqual([`${at} 2 7`, `${at} 1 9`, `${removed} -1 9`]);

    const statuses = await connect();
    await declare(statuses, 'SUBSCRIBE (SELECT status FROM orders)');
    expect(brief(await fetchReady(statuses), 'status')).toEqual([
      `${mz.upper - 1n} 3 open`,
      `${mz.upper - 1n} 1 shipped`,
    ]);
  });

  it('advances on its own with tickMs', async () => {
    const ticking = await startDouble({ tickMs: 5 });
    const start = ticking.upper;
    await waitFor(() => ticking.upper >= start + 2n, 'the clock to tick');
    expect(ticking.upper).toBeGreaterThan(start);
  });
});

describe('filters', () => {
  it('applies WHERE col = literal AND …, quoted identifiers and schema-qualified names', async () => {
    mz.insert('orders', [
      order(3, 'open', TENANT_B),
      order(4, 'shipped', TENANT_B),
      order(5, 'open', TENANT_B),
    ]);
    const client = await connect();
    await declare(
      client,
      `SUBSCRIBE (SELECT "id", status FROM materialize.public."orders" WHERE tenant_id = '${TENANT_B.toUpperCase()}' AND "status" = 'open')`,
    );
    expect(brief(await fetchReady(client))).toEqual([
      `${mz.upper - 1n} 1 3`,
      `${mz.upper - 1n} 1 5`,
    ]);

    const typed = await connect();
    await declare(typed, 'SUBSCRIBE (SELECT * FROM orders WHERE id = 2 AND paid = true)');
    expect(brief(await fetchReady(typed))).toEqual([`${mz.upper - 1n} 1 2`]);
  });

  it('handles quoted identifiers with "" and literals with \'\' escapes', async () => {
    mz.defineView('Odd "View"', [
      { name: 'Key Col', type: 'text' },
      { name: 'v', type: 'int4' },
    ]);
    mz.insert('Odd "View"', [
      { 'Key Col': "it's", v: 1 },
      { 'Key Col': 'its', v: 2 },
    ]);
    const client = await connect();
    await declare(client, `SUBSCRIBE (SELECT v FROM "Odd ""View""" WHERE "Key Col" = 'it''s')`);
    expect(brief(await fetchReady(client), 'v')).toEqual([`${mz.upper - 1n} 1 1`]);
  });

  it('matches hostile literals exactly, without breaking out of the string', async () => {
    const hostile = [
      "x'; DROP VIEW orders; --",
      "' OR '1'='1",
      'a;b',
      '-- not a comment',
      '/* not a comment */',
      '"double" quotes',
      "''",
      'back\\slash',
      'tab\tnew\nline',
      'é😀 ünïcödé',
      'x\u0000y'.replace('\u0000', ''), // NUL cannot travel in PostgreSQL text
    ];
    mz.defineView('labels', [
      { name: 'id', type: 'int4' },
      { name: 'label', type: 'text' },
    ]);
    mz.insert(
      'labels',
      hostile.map((label, index) => ({ id: index, label })),
    );
    const client = await connect();
    for (const [index, label] of hostile.entries()) {
      await declare(
        client,
        `SUBSCRIBE (SELECT * FROM labels WHERE label = ${quoteLiteral(label)})`,
      );
      const found = await fetchReady(client);
      expect(found.map((row) => [row.id, row.label])).toEqual([[index, label]]);
      await client.query('ROLLBACK');
    }
    await client.query('BEGIN');
    await expect(
      client.query(
        "DECLARE c CURSOR FOR SUBSCRIBE (SELECT * FROM labels WHERE label = 'open) WITH (SNAPSHOT)",
      ),
    ).rejects.toMatchObject({ code: '42601' });
    await client.query('ROLLBACK');
    await client.query('BEGIN');
    await expect(
      client.query('DECLARE c CURSOR FOR SUBSCRIBE (SELECT * FROM labels WHERE label IS NULL)'),
    ).rejects.toMatchObject({ code: '0A000' });
    await client.query('ROLLBACK');
    expect(mz.sessions()[0]?.failed).toBe(false);
  });
});

describe('FETCH', () => {
  it('returns n, 1 by default, or ALL ready rows', async () => {
    mz.insert('orders', [order(3), order(4), order(5)]);
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders');
    expect((await client.query('FETCH 2 c')).rowCount).toBe(2);
    const one = await client.query<Row>('FETCH FROM c');
    expect(one.rowCount).toBe(1);
    expect(one.rows[0]?.id).toBe('3');
    expect(sessionOf(mz, client)?.pendingRows).toBe(2);
    expect(brief(await rows(client, 'FETCH ALL IN c'))).toEqual([
      `${mz.upper - 1n} 1 4`,
      `${mz.upper - 1n} 1 5`,
    ]);
  });

  it("WITH (timeout = '0s') returns at once, with nothing when nothing is ready", async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders WITH (SNAPSHOT = false)');
    const result = await client.query("FETCH 100 c WITH (timeout = '0s')");
    expect(result.rowCount).toBe(0);
    expect(result.command).toBe('FETCH');
  });

  it("WITH (timeout = '200ms') returns 0 rows when nothing happens", async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders WITH (SNAPSHOT = false)');
    const started = Date.now();
    const result = await client.query("FETCH ALL c WITH (timeout = '200ms')");
    expect(result.rowCount).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000); // generous: it returned
  });

  it('rejects malformed intervals with 22007', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders');
    await expect(client.query("FETCH c WITH (timeout = 'soon')")).rejects.toMatchObject({
      code: '22007',
    });
  });

  it('a blocked FETCH returns as soon as a commit closes a timestamp, not before', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders WITH (SNAPSHOT = false)');
    const fetching = track(client.query<Row>('FETCH ALL c'));
    await waitFor(() => sessionOf(mz, client)?.fetching === true, 'the FETCH to wait');
    mz.apply('orders', [{ row: order(3), diff: 1 }]); // staged, not closed
    await sleep(20);
    expect(fetching.settled()).toBe(false);
    const at = mz.upper;
    mz.advance();
    expect(brief((await fetching.promise).rows)).toEqual([`${at} 1 3`]);
    expect(sessionOf(mz, client)?.fetching).toBe(false);
  });

  it('without a timeout, waits for the first rows, then returns only what is ready (WaitOnce)', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders WITH (SNAPSHOT = false)');
    const fetching = track(client.query<Row>('FETCH 3 c'));
    await waitFor(() => sessionOf(mz, client)?.fetching === true, 'the FETCH to wait');
    const at = mz.insert('orders', [order(3)]);
    // One row ready of the three asked for: it returns with that one.
    expect(brief((await fetching.promise).rows)).toEqual([`${at} 1 3`]);
  });

  it('WITH (timeout) keeps collecting until count rows were sent or the timeout passes', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders WITH (SNAPSHOT = false)');
    const fetching = track(client.query<Row>("FETCH 3 c WITH (timeout = '1 day')"));
    await waitFor(() => sessionOf(mz, client)?.fetching === true, 'the FETCH to wait');
    const t1 = mz.insert('orders', [order(3)]);
    // The first row went out, the FETCH still waits for two more.
    await waitFor(() => sessionOf(mz, client)?.pendingRows === 0, 'the first row to be sent');
    await sleep(20);
    expect(fetching.settled()).toBe(false);
    expect(sessionOf(mz, client)?.fetching).toBe(true);
    const t2 = mz.insert('orders', [order(4), order(5)]);
    expect(brief((await fetching.promise).rows)).toEqual([`${t1} 1 3`, `${t2} 1 4`, `${t2} 1 5`]);
    // The timeout passing ends it with what it has.
    mz.insert('orders', [order(6)]);
    const partial = await client.query<Row>("FETCH 5 c WITH (timeout = '100ms')");
    expect(brief(partial.rows)).toEqual([`${mz.upper - 1n} 1 6`]);
  });

  it('refuses a timeout over one day with XX000 "timeout out of range"', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders');
    await expect(client.query("FETCH 1 c WITH (timeout = '86400001ms')")).rejects.toMatchObject({
      code: 'XX000',
      message: 'timeout out of range: 86400001ms',
    });
    await client.query('ROLLBACK');
    await declare(client, 'SUBSCRIBE orders');
    await expect(client.query("FETCH 1 nope WITH (timeout = '2 days')")).rejects.toMatchObject({
      code: 'XX000',
    });
    await client.query('ROLLBACK');
    await declare(client, 'SUBSCRIBE orders');
    expect((await client.query("FETCH 1 c WITH (timeout = '1 day')")).rowCount).toBe(1);
  });

  it('ends with XX000 when the view is dropped under it', async () => {
    const client = await connect();
    await declare(client, 'SUBSCRIBE orders WITH (SNAPSHOT = false)');
    const fetching = client.query('FETCH c');
    await waitFor(() => sessionOf(mz, client)?.fetching === true, 'the FETCH to wait');
    mz.dropView('orders');
    await expect(fetching).rejects.toMatchObject({ code: 'XX000' });
    await expect(fetching).rejects.toThrow(/was dropped/);
    await client.query('ROLLBACK');
  });
});

describe('server limits', () => {
  it('idle in a transaction past the timeout: the next message is answered FATAL 25P03, nothing before', async () => {
    const double = await startDouble({ idleInTransactionTimeoutMs: 50 });
    double.defineView('orders', ORDER_COLUMNS, [order(1)]);
    const client = await connect(double.url);
    await declare(client, 'SUBSCRIBE orders');
    // The subscription ends with the session; the client is told nothing until it speaks.
    await waitFor(() => sessionOf(double, client)?.cursor === null, 'the session to time out');
    await sleep(20);
    expect(client.errors).toEqual([]);
    await expect(client.query("FETCH 1 c WITH (timeout = '0s')")).rejects.toMatchObject({
      code: '25P03',
      severity: 'FATAL',
      message: 'terminating connection due to idle-in-transaction timeout',
    });
    await waitFor(() => double.stats.connectionsOpen === 0, 'the connection to close');
  });

  it('only a session in a transaction times out; SET and the startup options change its timeout', async () => {
    const double = await startDouble({ idleInTransactionTimeoutMs: 50 });
    double.defineView('orders', ORDER_COLUMNS, [order(1)]);
    const idle = await connect(double.url);
    await sleep(120);
    expect((await idle.query('SELECT 1')).rowCount).toBe(1);
    await idle.query("SET idle_in_transaction_session_timeout = '0'");
    await declare(idle, 'SUBSCRIBE orders');
    await sleep(120);
    expect((await idle.query("FETCH 1 c WITH (timeout = '0s')")).rowCount).toBe(1);

    const lenient = await startDouble(); // the default: 120 s
    lenient.defineView('orders', ORDER_COLUMNS, [order(1)]);
    const url = new URL(lenient.url);
    url.searchParams.set('options', '-c idle_in_transaction_session_timeout=50ms');
    const strict = await connect(url.toString());
    await declare(strict, 'SUBSCRIBE orders');
    await waitFor(() => sessionOf(lenient, strict)?.cursor === null, 'the session to time out');
    await expect(strict.query('FETCH 1 c')).rejects.toMatchObject({ code: '25P03' });
  });

  it('a subscription whose backlog exceeds subscribeMaxBufferedBytes ends with 53200 after its queued rows', async () => {
    const double = await startDouble({ subscribeMaxBufferedBytes: 4096 });
    double.defineView('orders', ORDER_COLUMNS);
    const client = await connect(double.url);
    await declare(client, 'SUBSCRIBE orders WITH (SNAPSHOT = false, PROGRESS)');
    for (let id = 1; id <= 10; id += 1) double.insert('orders', [order(id)]);
    // Retired: what came before it is still fetched, nothing after it is queued.
    const queued = sessionOf(double, client)?.pendingRows ?? 0;
    expect(queued).toBeGreaterThan(2);
    expect(queued).toBeLessThan(21);
    double.insert('orders', [order(11)]);
    expect(sessionOf(double, client)?.pendingRows).toBe(queued);
    expect((await client.query('FETCH 2 c')).rowCount).toBe(2);
    await expect(client.query("FETCH ALL c WITH (timeout = '0s')")).rejects.toMatchObject({
      code: '53200',
      message: expect.stringMatching(
        /^SUBSCRIBE fell behind: the client did not read results fast enough, so its backlog reached [\d.]+ KiB, exceeding the 4\.0 KiB budget$/,
      ) as unknown,
    });
    // A client that keeps up is never retired.
    const reader = await connect(double.url);
    await declare(reader, 'SUBSCRIBE orders WITH (SNAPSHOT = false, PROGRESS)');
    for (let id = 20; id < 40; id += 1) {
      double.insert('orders', [order(id)]);
      await fetchReady(reader);
    }
    expect(sessionOf(double, reader)?.failed).toBe(false);
  });

  it('past maxConnections a connection is refused with FATAL 53000; a freed slot is taken again', async () => {
    const double = await startDouble({ maxConnections: 1 });
    const first = await connect(double.url);
    const refused = new pg.Client({ connectionString: double.url });
    refused.on('error', () => undefined);
    await expect(refused.connect()).rejects.toMatchObject({
      code: '53000',
      severity: 'FATAL',
      message:
        'creating connection would violate max_connections limit (desired: 2, limit: 1, current: 1)',
    });
    await first.end();
    await waitFor(() => double.stats.connectionsOpen === 0, 'the slot to be freed');
    const second = await connect(double.url);
    expect((await second.query('SELECT 1')).rowCount).toBe(1);
    double.setLimits({ maxConnections: Number.POSITIVE_INFINITY });
    await connect(double.url);
  });
});

describe('cancellation', () => {
  it('a CancelRequest with the right key ends a waiting FETCH with 57014; 25P02 until ROLLBACK', async () => {
    const client = await connect();
    const { processID, secretKey } = backendKey(client);
    expect(await sendCancelRequest(mz.port, processID, secretKey)).toBe(0); // idle: nothing happens
    expect(mz.stats.cancelRequests).toBe(1);
    await declare(client, 'SUBSCRIBE orders WITH (SNAPSHOT = false)');
    const fetching = track(client.query('FETCH c'));
    await waitFor(() => sessionOf(mz, client)?.fetching === true, 'the FETCH to wait');

    expect(await sendCancelRequest(mz.port, processID, secretKey ^ 1)).toBe(0); // wrong secret: ignored
    expect(mz.stats.cancelRequests).toBe(2);
    expect(sessionOf(mz, client)?.fetching).toBe(true);
    expect(fetching.settled()).toBe(false);

    expect(await sendCancelRequest(mz.port, processID, secretKey)).toBe(0); // closed without an answer
    await expect(fetching.promise).rejects.toMatchObject({
      code: '57014',
      message: 'canceling statement due to user request',
    });
    await expect(client.query('FETCH c')).rejects.toMatchObject({ code: '25P02' });
    await client.query('ROLLBACK');
    expect(await rows(client, 'SELECT 1')).toHaveLength(1);
    expect(mz.stats.connectionsOpened).toBe(1); // cancel connections are not client connections
  });

  it('SELECT pg_cancel_backend(pid) from another session cancels like a CancelRequest', async () => {
    const client = await connect();
    const admin = await connect();
    await declare(client, 'SUBSCRIBE orders WITH (SNAPSHOT = false)');
    const fetching = client.query('FETCH ALL c');
    await waitFor(() => sessionOf(mz, client)?.fetching === true, 'the FETCH to wait');
    expect(await rows(admin, `SELECT pg_cancel_backend(${backendKey(client).processID})`)).toEqual([
      { pg_cancel_backend: true },
    ]);
    await expect(fetching).rejects.toMatchObject({ code: '57014' });
    await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    await client.query('ROLLBACK');
    expect(await rows(admin, 'SELECT pg_cancel_backend(1)')).toEqual([
      { pg_cancel_backend: false },
    ]);
  });
});

describe('control API', () => {
  it('dropConnections(): clients see a connection error; the double keeps serving new clients', async () => {
    const idle = await connect();
    const busy = await connect();
    await declare(busy, 'SUBSCRIBE orders WITH (SNAPSHOT = false)');
    const fetching = busy.query('FETCH c');
    await waitFor(() => sessionOf(mz, busy)?.fetching === true, 'the FETCH to wait');
    mz.dropConnections();
    await expect(fetching).rejects.toThrow(/terminated|ECONNRESET/i);
    await waitFor(() => idle.errors.length > 0, 'the idle client to notice');
    await waitFor(() => mz.stats.connectionsOpen === 0, 'the double to forget the sessions');
    expect(mz.sessions()).toEqual([]);
    const fresh = await connect();
    expect(await rows(fresh, 'SELECT 1')).toHaveLength(1);
  });

  it('stall(): nothing is answered until stall(false), connections included', async () => {
    const client = await connect();
    mz.stall(true);
    const query = track(client.query('SELECT 1'));
    const connecting = track(connect());
    await sleep(100);
    expect(query.settled()).toBe(false);
    expect(connecting.settled()).toBe(false);
    mz.stall(false);
    expect((await query.promise).rows).toEqual([{ '?column?': 1 }]);
    expect(await rows(await connecting.promise, 'SELECT 2')).toEqual([{ '?column?': 2 }]);
  });

  it('stop() and restart(): same port, views and time kept', async () => {
    const client = await connect();
    const { port } = mz;
    const written = mz.insert('orders', [order(3)]);
    const upper = mz.upper;
    await mz.stop();
    await waitFor(() => client.errors.length > 0, 'the client to notice');
    await expect(connect()).rejects.toThrow(/ECONNREFUSED/);
    mz.insert('orders', [order(4)]); // the control API works while stopped
    await mz.restart();
    expect(mz.port).toBe(port);
    expect(mz.upper).toBe(upper + 1n);
    const again = await connect();
    await declare(again, `SUBSCRIBE orders AS OF ${written}`);
    expect(brief(await fetchReady(again))).toEqual([
      `${written} 1 1`,
      `${written} 1 2`,
      `${written} 1 3`,
      `${upper} 1 4`,
    ]);
  });

  it('sessions() and stats count what happened', async () => {
    expect(mz.stats).toEqual({
      connectionsOpened: 0,
      connectionsOpen: 0,
      cancelRequests: 0,
      statements: 0,
    });
    const first = await connect();
    const second = await connect();
    await first.query('SELECT 1; SELECT 2');
    await declare(second, 'SUBSCRIBE orders');
    await second.query('FETCH 1 c');
    expect(mz.sessions()).toEqual(
      [
        {
          pid: backendKey(first).processID,
          inTransaction: false,
          failed: false,
          cursor: null,
          fetching: false,
          pendingRows: 0,
        },
        {
          pid: backendKey(second).processID,
          inTransaction: true,
          failed: false,
          cursor: 'c',
          fetching: false,
          pendingRows: 1,
        },
      ].sort((a, b) => a.pid - b.pid),
    );
    expect(mz.stats).toEqual({
      connectionsOpened: 2,
      connectionsOpen: 2,
      cancelRequests: 0,
      statements: 5,
    });
    expect(mz.statementLog()).toEqual([
      'SELECT 1',
      'SELECT 2',
      'BEGIN',
      'DECLARE c CURSOR FOR SUBSCRIBE orders',
      'FETCH 1 c',
    ]);
    await first.end();
    await waitFor(() => mz.stats.connectionsOpen === 1, 'the double to see the client leave');
    expect(mz.sessions().map((session) => session.pid)).toEqual([backendKey(second).processID]);
    expect(mz.stats.connectionsOpened).toBe(2);
  });

  it('keeps only the last 1000 statements', async () => {
    const client = await connect();
    await client.query(Array.from({ length: 1005 }, (_, index) => `SELECT ${index}`).join(';'));
    const log = mz.statementLog();
    expect(log).toHaveLength(1000);
    expect(log[0]).toBe('SELECT 5');
    expect(mz.stats.statements).toBe(1005);
  });

  it('serves concurrent sessions with independent subscriptions', async () => {
    const tenantA = await connect();
    const tenantB = await connect();
    const everything = await connect();
    await declare(
      tenantA,
      `SUBSCRIBE (SELECT id FROM orders WHERE tenant_id = '${TENANT_A}') WITH (SNAPSHOT = false)`,
    );
    await declare(
      tenantB,
      `SUBSCRIBE (SELECT id FROM orders WHERE tenant_id = '${TENANT_B}') WITH (SNAPSHOT = false)`,
    );
    await declare(everything, 'SUBSCRIBE orders WITH (SNAPSHOT = false)', 'all_orders');
    const waitingA = tenantA.query<Row>('FETCH ALL c');
    const waitingB = tenantB.query<Row>("FETCH ALL c WITH (timeout = '5s')");
    await waitFor(
      () => mz.sessions().filter((session) => session.fetching).length === 2,
      'both FETCHes to wait',
    );
    const at = mz.insert('orders', [
      order(10, 'open', TENANT_B),
      order(11, 'open', TENANT_A),
      order(12, 'open', TENANT_B),
    ]);
    expect(brief((await waitingA).rows)).toEqual([`${at} 1 11`]);
    expect(brief((await waitingB).rows)).toEqual([`${at} 1 10`, `${at} 1 12`]);
    expect(brief(await fetchReady(everything, 'all_orders'))).toEqual([
      `${at} 1 10`,
      `${at} 1 11`,
      `${at} 1 12`,
    ]);
  });

  it('streams a large backlog through small FETCHes with backpressure', async () => {
    mz.defineView('bulk', [
      { name: 'id', type: 'int8' },
      { name: 'label', type: 'text' },
    ]);
    const asOf = mz.upper - 1n;
    for (let batch = 0; batch < 20; batch += 1) {
      mz.insert(
        'bulk',
        Array.from({ length: 1000 }, (_, index) => ({
          id: batch * 1000 + index,
          label: `row number ${batch * 1000 + index}`,
        })),
      );
    }
    const client = await connect();
    await declare(client, `SUBSCRIBE bulk WITH (SNAPSHOT = false) AS OF ${asOf}`);
    const ids: number[] = [];
    for (;;) {
      const { rows: batch } = await client.query<Row>("FETCH 7000 c WITH (timeout = '0s')");
      if (batch.length === 0) break;
      for (const row of batch) ids.push(Number(row.id));
    }
    expect(ids).toHaveLength(20_000);
    expect(ids.every((id, index) => id === index)).toBe(true);
  });
});

describe('CLI', () => {
  it('prints its URL, serves the demo view, and stops on SIGTERM', async () => {
    // The built entry (the build runs before this package's tests): what scripts/demo runs.
    const script = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
    const child = spawn(process.execPath, [script, '--port', '0', '--demo'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = once(child, 'exit');
    try {
      const lines = createInterface({ input: child.stdout });
      const [url] = (await once(lines, 'line')) as [string];
      expect(url).toMatch(/^postgres:\/\/materialize@127\.0\.0\.1:\d+\/materialize$/);
      const client = await connect(url);
      await declare(client, 'SUBSCRIBE demo_orders');
      const demo = await rows(client, 'FETCH ALL c');
      expect(demo.length).toBeGreaterThanOrEqual(4);
      expect(demo[0]).toMatchObject({
        mz_diff: '1',
        tenant_id: '00000000-0000-4000-8000-00000000000b',
        order_id: '1',
        product: 'gadget',
      });
      await client.end();
    } finally {
      child.kill('SIGTERM');
    }
    const [code, signal] = (await exited) as [number | null, string | null];
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  });
});
