/**
 * Ending a subscription: by signal, break/return() and close(), with a FETCH
 * blocked on the server or not; a backend dying under a connection that is
 * checked out; and 1000 subscribe/abort cycles that must leave nothing behind.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics, type Metrics } from '@flowforge/observability';
import { isMaterializeError, type Materialize } from '../src/index.js';
import { Handles, uniqueName } from './support/handles.js';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import { collect, eventually, iterationError, rejectionOf, updates } from './support/streams.js';

let server: MaterializeDouble;
const handles = new Handles();

beforeAll(async () => {
  server = await startMaterializeDouble();
});
afterEach(async () => {
  await handles.closeAll();
});
afterAll(async () => {
  await server.stop();
});

function view(): string {
  const name = uniqueName('c');
  server.defineView(name, [
    { name: 'tenant_id', type: 'text' },
    { name: 'n', type: 'int8' },
  ]);
  return name;
}

async function sample(metrics: Metrics, line: string): Promise<number | undefined> {
  const text = await metrics.render();
  const found = text.split('\n').find((candidate) => candidate.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

/** A handle whose FETCHes would wait a minute: only a cancel ends one quickly. */
function patientHandle(name: string, metrics?: Metrics, poolSize = 5): Materialize {
  return handles.open({
    url: server.url,
    name,
    fetchTimeoutMs: 60_000,
    poolSize,
    ...(metrics === undefined ? {} : { metrics }),
  });
}

const blocked = (): boolean => server.sessions().some((session) => session.fetching);
const busySessions = (): number =>
  server
    .sessions()
    .filter((session) => session.inTransaction || session.cursor !== null || session.fetching)
    .length;

