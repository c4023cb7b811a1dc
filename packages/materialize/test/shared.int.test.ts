/**
 * Shared subscriptions against the wire double: one SUBSCRIBE per distinct
 * (view, filter, columns), snapshots from the shared state, exact resume from
 * the window or a catch-up, reset when the history is gone, slow viewers cut
 * off, linger, caps, and a model check of exactly-once across random
 * disconnects and slow viewers.
 */
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import {
  createSharedSubscriptions,
  isMaterializeError,
  type LiveItem,
  type Materialize,
  type SharedSubscriptions,
  type SharedSubscriptionsOptions,
} from '../src/index.js';
import { Handles, uniqueName } from './support/handles.js';
import { collect, eventually, rejectionOf } from './support/streams.js';

let server: MaterializeDouble;
const handles = new Handles();
const hubs: SharedSubscriptions[] = [];

beforeAll(async () => {
  server = await startMaterializeDouble();
});
afterEach(async () => {
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await handles.closeAll();
});
afterAll(async () => {
  await server.stop();
});

type Row = { tenant: string; id: number; v: string };
type Item = LiveItem<Row>;

function view(initial: readonly Row[] = []): string {
  const name = uniqueName('shared');
  server.defineView(
    name,
    [
      { name: 'tenant', type: 'text' },
      { name: 'id', type: 'int4' },
      { name: 'v', type: 'text' },
    ],
    initial,
  );
  return name;
}

function hub(
  options: SharedSubscriptionsOptions = {},
  poolSize = 8,
): {
  mz: Materialize;
  shared: SharedSubscriptions;
} {
  const mz = handles.open({ url: server.url, poolSize, fetchTimeoutMs: 200 });
  const shared = createSharedSubscriptions(mz, { lingerMs: 50, ...options });
  hubs.push(shared);
  return { mz, shared };
}

/** SUBSCRIBEs the double holds now (sessions with a declared cursor). */
function subscribesHeld(): number {
  return server.sessions().filter((session) => session.cursor !== null).length;
}

function declares(): number {
  return server.statementLog().filter((statement) => /^DECLARE/i.test(statement)).length;
}

/**
 * A viewer as a browser applies a stream: updates are staged and applied when
 * the progress item after them arrives; a reset drops everything.
 */
class Applied {
  readonly state = new Map<string, number>();
  #staged: Item[] = [];
  frontier: bigint | undefined;
  resets = 0;
  /** What status items said last; each must change it (never the same state twice, never a stale one). */
  upstream: 'lost' | 'live' = 'live';
  /** `lost` items taken. */
  losses = 0;

  take(item: Item): void {
    if (item.kind === 'status') {
      if (item.upstream === this.upstream) throw new Error(`told ${item.upstream} twice in a row`);
      this.upstream = item.upstream;
      if (item.upstream === 'lost') this.losses += 1;
      return;
    }
    if (item.kind === 'reset') {
      this.state.clear();
      this.#staged = [];
      this.resets += 1;
      return;
    }
    if (item.kind === 'update') {
      this.#staged.push(item);
      return;
    }
    for (const update of this.#staged) {
      if (update.kind !== 'update') continue;
      const key = `${update.row.tenant}/${update.row.id}/${update.row.v}`;
      const count = (this.state.get(key) ?? 0) + update.mzDiff;
      if (count === 0) this.state.delete(key);
      else this.state.set(key, count);
    }
    this.#staged = [];
    this.frontier = item.mzTimestamp;
  }

  rows(): string[] {
    return [...this.state].flatMap(([key, count]) => Array<string>(count).fill(key)).sort();
  }
}

function keysOf(rows: readonly Row[]): string[] {
  return rows.map((row) => `${row.tenant}/${row.id}/${row.v}`).sort();
}

const untilFrontier =
  (frontier: bigint) =>
  (items: readonly Item[]): boolean => {
    const last = items.at(-1);
    return last?.kind === 'progress' && last.mzTimestamp >= frontier;
  };

/**
 * A viewer reads the snapshot and remembers its frontier; then `commits` rows
 * (ids 2, 3, …) are committed while a keeper viewer keeps up, so a small window
 * no longer reaches that frontier. Returns it and the last commit's timestamp.
 */
