/**
 * What real Materialize does that PostgreSQL does not, against the wire double
 * that copies it (docs/decisions/015-materialize-server-behaviour.md): a session
 * idle in its transaction is ended at the next FETCH (25P03), a consumer far
 * behind gets 53200, a connection past max_connections gets FATAL 53000, and
 * `FETCH n … WITH (timeout)` waits for n rows, so a row must not wait for it.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import { isMaterializeError, type SubscribeProgress, type SubscribeUpdate } from '../src/index.js';
import { Handles, uniqueName } from './support/handles.js';
import { collect, eventually, iterationError, updates } from './support/streams.js';

type Row = { id: number };
type Item = SubscribeUpdate<Row> | SubscribeProgress;

const handles = new Handles();
const servers: MaterializeDouble[] = [];
const clients: pg.Client[] = [];

async function double(options: Parameters<typeof startMaterializeDouble>[0] = {}) {
  const server = await startMaterializeDouble(options);
  servers.push(server);
  const name = uniqueName('sb');
  server.defineView(name, [{ name: 'id', type: 'int4' }]);
  return { server, name };
}

afterEach(async () => {
  await handles.closeAll();
  await Promise.all(clients.splice(0).map((client) => client.end().catch(() => undefined)));
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});

const ids = (items: readonly Item[]): number[] => updates(items).map((item) => item.row.id);
const subscribed = (server: MaterializeDouble): boolean =>
  server.sessions().some((session) => session.cursor !== null);

describe('idle_in_transaction_session_timeout', () => {
  it('a consumer slower than the timeout resumes where it stopped (25P03 at the next FETCH is a lost connection)', async () => {
    const { server, name } = await double({ idleInTransactionTimeoutMs: 100 });
    const mz = handles.open({ url: server.url });
    const iterator = mz.subscribe<Row>(name, { progress: true });
    await collect(iterator, (items) => items.length > 0);
    server.insert(name, [{ id: 1 }]);
    const before = await collect(iterator, (items) => updates(items).length === 1);
    // The consumer stalls: Materialize ends the session (and its subscription) meanwhile.
    await eventually(() => !subscribed(server), 'the session to time out');
    server.insert(name, [{ id: 2 }]);
    server.insert(name, [{ id: 3 }]);
    const after = await collect(iterator, (items) => updates(items).length === 2);
    expect([...ids(before), ...ids(after)]).toEqual([1, 2, 3]);
    await iterator.return?.();
  });
});

describe('subscribe_max_buffered_bytes', () => {
  it('a consumer far behind is resubscribed where it stopped (53200 is not terminal)', async () => {
    const { server, name } = await double({ subscribeMaxBufferedBytes: 4096 });
    const mz = handles.open({ url: server.url, fetchBatchSize: 4 });
    const iterator = mz.subscribe<Row>(name, { progress: true });
    await collect(iterator, (items) => items.length > 0);
    server.insert(name, [{ id: 0 }]);
    const first = await collect(iterator, (items) => updates(items).length === 1);
    // Not pulling while 40 timestamps close: the server retires the subscription.
    for (let id = 1; id <= 40; id += 1) server.insert(name, [{ id }]);
    const rest = await collect(iterator, (items) => updates(items).length === 40);
    expect([...ids(first), ...ids(rest)]).toEqual(Array.from({ length: 41 }, (_, id) => id));
    await iterator.return?.();
  });
});

describe('max_connections', () => {
  it('a subscription refused at connect (FATAL 53000) is UNAVAILABLE, not a query failure', async () => {
    const { server, name } = await double({ maxConnections: 1 });
    const blocker = new pg.Client({ connectionString: server.url });
    clients.push(blocker);
    await blocker.connect();
    const mz = handles.open({ url: server.url });
    const error = await iterationError(mz.subscribe(name));
    expect(isMaterializeError(error, 'UNAVAILABLE')).toBe(true);
    expect((error as { sqlstate?: string }).sqlstate).toBe('53000');
    expect((error as { retryable?: boolean }).retryable).toBe(true);
  });

  it('a resuming subscription refused at connect retries with backoff until a slot is free', async () => {
    const { server, name } = await double({ maxConnections: 1 });
    const mz = handles.open({
      url: server.url,
      reconnect: { initialDelayMs: 100, maxDelayMs: 200 },
    });
    const iterator = mz.subscribe<Row>(name, { progress: true });
    await collect(iterator, (items) => items.length > 0);
    server.insert(name, [{ id: 1 }]);
    const before = await collect(iterator, (items) => updates(items).length === 1);
    const pending = collect(iterator, (items) => updates(items).length === 1);
    server.dropConnections();
    await eventually(() => server.stats.connectionsOpen === 0, 'the connection to drop');
    // Another client takes the only slot before the subscription reconnects.
    const blocker = new pg.Client({ connectionString: server.url });
    blocker.on('error', () => undefined);
    await blocker.connect();
    const opened = server.stats.connectionsOpened;
    server.insert(name, [{ id: 2 }]);
    await eventually(() => server.stats.connectionsOpened >= opened + 2, 'refused reconnects');
    await blocker.end();
    const after = await pending;
    expect([...ids(before), ...ids(after)]).toEqual([1, 2]);
    await iterator.return?.();
  });
});

describe('FETCH … WITH (timeout) waits for n rows', () => {
  it(
    'a single committed update reaches the consumer without waiting for fetchTimeoutMs',
    {
      timeout: 10_000,
    },
    async () => {
      const { server, name } = await double();
      // A minute: were the FETCH to ask for a batch with this timeout, the update would wait for it.
      const mz = handles.open({ url: server.url, fetchTimeoutMs: 60_000 });
      const iterator = mz.subscribe<Row>(name, { progress: true });
      await collect(iterator, (items) => items.length > 0, 5_000);
      server.insert(name, [{ id: 1 }]);
      const items = await collect(iterator, (seen) => updates(seen).length === 1, 5_000);
      expect(ids(items)).toEqual([1]);
      // The wait FETCH asks for one row; the drain FETCH takes what is ready, without waiting.
      const fetches = server.statementLog().filter((statement) => statement.startsWith('FETCH'));
      expect(new Set(fetches)).toEqual(
        new Set([
          "FETCH 1 flowforge_subscribe WITH (timeout = '60000ms')",
          "FETCH 1000 flowforge_subscribe WITH (timeout = '0s')",
        ]),
      );
      await iterator.return?.();
    },
  );
});
