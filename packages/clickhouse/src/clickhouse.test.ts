import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { loadSettings } from '@flowforge/config';
import { createMetrics } from '@flowforge/observability';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { createClickHouse, type ClickHouseDriver, type ClickHouseOptions } from './clickhouse.js';
import { ClickHouseError, type ClickHouseErrorCode } from './errors.js';

const TENANT = '6f1c1d0e-2b7a-4c39-9d55-0d4f3c2b1a00';

// A listener that only counts connections: proves the checks below happen
// before anything is sent (no ClickHouse needed, none reached).
const connections: (number | undefined)[] = [];
const counter = net.createServer((socket) => {
  connections.push(socket.remotePort);
  socket.destroy();
});
let url = '';
beforeAll(async () => {
  await new Promise<void>((resolve) => counter.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(counter.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => counter.close(() => resolve())));

/**
 * The connections the counter accepted from anyone but these probes, once every
 * connection started before now has arrived: after a turn of the event loop
 * (for requests still being set up), a probe connects and is waited for; the
 * kernel hands connections over in order, so any earlier one is counted.
 */
const probes = new Set<number | undefined>();
async function acceptedSoFar(): Promise<number> {
  await new Promise((resolve) => setImmediate(resolve));
  const probe = net.connect((counter.address() as AddressInfo).port, '127.0.0.1');
  probe.on('error', () => undefined);
  await once(probe, 'connect');
  probes.add(probe.localPort);
  while (!connections.includes(probe.localPort)) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  probe.destroy();
  return connections.filter((port) => !probes.has(port)).length;
}

function thrown(run: () => unknown): ClickHouseError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ClickHouseError);
    return error as ClickHouseError;
  }
  throw new Error('expected a throw');
}

async function rejected(
  promise: Promise<unknown>,
  code: ClickHouseErrorCode,
): Promise<ClickHouseError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(ClickHouseError);
  expect((error as ClickHouseError).code, (error as Error).message).toBe(code);
  return error as ClickHouseError;
}

describe('createClickHouse', () => {
  it('takes an @clickhouse/client client as `client`, typed without naming the driver', async () => {
    expectTypeOf<ClickHouseClient>().toExtend<ClickHouseDriver>();
    const client = createClient({ url: 'http://127.0.0.1:1' });
    const clickhouse = createClickHouse({ client });
    await clickhouse.close();
    await client.close();
  });

  it('refuses a `client` that is not an @clickhouse/client client', () => {
    const notAClient = { close: () => Promise.resolve() } as unknown as ClickHouseDriver;
    expect(() => createClickHouse({ client: notAClient })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTIONS' }),
    );
  });

  it('throws NOT_CONFIGURED synchronously without a url (settings.clickhouse with CLICKHOUSE_URL unset)', () => {
    const { clickhouse } = loadSettings({ APP_ENV: 'test' });
    expect(clickhouse.url).toBeNull();
    expect(thrown(() => createClickHouse({ ...clickhouse })).code).toBe('NOT_CONFIGURED');
    expect(thrown(() => createClickHouse({})).code).toBe('NOT_CONFIGURED');
    expect(thrown(() => createClickHouse({ url: '' })).code).toBe('NOT_CONFIGURED');
  });

  it.each<[string, Partial<ClickHouseOptions>]>([
    ['a name with spaces', { name: 'a b' }],
    ['an unknown binding mode', { parameterBinding: 'maybe' as 'auto' }],
    ['a negative detectionTtlMs', { detectionTtlMs: -1 }],
    ['a zero requestTimeoutMs', { requestTimeoutMs: 0 }],
    ['a requestTimeoutMs past the timer limit', { requestTimeoutMs: 2 ** 31 }],
    ['a URL that is not http', { url: 'ftp://127.0.0.1' }],
    ['a database that is not an identifier', { database: 'x;y' }],
  ])('throws INVALID_OPTIONS for %s', (_what, overrides) => {
    expect(thrown(() => createClickHouse({ url, ...overrides })).code).toBe('INVALID_OPTIONS');
  });

  it('takes the settings.clickhouse spread and connects to nothing until used', async () => {
    const before = await acceptedSoFar();
    const settings = loadSettings({
      APP_ENV: 'test',
      CLICKHOUSE_URL: url,
      CLICKHOUSE_USER: 'flowforge',
      CLICKHOUSE_PASSWORD: 'secret',
      CLICKHOUSE_DATABASE: 'flowforge',
    });
    const clickhouse = createClickHouse({
      ...settings.clickhouse,
      metrics: createMetrics({ defaultMetrics: false }),
    });
    expect(clickhouse.name).toBe('flowforge');
    clickhouse.stream('SELECT 1'); // a stream sends nothing until iterated
    expect(await acceptedSoFar()).toBe(before);
    await clickhouse.close();
    await clickhouse.close();
    expect(await acceptedSoFar()).toBe(before);
  });

  it('throws INVALID_OPTIONS for an allowIdentifierParams that is not a boolean', () => {
    expect(
      thrown(() => createClickHouse({ url, allowIdentifierParams: 'yes' as unknown as boolean }))
        .code,
    ).toBe('INVALID_OPTIONS');
  });
});