describe('cancellation', () => {
  it('an abort while a FETCH is blocked cancels it on the server, rolls back, and returns the connection', async () => {
    const name = view();
    const metrics = createMetrics({ defaultMetrics: false });
    const mz = patientHandle('cancel-blocked', metrics);
    const controller = new AbortController();
    const iterator = mz.subscribe(name, { signal: controller.signal, progress: true });
    await iterator.next();
    const pending = iterator.next();
    await eventually(blocked, 'a blocked FETCH');
    const cancelsBefore = server.stats.cancelRequests;
    controller.abort(new Error('gone'));
    const error = await rejectionOf(pending);
    expect(isMaterializeError(error, 'CANCELLED')).toBe(true);
    // The double saw the CancelRequest; the session is idle again, back in the pool.
    expect(server.stats.cancelRequests).toBe(cancelsBefore + 1);
    expect(busySessions()).toBe(0);
    expect(server.statementLog().at(-1)).toBe('ROLLBACK');
    expect(
      await sample(metrics, 'flowforge_materialize_pool_connections{client="cancel-blocked"}'),
    ).toBe(1);
    expect(
      await sample(metrics, 'flowforge_materialize_pool_idle_connections{client="cancel-blocked"}'),
    ).toBe(1);
    expect(
      await sample(metrics, 'flowforge_materialize_subscriptions_active{client="cancel-blocked"}'),
    ).toBe(0);
    expect(
      await sample(
        metrics,
        'flowforge_materialize_errors_total{client="cancel-blocked",code="CANCELLED"}',
      ),
    ).toBe(1);
  });

  it('an abort while nobody pulls gives the connection back at once', async () => {
    const name = view();
    const mz = patientHandle('cancel-idle');
    const controller = new AbortController();
    const iterator = mz.subscribe(name, { signal: controller.signal, progress: true });
    await iterator.next();
    expect(busySessions()).toBe(1);
    const cancelsBefore = server.stats.cancelRequests;
    controller.abort();
    await eventually(() => busySessions() === 0, 'the session to be rolled back');
    // Between FETCHes nothing runs on the server: the rollback alone ends it, no CancelRequest.
    expect(server.stats.cancelRequests).toBe(cancelsBefore);
    expect(isMaterializeError(await rejectionOf(iterator.next()), 'CANCELLED')).toBe(true);
  });

  it('a signal aborted before the first next() sends nothing', async () => {
    const name = view();
    const mz = patientHandle('cancel-early');
    const before = server.stats.statements;
    const error = await rejectionOf(
      mz.subscribe(name, { signal: AbortSignal.abort(new Error('already')) }).next(),
    );
    expect(isMaterializeError(error, 'CANCELLED')).toBe(true);
    expect(server.stats.statements).toBe(before);
  });

  it('return() while a FETCH is blocked ends quietly and cancels it', async () => {
    const name = view();
    const mz = patientHandle('return-blocked');
    const iterator = mz.subscribe(name, { progress: true });
    await iterator.next();
    const pending = iterator.next();
    await eventually(blocked, 'a blocked FETCH');
    const cancelsBefore = server.stats.cancelRequests;
    expect(await iterator.return?.()).toEqual({ done: true, value: undefined });
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(server.stats.cancelRequests).toBe(cancelsBefore + 1);
    expect(busySessions()).toBe(0);
  });

  it('break out of for-await ends quietly with the rest of a batch unread', async () => {
    const name = view();
    server.insert(name, [
      { tenant_id: 'a', n: 1 },
      { tenant_id: 'a', n: 2 },
      { tenant_id: 'a', n: 3 },
    ]);
    const mz = patientHandle('break');
    let seen = 0;
    for await (const change of mz.subscribe(name, { snapshot: true })) {
      expect(change.kind).toBe('update');
      seen += 1;
      if (seen === 1) break;
    }
    expect(seen).toBe(1);
    expect(busySessions()).toBe(0);
  });

  it('close() while FETCHes are blocked ends each with CLOSED', async () => {
    const name = view();
    const mz = patientHandle('close-blocked');
    const iterators = [1, 2, 3].map(() => mz.subscribe(name, { progress: true }));
    await Promise.all(iterators.map((iterator) => iterator.next()));
    const pending = iterators.map((iterator) => iterator.next());
    await eventually(
      () => server.sessions().filter((session) => session.fetching).length === 3,
      'three blocked FETCHes',
    );
    await mz.close();
    for (const result of pending)
      expect(isMaterializeError(await rejectionOf(result), 'CLOSED')).toBe(true);
    await eventually(() => server.sessions().length === 0, 'every session to be closed');
  });

  it('1000 subscribe/abort cycles leave no connection, session or subscription behind', async () => {
    const name = view();
    const metrics = createMetrics({ defaultMetrics: false });
    const mz = patientHandle('cycles', metrics, 3);
    const opened = server.stats.connectionsOpened;
    for (let cycle = 0; cycle < 1000; cycle += 1) {
      const controller = new AbortController();
      const iterator = mz.subscribe(name, { signal: controller.signal, progress: true });
      const first = iterator.next();
      // Abort at every stage: before anything is sent, while connecting or
      // declaring, while the first FETCH is blocked, and with nobody pulling.
      switch (cycle % 4) {
        case 0:
          controller.abort();
          break;
        case 1:
          await new Promise((resolve) => setImmediate(resolve));
          controller.abort();
          break;
        case 2: {
          await first;
          const second = iterator.next();
          if (cycle % 40 === 2) await eventually(blocked, 'a blocked FETCH', 10_000, 1);
          controller.abort();
          expect(isMaterializeError(await rejectionOf(second), 'CANCELLED')).toBe(true);
          continue;
        }
        default:
          await first;
          controller.abort();
          expect(isMaterializeError(await rejectionOf(iterator.next()), 'CANCELLED')).toBe(true);
          continue;
      }
      const result = await first.then(
        () => 'item',
        (error: unknown) => error,
      );
      if (result !== 'item') expect(isMaterializeError(result, 'CANCELLED')).toBe(true);
      else expect(isMaterializeError(await rejectionOf(iterator.next()), 'CANCELLED')).toBe(true);
    }
    await eventually(() => busySessions() === 0, 'every session to be idle');
    const client = 'client="cycles"';
    expect(await sample(metrics, `flowforge_materialize_subscriptions_active{${client}}`)).toBe(0);
    expect(await sample(metrics, `flowforge_materialize_pool_waiting_requests{${client}}`)).toBe(0);
    const total = await sample(metrics, `flowforge_materialize_pool_connections{${client}}`);
    const idle = await sample(metrics, `flowforge_materialize_pool_idle_connections{${client}}`);
    expect(total).toBeGreaterThanOrEqual(1);
    expect(total).toBeLessThanOrEqual(3);
    expect(idle).toBe(total);
    expect(server.stats.connectionsOpen).toBe(total);
    // Connections are reused, not replaced (a destroyed one would be a new one).
    expect(server.stats.connectionsOpened - opened).toBeLessThanOrEqual(3);
    // And the handle still works.
    server.insert(name, [{ tenant_id: 'a', n: 1 }]);
    const iterator = mz.subscribe(name, { snapshot: true, progress: true });
    expect(updates(await collect(iterator, (items) => updates(items).length === 1))).toHaveLength(
      1,
    );
    await iterator.return?.();
  });
});