async function pastTheWindow(
  shared: SharedSubscriptions,
  name: string,
  commits: number,
): Promise<{ old: bigint; last: bigint }> {
  const keeper = shared.watch<Row>(name, { filter: { tenant: 'a' } });
  const applied = new Applied();
  for (const item of await collect(keeper, untilFrontier(0n))) applied.take(item);
  let last = 0n;
  for (let id = 2; id < 2 + commits; id += 1) {
    last = server.insert(name, [{ tenant: 'a', id, v: 'y' }]);
    await collect(keeper, untilFrontier(last + 1n)); // a keeper that keeps up with the window
  }
  return { old: applied.frontier as bigint, last };
}

describe('createSharedSubscriptions', () => {
  it('serves every viewer of one view and filter from one SUBSCRIBE, each with the snapshot and the changes', async () => {
    const name = view([
      { tenant: 'a', id: 1, v: 'x' },
      { tenant: 'b', id: 2, v: 'y' },
    ]);
    const { shared } = hub();
    const before = declares();
    const viewers = Array.from({ length: 20 }, () =>
      shared.watch<Row>(name, { filter: { tenant: 'a' }, tenantId: 'a' }),
    );
    const applied = viewers.map(() => new Applied());
    await Promise.all(
      viewers.map(async (viewer, index) => {
        for (const item of await collect(viewer, untilFrontier(0n))) applied[index]?.take(item);
      }),
    );
    expect(declares() - before).toBe(1);
    expect(subscribesHeld()).toBe(1);
    expect(shared.stats).toMatchObject({ subscriptions: 1, viewers: 20, catchUps: 0 });
    const written = server.insert(name, [
      { tenant: 'a', id: 3, v: 'z' },
      { tenant: 'b', id: 4, v: 'w' },
    ]);
    await Promise.all(
      viewers.map(async (viewer, index) => {
        for (const item of await collect(viewer, untilFrontier(written + 1n)))
          applied[index]?.take(item);
      }),
    );
    for (const viewer of applied) {
      expect(viewer.rows()).toEqual(['a/1/x', 'a/3/z']);
    }
    // Every viewer got the same update object: encoded once by a WeakMap cache.
    expect(new Set(applied.map((viewer) => viewer.frontier)).size).toBe(1);
  });

  it('gives the same item object to every live viewer', async () => {
    const name = view();
    const { shared } = hub();
    const one = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    const two = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    await Promise.all([collect(one, untilFrontier(0n)), collect(two, untilFrontier(0n))]);
    const written = server.insert(name, [{ tenant: 'a', id: 1, v: 'x' }]);
    const [first, second] = await Promise.all([
      collect(one, untilFrontier(written + 1n)),
      collect(two, untilFrontier(written + 1n)),
    ]);
    const update = first.find((item) => item.kind === 'update');
    expect(update).toBeDefined();
    expect(second).toContain(update);
  });

  it('holds one SUBSCRIBE per distinct filter', async () => {
    const name = view([{ tenant: 'a', id: 1, v: 'x' }]);
    const { shared } = hub();
    const a = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    const b = shared.watch<Row>(name, { filter: { tenant: 'b' } });
    const a2 = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    await Promise.all([a, b, a2].map((viewer) => collect(viewer, untilFrontier(0n))));
    expect(shared.stats.subscriptions).toBe(2);
    expect(subscribesHeld()).toBe(2);
  });

  it('resumes a viewer from a position inside the window without a SUBSCRIBE of its own', async () => {
    const name = view([{ tenant: 'a', id: 1, v: 'x' }]);
    const { shared } = hub();
    const keeper = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    const first = new Applied();
    const viewer = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    for (const item of await collect(viewer, untilFrontier(0n))) first.take(item);
    await collect(keeper, untilFrontier(0n));
    await viewer.return?.();
    const resumeFrom = first.frontier as bigint;
    const t1 = server.insert(name, [{ tenant: 'a', id: 2, v: 'y' }]);
    server.remove(name, [{ tenant: 'a', id: 1, v: 'x' }]);
    const t3 = server.insert(name, [{ tenant: 'a', id: 3, v: 'z' }]);
    await collect(keeper, untilFrontier(t3 + 1n));
    const before = declares();
    const again = shared.watch<Row>(name, { filter: { tenant: 'a' }, resumeFrom });
    const items = await collect(again, untilFrontier(t3 + 1n));
    expect(items[0]).toEqual({ kind: 'progress', mzTimestamp: resumeFrom });
    for (const item of items) first.take(item);
    expect(first.rows()).toEqual(['a/2/y', 'a/3/z']);
    expect(
      items
        .filter((item) => item.kind === 'update')
        .map((item) => item.kind === 'update' && item.mzTimestamp),
    ).toEqual([t1, t1 + 1n, t3]);
    expect(declares()).toBe(before);
  });

  it('catches a viewer up on a SUBSCRIBE AS OF its position when the window no longer reaches it, then joins the shared one', async () => {
    const name = view([{ tenant: 'a', id: 1, v: 'x' }]);
    const { shared } = hub({ windowSize: 4 });
    const keeper = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    const applied = new Applied();
    for (const item of await collect(keeper, untilFrontier(0n))) applied.take(item);
    const resumeFrom = applied.frontier as bigint;
    let last = 0n;
    for (let id = 2; id < 12; id += 1) {
      last = server.insert(name, [{ tenant: 'a', id, v: 'y' }]);
      await collect(keeper, untilFrontier(last + 1n)); // a keeper that keeps up with the window
    }
    const statements = server.statementLog().length;
    const resumed = new Applied();
    for (const [key, count] of applied.state) resumed.state.set(key, count);
    const viewer = shared.watch<Row>(name, { filter: { tenant: 'a' }, resumeFrom });
    for (const item of await collect(viewer, untilFrontier(last + 1n))) resumed.take(item);
    const catchUp = server
      .statementLog()
      .slice(statements)
      .find((statement) => /^DECLARE/i.test(statement));
    expect(catchUp).toMatch(new RegExp(`AS OF ${resumeFrom - 1n}`));
    expect(resumed.rows()).toEqual(
      keysOf([
        { tenant: 'a', id: 1, v: 'x' },
        ...Array.from({ length: 10 }, (_, index) => ({ tenant: 'a', id: index + 2, v: 'y' })),
      ]),
    );
    await eventually(() => shared.stats.catchUps === 0, 'the catch-up ended');
    // Joined the shared SUBSCRIBE: later changes reach it with no catch-up running.
    const next = server.insert(name, [{ tenant: 'a', id: 99, v: 'n' }]);
    for (const item of await collect(viewer, untilFrontier(next + 1n))) resumed.take(item);
    expect(resumed.rows()).toContain('a/99/n');
    expect(subscribesHeld()).toBe(1);
  });

  it('sends reset and a fresh snapshot when Materialize no longer has the history to resume from', async () => {
    const name = view([{ tenant: 'a', id: 1, v: 'x' }]);
    const { shared } = hub({ windowSize: 2 });
    const { old, last } = await pastTheWindow(shared, name, 4);
    server.compact(name, last);
    const viewer = shared.watch<Row>(name, {
      filter: { tenant: 'a' },
      resumeFrom: old,
    });
    const items = await collect(
      viewer,
      (seen) => seen.some((item) => item.kind === 'reset') && untilFrontier(last + 1n)(seen),
    );
    const applied = new Applied();
    for (const item of items) applied.take(item);
    expect(applied.resets).toBe(1);
    expect(applied.rows()).toEqual(['a/1/x', 'a/2/y', 'a/3/y', 'a/4/y', 'a/5/y']);
  });

  it('sends a progress that closes no update at most every idleProgressMs, and every one that closes updates at once', async () => {
    const name = view();
    const quiet = hub({ idleProgressMs: 60_000 }).shared;
    const every = hub({ idleProgressMs: 0 }).shared;
    const trailing = hub({ idleProgressMs: 50 }).shared;
    const thinned = quiet.watch<Row>(name, { filter: { tenant: 'a' } });
    const all = every.watch<Row>(name, { filter: { tenant: 'a' } });
    const later = trailing.watch<Row>(name, { filter: { tenant: 'a' } });
    await Promise.all([thinned, all, later].map((viewer) => collect(viewer, untilFrontier(0n))));
    let heard = 0;
    let other = 0n;
    for (let id = 1; id <= 5; id += 1) {
      other = server.insert(name, [{ tenant: 'b', id, v: 'other' }]);
      const items = await collect(all, untilFrontier(other + 1n));
      heard += items.filter((item) => item.kind === 'progress').length;
    }
    // A withheld progress still comes, idleProgressMs after the last one, with no further commit.
    await collect(later, untilFrontier(other + 1n));
    const written = server.insert(name, [{ tenant: 'a', id: 9, v: 'mine' }]);
    const few = await collect(thinned, untilFrontier(written + 1n));
    // Five commits of another tenant moved the frontier five times: only the unthinned viewer heard.
    expect(heard).toBe(5);
    expect(few).toEqual([
      { kind: 'update', mzTimestamp: written, mzDiff: 1, row: { tenant: 'a', id: 9, v: 'mine' } },
      { kind: 'progress', mzTimestamp: written + 1n },
    ]);
  });

  it('cuts a viewer that stops reading off with LAGGED, and the others keep their pace', async () => {
    const name = view();
    const { shared } = hub({ windowSize: 5 });
    const slow = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    const fast = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    await Promise.all([collect(slow, untilFrontier(0n)), collect(fast, untilFrontier(0n))]);
    const applied = new Applied();
    for (let id = 1; id <= 10; id += 1) {
      const last = server.insert(name, [{ tenant: 'a', id, v: 'y' }]);
      for (const item of await collect(fast, untilFrontier(last + 1n))) applied.take(item);
    }
    expect(applied.rows()).toHaveLength(10);
    const error = await rejectionOf(slow.next());
    expect(isMaterializeError(error, 'LAGGED')).toBe(true);
    expect((error as { retryable: boolean }).retryable).toBe(true);
    expect(shared.stats.viewers).toBe(1);
  });

  it('keeps a SUBSCRIBE nobody watches for lingerMs, reuses it for a viewer that comes back, then ends it', async () => {
    const name = view([{ tenant: 'a', id: 1, v: 'x' }]);
    const { shared } = hub({ lingerMs: 300 });
    const viewer = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    await collect(viewer, untilFrontier(0n));
    await viewer.return?.();
    const before = declares();
    const again = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    const items = await collect(again, untilFrontier(0n));
    expect(items.some((item) => item.kind === 'update')).toBe(true);
    expect(declares()).toBe(before);
    await again.return?.();
    await eventually(() => shared.stats.subscriptions === 0, 'the linger ended the subscription');
    await eventually(() => subscribesHeld() === 0, 'the SUBSCRIBE was closed');
  });

  it('refuses a tenant past its share (429) and the process past its slots (503); an idle lingering subscription gives its slot up', async () => {
    const name = view();
    const { shared } = hub({ maxSubscriptions: 3, maxSubscriptionsPerTenant: 2, lingerMs: 60_000 });
    const watch = (tenant: string, id: number) =>
      shared.watch<Row>(name, { filter: { tenant: `${tenant}${id}` }, tenantId: tenant });
    const a1 = watch('a', 1);
    const a2 = watch('a', 2);
    await Promise.all([collect(a1, untilFrontier(0n)), collect(a2, untilFrontier(0n))]);
    const tooMany = await rejectionOf(watch('a', 3).next());
    expect(isMaterializeError(tooMany, 'TOO_MANY_SUBSCRIPTIONS')).toBe(true);
    expect((tooMany as { status: number }).status).toBe(429);
    const b1 = watch('b', 1);
    await collect(b1, untilFrontier(0n));
    const full = await rejectionOf(watch('c', 1).next());
    expect(isMaterializeError(full, 'SUBSCRIPTIONS_FULL')).toBe(true);
    expect((full as { status: number }).status).toBe(503);
    await b1.return?.(); // lingering now, watched by nobody
    const c1 = watch('c', 1);
    await collect(c1, untilFrontier(0n));
    expect(shared.stats.subscriptions).toBe(3);
  });

  it('keeps every viewer exact when the shared SUBSCRIBE loses its connection', async () => {
    const name = view();
    const { shared } = hub();
    const viewers = [1, 2, 3].map(() => shared.watch<Row>(name, { filter: { tenant: 'a' } }));
    const applied = viewers.map(() => new Applied());
    await Promise.all(viewers.map((viewer) => collect(viewer, untilFrontier(0n))));
    const rows: Row[] = [];
    let last = 0n;
    for (let id = 1; id <= 6; id += 1) {
      rows.push({ tenant: 'a', id, v: 'y' });
      last = server.insert(name, [rows.at(-1) as Row]);
      if (id % 2 === 0) server.dropConnections();
    }
    await Promise.all(
      viewers.map(async (viewer, index) => {
        for (const item of await collect(viewer, untilFrontier(last + 1n)))
          applied[index]?.take(item);
      }),
    );
    for (const viewer of applied) expect(viewer.rows()).toEqual(keysOf(rows));
  });

  it('ends a viewer with CANCELLED when its signal aborts, and with CLOSED on close()', async () => {
    const name = view();
    const { shared } = hub();
    const controller = new AbortController();
    const cancelled = shared.watch<Row>(name, {
      filter: { tenant: 'a' },
      signal: controller.signal,
    });
    const open = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    await Promise.all([collect(cancelled, untilFrontier(0n)), collect(open, untilFrontier(0n))]);
    const pending = cancelled.next();
    controller.abort(new Error('client left'));
    expect(isMaterializeError(await rejectionOf(pending), 'CANCELLED')).toBe(true);
    const waiting = rejectionOf(open.next());
    await shared.close();
    expect(isMaterializeError(await waiting, 'CLOSED')).toBe(true);
    await eventually(() => subscribesHeld() === 0, 'close() ended the SUBSCRIBE');
  });

  it('sends reset and the snapshot, not a 503, to a viewer it has no slot to catch up', async () => {
    const name = view([{ tenant: 'a', id: 1, v: 'x' }]);
    const { shared } = hub({ windowSize: 2, maxSubscriptions: 1 });
    const { old, last } = await pastTheWindow(shared, name, 4);
    const before = declares();
    const viewer = shared.watch<Row>(name, {
      filter: { tenant: 'a' },
      resumeFrom: old,
    });
    const items = await collect(viewer, untilFrontier(last + 1n));
    const applied = new Applied();
    for (const item of items) applied.take(item);
    expect(items[0]).toEqual({ kind: 'reset' });
    expect(applied.rows()).toEqual(['a/1/x', 'a/2/y', 'a/3/y', 'a/4/y', 'a/5/y']);
    expect(declares()).toBe(before);
  });

  it('counts nothing and subscribes to nothing for a watch ended before it began', async () => {
    const name = view();
    const { shared } = hub();
    const returned = shared.watch<Row>(name, { filter: { tenant: 'a' } });
    await returned.return?.();
    expect(await returned.next()).toEqual({ done: true, value: undefined });
    const controller = new AbortController();
    controller.abort(new Error('the client left first'));
    const aborted = shared.watch<Row>(name, { filter: { tenant: 'a' }, signal: controller.signal });
    expect(isMaterializeError(await rejectionOf(aborted.next()), 'CANCELLED')).toBe(true);
    expect(shared.stats).toEqual({ subscriptions: 0, catchUps: 0, viewers: 0 });
  });

  it('fails every watch at once, and keeps no subscription, when the handle refuses to subscribe', async () => {
    const name = view();
    const { mz, shared } = hub();
    await mz.close();
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const error = await rejectionOf(shared.watch<Row>(name, { filter: { tenant: 'a' } }).next());
      expect(isMaterializeError(error, 'CLOSED')).toBe(true);
    }
    expect(shared.stats).toEqual({ subscriptions: 0, catchUps: 0, viewers: 0 });
  });

  it('refuses bad names and positions before anything is sent', () => {
    const { shared } = hub();
    expect(() => shared.watch('x; DROP', {})).toThrow(/identifier|name/i);
    expect(() => shared.watch('ok', { resumeFrom: 0n })).toThrow(/resumeFrom/);
    expect(() => shared.watch('ok', { filter: { 'a b': 1 } })).toThrow();
  });

  it('answers the first next() with the error of a view that does not exist', async () => {
    const { shared } = hub();
    const error = await rejectionOf(shared.watch(uniqueName('missing'), {}).next());
    expect(isMaterializeError(error, 'UNKNOWN_VIEW')).toBe(true);
    expect(shared.stats.subscriptions).toBe(0);
  });
});