describe('checks before sending (INVALID_ARGUMENT, nothing reaches the server)', () => {
  const metrics = createMetrics({ defaultMetrics: false });
  const clickhouse = createClickHouse({ url: 'http://127.0.0.1:9', metrics });
  afterAll(() => clickhouse.close());

  it.each<[string, () => Promise<unknown>]>([
    ['empty SQL', () => clickhouse.query('  ')],
    ['a timeoutMs of 0', () => clickhouse.query('SELECT 1', undefined, { timeoutMs: 0 })],
    ['a fractional timeoutMs', () => clickhouse.query('SELECT 1', undefined, { timeoutMs: 1.5 })],
    ['a queryId with a space', () => clickhouse.query('SELECT 1', undefined, { queryId: 'a b' })],
    [
      'a readonly setting',
      () => clickhouse.query('SELECT 1', undefined, { settings: { readonly: 0 } }),
    ],
    [
      'a user "setting"',
      () => clickhouse.query('SELECT 1', undefined, { settings: { user: 'default' } }),
    ],
    [
      'a profile setting (18.16 would re-apply a server profile past the readonly guard)',
      () =>
        clickhouse.query('DROP TABLE default.notes', undefined, {
          settings: { profile: 'readonly_0' },
        }),
    ],
    [
      'replace_running_query (would kill another query with the same id)',
      () => clickhouse.query('SELECT 1', undefined, { settings: { replace_running_query: 1 } }),
    ],
    [
      'an {name:Identifier} placeholder',
      () => clickhouse.query('SELECT * FROM {t:Identifier}', { t: 'secrets' }),
    ],
    [
      'a $-name that 26.x and the scanner would read differently',
      () => clickhouse.query("SELECT 1 AS a$x$, '$x$' AS m, ' {v:String} ' AS n", { v: 'x' }),
    ],
    [
      'a ‘…’ string, which 18.16 does not know and 26.x reads as a string',
      () => clickhouse.query("SELECT ‘'’ AS a, ' {v:String} ' AS b", { v: 'x' }),
    ],
    ['a param without placeholder', () => clickhouse.query('SELECT 1', { x: 1 })],
    ['a placeholder inside a string', () => clickhouse.query("SELECT '{x:UInt8}'", { x: 1 })],
    ['a value that does not fit', () => clickhouse.query('SELECT {x:UInt8}', { x: 300 })],
    [
      'a tenant id that is not a UUID',
      () => clickhouse.queryForTenant('tenant-1', 'SELECT {tenant_id:UUID}'),
    ],
    ['tenant SQL without the placeholder', () => clickhouse.queryForTenant(TENANT, 'SELECT 1')],
    [
      'tenant SQL with the placeholder only in a comment',
      () => clickhouse.queryForTenant(TENANT, 'SELECT 1 -- {tenant_id:UUID}'),
    ],
    [
      'tenant_id typed as String',
      () => clickhouse.queryForTenant(TENANT, 'SELECT {tenant_id:UUID}, {tenant_id:String}'),
    ],
    [
      'a caller tenant_id param, even the same one',
      () => clickhouse.queryForTenant(TENANT, 'SELECT {tenant_id:UUID}', { tenant_id: TENANT }),
    ],
    [
      'a caller Tenant_Id param for a {Tenant_Id:UUID} lookalike placeholder',
      () =>
        clickhouse.queryForTenant(
          TENANT,
          'SELECT 1 WHERE tenant_id IN ({tenant_id:UUID}, {Tenant_Id:UUID})',
          { Tenant_Id: '0b0b0b0b-0000-4000-8000-00000000000b' },
        ),
    ],
    [
      'a {TENANT_ID:UUID} lookalike placeholder, whatever its value',
      () =>
        clickhouse.queryForTenant(TENANT, 'SELECT {tenant_id:UUID}, {TENANT_ID:UUID}', {
          TENANT_ID: TENANT,
        }),
    ],
    [
      'a tenant query whose placeholder 26.x would read inside a string',
      () =>
        clickhouse.queryForTenant(
          TENANT,
          "SELECT s, 1 AS a$x$, '$x$' AS m FROM default.secrets WHERE ' {tenant_id:UUID} ' != ''",
        ),
    ],
  ])('%s', async (_what, run) => {
    await rejected(run(), 'INVALID_ARGUMENT');
  });

  it('rejects a stream’s first next() the same way', async () => {
    const rows = clickhouse.streamForTenant(TENANT, 'SELECT 1');
    await rejected(rows[Symbol.asyncIterator]().next(), 'INVALID_ARGUMENT');
  });

  it('counts them by code', async () => {
    const text = await metrics.render();
    expect(text).toMatch(/flowforge_clickhouse_errors_total\{code="INVALID_ARGUMENT"\} [1-9]/);
  });
});

