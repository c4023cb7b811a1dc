/**
 * Exactly-once across lost connections, against the wire double: a model
 * check (fast-check scripts of commits, idle ticks, dropped connections and
 * server restarts: what is consumed equals what was committed, in order, no
 * gap, no duplicate), the snapshot case, history that is gone, giving up.
 */
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '@flowforge/observability';
import { isMaterializeError, type SubscribeProgress, type SubscribeUpdate } from '../src/index.js';
import { capturingLogger } from './support/fixtures.js';
import { Handles, uniqueName } from './support/handles.js';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import { collect, eventually, rejectionOf, updates } from './support/streams.js';

let server: MaterializeDouble;
const handles = new Handles();

beforeAll(async () => {
  server = await startMaterializeDouble();
});
afterEach(async () => {
  await handles.closeAll();
  server.stall(false);
});
afterAll(async () => {
  await server.stop();
});

type Row = { id: number; v: string };
type Item = SubscribeUpdate<Row> | SubscribeProgress;

function view(initial: readonly Row[] = []): string {
  const name = uniqueName('r');
  server.defineView(
    name,
    [
      { name: 'id', type: 'int4' },
      { name: 'v', type: 'text' },
    ],
    initial,
  );
  return name;
}

const key = (time: bigint, row: Row, diff: number): string => `${time}|${row.id}|${row.v}|${diff}`;

/** A consumer that pulls in the background, pausable, keeping everything it got. */
function consume(iterator: AsyncIterator<Item>): {
  readonly items: Item[];
  pause(): void;
  resume(): void;
  readonly ended: Promise<unknown>;
} {
  const items: Item[] = [];
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  const ended = (async () => {
    for (;;) {
      if (gate) await gate;
      const result = await iterator.next();
      if (result.done === true) return undefined;
      items.push(result.value);
    }
  })().catch((error: unknown) => error);
  return {
    items,
    pause() {
      gate ??= new Promise<void>((resolve) => {
        open = resolve;
      });
    },
    resume() {
      gate = undefined;
      open?.();
    },
    ended,
  };
}

type Step =
  | { readonly kind: 'commit'; readonly inserts: number; readonly deletes: number }
  | { readonly kind: 'tick' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'restart' }
  | { readonly kind: 'pause' }
  | { readonly kind: 'resume' }
  | { readonly kind: 'settle' };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('commit' as const),
      inserts: fc.nat(3),
      deletes: fc.nat(2),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'tick' as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'drop' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'pause' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'resume' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'settle' as const }) },
);

