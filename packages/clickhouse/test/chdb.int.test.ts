/**
 * Engine: chdb 3.4 (ClickHouse 26.7, in-process), plugged into
 * @clickhouse/client and handed to the handle as `client`. What 18.16 cannot
 * show: server-side parameter binding (detected by `auto`), modern types,
 * errors in the new format. Test data comes from a separate writer connection
 * (its own chdb session; see test/support/chdb.ts for why).
 */
import { createMetrics } from '@flowforge/observability';
import { createLogger } from '@flowforge/observability';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClickHouse, type ClickHouse } from '../src/index.js';
import { ADVERSARIAL_STRINGS } from './support/adversarial.js';
import { drain, expectCode, sampleValue } from './support/assert.js';
import { chdbClient, openChdb, type Chdb } from './support/chdb.js';

const TENANT_A = '0a0a0a0a-0000-4000-8000-00000000000a';
const TENANT_B = '0b0b0b0b-0000-4000-8000-00000000000b';
const logLines: Record<string, unknown>[] = [];
const metrics = createMetrics({ defaultMetrics: false });
let chdb: Chdb;
let clickhouse: ClickHouse;

beforeAll(async () => {
  chdb = openChdb();
  await chdb.writer.command({
    query: `CREATE TABLE default.events (
      tenant_id UUID, ts DateTime64(3, 'UTC'), kind LowCardinality(String), amount Decimal(18, 4),
      big Int64, ubig UInt64, attrs Map(String, String), note Nullable(String), tags Array(String)
    ) ENGINE = MergeTree ORDER BY (tenant_id, ts)`,
  });
  await chdb.writer.insert({
    table: 'default.events',
    format: 'JSONEachRow',
    values: [
      {
        tenant_id: TENANT_A,
        ts: '2026-11-01 10:00:00.125',
        kind: 'view',
        amount: '12.3456',
        big: '-9223372036854775808',
        ubig: '18446744073709551615',
        attrs: { page: '/home' },
        note: null,
        tags: ['a', 'b'],
      },
      {
        tenant_id: TENANT_A,
        ts: '2026-11-02 10:00:00.000',
        kind: 'click',
        amount: '0.0001',
        big: '9007199254740993',
        ubig: '1',
        attrs: {},
        note: "it's",
        tags: [],
      },
      {
        tenant_id: TENANT_B,
        ts: '2026-11-03 10:00:00.000',
        kind: 'view',
        amount: '99999999999999.9999',
        big: '1',
        ubig: '2',
        attrs: { page: '/b' },
        note: 'b',
        tags: ['z'],
      },
    ],
  });
  const logger = createLogger({
    level: 'info',
    destination: {
      write: (line: string) => logLines.push(JSON.parse(line) as Record<string, unknown>),
    },
  });
  clickhouse = createClickHouse({ client: chdb.client, logger, metrics });
});

afterAll(async () => {
  await clickhouse?.close();
  await chdb?.close();
});

describe('chdb (26.7): detection and server-side binding', () => {
  it('auto detects that the server binds parameters (and a readonly=0 user)', async () => {
    await clickhouse.health();
    expect(
      logLines.find((line) => line.msg === 'clickhouse: detected the server and user'),
    ).toMatchObject({
      parameter_binding: 'server',
      user_readonly: 0,
    });
    expect(String(logLines.find((line) => line.server_version)?.server_version)).toMatch(/^26\./);
  });

  it('binds types the client-side binder does not know (DateTime64, Decimal, Map, LowCardinality)', async () => {
    const rows = await clickhouse.query<{ kind: string }>(
      `SELECT kind FROM default.events
        WHERE ts >= {since:DateTime64(3)} AND amount > {min:Decimal(18, 4)}
          AND attrs = {attrs:Map(String, String)} AND kind IN {kinds:Array(LowCardinality(String))}
        ORDER BY ts`,
      { since: '2026-11-01 00:00:00.000', min: '1.5', attrs: { page: '/home' }, kinds: ['view'] },
    );
    expect(rows).toEqual([{ kind: 'view' }]);
  });

  it('returns adversarial strings unchanged through server-side binding', async () => {
    for (const value of ADVERSARIAL_STRINGS) {
      await expect(
        clickhouse.query<{ s: string }>('SELECT {s:String} AS s', { s: value }),
      ).resolves.toEqual([{ s: value }]);
    }
  });

  it('still checks allow-listed values before sending', async () => {
    await expectCode(clickhouse.query('SELECT {u:UUID}', { u: 'nope' }), 'INVALID_ARGUMENT');
  });
});

