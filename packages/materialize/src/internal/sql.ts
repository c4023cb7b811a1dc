import { MaterializeError } from '../errors.js';

/** One part of a name: what an unquoted identifier could be, ASCII only. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** Largest Materialize timestamp (an unsigned 64-bit integer). */
const MAX_TIMESTAMP: bigint = 2n ** 64n - 1n;

function invalid(message: string): MaterializeError {
  return new MaterializeError('INVALID_ARGUMENT', message);
}

/** Describes a refused value without echoing it whole (it may be long or hostile). */
function shown(value: unknown): string {
  if (typeof value !== 'string') return typeof value;
  const json = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return json;
}

/**
 * `"name"` for a name part matching `^[A-Za-z_][A-Za-z0-9_]{0,62}$`. Always
 * quoted, so the name is matched exactly as given (letter case included) and
 * can never be a keyword. @throws {MaterializeError} INVALID_ARGUMENT
 */
export function quoteIdentifier(name: unknown, what: string): string {
  if (typeof name !== 'string' || !IDENTIFIER.test(name)) {
    throw invalid(
      `${what} ${shown(name)} is not a plain identifier (letters, digits and _, not starting with a digit, at most 63 characters)`,
    );
  }
  // The pattern admits no `"`, so there is nothing to escape.
  return `"${name}"`;
}

/**
 * A view name `[[database.]schema.]name`, each part quoted.
 * @throws {MaterializeError} INVALID_ARGUMENT
 */
export function quoteViewName(view: unknown): string {
  if (typeof view !== 'string') throw invalid(`the view name must be a string, got ${typeof view}`);
  const parts = view.split('.');
  if (parts.length > 3) {
    throw invalid(
      `the view name ${shown(view)} has more than three parts (database.schema.name at most)`,
    );
  }
  return parts.map((part) => quoteIdentifier(part, 'the view name part')).join('.');
}

/**
 * A SQL literal for a filter value: `'text'` with `'` doubled (Materialize
 * always has standard_conforming_strings on, so a backslash is an ordinary
 * character), a finite number, a bigint, `true`/`false`. Anything else, a NUL
 * or an unpaired surrogate in a string, is refused.
 * @throws {MaterializeError} INVALID_ARGUMENT
 */
export function quoteLiteral(value: unknown, column: string): string {
  switch (typeof value) {
    case 'string':
      if (value.includes('\u0000')) {
        throw invalid(`the filter value of ${column} contains a NUL character`);
      }
      // A UTF-16 surrogate without its pair cannot be sent as UTF-8: it would not round-trip.
      if (!value.isWellFormed()) {
        throw invalid(
          `the filter value of ${column} is not well-formed UTF-16 (an unpaired surrogate)`,
        );
      }
      return `'${value.replaceAll("'", "''")}'`;
    case 'number':
      if (!Number.isFinite(value)) {
        throw invalid(`the filter value of ${column} must be a finite number`);
      }
      return numberLiteral(value);
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 'true' : 'false';
    default:
      throw invalid(
        `the filter value of ${column} must be a string, a finite number, a bigint or a boolean, got ${value === null ? 'null' : typeof value}`,
      );
  }
}

/** Digits for integers (no exponent, `-0` as `0`), JavaScript's shortest round-trip form otherwise. */
function numberLiteral(value: number): string {
  if (Number.isInteger(value)) return BigInt(value).toString();
  return String(value);
}

/** What a subscription asks for, checked. */
export interface SubscribeQuery {
  /** The quoted view name. */
  readonly view: string;
  /** The quoted column list, or `*`. */
  readonly columns: string;
  /** ` WHERE "a" = 'x' AND …`, or ''. */
  readonly where: string;
}

/**
 * Checks and quotes what a subscription selects. Nothing is sent before this.
 * @throws {MaterializeError} INVALID_ARGUMENT
 */
export function subscribeQuery(view: unknown, columns: unknown, filter: unknown): SubscribeQuery {
  const quotedView = quoteViewName(view);
  let list = '*';
  if (columns !== undefined) {
    if (!Array.isArray(columns) || columns.length === 0) {
      throw invalid('columns must be a non-empty array of column names');
    }
    const seen = new Set<string>();
    const quoted = columns.map((column: unknown) => {
      const name = quoteIdentifier(column, 'the column');
      if (seen.has(name)) throw invalid(`the column ${shown(column)} is listed twice`);
      seen.add(name);
      return name;
    });
    list = quoted.join(', ');
  }
  let where = '';
  if (filter !== undefined) {
    if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
      throw invalid('filter must be an object of column = value');
    }
    const conditions = Object.entries(filter).map(([column, value]) => {
      const name = quoteIdentifier(column, 'the filter column');
      return `${name} = ${quoteLiteral(value, name)}`;
    });
    if (conditions.length > 0) where = ` WHERE ${conditions.join(' AND ')}`;
  }
  return { view: quotedView, columns: list, where };
}

/** Checks an `asOf`/`resumeFrom` timestamp. @throws {MaterializeError} INVALID_ARGUMENT */
export function checkTimestamp(value: unknown, name: string, min: bigint): bigint {
  if (typeof value !== 'bigint' || value < min || value > MAX_TIMESTAMP) {
    throw invalid(`${name} must be a bigint from ${min} to 2^64 - 1`);
  }
  return value;
}

/** The cursor every subscription declares (one per connection and transaction). */
const CURSOR = 'flowforge_subscribe';

/**
 * `DECLARE … CURSOR FOR SUBSCRIBE (SELECT …) WITH (SNAPSHOT = …, PROGRESS) [AS OF …]`.
 * PROGRESS is always on: progress rows are what make exactly-once delivery
 * and resumption possible.
 */
export function declareStatement(
  query: SubscribeQuery,
  snapshot: boolean,
  asOf: bigint | undefined,
): string {
  const asOfClause = asOf === undefined ? '' : ` AS OF ${asOf.toString()}`;
  return `DECLARE ${CURSOR} CURSOR FOR SUBSCRIBE (SELECT ${query.columns} FROM ${query.view}${query.where}) WITH (SNAPSHOT = ${String(snapshot)}, PROGRESS)${asOfClause}`;
}

/** `FETCH <n> … WITH (timeout = '<ms>ms')`. */
export function fetchStatement(batchSize: number, timeoutMs: number): string {
  return `FETCH ${batchSize} ${CURSOR} WITH (timeout = '${timeoutMs}ms')`;
}

/**
 * The wait FETCH: `FETCH 1 … WITH (timeout = '<ms>ms')` returns as soon as one
 * row exists, or empty after the timeout (docs/decisions/015-materialize-server-behaviour.md).
 */
export function waitFetchStatement(timeoutMs: number): string {
  return fetchStatement(1, timeoutMs);
}

/** The drain FETCH: `FETCH <n> … WITH (timeout = '0s')`, what is ready now, at most n rows. */
export function drainFetchStatement(batchSize: number): string {
  return `FETCH ${batchSize} ${CURSOR} WITH (timeout = '0s')`;
}
