/**
 * Telling viewers that Materialize is out of reach, against the wire double:
 * subscribe()'s `onConnection` hook, and the `status` items of shared
 * subscriptions (lost at once when the connection closes, after the FETCH
 * bound when the server hangs; live when the resumed SUBSCRIBE delivers; a
 * viewer starting meanwhile hears `lost` first; after lost history: live,
 * reset, snapshot), with exact data afterwards each time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import {
  createSharedSubscriptions,
  isMaterializeError,
  liveEventOf,
  type LiveItem,
  type MaterializeOptions,
  type SharedSubscriptions,
  type SharedSubscriptionsOptions,
  type SubscribeUpdate,
} from '../src/index.js';
import { capturingLogger } from './support/fixtures.js';
import { Handles, uniqueName } from './support/handles.js';
import { collect, eventually, updates } from './support/streams.js';

type Row = { id: number };
type Item = LiveItem<Row>;

const handles = new Handles();
const servers: MaterializeDouble[] = [];
const hubs: SharedSubscriptions[] = [];

afterEach(async () => {
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await handles.closeAll();
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});

async function double(
  initial: readonly Row[] = [],
): Promise<{ server: MaterializeDouble; name: string }> {
  const server = await startMaterializeDouble();
  servers.push(server);
  const name = uniqueName('status');
  server.defineView(name, [{ name: 'id', type: 'int4' }], initial);
  return { server, name };
}

function hub(
  server: MaterializeDouble,
  options: SharedSubscriptionsOptions = {},
  handle: Partial<MaterializeOptions> = {},
): SharedSubscriptions {
  const mz = handles.open({ url: server.url, poolSize: 8, fetchTimeoutMs: 200, ...handle });
  const shared = createSharedSubscriptions(mz, { lingerMs: 50, ...options });
  hubs.push(shared);
  return shared;
}

/** A viewer as a browser applies its stream, keeping the statuses it was told. */
class Applied {
  readonly state = new Map<number, number>();
  readonly statuses: string[] = [];
  #staged: SubscribeUpdate<Row>[] = [];
  frontier: bigint | undefined;
  resets = 0;

  take(item: Item): void {
    if (item.kind === 'status') this.statuses.push(item.upstream);
    else if (item.kind === 'reset') {
      this.state.clear();
      this.#staged = [];
      this.resets += 1;
    } else if (item.kind === 'update') this.#staged.push(item);
    else {
      for (const update of this.#staged) {
        const count = (this.state.get(update.row.id) ?? 0) + update.mzDiff;
        if (count === 0) this.state.delete(update.row.id);
        else this.state.set(update.row.id, count);
      }
      this.#staged = [];
      this.frontier = item.mzTimestamp;
    }
  }

  takeAll(items: readonly Item[]): this {
    for (const item of items) this.take(item);
    return this;
  }

  ids(): number[] {
    return [...this.state.keys()].sort((a, b) => a - b);
  }
}

const isStatus =
  (upstream: 'lost' | 'live') =>
  (item: Item): boolean =>
    item.kind === 'status' && item.upstream === upstream;

const untilFrontier =
  (frontier: bigint) =>
  (items: readonly Item[]): boolean => {
    const last = items.at(-1);
    return last?.kind === 'progress' && last.mzTimestamp >= frontier;
  };

/** Reads until a `live` status and then a progress at or past `frontier`. */
const untilLiveAnd =
  (frontier: bigint) =>
  (items: readonly Item[]): boolean =>
    items.some(isStatus('live')) && untilFrontier(frontier)(items);