describe('a backend dying under a checked-out connection', () => {
  it('between FETCHes (nobody pulling) and during a blocked FETCH: the process survives and the stream resumes', async () => {
    const name = view();
    const mz = patientHandle('dying');
    const iterator = mz.subscribe<{ n: string }>(name, { progress: true });
    await iterator.next();
    // Nobody pulls: the connection is idle inside its transaction.
    server.dropConnections();
    await eventually(() => server.stats.connectionsOpen === 0, 'the connection to drop');
    await new Promise((resolve) => setTimeout(resolve, 20));
    server.insert(name, [{ tenant_id: 'a', n: 1 }]);
    const first = await collect(iterator, (items) => updates(items).length === 1);
    expect(updates(first)[0]?.row.n).toBe('1');

    const pending = collect(iterator, (items) => updates(items).length === 1);
    await eventually(blocked, 'a blocked FETCH');
    server.dropConnections();
    server.insert(name, [{ tenant_id: 'a', n: 2 }]);
    expect(updates(await pending)[0]?.row.n).toBe('2');
    await iterator.return?.();
  });
});

describe('endings the client did not ask for', () => {
  it('a cancel from elsewhere (pg_cancel_backend) is CANCELLED with SQLSTATE 57014', async () => {
    const name = view();
    const mz = patientHandle('foreign-cancel');
    const iterator = mz.subscribe(name, { progress: true });
    await iterator.next();
    const pending = iterator.next();
    await eventually(blocked, 'a blocked FETCH');
    const pid = server.sessions().find((session) => session.fetching)?.pid;
    const other = new pg.Client(server.url);
    other.on('error', () => undefined);
    await other.connect();
    await other.query(`SELECT pg_cancel_backend(${pid})`);
    await other.end();
    const error = await rejectionOf(pending);
    expect(isMaterializeError(error, 'CANCELLED')).toBe(true);
    expect((error as { sqlstate?: string }).sqlstate).toBe('57014');
    await eventually(() => busySessions() === 0, 'the session to be rolled back');
  });

  it('a view dropped under a subscription is QUERY_FAILED with the server’s SQLSTATE', async () => {
    const name = view();
    const mz = patientHandle('dropped');
    const iterator = mz.subscribe(name, { progress: true });
    await iterator.next();
    const pending = iterator.next();
    await eventually(blocked, 'a blocked FETCH');
    server.dropView(name);
    const error = await rejectionOf(pending);
    expect(isMaterializeError(error, 'QUERY_FAILED')).toBe(true);
    expect((error as { sqlstate?: string }).sqlstate).toBe('XX000');
    await eventually(() => busySessions() === 0, 'the session to be rolled back');
  });

  it('every pooled connection held by subscriptions: another checkout is TIMEOUT, not a hang', async () => {
    const name = view();
    const mz = handles.open({
      url: server.url,
      poolSize: 1,
      connectTimeoutMs: 200,
      fetchTimeoutMs: 60_000,
    });
    const holder = mz.subscribe(name, { progress: true });
    await holder.next();
    expect(isMaterializeError(await iterationError(mz.subscribe(name)), 'TIMEOUT')).toBe(true);
    // health() has a connection of its own: busy is not down.
    expect((await mz.health()).status).toBe('up');
    await holder.return?.();
  });
});