describe('resumption', () => {
  it('model check: the consumed (time, row, diff) are exactly the committed ones, in order, whatever is lost', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 3, maxLength: 25 }),
        fc.boolean(),
        async (steps, snapshot) => {
          run += 1;
          const seed: Row[] = [{ id: 0, v: 'seed' }];
          const name = view(seed);
          const metrics = createMetrics({ defaultMetrics: false });
          const mz = handles.open({
            url: server.url,
            metrics,
            name: `model${run}`,
            fetchBatchSize: 3,
          });
          const iterator = mz.subscribe<Row>(name, { progress: true, snapshot });
          const consumer = consume(iterator);
          // The subscription is running once its first progress item is in.
          await eventually(() => consumer.items.length > 0, 'the first progress item');
          const start = (consumer.items[0] as Item).mzTimestamp;

          const expected: string[] = snapshot ? seed.map((row) => key(start, row, 1)) : [];
          const live: Row[] = [...seed];
          let nextId = 1;
          for (const current of steps) {
            switch (current.kind) {
              case 'commit': {
                const diffs = [
                  ...Array.from({ length: current.inserts }, () => {
                    const row = { id: nextId, v: `v${nextId}` };
                    nextId += 1;
                    return { row, diff: 1 };
                  }),
                  ...live.splice(0, current.deletes).map((row) => ({ row, diff: -1 })),
                ];
                for (const { row, diff } of diffs) if (diff > 0) live.push(row);
                if (diffs.length === 0) break;
                const time = server.commit(name, diffs);
                for (const { row, diff } of diffs) expected.push(key(time, row, diff));
                break;
              }
              case 'tick':
                server.advance();
                break;
              case 'drop':
                server.dropConnections();
                break;
              case 'restart':
                await server.stop();
                await new Promise((resolve) => setTimeout(resolve, 5));
                await server.restart();
                break;
              case 'pause':
                consumer.pause();
                break;
              case 'resume':
                consumer.resume();
                break;
              case 'settle':
                await new Promise((resolve) => setTimeout(resolve, 2));
                break;
            }
          }
          consumer.resume();
          const upper = server.advance();
          await eventually(
            () =>
              consumer.items.some((item) => item.kind === 'progress' && item.mzTimestamp >= upper),
            'the consumer to reach the last frontier',
          );
          const got = updates(consumer.items).map((item) =>
            key(item.mzTimestamp, item.row, item.mzDiff),
          );
          // Same multiset per timestamp, timestamps in order: sort within each time only.
          const byTime = (keys: string[]): string[] => {
            const times = keys.map((entry) => BigInt(entry.split('|')[0] as string));
            for (let index = 1; index < times.length; index += 1) {
              expect(times[index] as bigint).toBeGreaterThanOrEqual(times[index - 1] as bigint);
            }
            return [...keys].sort();
          };
          expect(byTime(got)).toEqual(byTime(expected));
          // Progress items never go back.
          const marks = consumer.items
            .filter((item) => item.kind === 'progress')
            .map((item) => item.mzTimestamp);
          for (let index = 1; index < marks.length; index += 1) {
            expect(marks[index] as bigint).toBeGreaterThan(marks[index - 1] as bigint);
          }
          await iterator.return?.();
          await consumer.ended;
          await mz.close();
        },
      ),
      { numRuns: 25 },
    );
  });

  it('a restart of the server while streaming: logs once per loss, counts reconnects, loses nothing', async () => {
    const name = view();
    const metrics = createMetrics({ defaultMetrics: false });
    const { logger, lines } = capturingLogger();
    const mz = handles.open({ url: server.url, metrics, logger, name: 'restart' });
    const iterator = mz.subscribe<Row>(name, { progress: true });
    await iterator.next();
    server.insert(name, [{ id: 1, v: 'a' }]);
    const before = await collect(iterator, (items) => updates(items).length === 1);
    const pending = collect(iterator, (items) => updates(items).length === 2);
    await server.stop();
    server.insert(name, [{ id: 2, v: 'b' }]);
    // Several failed attempts while the server is down.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await server.restart();
    server.insert(name, [{ id: 3, v: 'c' }]);
    const after = await pending;
    expect([...updates(before), ...updates(after)].map((item) => item.row.v)).toEqual([
      'a',
      'b',
      'c',
    ]);
    const warnings = lines().filter((line) => line.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toBe('materialize: subscription lost its connection; resuming');
    expect(lines().filter((line) => line.msg === 'materialize: subscription resumed')).toHaveLength(
      1,
    );
    const text = await metrics.render();
    const reconnects = Number(
      /flowforge_materialize_reconnects_total\{client="restart"\} (\d+)/.exec(text)?.[1],
    );
    expect(reconnects).toBeGreaterThanOrEqual(1);
    await iterator.return?.();
  });

  it('a loss during the snapshot re-snapshots AS OF the same time: the snapshot arrives once', async () => {
    const rows = Array.from({ length: 10 }, (_unused, index) => ({ id: index, v: `s${index}` }));
    const name = view(rows);
    const mz = handles.open({ url: server.url, fetchBatchSize: 4 });
    const iterator = mz.subscribe<Row>(name, { snapshot: true, progress: true });
    // The first FETCH reads part of the snapshot, which stays buffered (its time is
    // not closed yet); the connection dies as the second FETCH arrives.
    let fetches = 0;
    server.onStatement((statement) => {
      if (!statement.startsWith('FETCH') || ++fetches !== 2) return;
      server.stall(true);
      setImmediate(() => {
        server.dropConnections();
        server.stall(false);
        server.onStatement(null);
        server.insert(name, [{ id: 100, v: 'later' }]);
      });
    });
    const start = server.upper - 1n;
    const items = await collect(iterator, (seen) => updates(seen).length === 11);
    expect(fetches).toBe(2);
    const snapshot = updates(items).filter((item) => item.mzTimestamp === start);
    expect(snapshot.map((item) => item.row.id).sort((a, b) => a - b)).toEqual(
      rows.map((row) => row.id),
    );
    expect(updates(items).at(-1)?.row.v).toBe('later');
    const declares = server
      .statementLog()
      .filter((statement) => statement.includes(`FROM "${name}"`));
    expect(declares.at(-1)).toMatch(
      new RegExp(`WITH \\(SNAPSHOT = true, PROGRESS\\) AS OF ${start}$`),
    );
    await iterator.return?.();
  });

  it('with a snapshot, the first progress item follows it: resuming from any checkpoint loses nothing', async () => {
    const name = view([
      { id: 1, v: 'a' },
      { id: 2, v: 'b' },
    ]);
    server.advance();
    const mz = handles.open({ url: server.url });
    // A consumer (the SSE route) keeps each progress item as its checkpoint and goes away right after the first.
    const first = mz.subscribe<Row>(name, { snapshot: true, progress: true });
    const before = await collect(first, (seen) => seen.some((item) => item.kind === 'progress'));
    await first.return?.();
    const checkpoint = before.at(-1)!.mzTimestamp;
    const resumed = mz.subscribe<Row>(name, { resumeFrom: checkpoint, progress: true });
    const written = server.insert(name, [{ id: 3, v: 'c' }]);
    const after = await collect(resumed, (seen) =>
      seen.some((item) => item.kind === 'progress' && item.mzTimestamp > written),
    );
    await resumed.return?.();
    expect(updates([...before, ...after]).map((update) => update.row.v)).toEqual(['a', 'b', 'c']);
  });

  it.each([false, true])(
    'without a snapshot, a loss right after the start adds nothing from before it (lost: %s)',
    async (lost) => {
      const name = view();
      // Committed just before subscribing: the server picks it as the AS OF (the latest closed time).
      const before = server.insert(name, [{ id: 1, v: 'before-subscribe' }]);
      // One row per FETCH: the AS OF progress row arrives alone, as it can from real Materialize.
      const mz = handles.open({ url: server.url, fetchBatchSize: 1 });
      const iterator = mz.subscribe<Row>(name, { progress: true });
      // Nothing at the AS OF will come: everything up to it is done.
      expect((await iterator.next()).value).toEqual({ kind: 'progress', mzTimestamp: before + 1n });
      if (lost) server.dropConnections();
      const written = server.insert(name, [{ id: 2, v: 'after-subscribe' }]);
      const items = await collect(iterator, (seen) =>
        seen.some((item) => item.kind === 'progress' && item.mzTimestamp > written),
      );
      await iterator.return?.();
      expect(updates(items).map((item) => item.row.v)).toEqual(['after-subscribe']);
    },
  );

  it('history compacted past the frontier: HISTORY_UNAVAILABLE, never a gap', async () => {
    const name = view();
    const mz = handles.open({ url: server.url });
    const iterator = mz.subscribe<Row>(name, { progress: true });
    await iterator.next();
    server.insert(name, [{ id: 1, v: 'a' }]);
    await collect(iterator, (items) => updates(items).length === 1);
    const pending = collect(iterator, () => false);
    server.insert(name, [{ id: 2, v: 'missed' }]);
    server.compact(name, server.upper);
    server.dropConnections();
    const error = await rejectionOf(pending);
    expect(isMaterializeError(error, 'HISTORY_UNAVAILABLE')).toBe(true);
    // The current server's answer: 22000 at the first FETCH (decision 015).
    expect((error as { sqlstate?: string }).sqlstate).toBe('22000');
  });

  it('resume: false, or reconnect.maxAttempts exhausted: CONNECTION_LOST', async () => {
    const name = view();
    const down = await startMaterializeDouble();
    down.defineView(name, [{ name: 'id', type: 'int4' }]);
    const mz = handles.open({
      url: down.url,
      reconnect: { initialDelayMs: 5, maxDelayMs: 10, maxAttempts: 3 },
    });
    const iterator = mz.subscribe(name, { progress: true });
    await iterator.next();
    const pending = iterator.next();
    await down.stop();
    const error = await rejectionOf(pending);
    expect(isMaterializeError(error, 'CONNECTION_LOST')).toBe(true);
    expect((error as Error).message).toMatch(/gave up after 3 reconnect attempts/);
    expect((error as { retryable: boolean }).retryable).toBe(true);
  });

  it('a hung server (stalled FETCH) is taken as lost after fetchTimeoutMs + connectTimeoutMs and resumed', async () => {
    const name = view();
    const mz = handles.open({ url: server.url, fetchTimeoutMs: 100, connectTimeoutMs: 150 });
    const iterator = mz.subscribe<Row>(name, { progress: true });
    await iterator.next();
    const pending = collect(iterator, (items) => updates(items).length === 1);
    await eventually(() => server.sessions().some((session) => session.fetching), 'a FETCH');
    server.stall(true);
    await new Promise((resolve) => setTimeout(resolve, 400));
    server.stall(false);
    server.insert(name, [{ id: 1, v: 'after the hang' }]);
    expect(updates(await pending)[0]?.row.v).toBe('after the hang');
    await iterator.return?.();
  });
});