describe('chdb (26.7): modern types in JSON', () => {
  it('keeps 64-bit integers and decimals exact (as strings), and renders the rest faithfully', async () => {
    const rows = await clickhouse.query(
      `SELECT tenant_id, ts, kind, amount, big, ubig, attrs, note, tags, toTypeName(kind) AS kind_type
         FROM default.events ORDER BY ts`,
    );
    expect(rows).toEqual([
      {
        tenant_id: TENANT_A,
        ts: '2026-11-01 10:00:00.125',
        kind: 'view',
        amount: '12.3456',
        big: '-9223372036854775808',
        ubig: '18446744073709551615',
        attrs: { page: '/home' },
        note: null,
        tags: ['a', 'b'],
        kind_type: 'LowCardinality(String)',
      },
      {
        tenant_id: TENANT_A,
        ts: '2026-11-02 10:00:00.000',
        kind: 'click',
        amount: '0.0001',
        big: '9007199254740993',
        ubig: '1',
        attrs: {},
        note: "it's",
        tags: [],
        kind_type: 'LowCardinality(String)',
      },
      {
        tenant_id: TENANT_B,
        ts: '2026-11-03 10:00:00.000',
        kind: 'view',
        amount: '99999999999999.9999',
        big: '1',
        ubig: '2',
        attrs: { page: '/b' },
        note: 'b',
        tags: ['z'],
        kind_type: 'LowCardinality(String)',
      },
    ]);
  });
});

describe('chdb (26.7): streaming and tenants', () => {
  it('streams a large result and stops early when the loop breaks', async () => {
    let seen = 0;
    for await (const row of clickhouse.stream<{ number: string }>(
      'SELECT number FROM numbers({n:UInt64})',
      { n: 300_000 },
    )) {
      expect(row.number).toBe(String(seen));
      seen += 1;
      if (seen === 1_000) break;
    }
    expect(seen).toBe(1_000);
    await expect(clickhouse.query('SELECT count() AS n FROM numbers(10)')).resolves.toEqual([
      { n: '10' },
    ]);
  });

  it('the tenant helper returns only that tenant’s rows', async () => {
    const sql =
      'SELECT kind, note FROM default.events WHERE tenant_id = {tenant_id:UUID} AND kind != {skip:String} ORDER BY ts';
    await expect(clickhouse.queryForTenant(TENANT_A, sql, { skip: '' })).resolves.toEqual([
      { kind: 'view', note: null },
      { kind: 'click', note: "it's" },
    ]);
    await expect(
      drain(clickhouse.streamForTenant(TENANT_B, sql, { skip: 'click' })),
    ).resolves.toEqual([{ kind: 'view', note: 'b' }]);
    await expectCode(
      clickhouse.queryForTenant(TENANT_A, sql, { skip: '', tenant_id: TENANT_B }),
      'INVALID_ARGUMENT',
    );
  });
});

describe('chdb (26.7): new-format errors', () => {
  it.each<[string, string, string, number, string]>([
    ['a syntax error', 'SELEC 1', 'SYNTAX_ERROR', 62, 'SYNTAX_ERROR'],
    ['an unknown table', 'SELECT * FROM default.nope', 'UNKNOWN_TABLE', 60, 'UNKNOWN_TABLE'],
    ['an unknown database', 'SELECT * FROM nodb.t', 'UNKNOWN_TABLE', 81, 'UNKNOWN_DATABASE'],
    [
      'an unknown identifier',
      'SELECT nope FROM system.one',
      'QUERY_INVALID',
      47,
      'UNKNOWN_IDENTIFIER',
    ],
    ['an INSERT', "INSERT INTO default.events (kind) VALUES ('x')", 'READONLY', 164, 'READONLY'],
    ['a CREATE', 'CREATE TABLE default.t2 (x UInt8) ENGINE = Memory', 'READONLY', 164, 'READONLY'],
    ['a DROP', 'DROP TABLE default.events', 'READONLY', 164, 'READONLY'],
    ['an ALTER', 'ALTER TABLE default.events DELETE WHERE 1', 'READONLY', 164, 'READONLY'],
    // The FORMAT clause the handle appends makes SYSTEM unparseable (as on 18.16).
    ['a SYSTEM', 'SYSTEM DROP MARK CACHE', 'SYNTAX_ERROR', 62, 'SYNTAX_ERROR'],
    ['SETTINGS readonly = 0', 'SELECT 1 SETTINGS readonly = 0', 'READONLY', 164, 'READONLY'],
  ])('%s → %s', async (_what, sql, code, serverCode, serverType) => {
    const error = await expectCode(clickhouse.query(sql), code as 'READONLY');
    expect(error.serverCode).toBe(serverCode);
    expect(error.serverType).toBe(serverType);
  });

  it('the writer’s own session still writes: the handle’s readonly stayed in its session', async () => {
    await chdb.writer.command({
      query: "INSERT INTO default.events (tenant_id, kind) VALUES ('" + TENANT_B + "', 'late')",
    });
    await expect(
      clickhouse.query("SELECT count() AS n FROM default.events WHERE kind = 'late'"),
    ).resolves.toEqual([{ n: '1' }]);
  });

  it('counts rows read from chdb’s summary and errors by code', async () => {
    const counted = async (): Promise<{ rowsRead: number; readonly: number }> => {
      const text = await metrics.render();
      return {
        rowsRead: sampleValue(text, 'flowforge_clickhouse_rows_read_total') ?? 0,
        readonly: sampleValue(text, 'flowforge_clickhouse_errors_total', { code: 'READONLY' }) ?? 0,
      };
    };
    const before = await counted();
    await clickhouse.query('SELECT number FROM numbers(1000)');
    await expectCode(clickhouse.query('DROP TABLE default.events'), 'READONLY');
    const after = await counted();
    expect(after.rowsRead).toBeGreaterThan(before.rowsRead);
    expect(after.readonly - before.readonly).toBe(1);
  });
});