describe('subscribe(): onConnection', () => {
  it("is told 'lost' once per outage however many reconnects fail, then 'resumed'; nothing is lost or repeated", async () => {
    const { server, name } = await double([{ id: 1 }]);
    const { logger, lines } = capturingLogger();
    const mz = handles.open({ url: server.url, fetchTimeoutMs: 200, logger });
    const events: string[] = [];
    const iterator = mz.subscribe<Row>(name, {
      snapshot: true,
      progress: true,
      onConnection: (event) => events.push(event),
    });
    const before = await collect(iterator, (items) => items.at(-1)?.kind === 'progress');
    // Pulling (a FETCH waits on the server) when the server goes away.
    const after = collect(iterator, (items) => updates(items).length === 2);
    await server.stop();
    await eventually(() => events.length === 1, "'lost' to be told");
    await eventually(
      () => lines().filter((line) => line.msg === 'materialize: reconnect failed').length >= 2,
      'two refused reconnects',
    );
    expect(events).toEqual(['lost']);
    server.insert(name, [{ id: 2 }]);
    await server.restart();
    server.insert(name, [{ id: 3 }]);
    const ids = updates([...before, ...(await after)]).map((item) => item.row.id);
    expect(ids).toEqual([1, 2, 3]);
    expect(events).toEqual(['lost', 'resumed']);
    await iterator.return?.();
  });

  it('is not called when the first connection fails, and a throw in it is logged and ignored', async () => {
    const { server, name } = await double();
    const { logger, text } = capturingLogger();
    const mz = handles.open({ url: server.url, fetchTimeoutMs: 200, logger });
    const iterator = mz.subscribe<Row>(name, {
      progress: true,
      onConnection: () => {
        throw new Error('a listener bug');
      },
    });
    await collect(iterator, (items) => items.length > 0);
    const pending = collect(iterator, (items) => updates(items).length === 1);
    server.dropConnections();
    server.insert(name, [{ id: 7 }]);
    expect(updates(await pending).map((item) => item.row.id)).toEqual([7]);
    expect(text()).toContain('onConnection threw (ignored)');
    await iterator.return?.();

    await server.stop();
    const told: string[] = [];
    const refused = mz.subscribe<Row>(name, { onConnection: (event) => told.push(event) });
    await expect(refused.next()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(told).toEqual([]);
  });

  it('refuses an onConnection that is not a function before anything is sent', async () => {
    const { server, name } = await double();
    const mz = handles.open({ url: server.url });
    let error: unknown;
    try {
      mz.subscribe(name, { onConnection: 'yes' as never });
    } catch (thrown) {
      error = thrown;
    }
    expect(isMaterializeError(error, 'INVALID_ARGUMENT')).toBe(true);
  });
});

describe('shared subscriptions: status items', () => {
  it('tells every viewer lost as soon as the connection closes, a viewer joining meanwhile lost first, then live once the resumed SUBSCRIBE delivers; the data stays exact', async () => {
    const { server, name } = await double([{ id: 1 }]);
    const shared = hub(server);
    const viewers = [1, 2, 3].map(() => shared.watch<Row>(name));
    const applied = viewers.map(() => new Applied());
    await Promise.all(
      viewers.map(async (viewer, index) =>
        applied[index]?.takeAll(await collect(viewer, untilFrontier(0n))),
      ),
    );
    // Every viewer is waiting on next() when the double goes away (it stops listening too).
    const heard = viewers.map((viewer) => collect(viewer, (items) => items.some(isStatus('lost'))));
    await server.stop();
    const lost = await Promise.all(heard);
    lost.forEach((items, index) => applied[index]?.takeAll(items));
    for (const items of lost) expect(items).toEqual([{ kind: 'status', upstream: 'lost' }]);
    // One object for every viewer: its event is made once.
    const status = lost[0]?.[0] as Item;
    for (const items of lost) expect(items[0]).toBe(status);
    expect(liveEventOf(status)).toEqual({ event: 'status', data: '{"upstream":"lost"}' });

    // A viewer that starts now hears `lost` first, then the rows it can have.
    const late = shared.watch<Row>(name);
    const lateApplied = new Applied();
    const lateItems = await collect(late, untilFrontier(0n));
    expect(lateItems[0]).toBe(status);
    lateApplied.takeAll(lateItems);
    expect(lateApplied.ids()).toEqual([1]);

    server.insert(name, [{ id: 2 }]);
    server.remove(name, [{ id: 1 }]);
    await server.restart();
    const last = server.insert(name, [{ id: 3 }]);
    for (const [index, viewer] of [...viewers, late].entries()) {
      const target = index < 3 ? (applied[index] as Applied) : lateApplied;
      const items = await collect(viewer, untilLiveAnd(last + 1n));
      target.takeAll(items);
      // `live` before any change of the resumed SUBSCRIBE.
      const liveAt = items.findIndex(isStatus('live'));
      expect(items.slice(0, liveAt).some((item) => item.kind !== 'status')).toBe(false);
      expect(target.statuses).toEqual(['lost', 'live']);
      expect(target.ids()).toEqual([2, 3]);
      expect(target.resets).toBe(0);
    }
  });

  it('tells viewers lost when the server hangs, within the FETCH bound (fetchTimeoutMs + connectTimeoutMs), and live once it answers again', async () => {
    const { server, name } = await double([{ id: 1 }]);
    const shared = hub(server, {}, { fetchTimeoutMs: 200, connectTimeoutMs: 800 });
    const viewer = shared.watch<Row>(name);
    const applied = new Applied().takeAll(await collect(viewer, untilFrontier(0n)));
    server.stall(true);
    // Generous bound (a liveness check, not a speed claim): 200 + 800 ms is the client's own.
    applied.takeAll(await collect(viewer, (items) => items.some(isStatus('lost')), 5_000));
    server.stall(false);
    const last = server.insert(name, [{ id: 2 }]);
    applied.takeAll(await collect(viewer, untilLiveAnd(last + 1n)));
    expect(applied.statuses).toEqual(['lost', 'live']);
    expect(applied.ids()).toEqual([1, 2]);
  });

  it('after a loss whose history is gone, viewers hear lost, then live, reset and the new snapshot', async () => {
    const { server, name } = await double([{ id: 1 }]);
    const { logger, text } = capturingLogger();
    const shared = hub(server, { logger });
    const viewers = [shared.watch<Row>(name), shared.watch<Row>(name)];
    const applied = viewers.map(() => new Applied());
    await Promise.all(
      viewers.map(async (viewer, index) =>
        applied[index]?.takeAll(await collect(viewer, untilFrontier(0n))),
      ),
    );
    // Viewers reading (as an event stream does) while it happens: each change reaches them.
    const written: { last?: bigint } = {};
    const reading = viewers.map((viewer) =>
      collect(
        viewer,
        (seen) =>
          written.last !== undefined &&
          seen.some((item) => item.kind === 'reset') &&
          untilFrontier(written.last + 1n)(seen),
      ),
    );
    await server.stop();
    server.insert(name, [{ id: 2 }]);
    const last = server.remove(name, [{ id: 1 }]);
    written.last = last;
    server.compact(name, last); // the feed's resume point is gone
    await server.restart();
    for (const [index, items] of (await Promise.all(reading)).entries()) {
      const target = applied[index] as Applied;
      target.takeAll(items);
      const order = items
        .filter((item) => item.kind === 'status' || item.kind === 'reset')
        .map((item) => (item.kind === 'status' ? item.upstream : item.kind));
      expect(order).toEqual(['lost', 'live', 'reset']);
      expect(target.ids()).toEqual([2]);
    }
    expect(text()).toContain('lost its history');
  });

  it('tells a viewer catching up when its own catch-up SUBSCRIBE is lost, and nobody else', async () => {
    const { server, name } = await double([{ id: 1 }]);
    // Two rows a FETCH: the catch-up needs FETCHes after its session ended.
    const shared = hub(server, { windowSize: 2 }, { fetchBatchSize: 2 });
    const keeper = shared.watch<Row>(name);
    const kept = new Applied().takeAll(await collect(keeper, untilFrontier(0n)));
    const resumeFrom = kept.frontier as bigint;
    const resumed = new Applied();
    for (const [id, count] of kept.state) resumed.state.set(id, count);
    let last = 0n;
    for (let id = 2; id < 10; id += 1) {
      last = server.insert(name, [{ id }]);
      kept.takeAll(await collect(keeper, untilFrontier(last + 1n)));
    }
    // New sessions (the catch-up's, not the feed's) are ended when left idle in their transaction.
    server.setLimits({ idleInTransactionTimeoutMs: 50 });
    const viewer = shared.watch<Row>(name, { resumeFrom });
    resumed.takeAll(await collect(viewer, (items) => items.length >= 2));
    expect(shared.stats.catchUps).toBe(1);
    // The viewer stops reading: the catch-up holds fetched rows, its session sits idle and ends.
    await eventually(
      () => server.sessions().filter((session) => session.cursor !== null).length === 1,
      'the catch-up session to time out',
    );
    server.setLimits({ idleInTransactionTimeoutMs: 120_000 });
    resumed.takeAll(await collect(viewer, untilLiveAnd(last + 1n)));
    expect(resumed.statuses).toEqual(['lost', 'live']);
    expect(resumed.ids()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const next = server.insert(name, [{ id: 10 }]);
    kept.takeAll(await collect(keeper, untilFrontier(next + 1n)));
    expect(kept.statuses).toEqual([]);
  });
});