describe('cancellation and close before sending', () => {
  it('rejects with CANCELLED when the signal has already aborted, without connecting', async () => {
    const before = await acceptedSoFar();
    const clickhouse = createClickHouse({ url });
    await rejected(
      clickhouse.query('SELECT 1', undefined, { signal: AbortSignal.abort() }),
      'CANCELLED',
    );
    expect(await acceptedSoFar()).toBe(before);
    await clickhouse.close();
  });

  it('rejects with CLOSED after close(), for queries, streams and health', async () => {
    const clickhouse = createClickHouse({ url });
    await clickhouse.close();
    await rejected(clickhouse.query('SELECT 1'), 'CLOSED');
    await rejected(clickhouse.stream('SELECT 1')[Symbol.asyncIterator]().next(), 'CLOSED');
    await rejected(clickhouse.health(), 'CLOSED');
  });
});

describe('a query that gives up while the first-use detection runs', () => {
  // Answers the detection like an 18.16 readonly=1 user, except the first one,
  // which it holds: the query waiting for it gives up meanwhile.
  let held: http.ServerResponse | undefined;
  let arrived: () => void = () => undefined;
  const firstDetection = new Promise<void>((resolve) => (arrived = resolve));
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      if (body.includes('system.settings') && held === undefined) {
        held = response;
        arrived();
        return;
      }
      response.end(
        body.includes('system.settings')
          ? '{"name":"readonly","value":"1","version":"18.16.1"}\n'
          : '{"x":1}\n',
      );
    });
  });
  beforeAll(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)));
  afterAll(async () => {
    held?.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('the next query starts a detection of its own instead of joining the abandoned one', async () => {
    const port = (server.address() as AddressInfo).port;
    const clickhouse = createClickHouse({
      url: `http://127.0.0.1:${port}`,
      parameterBinding: 'client',
    });
    try {
      const giveUp = new AbortController();
      const first = clickhouse.query('SELECT 1 AS x', undefined, { signal: giveUp.signal });
      await firstDetection;
      giveUp.abort(); // the only waiter leaves: the detection is abandoned…
      const second = clickhouse.query('SELECT 1 AS x'); // …and this one arrives at once
      await rejected(first, 'CANCELLED');
      await expect(second).resolves.toEqual([{ x: 1 }]);
    } finally {
      await clickhouse.close();
    }
  });
});
