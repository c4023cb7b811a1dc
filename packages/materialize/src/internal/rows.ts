import { MaterializeError } from '../errors.js';
import type { SubscribeRow } from './buffer.js';

/** What node-postgres reports of a result column (the part used here). */
export interface FieldInfo {
  readonly name: string;
}

/** The leading columns of `SUBSCRIBE … WITH (PROGRESS)`, in this order. */
const LEADING = ['mz_timestamp', 'mz_progressed', 'mz_diff'] as const;

function malformed(message: string): MaterializeError {
  return new MaterializeError('QUERY_FAILED', `unexpected SUBSCRIBE output: ${message}`);
}

/**
 * Decodes the array-mode rows of one FETCH. The columns after the three
 * `mz_*` ones become the row object, by name; their values are as
 * node-postgres parses text (numeric and int8 stay strings).
 */
export class RowDecoder<Row> {
  #fields: readonly FieldInfo[] | undefined;
  #names: readonly string[] = [];
  /** A column named `__proto__` needs defineProperty; every other one a plain assignment. */
  #hasProtoColumn = false;
  // Consecutive rows mostly share their mz_timestamp: parse each distinct text once.
  #lastTimestampText: unknown;
  #lastTimestamp = 0n;

  /** @throws {MaterializeError} QUERY_FAILED when the columns are not SUBSCRIBE's with PROGRESS */
  decode(fields: readonly FieldInfo[], values: readonly unknown[]): SubscribeRow<Row> {
    if (fields !== this.#fields) this.#learn(fields);
    let timestamp = this.#lastTimestamp;
    if (values[0] !== this.#lastTimestampText) {
      timestamp = parseTimestamp(values[0]);
      this.#lastTimestampText = values[0];
      this.#lastTimestamp = timestamp;
    }
    if (values[1] === true) return { progressed: true, timestamp };
    if (values[1] !== false) throw malformed('mz_progressed is neither true nor false');
    const row: Record<string, unknown> = {};
    const names = this.#names;
    if (this.#hasProtoColumn) {
      for (let index = 0; index < names.length; index += 1) {
        Object.defineProperty(row, names[index] as string, {
          value: values[index + LEADING.length],
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
    } else {
      for (let index = 0; index < names.length; index += 1) {
        row[names[index] as string] = values[index + LEADING.length];
      }
    }
    return {
      progressed: false,
      update: {
        kind: 'update',
        mzTimestamp: timestamp,
        mzDiff: parseDiff(values[2]),
        row: row as Row,
      },
    };
  }

  #learn(fields: readonly FieldInfo[]): void {
    LEADING.forEach((name, index) => {
      if (fields[index]?.name !== name) {
        throw malformed(
          `column ${index + 1} is ${JSON.stringify(fields[index]?.name)}, not ${name}`,
        );
      }
    });
    this.#fields = fields;
    this.#names = fields.slice(LEADING.length).map((field) => field.name);
    this.#hasProtoColumn = this.#names.includes('__proto__');
  }
}

/** `mz_timestamp` (numeric, a string in text form) as a bigint. */
export function parseTimestamp(value: unknown): bigint {
  if (typeof value !== 'string' || !/^\d{1,20}$/.test(value)) {
    throw malformed(`mz_timestamp ${JSON.stringify(value)} is not an unsigned integer`);
  }
  return BigInt(value);
}

/**
 * `mz_diff` (int8, a string in text form) as a number. A diff beyond
 * ±(2^53 - 1) cannot be a JavaScript number exactly: refused, not rounded.
 */
export function parseDiff(value: unknown): number {
  // The common diffs, without a regular expression.
  if (value === '1') return 1;
  if (value === '-1') return -1;
  if (typeof value !== 'string' || !/^-?\d{1,19}$/.test(value)) {
    throw malformed(`mz_diff ${JSON.stringify(value)} is not an integer`);
  }
  const diff = Number(value);
  if (!Number.isSafeInteger(diff)) {
    throw malformed(`mz_diff ${value} is beyond Number.MAX_SAFE_INTEGER`);
  }
  return diff;
}
