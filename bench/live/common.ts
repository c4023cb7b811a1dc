// What the processes of bench/live share: the view they stream and the designs measured.

/** The two designs measured: a SUBSCRIBE per viewer (today's), and one shared hub. */
export const DESIGNS = ['per-viewer', 'shared'] as const;
/** One of {@link DESIGNS}. */
export type Design = (typeof DESIGNS)[number];

/** The one view of the double: live_rows (widget int4, k int4, value int8, committed_at_ms float8). */
export const LIVE_VIEW = 'live_rows';

/**
 * A row of live_rows: in the double (value a bigint), as node-postgres parses it
 * (int8 a string) and as a client reads it from an update event's JSON (the same).
 */
export interface LiveRow {
  readonly widget: number;
  readonly k: number;
  readonly value: bigint | number | string;
  /** Date.now() when the double committed the row. */
  readonly committed_at_ms: number;
}

/** What identifies a row in a viewer's state and in the view's: the same text on both sides. */
export function rowKey(row: Readonly<Record<string, unknown>>): string {
  return `${cell(row.widget)}/${cell(row.k)}/${cell(row.value)}/${cell(row.committed_at_ms)}`;
}

function cell(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint'
    ? String(value)
    : JSON.stringify(value);
}
