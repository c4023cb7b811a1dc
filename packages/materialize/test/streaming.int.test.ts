/**
 * What a subscription sends and how it reads, against the wire double: the
 * SQL (quoted, filtered inside SUBSCRIBE, PROGRESS always on), laziness,
 * backpressure, value types, and hostile names and values pushed through the
 * double's own SQL parser (fast-check).
 */
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isMaterializeError, type Materialize } from '../src/index.js';
import { Handles, uniqueName } from './support/handles.js';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import {
  collect,
  eventually,
  progresses,
  snapshotComplete,
  updates,
  type Item,
} from './support/streams.js';

let server: MaterializeDouble;
const handles = new Handles();
let mz: Materialize;

beforeAll(async () => {
  server = await startMaterializeDouble();
  mz = handles.open({ url: server.url, poolSize: 10 });
});
afterEach(() => {
  server.stall(false);
});
afterAll(async () => {
  await handles.closeAll();
  await server.stop();
});

/** A NUL or an unpaired surrogate: text no server can store (UTF-8). */
const unstorable = (text: string): boolean =>
  text.includes('\u0000') || Buffer.from(text, 'utf8').toString('utf8') !== text;

const fetches = (log: readonly string[]): number =>
  log.filter((statement) => statement.startsWith('FETCH')).length;

