import { expect } from 'vitest';
import { ClickHouseError, type ClickHouseErrorCode } from '../../src/index.js';

/** Resolves to what `promise` rejected with; fails the test when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection, the promise resolved');
}

/** Asserts a ClickHouseError with `code` and returns it typed. */
export async function expectCode(
  promise: Promise<unknown>,
  code: ClickHouseErrorCode,
): Promise<ClickHouseError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(ClickHouseError);
  expect((error as ClickHouseError).code, (error as Error).message).toBe(code);
  return error as ClickHouseError;
}

/** Asserts that `run` throws a ClickHouseError with `code`, and returns it typed. */
export function expectThrownCode(run: () => unknown, code: ClickHouseErrorCode): ClickHouseError {
  let error: unknown;
  try {
    run();
  } catch (caught) {
    error = caught;
  }
  if (error === undefined) throw new Error(`expected ${code}, nothing was thrown`);
  expect(error).toBeInstanceOf(ClickHouseError);
  expect((error as ClickHouseError).code, (error as Error).message).toBe(code);
  return error as ClickHouseError;
}

/** Consumes an async iterable to an array (or to its rejection). */
export async function drain<T>(rows: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const row of rows) out.push(row);
  return out;
}

/**
 * Iterates `rows`, calling `onRow` with the count so far after each row (it may
 * await, or throw to stop); resolves to the count, or rejects with the stream's error.
 */
export async function consume(
  rows: AsyncIterable<unknown>,
  onRow: (count: number) => unknown = () => undefined,
): Promise<number> {
  let count = 0;
  for await (const row of rows) {
    if (row === undefined) throw new Error('a stream yielded undefined');
    count += 1;
    if ((await onRow(count)) === false) break;
  }
  return count;
}

/** The value of one sample in Prometheus text (labels must match exactly), or undefined. */
export function sampleValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const wanted = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const got = [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map((label): [string, string] => [label[1] ?? '', label[2] ?? ''])
      .sort(([a], [b]) => a.localeCompare(b));
    if (JSON.stringify(got) === JSON.stringify(wanted)) return Number(match[3]);
  }
  return undefined;
}
