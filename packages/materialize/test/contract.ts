/**
 * The contract every Materialize the client talks to must meet: run against
 * the wire double (test/double.contract.int.test.ts) and, when MATERIALIZE_URL
 * is set, against real Materialize (test/real.contract.int.test.ts). Written
 * in terms of what a backend can do on both (define a view, insert, remove),
 * never the double's clock: real Materialize closes a timestamp about every
 * second, so waits are bounded generously and nothing is timed.
 * Why a double: docs/decisions/005-materialize-wire-double.md
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '@flowforge/observability';
import { isMaterializeError, type Materialize, type MaterializeOptions } from '../src/index.js';
import { Handles, uniqueName } from './support/handles.js';
import {
  collect,
  iterationError,
  rejectionOf,
  progresses,
  snapshotComplete,
  updates,
  type Item,
} from './support/streams.js';

export type BackendColumnType = 'text' | 'int4' | 'int8' | 'bool';
export interface BackendColumn {
  readonly name: string;
  readonly type: BackendColumnType;
}
export type BackendRow = Readonly<Record<string, string | number | bigint | boolean>>;

/** A Materialize the contract runs against. */
export interface Backend {
  /** Where the client connects. */
  readonly url: string;
  /** A view with these columns (and rows), queryable by `name`, keeping history. */
  defineView(
    name: string,
    columns: readonly BackendColumn[],
    rows?: readonly BackendRow[],
  ): Promise<void>;
  /** Adds rows (one transaction: one timestamp). */
  insert(view: string, rows: readonly BackendRow[]): Promise<void>;
  /** Removes rows (one transaction). */
  remove(view: string, rows: readonly BackendRow[]): Promise<void>;
  /** Destroys every client connection abruptly (the double only). */
  dropConnections?(): void;
  /**
   * Makes `AS OF` before now unreadable for `view` (the double compacts it; on a real server
   * an `AS OF 1` is long compacted already, so nothing to do).
   */
  forgetHistory(view: string): Promise<void>;
  /**
   * Sets a system parameter (`ALTER SYSTEM SET` on a real server, which needs the mz_system
   * user: MATERIALIZE_SYSTEM_URL), `null` resets it. Absent: the cases that need it are skipped.
   */
  setSystemParameter?(
    name: 'max_connections' | 'subscribe_max_buffered_bytes',
    value: number | null,
  ): Promise<void>;
  close(): Promise<void>;
}

export interface ContractTarget {
  readonly name: string;
  /** Whether `dropConnections` exists: the cases that need it are skipped otherwise. */
  readonly canDropConnections: boolean;
  /** Whether `setSystemParameter` exists: the cases that need it are skipped otherwise. */
  readonly canSetSystemParameters: boolean;
  open(): Promise<Backend>;
}

type TotalsRow = { tenant_id: string; k: string; n: string };

const COLUMNS: readonly BackendColumn[] = [
  { name: 'tenant_id', type: 'text' },
  { name: 'k', type: 'text' },
  { name: 'n', type: 'int8' },
];

/** The updates as `tenant/k/n±diff`, in the order yielded. */
const rowsOf = (items: readonly Item<TotalsRow>[]): string[] =>
  updates(items).map(
    (item) =>
      `${item.row.tenant_id}/${item.row.k}/${item.row.n}${item.mzDiff > 0 ? '+' : ''}${item.mzDiff}`,
  );
/** The same, sorted: the order within one timestamp is Materialize's to choose. */
const sortedRowsOf = (items: readonly Item<TotalsRow>[]): string[] => rowsOf(items).sort();