describe('the statements', () => {
  it('sends nothing before the first next(), then BEGIN, DECLARE … SUBSCRIBE with PROGRESS, FETCH', async () => {
    const name = uniqueName('Sql_View');
    server.defineView(name, [
      { name: 'tenant_id', type: 'text' },
      { name: 'Total', type: 'int8' },
    ]);
    const local = handles.open({ url: server.url, fetchBatchSize: 250, fetchTimeoutMs: 750 });
    const before = server.stats.statements;
    const iterator = local.subscribe(name, {
      filter: { tenant_id: "o'brien" },
      columns: ['Total'],
      asOf: server.upper - 1n,
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.stats.statements).toBe(before);

    const logBefore = server.statementLog().length;
    const pending = iterator.next();
    await eventually(() => server.sessions().some((session) => session.fetching), 'a FETCH');
    const log = server.statementLog().slice(logBefore);
    expect(log.slice(0, 3)).toEqual([
      'BEGIN',
      `DECLARE flowforge_subscribe CURSOR FOR SUBSCRIBE (SELECT "Total" FROM "${name}" WHERE "tenant_id" = 'o''brien') WITH (SNAPSHOT = false, PROGRESS) AS OF ${server.upper - 1n}`,
      "FETCH 1 flowforge_subscribe WITH (timeout = '750ms')",
    ]);
    // The wait FETCH got the progress row at AS OF (not yielded), so a drain FETCH took what
    // was ready (less than a batch), and a wait FETCH waits for the next row.
    expect(log.slice(3)).toEqual([
      "FETCH 250 flowforge_subscribe WITH (timeout = '0s')",
      "FETCH 1 flowforge_subscribe WITH (timeout = '750ms')",
    ]);
    server.insert(name, [{ tenant_id: "o'brien", Total: 7 }]);
    const first = await pending;
    expect(first.value).toMatchObject({ kind: 'update', mzDiff: 1, row: { Total: '7' } });
    await iterator.return?.();
  });

  it('a quoted name is matched exactly: another letter case is another view', async () => {
    const name = uniqueName('CaseView');
    server.defineView(name, [{ name: 'a', type: 'text' }]);
    let error: unknown;
    try {
      for await (const item of mz.subscribe(name.toLowerCase())) expect(item).toBeUndefined();
    } catch (caught) {
      error = caught;
    }
    expect(isMaterializeError(error, 'UNKNOWN_VIEW')).toBe(true);
  });

  it('progress rows are read but not yielded unless asked for', async () => {
    const name = uniqueName('quiet');
    server.defineView(name, [{ name: 'a', type: 'text' }]);
    // AS OF fixed now: whatever is committed below comes after it.
    const iterator = mz.subscribe(name, { asOf: server.upper - 1n });
    const pending = iterator.next();
    server.advance();
    server.advance();
    server.insert(name, [{ a: 'x' }]);
    const result = await pending;
    expect(result.value).toMatchObject({ kind: 'update', row: { a: 'x' } });
    await iterator.return?.();
  });

  it('values arrive as node-postgres parses them; mzDiff is a number', async () => {
    const name = uniqueName('types');
    server.defineView(name, [
      { name: 't', type: 'text' },
      { name: 'i4', type: 'int4' },
      { name: 'i8', type: 'int8' },
      { name: 'num', type: 'numeric' },
      { name: 'f', type: 'float8' },
      { name: 'b', type: 'bool' },
      { name: 'u', type: 'uuid' },
      { name: 'j', type: 'jsonb' },
      { name: 'nothing', type: 'text' },
    ]);
    server.commit(name, [
      {
        row: {
          t: 'x',
          i4: 7,
          i8: 9007199254740993n,
          num: '12.50',
          f: 0.5,
          b: true,
          u: '0B7E6A1C-8D1A-4C39-9F34-7E0C2B1A0D11',
          j: '{"a":[1,2]}',
          nothing: null,
        },
        diff: 3,
      },
    ]);
    const iterator = mz.subscribe(name, { snapshot: true, progress: true });
    const [update] = updates(await collect(iterator, snapshotComplete));
    expect(update?.mzDiff).toBe(3);
    expect(update?.row).toEqual({
      t: 'x',
      i4: 7,
      i8: '9007199254740993',
      num: '12.50',
      f: 0.5,
      b: true,
      u: '0b7e6a1c-8d1a-4c39-9f34-7e0c2b1a0d11',
      j: { a: [1, 2] },
      nothing: null,
    });
    await iterator.return?.();
  });
});

describe('backpressure', () => {
  it('a consumer that does not pull makes the server buffer, not the client', async () => {
    const name = uniqueName('bp');
    server.defineView(name, [{ name: 'n', type: 'int4' }]);
    const local = handles.open({ url: server.url, fetchBatchSize: 10 });
    const iterator = local.subscribe<{ n: number }>(name, { progress: true });
    await iterator.next();
    const logStart = server.statementLog().length;
    // One row per timestamp: the double sends each one's row and a progress row.
    for (let n = 0; n < 200; n += 1) server.insert(name, [{ n }]);
    // One item is pulled: at most a wait FETCH (1 row) and a drain FETCH (10 rows) are read.
    const first = await iterator.next();
    expect(first.value).toMatchObject({ kind: 'update', row: { n: 0 } });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const session = server.sessions().find((candidate) => candidate.cursor !== null);
    const read = fetches(server.statementLog().slice(logStart));
    expect(read).toBeLessThanOrEqual(2);
    expect(session?.fetching).toBe(false);
    expect(session?.pendingRows).toBeGreaterThanOrEqual(400 - 11);
    const pending = session?.pendingRows ?? 0;
    for (let n = 200; n < 400; n += 1) server.insert(name, [{ n }]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The server's queue grows; the client read nothing more.
    expect(fetches(server.statementLog().slice(logStart))).toBe(read);
    const grown = server.sessions().find((candidate) => candidate.cursor !== null);
    expect(grown?.pendingRows).toBe(pending + 400);

    // Pulling everything: every row once, in order, 10 wire rows per FETCH.
    const rest = await collect(iterator, (items) => updates(items).length === 399);
    const values = [first.value as Item<{ n: number }>, ...rest].flatMap((item) =>
      item.kind === 'update' ? [item.row.n] : [],
    );
    expect(values).toEqual(Array.from({ length: 400 }, (_unused, index) => index));
    // Full drain FETCHes of 10 rows while the backlog lasts (one more wait FETCH at most).
    const total = fetches(server.statementLog().slice(logStart));
    expect(total).toBeGreaterThanOrEqual(80);
    expect(total).toBeLessThanOrEqual(82);
    expect(progresses(rest).length).toBeGreaterThan(0);
    await iterator.return?.();
  });
});

describe('hostile names and values through the double’s parser (fast-check)', () => {
  it('a string filter value is refused or matches exactly the rows holding it', async () => {
    const name = uniqueName('fcstr');
    server.defineView(name, [
      { name: 'k', type: 'text' },
      { name: 'id', type: 'int4' },
    ]);
    const values = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 24 }),
      fc.string({ unit: 'grapheme', maxLength: 12 }),
      fc.constantFrom("'", "''", "\\'", "' OR '1'='1", "'; --", '"', '\\', '$$', "E'\\x'"),
    );
    let id = 0;
    await fc.assert(
      fc.asyncProperty(values, values, async (wanted, decoy) => {
        const iterator = (() => {
          try {
            return mz.subscribe<{ k: string; id: number }>(name, {
              snapshot: true,
              progress: true,
              filter: { k: wanted },
            });
          } catch (error) {
            expect(isMaterializeError(error, 'INVALID_ARGUMENT')).toBe(true);
            return undefined;
          }
        })();
        if (iterator === undefined) return;
        id += 2;
        const rows = [
          { k: wanted, id },
          // A decoy that cannot be stored (a NUL, a lone surrogate) is skipped.
          ...(unstorable(decoy) || decoy === wanted ? [] : [{ k: decoy, id: id + 1 }]),
        ];
        server.insert(name, rows);
        const items = await collect(iterator, snapshotComplete);
        await iterator.return?.();
        const found = updates(items).map((item) => item.row);
        expect(found.length).toBeGreaterThanOrEqual(1);
        for (const row of found) expect(row.k).toBe(wanted);
        expect(found.some((row) => row.id === id)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('numbers, bigints and booleans compare as the values they are', async () => {
    const name = uniqueName('fcnum');
    server.defineView(name, [
      { name: 'f', type: 'float8' },
      { name: 'i', type: 'int8' },
      { name: 'b', type: 'bool' },
      { name: 'id', type: 'int4' },
    ]);
    let id = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 }),
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        fc.boolean(),
        async (f, i, b) => {
          id += 1;
          server.insert(name, [{ f, i, b, id }]);
          const iterator = mz.subscribe<{ id: number }>(name, {
            snapshot: true,
            progress: true,
            filter: { f, i, b },
          });
          const items = await collect(iterator, snapshotComplete);
          await iterator.return?.();
          expect(updates(items).map((item) => item.row.id)).toContain(id);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a view name is refused or subscribes exactly that view', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 20 }),
          fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,20}$/),
        ),
        async (candidate) => {
          let iterator: AsyncIterator<unknown> | undefined;
          try {
            iterator = mz.subscribe(candidate, { progress: true });
          } catch (error) {
            expect(isMaterializeError(error, 'INVALID_ARGUMENT')).toBe(true);
            return;
          }
          const name = `${candidate}_${uniqueName('v')}`.slice(0, 63);
          server.defineView(name, [{ name: 'a', type: 'text' }]);
          await iterator.return?.();
          const exact = mz.subscribe<{ a: string }>(name, { progress: true });
          await exact.next();
          server.insert(name, [{ a: name }]);
          const items = await collect(exact, (seen) => updates(seen).length === 1);
          expect(updates(items)[0]?.row.a).toBe(name);
          await exact.return?.();
        },
      ),
      { numRuns: 60 },
    );
  });
});