describe('exactly once across random disconnects and slow viewers (model check)', () => {
  type Step =
    | { readonly kind: 'commit'; readonly id: number; readonly remove: boolean }
    | { readonly kind: 'disconnect'; readonly viewer: number }
    | { readonly kind: 'pause'; readonly viewer: number }
    | { readonly kind: 'drop' };

  const step: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('commit' as const),
        id: fc.integer({ min: 1, max: 8 }),
        remove: fc.boolean(),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('disconnect' as const),
        viewer: fc.integer({ min: 0, max: 3 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('pause' as const),
        viewer: fc.integer({ min: 0, max: 3 }),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'drop' as const }) },
  );

  it('every viewer ends with the view’s rows', async () => {
    const seen = { lagged: 0, resumes: 0, losses: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 5, maxLength: 30 }),
        fc.integer({ min: 2, max: 12 }),
        async (steps, windowSize) => {
          const name = view([{ tenant: 'a', id: 0, v: 'seed' }]);
          // Slots for every catch-up: a reset here would be a bug, not a want of slots.
          const { shared } = hub({ windowSize, lingerMs: 20, maxSubscriptions: 10 });
          const model = new Map<number, number>([[0, 1]]);
          const viewers = [0, 1, 2, 3].map(() => ({
            applied: new Applied(),
            iterator: undefined as AsyncIterableIterator<Item> | undefined,
            paused: false,
          }));
          const open = (index: number): void => {
            const viewer = viewers[index] as (typeof viewers)[number];
            if (viewer.applied.frontier !== undefined) seen.resumes += 1;
            // A new watch starts taking its upstream as live (and is told `lost` if it is not).
            viewer.applied.upstream = 'live';
            viewer.iterator = shared.watch<Row>(name, {
              filter: { tenant: 'a' },
              ...(viewer.applied.frontier === undefined
                ? {}
                : { resumeFrom: viewer.applied.frontier }),
            });
          };
          /** Reads what is there (or until `frontier`); a viewer cut off (LAGGED, or another retryable error) reconnects from its frontier. */
          const read = async (index: number, frontier: bigint): Promise<void> => {
            const viewer = viewers[index] as (typeof viewers)[number];
            for (;;) {
              const at = viewer.applied.frontier;
              if (viewer.iterator !== undefined && at !== undefined && at >= frontier) return;
              if (viewer.iterator === undefined) open(index);
              try {
                for (const item of await collect(
                  viewer.iterator as AsyncIterableIterator<Item>,
                  untilFrontier(frontier),
                )) {
                  viewer.applied.take(item);
                }
                return;
              } catch (error) {
                if (isMaterializeError(error, 'LAGGED')) seen.lagged += 1;
                // A SUBSCRIBE whose first connection a drop cut (UNAVAILABLE): the browser retries.
                else if (!(isMaterializeError(error) && error.retryable)) {
                  throw new Error(
                    `viewer ${index} from ${String(viewer.applied.frontier)} to ${frontier}: ${JSON.stringify(shared.stats)}`,
                    { cause: error },
                  );
                }
                viewer.iterator = undefined;
              }
            }
          };
          for (let index = 0; index < viewers.length; index += 1) await read(index, 0n);
          let last = 0n;
          for (const current of steps) {
            if (current.kind === 'commit') {
              const present = (model.get(current.id) ?? 0) > 0;
              const row = { tenant: 'a', id: current.id, v: 'v' };
              if (present && current.remove) {
                last = server.remove(name, [row]);
                model.set(current.id, (model.get(current.id) ?? 0) - 1);
              } else {
                last = server.insert(name, [row]);
                model.set(current.id, (model.get(current.id) ?? 0) + 1);
              }
              for (let index = 0; index < viewers.length; index += 1) {
                if (!(viewers[index]?.paused ?? false) && viewers[index]?.iterator !== undefined)
                  await read(index, last + 1n);
              }
            } else if (current.kind === 'disconnect') {
              const viewer = viewers[current.viewer];
              await viewer?.iterator?.return?.();
              if (viewer !== undefined) viewer.iterator = undefined;
            } else if (current.kind === 'pause') {
              const viewer = viewers[current.viewer];
              if (viewer !== undefined) viewer.paused = !viewer.paused;
            } else {
              server.dropConnections();
            }
          }
          const expected = [...model]
            .flatMap(([id, count]) =>
              Array<string>(count).fill(`a/${id}/${id === 0 ? 'seed' : 'v'}`),
            )
            .sort();
          for (let index = 0; index < viewers.length; index += 1) {
            const viewer = viewers[index] as (typeof viewers)[number];
            viewer.paused = false;
            await read(index, last + 1n);
            expect(viewer.applied.rows()).toEqual(expected);
            expect(viewer.applied.resets).toBe(0); // the history is never compacted here
            seen.losses += viewer.applied.losses;
            await viewer.iterator?.return?.();
          }
          await shared.close();
        },
      ),
      { numRuns: 40 },
    );
    // The runs went through every path: cut off, resumed, caught up.
    expect(seen.lagged).toBeGreaterThan(0);
    // Dropped connections were told (and each status changed what the viewer had been told).
    expect(seen.losses).toBeGreaterThan(0);
    expect(seen.resumes).toBeGreaterThan(0);
  }, 120_000);
});
