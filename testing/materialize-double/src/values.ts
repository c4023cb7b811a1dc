/** Values: DoubleRow values → PostgreSQL text format. */
import type { DoubleColumn, DoubleColumnType, DoubleRow } from './api.js';

export type Cell = string | null;
type CellValue = DoubleRow[string] | undefined;

export const INTEGER_TEXT: RegExp = /^-?\d+$/;
const NUMERIC_TEXT = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^NaN$/;
const FLOAT_TEXT = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^-?Infinity$|^NaN$/;

/** 8-4-4-4-12 hex digits; a loop, since a case-insensitive regex cost more than the rest of a row's encoding. */
function isUuid(text: string): boolean {
  if (text.length !== 36) return false;
  for (let index = 0; index < 36; index += 1) {
    const code = text.charCodeAt(index);
    if (index === 8 || index === 13 || index === 18 || index === 23) {
      if (code !== 45) return false;
    } else if (!(
      (code >= 48 && code <= 57) ||
      (code >= 97 && code <= 102) ||
      (code >= 65 && code <= 70)
    )) {
      return false;
    }
  }
  return true;
}
export const BOOL_TEXT: Readonly<Record<string, 't' | 'f'>> = {
  t: 't',
  true: 't',
  yes: 't',
  on: 't',
  '1': 't',
  f: 'f',
  false: 'f',
  no: 'f',
  off: 'f',
  '0': 'f',
};

function invalidValue(column: string, type: DoubleColumnType, value: CellValue): TypeError {
  return new TypeError(
    `materialize double: ${typeof value} ${String(value)} is not a valid ${type} for column "${column}"`,
  );
}

/** PostgreSQL's timestamptz output in UTC: `2026-11-28 14:00:00+00`, fractional seconds when present. */
function formatTimestamptz(epochMs: number): string | null {
  if (!Number.isFinite(epochMs)) return null;
  const iso = new Date(epochMs).toISOString();
  if (iso.length !== 24) return null; // years beyond 9999 have no PostgreSQL-like form here
  const millis = iso.slice(20, 23).replace(/0+$/, '');
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${millis === '' ? '' : `.${millis}`}+00`;
}

function parseTimestamptz(text: string): number {
  const direct = Date.parse(text);
  if (!Number.isNaN(direct)) return direct;
  // PostgreSQL's own form: a space for the T and an hour-only offset.
  return Date.parse(
    text
      .trim()
      .replace(' ', 'T')
      .replace(/([+-]\d\d)$/, '$1:00'),
  );
}

export function encodeCell(column: DoubleColumn, value: CellValue): Cell {
  if (value === null || value === undefined) return null;
  const { type, name } = column;
  switch (type) {
    case 'text':
      return typeof value === 'string' ? value : String(value);
    case 'int4':
    case 'int8':
      if (typeof value === 'bigint') return value.toString();
      if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
      if (typeof value === 'string' && INTEGER_TEXT.test(value)) return BigInt(value).toString();
      throw invalidValue(name, type, value);
    case 'numeric':
      if (typeof value === 'bigint') return value.toString();
      if (typeof value === 'number' && Number.isFinite(value)) return String(value);
      if (typeof value === 'string' && NUMERIC_TEXT.test(value)) return value;
      throw invalidValue(name, type, value);
    case 'float8':
      if (typeof value === 'number') return String(value);
      if (typeof value === 'bigint') return value.toString();
      if (typeof value === 'string' && FLOAT_TEXT.test(value)) return value;
      throw invalidValue(name, type, value);
    case 'bool': {
      if (typeof value === 'boolean') return value ? 't' : 'f';
      const text = BOOL_TEXT[String(value).toLowerCase()];
      if (text === undefined) throw invalidValue(name, type, value);
      return text;
    }
    case 'uuid':
      if (typeof value === 'string' && isUuid(value)) return value.toLowerCase();
      throw invalidValue(name, type, value);
    case 'timestamptz': {
      const epochMs =
        typeof value === 'number'
          ? value
          : typeof value === 'string'
            ? parseTimestamptz(value)
            : NaN;
      const text = formatTimestamptz(epochMs);
      if (text === null) throw invalidValue(name, type, value);
      return text;
    }
    case 'jsonb':
      if (typeof value === 'string') {
        try {
          return JSON.stringify(JSON.parse(value)); // a string holding JSON text, normalised
        } catch {
          return JSON.stringify(value); // any other string is a JSON string value
        }
      }
      return typeof value === 'bigint' ? value.toString() : JSON.stringify(value);
  }
}
