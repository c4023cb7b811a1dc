import type { SubscribeProgress, SubscribeUpdate } from '../../src/index.js';

export type Item<Row = Record<string, unknown>> = SubscribeUpdate<Row> | SubscribeProgress;

function noop(): void {}

/**
 * Pulls from `iterator` until `done(items)` holds; rejects when that takes
 * longer than `timeoutMs` (a generous bound, never a timed assertion). A next()
 * left pending by a timeout is silenced: the test's cleanup ends it.
 */
export async function collect<T>(
  iterator: AsyncIterator<T>,
  done: (items: readonly T[]) => boolean,
  timeoutMs = 10_000,
): Promise<T[]> {
  const items: T[] = [];
  const deadline = performance.now() + timeoutMs;
  while (!done(items)) {
    const left = deadline - performance.now();
    const next = iterator.next();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, left));
    });
    const result = await Promise.race([next, timeout]);
    clearTimeout(timer);
    if (result === 'timeout') {
      next.then(noop, noop);
      throw new Error(
        `collect: gave up after ${timeoutMs} ms with ${items.length} items: ${describe(items)}`,
      );
    }
    if (result.done === true)
      throw new Error(`collect: the iterator ended after ${items.length} items`);
    items.push(result.value);
  }
  return items;
}

/** The updates among `items`. */
export function updates<Row>(items: readonly Item<Row>[]): SubscribeUpdate<Row>[] {
  return items.filter((item): item is SubscribeUpdate<Row> => item.kind === 'update');
}

/** The progress items among `items`. */
export function progresses(items: readonly Item[]): bigint[] {
  return items.filter((item) => item.kind === 'progress').map((item) => item.mzTimestamp);
}

/**
 * True once a snapshot read with `progress: true` is complete: a progress item
 * after the snapshot's updates (or, for an empty snapshot, a second progress item).
 */
export function snapshotComplete(items: readonly Item[]): boolean {
  const last = items.at(-1);
  if (last?.kind !== 'progress') return false;
  const seenUpdates = items.some((item) => item.kind === 'update');
  return seenUpdates || items.filter((item) => item.kind === 'progress').length >= 2;
}

/** Waits until `predicate()` holds, polling every `everyMs` (bounded; for state the test cannot await). */
export async function eventually(
  predicate: () => boolean,
  what: string,
  timeoutMs = 10_000,
  everyMs = 5,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline)
      throw new Error(`eventually: ${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

function describe(items: readonly unknown[]): string {
  const text = JSON.stringify(items.slice(-5), (_key, value: unknown) =>
    typeof value === 'bigint' ? value.toString() : value,
  );
  return text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

/** A promise that rejects, caught: the error for expect(). */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** The error thrown while iterating `iterable` to its end. */
export async function iterationError(iterable: AsyncIterable<unknown>): Promise<unknown> {
  try {
    const iterator = iterable[Symbol.asyncIterator]();
    while ((await iterator.next()).done !== true) {
      // drain
    }
  } catch (error) {
    return error;
  }
  throw new Error('expected the iteration to throw');
}