export function contractSuite(target: ContractTarget): void {
  describe(`contract: ${target.name}`, () => {
    let backend: Backend;
    const handles = new Handles();
    const open = (options: Partial<MaterializeOptions> = {}): Materialize =>
      handles.open({ url: backend.url, ...options });

    beforeAll(async () => {
      backend = await target.open();
    });
    afterEach(async () => {
      await handles.closeAll();
    });
    afterAll(async () => {
      await backend.close();
    });

    async function view(rows: readonly BackendRow[] = []): Promise<string> {
      const name = uniqueName('totals');
      await backend.defineView(name, COLUMNS, rows);
      return name;
    }

    it('health answers up with a latency, and start() makes the handle ready', async () => {
      const mz = open();
      expect(mz.status).toBe('idle');
      await mz.start();
      expect(mz.status).toBe('ready');
      const health = await mz.health();
      expect(health.status).toBe('up');
      expect(health.latencyMs).toBeGreaterThanOrEqual(0);
    });

    it('snapshot: true yields the rows at one timestamp, then the changes', async () => {
      const name = await view([
        { tenant_id: 'a', k: 'x', n: 1 },
        { tenant_id: 'a', k: 'y', n: 2 },
      ]);
      const mz = open();
      const iterator = mz.subscribe<TotalsRow>(name, { snapshot: true, progress: true });
      const snapshot = await collect(iterator, snapshotComplete);
      expect(sortedRowsOf(snapshot)).toEqual(['a/x/1+1', 'a/y/2+1']);
      const times = new Set(updates(snapshot).map((item) => item.mzTimestamp));
      expect(times.size).toBe(1);

      await backend.insert(name, [{ tenant_id: 'a', k: 'z', n: 3 }]);
      const change = await collect(iterator, (items) => updates(items).length === 1);
      expect(rowsOf(change)).toEqual(['a/z/3+1']);
      expect(updates(change)[0]?.mzTimestamp).toBeGreaterThan([...times][0] as bigint);
      await iterator.return?.();
    });

    it('snapshot: false (the default) yields only changes after the start, removals as negative diffs', async () => {
      const name = await view([{ tenant_id: 'a', k: 'old', n: 1 }]);
      const mz = open();
      const iterator = mz.subscribe<TotalsRow>(name, { progress: true });
      // The first progress item: the subscription is running.
      await collect(iterator, (items) => items.length > 0);
      await backend.insert(name, [{ tenant_id: 'a', k: 'new', n: 2 }]);
      await backend.remove(name, [{ tenant_id: 'a', k: 'old', n: 1 }]);
      const items = await collect(iterator, (seen) => updates(seen).length === 2);
      expect(updates(items).map((item) => `${item.row.k}${item.mzDiff}`)).toEqual([
        'new1',
        'old-1',
      ]);
      await iterator.return?.();
    });

    it('progress: true yields increasing progress items, each after every update below it', async () => {
      const name = await view();
      const mz = open();
      const iterator = mz.subscribe<TotalsRow>(name, { progress: true });
      await collect(iterator, (items) => items.length > 0);
      await backend.insert(name, [{ tenant_id: 'a', k: 'x', n: 1 }]);
      await backend.insert(name, [{ tenant_id: 'a', k: 'y', n: 2 }]);
      const items = await collect(
        iterator,
        (seen) => updates(seen).length === 2 && seen.at(-1)?.kind === 'progress',
      );
      const marks = progresses(items);
      expect([...marks].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(marks);
      expect(new Set(marks).size).toBe(marks.length);
      // An update never follows a progress item at or below its time… and is always covered by a later one.
      let frontier = -1n;
      for (const item of items) {
        if (item.kind === 'progress') frontier = item.mzTimestamp;
        else expect(item.mzTimestamp).toBeGreaterThanOrEqual(frontier);
      }
      expect(frontier).toBeGreaterThan(updates(items).at(-1)?.mzTimestamp ?? 0n);
      await iterator.return?.();
    });

    it('asOf: the snapshot as of an earlier time, then every later change', async () => {
      const name = await view();
      const mz = open();
      const watcher = mz.subscribe<TotalsRow>(name, { progress: true });
      await collect(watcher, (items) => items.length > 0);
      await backend.insert(name, [{ tenant_id: 'a', k: 'first', n: 1 }]);
      const first = updates(await collect(watcher, (items) => updates(items).length === 1))[0];
      await backend.insert(name, [{ tenant_id: 'a', k: 'second', n: 2 }]);
      await collect(watcher, (items) => updates(items).length === 1);
      await watcher.return?.();

      const asOf = first?.mzTimestamp as bigint;
      const iterator = mz.subscribe<TotalsRow>(name, { snapshot: true, asOf, progress: true });
      const items = await collect(iterator, (seen) => updates(seen).length === 2);
      expect(updates(items).map((item) => [item.row.k, item.mzTimestamp === asOf])).toEqual([
        ['first', true],
        ['second', false],
      ]);
      await iterator.return?.();
    });

    it('a filter is applied inside Materialize: a tenant sees only its rows', async () => {
      const name = await view([
        { tenant_id: 'tenant-a', k: 'a1', n: 1 },
        { tenant_id: 'tenant-b', k: 'b1', n: 1 },
      ]);
      const mz = open();
      const iterator = mz.subscribe<TotalsRow>(name, {
        snapshot: true,
        progress: true,
        filter: { tenant_id: 'tenant-a' },
      });
      const snapshot = await collect(iterator, snapshotComplete);
      expect(rowsOf(snapshot)).toEqual(['tenant-a/a1/1+1']);
      await backend.insert(name, [{ tenant_id: 'tenant-b', k: 'b2', n: 2 }]);
      await backend.insert(name, [{ tenant_id: 'tenant-a', k: 'a2', n: 2 }]);
      const live = await collect(iterator, (items) => updates(items).length >= 1);
      expect(rowsOf(live)).toEqual(['tenant-a/a2/2+1']);
      // Several columns are ANDed.
      const narrow = mz.subscribe<TotalsRow>(name, {
        snapshot: true,
        progress: true,
        filter: { tenant_id: 'tenant-a', n: 2 },
      });
      expect(rowsOf(await collect(narrow, snapshotComplete))).toEqual(['tenant-a/a2/2+1']);
      await Promise.all([iterator.return?.(), narrow.return?.()]);
    });

    it('hostile filter values are literals: each matches exactly its own row', async () => {
      const hostile = [
        "' OR '1'='1",
        "x'; DROP VIEW v; --",
        "a''b",
        '\\',
        "\\'",
        '"tenant_id"',
        '-- comment',
        '/* c */',
        '$$ x $$',
        'ünïcödé ✓ 🦀',
        ' ',
        '',
      ];
      const name = await view(
        hostile.map((tenant, index) => ({ tenant_id: tenant, k: `k${index}`, n: index })),
      );
      const mz = open();
      for (const [index, tenant] of hostile.entries()) {
        const iterator = mz.subscribe<TotalsRow>(name, {
          snapshot: true,
          progress: true,
          filter: { tenant_id: tenant },
        });
        const items = await collect(iterator, snapshotComplete);
        expect(updates(items).map((item) => item.row)).toEqual([
          { tenant_id: tenant, k: `k${index}`, n: String(index) },
        ]);
        await iterator.return?.();
      }
    });

    it('hostile names and values are refused before anything is sent', async () => {
      const name = await view();
      const mz = open();
      const refused = [
        () => mz.subscribe(`${name}; DROP VIEW ${name}`),
        () => mz.subscribe(`"${name}"`),
        () => mz.subscribe(name, { filter: { 'tenant_id = tenant_id OR 1': 1 } }),
        () => mz.subscribe(name, { filter: { tenant_id: 'a\u0000b' } }),
        () => mz.subscribe(name, { filter: { tenant_id: null as unknown as string } }),
        () => mz.subscribe(name, { columns: ['k', 'n) FROM other --'] }),
        () => mz.subscribe(name, { resumeFrom: 5n, snapshot: true }),
      ];
      for (const attempt of refused) {
        let error: unknown;
        try {
          attempt();
        } catch (caught) {
          error = caught;
        }
        expect(isMaterializeError(error, 'INVALID_ARGUMENT')).toBe(true);
      }
    });

    it('an unknown view is UNKNOWN_VIEW, an unknown column INVALID_ARGUMENT (planning errors are XX000)', async () => {
      const name = await view();
      const mz = open();
      const unknownView = await iterationError(mz.subscribe(uniqueName('missing')));
      expect(isMaterializeError(unknownView, 'UNKNOWN_VIEW')).toBe(true);
      expect((unknownView as { sqlstate?: string }).sqlstate).toBe('XX000');
      const unknownColumn = await iterationError(mz.subscribe(name, { filter: { nope: 1 } }));
      expect(isMaterializeError(unknownColumn, 'INVALID_ARGUMENT')).toBe(true);
      expect((unknownColumn as { sqlstate?: string }).sqlstate).toBe('XX000');
    });

    it('AS OF below the compaction frontier is HISTORY_UNAVAILABLE (22000, or XX000 from older releases)', async () => {
      const name = await view([{ tenant_id: 'a', k: 'x', n: 1 }]);
      await backend.forgetHistory(name);
      const mz = open();
      const error = await iterationError(mz.subscribe(name, { asOf: 1n, snapshot: true }));
      expect(isMaterializeError(error, 'HISTORY_UNAVAILABLE')).toBe(true);
      expect(['22000', 'XX000']).toContain((error as { sqlstate?: string }).sqlstate);
      // A resumption from a point that old: the same, never a gap.
      const resumed = await iterationError(mz.subscribe(name, { resumeFrom: 2n }));
      expect(isMaterializeError(resumed, 'HISTORY_UNAVAILABLE')).toBe(true);
    });

    it('an update reaches the consumer without waiting for fetchTimeoutMs (FETCH n waits for n rows)', async () => {
      const name = await view();
      const mz = open({ fetchTimeoutMs: 60_000 });
      const iterator = mz.subscribe<TotalsRow>(name, { progress: true });
      await collect(iterator, (items) => items.length > 0);
      await backend.insert(name, [{ tenant_id: 'a', k: 'soon', n: 1 }]);
      // collect's bound (10 s) is far below the minute a batch FETCH would wait.
      const items = await collect(iterator, (seen) => updates(seen).length === 1);
      expect(rowsOf(items)).toEqual(['a/soon/1+1']);
      await iterator.return?.();
    });

    it('a consumer slower than idle_in_transaction_session_timeout resumes exactly where it stopped', async () => {
      const name = await view();
      const url = new URL(backend.url);
      url.searchParams.set('options', '-c idle_in_transaction_session_timeout=300ms');
      const mz = open({ url: url.toString() });
      const iterator = mz.subscribe<TotalsRow>(name, { progress: true });
      await collect(iterator, (items) => items.length > 0);
      await backend.insert(name, [{ tenant_id: 'a', k: 'before', n: 1 }]);
      const before = await collect(iterator, (items) => updates(items).length === 1);
      // Not pulling for longer than the timeout: the server ends the session meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await backend.insert(name, [{ tenant_id: 'a', k: 'after', n: 2 }]);
      const after = await collect(iterator, (items) => updates(items).length === 1);
      expect([...rowsOf(before), ...rowsOf(after)]).toEqual(['a/before/1+1', 'a/after/2+1']);
      await iterator.return?.();
    });

    // Needs ALTER SYSTEM SET (mz_system, MATERIALIZE_SYSTEM_URL) against a real server; the
    // double always runs it. Skipped, and shown as skipped, when that URL is not given.
    it.skipIf(!target.canSetSystemParameters)(
      'a consumer far behind (subscribe_max_buffered_bytes) is resubscribed: every update once',
      async () => {
        const name = await view();
        await backend.setSystemParameter?.('subscribe_max_buffered_bytes', 4096);
        try {
          const mz = open({ fetchBatchSize: 4 });
          const iterator = mz.subscribe<TotalsRow>(name, { progress: true });
          await collect(iterator, (items) => items.length > 0);
          await backend.insert(name, [{ tenant_id: 'a', k: 'k0', n: 0 }]);
          const first = await collect(iterator, (items) => updates(items).length === 1);
          for (let n = 1; n <= 20; n += 1) {
            await backend.insert(name, [{ tenant_id: 'a', k: `k${n}`, n }]);
          }
          const rest = await collect(iterator, (items) => updates(items).length === 20);
          expect([...rowsOf(first), ...rowsOf(rest)]).toEqual(
            Array.from({ length: 21 }, (_, n) => `a/k${n}/${n}+1`),
          );
          await iterator.return?.();
        } finally {
          await backend.setSystemParameter?.('subscribe_max_buffered_bytes', null);
        }
      },
    );

    // Needs ALTER SYSTEM SET (mz_system, MATERIALIZE_SYSTEM_URL) against a real server; the
    // double always runs it. Skipped, and shown as skipped, when that URL is not given.
    it.skipIf(!target.canSetSystemParameters)(
      'past max_connections a subscription is UNAVAILABLE (FATAL 53000), retryable',
      async () => {
        const name = await view();
        const holders: Materialize[] = [];
        await backend.setSystemParameter?.('max_connections', 1);
        try {
          // Whatever else is connected, a few more sessions reach the limit.
          let error: unknown;
          for (let attempt = 0; attempt < 20 && error === undefined; attempt += 1) {
            const mz = open();
            holders.push(mz);
            const iterator = mz.subscribe(name, { progress: true });
            try {
              await collect(iterator, (items) => items.length > 0);
            } catch (caught) {
              error = caught;
            }
          }
          expect(isMaterializeError(error, 'UNAVAILABLE')).toBe(true);
          expect((error as { sqlstate?: string }).sqlstate).toBe('53000');
          expect((error as { retryable?: boolean }).retryable).toBe(true);
        } finally {
          await Promise.all(holders.map((holder) => holder.close()));
          await backend.setSystemParameter?.('max_connections', null);
        }
      },
    );

    it('resumeFrom a stored progress item: no gap, no duplicate', async () => {
      const name = await view();
      const mz = open();
      const first = mz.subscribe<TotalsRow>(name, { progress: true });
      await collect(first, (items) => items.length > 0);
      await backend.insert(name, [{ tenant_id: 'a', k: 'seen', n: 1 }]);
      const seen = await collect(
        first,
        (items) => updates(items).length === 1 && items.at(-1)?.kind === 'progress',
      );
      const stored = progresses(seen).at(-1) as bigint;
      await first.return?.();

      await backend.insert(name, [{ tenant_id: 'a', k: 'missed', n: 2 }]);
      const resumed = mz.subscribe<TotalsRow>(name, { progress: true, resumeFrom: stored });
      const items = await collect(resumed, (found) => updates(found).length >= 1);
      expect(rowsOf(items)).toEqual(['a/missed/2+1']);
      // The first item confirms the start: the stored frontier itself.
      expect(items[0]).toEqual({ kind: 'progress', mzTimestamp: stored });
      expect(
        progresses(items)
          .slice(1)
          .every((mark) => mark > stored),
      ).toBe(true);
      await resumed.return?.();
    });

    it('break ends quietly and gives the connection back', async () => {
      const name = await view([{ tenant_id: 'a', k: 'x', n: 1 }]);
      const metrics = createMetrics({ defaultMetrics: false });
      const mz = open({ poolSize: 1, metrics, name: uniqueName('brk') });
      for (let round = 0; round < 3; round += 1) {
        let seen = 0;
        for await (const change of mz.subscribe(name, { snapshot: true })) {
          expect(change.kind).toBe('update');
          seen += 1;
          break;
        }
        expect(seen).toBe(1);
      }
      // poolSize 1: each round could only run because the one before gave its connection back.
      await mz.health();
      const text = await metrics.render();
      expect(text).toMatch(/flowforge_materialize_subscriptions_active\{client="brk[^"]*"\} 0/);
    });

    it('an aborted signal ends the iterator with CANCELLED, its reason as cause', async () => {
      const name = await view();
      const mz = open();
      const controller = new AbortController();
      const iterator = mz.subscribe(name, { signal: controller.signal, progress: true });
      await collect(iterator, (items) => items.length > 0);
      const pending = iterator.next();
      const reason = new Error('client went away');
      controller.abort(reason);
      let error: unknown;
      try {
        await pending;
      } catch (caught) {
        error = caught;
      }
      expect(isMaterializeError(error, 'CANCELLED')).toBe(true);
      expect((error as Error).cause).toBe(reason);
      expect(await iterator.next()).toEqual({ done: true, value: undefined });
      await mz.health();
    });

    it('close() ends live subscriptions with CLOSED', async () => {
      const name = await view();
      const mz = open();
      const iterator = mz.subscribe(name, { progress: true });
      await collect(iterator, (items) => items.length > 0);
      const pending = iterator.next();
      await mz.close();
      let error: unknown;
      try {
        await pending;
      } catch (caught) {
        error = caught;
      }
      expect(isMaterializeError(error, 'CLOSED')).toBe(true);
      expect(mz.status).toBe('closed');
      let later: unknown;
      try {
        mz.subscribe(name);
      } catch (caught) {
        later = caught;
      }
      expect(isMaterializeError(later, 'CLOSED')).toBe(true);
      expect(await iterator.next()).toEqual({ done: true, value: undefined });
      expect(isMaterializeError(await rejectionOf(mz.health()), 'CLOSED')).toBe(true);
    });

    it.skipIf(!target.canDropConnections)(
      'a lost connection is resumed: every update exactly once',
      async () => {
        const name = await view();
        const mz = open();
        const iterator = mz.subscribe<TotalsRow>(name, { progress: true });
        await collect(iterator, (items) => items.length > 0);
        await backend.insert(name, [{ tenant_id: 'a', k: 'before', n: 1 }]);
        const before = await collect(iterator, (items) => updates(items).length === 1);
        backend.dropConnections?.();
        await backend.insert(name, [{ tenant_id: 'a', k: 'during', n: 2 }]);
        backend.dropConnections?.();
        await backend.insert(name, [{ tenant_id: 'a', k: 'after', n: 3 }]);
        const rest = await collect(iterator, (items) => updates(items).length === 2);
        expect([...rowsOf(before), ...rowsOf(rest)]).toEqual([
          'a/before/1+1',
          'a/during/2+1',
          'a/after/3+1',
        ]);
        await iterator.return?.();
      },
    );

    it.skipIf(!target.canDropConnections)(
      'resume: false makes a lost connection CONNECTION_LOST',
      async () => {
        const name = await view();
        const mz = open();
        const iterator = mz.subscribe(name, { progress: true, resume: false });
        await collect(iterator, (items) => items.length > 0);
        const pending = iterator.next();
        backend.dropConnections?.();
        let error: unknown;
        try {
          await pending;
        } catch (caught) {
          error = caught;
        }
        expect(isMaterializeError(error, 'CONNECTION_LOST')).toBe(true);
      },
    );
  });
}
