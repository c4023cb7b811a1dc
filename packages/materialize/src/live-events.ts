import type { LiveItem } from './shared.js';

/**
 * A {@link LiveItem} as a Server-Sent Event: structurally `ServerSentEvent`
 * from @flowforge/server (this package does not depend on it).
 */
export interface LiveEvent {
  /** `update`, `progress` or `reset`. */
  readonly event: 'update' | 'progress' | 'reset';
  /** Progress events only: the frontier, what a reconnecting browser sends back as `Last-Event-ID`. */
  readonly id?: string;
  /** JSON: `{"mz_timestamp","mz_diff","row"}`, `{"mz_timestamp"}` or `{}`. */
  readonly data: string;
}

const RESET_EVENT: LiveEvent = Object.freeze({ event: 'reset', data: '{}' });

/** Events already made, per item: a shared subscription gives every viewer the same item object. */
const made = new WeakMap<object, LiveEvent>();

/**
 * The Server-Sent Event of a watch's item, made once per item object (every
 * viewer of a shared subscription gets the same one, so JSON is encoded once
 * however many viewers there are):
 *
 * - `event: update`, `data: {"mz_timestamp":"…","mz_diff":1,"row":{…}}`: no id,
 *   since an update alone is no resume point;
 * - `event: progress`, `id: F`, `data: {"mz_timestamp":"F"}`: every update before
 *   F was sent; a browser applies the updates it holds when this arrives, and
 *   reconnects with `Last-Event-ID: F` (pass it back as `resumeFrom`);
 * - `event: reset`, `data: {}`: drop what was applied, a snapshot follows.
 *
 * @example
 * ```ts
 * source: async function* (signal) {
 *   for await (const item of shared.watch(view, { filter, resumeFrom, signal })) yield liveEventOf(item);
 * },
 * ```
 */
export function liveEventOf(item: LiveItem<unknown>): LiveEvent {
  if (item.kind === 'reset') return RESET_EVENT;
  let event = made.get(item);
  if (event === undefined) {
    const timestamp = item.mzTimestamp.toString();
    event =
      item.kind === 'progress'
        ? { event: 'progress', id: timestamp, data: `{"mz_timestamp":"${timestamp}"}` }
        : {
            event: 'update',
            data: JSON.stringify(
              { mz_timestamp: timestamp, mz_diff: item.mzDiff, row: item.row },
              bigintsAsText,
            ),
          };
    made.set(item, event);
  }
  return event;
}

/** JSON cannot hold a bigint: it is sent as its decimal text, like mz_timestamp (a JSON.stringify replacer). */
export function bigintsAsText(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