describe('chdb (26.7): SQL that 26.x lexes differently from 18.16 is refused before sending', () => {
  const secret = "|| (SELECT any(s) FROM default.secrets WHERE s = 'TOP-SECRET') ||";
  beforeAll(async () => {
    await chdb.writer.command({
      query: 'CREATE TABLE default.secrets (tenant_id UUID, s String) ENGINE = Memory',
    });
    await chdb.writer.command({
      query: `INSERT INTO default.secrets VALUES ('${TENANT_A}', 'mine'), ('${TENANT_B}', 'TOP-SECRET')`,
    });
  });

  it('the premise: 26.x reads `a$x$` as a name and ‘…’ as a string, so these placeholders sit in strings', async () => {
    const rows = async (query: string): Promise<unknown> =>
      (await chdb.writer.query({ query, format: 'JSONEachRow' })).json();
    await expect(rows("SELECT 1 AS a$x$, '$x$' AS m, ' {v:String} ' AS n")).resolves.toEqual([
      { a$x$: 1, m: '$x$', n: ' {v:String} ' },
    ]);
    await expect(rows("SELECT ‘'’ AS a, ' {v:String} ' AS b")).resolves.toEqual([
      { a: "'", b: ' {v:String} ' },
    ]);
  });

  it('client-side binding: a value never lands in what the server reads as a string', async () => {
    const client = createClickHouse({ client: chdb.client, parameterBinding: 'client' });
    try {
      for (const sql of [
        "SELECT 1 AS a$x$, '$x$' AS m, ' {v:String} ' AS n",
        "SELECT ‘'’ AS a, ' {v:String} ' AS b",
      ]) {
        await expectCode(client.query(sql, { v: secret }), 'INVALID_ARGUMENT');
      }
      // What the binder does take still binds.
      await expect(
        client.query('SELECT $x$a$x$ AS h, {v:String} AS v', { v: secret }),
      ).resolves.toEqual([{ h: 'a', v: secret }]);
    } finally {
      await client.close();
    }
  });

  it('server-side binding: the tenant placeholder must be one the server binds', async () => {
    await expectCode(
      clickhouse.queryForTenant(
        TENANT_A,
        "SELECT s, 1 AS a$x$, '$x$' AS m FROM default.secrets WHERE ' {tenant_id:UUID} ' != ''",
      ),
      'INVALID_ARGUMENT',
    );
    await expect(
      clickhouse.queryForTenant(
        TENANT_A,
        'SELECT s FROM default.secrets WHERE tenant_id = {tenant_id:UUID}',
      ),
    ).resolves.toEqual([{ s: 'mine' }]);
  });
});

describe('chdb (26.7): the readonly level each query carries', () => {
  // Sessions of their own, made readonly=1 and readonly=2 the way a profile would.
  const sessions: ReturnType<typeof chdbClient>[] = [];
  afterAll(async () => {
    for (const session of sessions) await session.close();
  });
  async function sessionWith(readonly: 1 | 2): Promise<ClickHouse> {
    const session = chdbClient();
    sessions.push(session);
    await session.command({
      query: 'SELECT 1',
      clickhouse_settings: { readonly: String(readonly) },
    });
    return createClickHouse({ client: session });
  }

  it.each([1, 2] as const)(
    'a readonly=%i user takes its own level per query (unchanged), reads, and cannot write',
    async (level) => {
      const handle = await sessionWith(level);
      try {
        await expect(
          handle.query("SELECT value FROM system.settings WHERE name = 'readonly'"),
        ).resolves.toEqual([{ value: String(level) }]);
        const error = await expectCode(handle.query('DROP TABLE default.secrets'), 'READONLY');
        expect(error.serverCode).toBe(164);
      } finally {
        await handle.close();
      }
    },
  );

  it('server-side binding keeps -0 and refuses what a type cannot hold', async () => {
    const [row] = await clickhouse.query<{ f: number }>('SELECT {f:Float64} AS f', { f: -0 });
    expect(Object.is(row?.f, -0)).toBe(true);
    await expectCode(
      clickhouse.query('SELECT {d:Date} AS d', { d: '1900-01-01' }),
      'INVALID_ARGUMENT',
    );
    await expectCode(
      clickhouse.query('SELECT {t:DateTime} AS t', { t: '2200-01-01 00:00:00' }),
      'INVALID_ARGUMENT',
    );
    await expectCode(clickhouse.query('SELECT {f:Float32} AS f', { f: 1e300 }), 'INVALID_ARGUMENT');
  });
});
