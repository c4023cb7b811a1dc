// Connection leaks and bounded waits on a hung server, and health() while every
// pooled connection is held (first written as an adversarial review's checks).
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Handles, uniqueName } from './support/handles.js';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import { eventually, rejectionOf } from './support/streams.js';

let server: MaterializeDouble;
const handles = new Handles();

beforeAll(async () => {
  server = await startMaterializeDouble();
});
afterEach(async () => {
  server.stall(false);
  await handles.closeAll();
});
afterAll(async () => {
  await server.stop();
});

function view(): string {
  const name = uniqueName('lk');
  server.defineView(name, [{ name: 'id', type: 'int4' }]);
  return name;
}

/** Client-side sockets of this process still open to the double. */
function socketsToServer(): number {
  const handlesNow = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handlesNow.filter(
    (handle): handle is Socket =>
      typeof handle === 'object' &&
      handle !== null &&
      (handle as Socket).remotePort === server.port &&
      !(handle as Socket).destroyed,
  ).length;
}

describe('a hung or busy server', () => {
  it('a FETCH taken as dead (fetchTimeoutMs + connectTimeoutMs) leaves no socket open', async () => {
    const name = view();
    const before = socketsToServer();
    const mz = handles.open({
      url: server.url,
      fetchTimeoutMs: 100,
      connectTimeoutMs: 150,
      reconnect: { initialDelayMs: 5, maxDelayMs: 10, maxAttempts: 2 },
    });
    const iterator = mz.subscribe(name, { progress: true });
    await iterator.next();
    const pending = rejectionOf(
      (async () => {
        for (;;) await iterator.next();
      })(),
    );
    await eventually(() => server.sessions().some((session) => session.fetching), 'a FETCH');
    server.stall(true);
    // The stalled server never answers: the FETCH is declared dead, reconnects fail (stalled
    // handshake), CONNECTION_LOST.
    const error = await pending;
    expect((error as { code?: string }).code).toBe('CONNECTION_LOST');
    // Every connection the client gave up on should be closed (destroyed), not left half-open.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(socketsToServer() - before).toBe(0);
  });

  it('close() with a FETCH blocked on a hung server is bounded by ~connectTimeoutMs and leaves no socket', async () => {
    const name = view();
    const before = socketsToServer();
    const mz = handles.open({ url: server.url, fetchTimeoutMs: 1000, connectTimeoutMs: 300 });
    const iterator = mz.subscribe(name, { progress: true });
    await iterator.next();
    const pending = rejectionOf(
      (async () => {
        for (;;) await iterator.next();
      })(),
    );
    await eventually(() => server.sessions().some((session) => session.fetching), 'a FETCH');
    server.stall(true);
    const started = performance.now();
    await mz.close();
    const took = performance.now() - started;
    await pending;
    // README: "Bounded: what has not let go after connectTimeoutMs is destroyed".
    expect(took).toBeLessThan(3 * 300);
    expect(socketsToServer() - before).toBe(0);
  });

  it('health() stays up while live subscriptions hold every pooled connection', async () => {
    const name = view();
    const mz = handles.open({ url: server.url, poolSize: 1, connectTimeoutMs: 300 });
    await mz.start();
    const iterator = mz.subscribe(name, { progress: true });
    await iterator.next(); // holds the only pooled connection
    // The server is fine; the handle is merely busy: readiness must not call it down.
    await expect(mz.health()).resolves.toMatchObject({ status: 'up' });
    expect(mz.status).toBe('ready');
    await iterator.return?.();
  });

  it('abort while waiting for a pooled connection, then the holder ends: pool and double back to idle', async () => {
    const name = view();
    const mz = handles.open({ url: server.url, poolSize: 1, connectTimeoutMs: 2000 });
    const holder = mz.subscribe(name, { progress: true });
    await holder.next();
    const controller = new AbortController();
    const waiter = mz.subscribe(name, { progress: true, signal: controller.signal });
    const waiting = rejectionOf(waiter.next());
    await new Promise((resolve) => setTimeout(resolve, 50));
    controller.abort(new Error('bye'));
    expect(((await waiting) as { code?: string }).code).toBe('CANCELLED');
    await holder.return?.();
    await eventually(
      () => server.sessions().every((session) => !session.inTransaction && session.cursor === null),
      'sessions idle',
    );
    expect(server.sessions().length).toBeLessThanOrEqual(1);
  });
});
