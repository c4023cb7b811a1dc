import { createHash } from 'node:crypto';
import { sql, type RawBuilder } from 'kysely';

/** Items per page when `?limit=` is absent. */
export const PAGE_LIMIT_DEFAULT = 50;
/** The most items a page holds (`?limit=` above it is a 400). */
export const PAGE_LIMIT_MAX = 100;

/**
 * Where a page ends in a list ordered by `(created_at, id)`: the last row it
 * showed. `createdAtUs` is microseconds since the epoch, as decimal text
 * (PostgreSQL keeps microseconds; a JavaScript Date would drop them and a page
 * could then repeat or skip rows created in the same millisecond).
 */
export interface ListPosition {
  readonly createdAtUs: string;
  readonly id: string;
}

/** The column to select beside a row for its {@link ListPosition}: `created_at` in whole microseconds. */
export const createdAtUs: RawBuilder<string> = sql<string>`(extract(epoch from created_at) * 1000000)::bigint::text`;

// A cursor is base64url(`<µs>.<uuid>`) "." a digest of that and the list it belongs to.
const CURSOR = /^([A-Za-z0-9_-]{1,96})\.([A-Za-z0-9_-]{16})$/;
const POSITION = /^(\d{1,16})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** The `pattern` of the `cursor` query parameter, for the route schemas. */
export const CURSOR_PATTERN: string = CURSOR.source;

/**
 * The `next_cursor` a page answers: opaque to clients. `list` names the list
 * it continues (`dashboards`, `widgets:<dashboard id>`), so a cursor of one
 * list is refused by another.
 */
function encodeCursor(list: string, position: ListPosition): string {
  const payload = `${position.createdAtUs}.${position.id}`;
  return `${Buffer.from(payload).toString('base64url')}.${digest(list, payload)}`;
}

/**
 * The position `cursor` stands for, or `undefined` when it is not one that
 * {@link encodeCursor} gave out for `list` (edited, cut short, or another
 * list's): the route answers 400. The digest is a checksum, not a signature:
 * whoever forges one only picks a position in a list their tenant can read.
 */
export function decodeCursor(list: string, cursor: string): ListPosition | undefined {
  const parts = CURSOR.exec(cursor);
  if (parts === null) return undefined;
  const [, encoded = '', check] = parts;
  const payload = Buffer.from(encoded, 'base64url').toString('utf8');
  // Canonical encoding only: base64 decoding ignores some bits, an edit there must not pass.
  if (Buffer.from(payload).toString('base64url') !== encoded) return undefined;
  if (digest(list, payload) !== check) return undefined;
  const position = POSITION.exec(payload);
  if (position === null) return undefined;
  return { createdAtUs: position[1]!, id: position[2]! };
}

/**
 * The `(created_at, id)` of `position` as SQL, for a keyset condition such as
 * `(created_at, id) > ${rowOf(position)}`: the timestamp is sent as ISO-8601
 * text with all six fractional digits, which PostgreSQL parses exactly.
 */
export function rowOf(position: ListPosition): RawBuilder<unknown> {
  const us = BigInt(position.createdAtUs);
  const whole = new Date(Number(us / 1_000_000n) * 1000).toISOString().slice(0, 19);
  const fraction = (us % 1_000_000n).toString().padStart(6, '0');
  return sql`(${`${whole}.${fraction}Z`}::timestamptz, ${position.id}::uuid)`;
}

/** The page of `rows` (fetched with one more than `limit`) and the cursor of the next one, if any. */
export function pageOf<Row extends { readonly position_us: string; readonly id: string }>(
  list: string,
  rows: readonly Row[],
  limit: number,
): { readonly rows: readonly Row[]; readonly nextCursor: string | null } {
  if (rows.length <= limit) return { rows, nextCursor: null };
  const page = rows.slice(0, limit);
  const last = page.at(-1)!;
  return {
    rows: page,
    nextCursor: encodeCursor(list, { createdAtUs: last.position_us, id: last.id }),
  };
}

function digest(list: string, payload: string): string {
  return createHash('sha256')
    .update(`flowforge-cursor-v1\n${list}\n${payload}`)
    .digest('base64url')
    .slice(0, 16);
}
