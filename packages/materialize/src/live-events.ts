import { MaterializeError } from './errors.js';
import type { LiveItem } from './shared.js';

/**
 * A {@link LiveItem} as a Server-Sent Event: structurally `ServerSentEvent`
 * from @flowforge/server (this package does not depend on it).
 */
export interface LiveEvent {
  /** `update`, `progress`, `reset` or `status`. */
  readonly event: 'update' | 'progress' | 'reset' | 'status';
  /**
   * Progress events without a label only: the frontier, what a reconnecting
   * browser sends back as `Last-Event-ID`. A labelled event has none (a
   * stream of several labels has a position per label: the client keeps them).
   */
  readonly id?: string;
  /**
   * JSON: `{"mz_timestamp","mz_diff","row"}`, `{"mz_timestamp"}`, `{}` or
   * `{"upstream"}`; with a label, its field comes first in each
   * (`{"widget_id":"…","mz_timestamp":"…"}`, a reset `{"widget_id":"…"}`).
   */
  readonly data: string;
}

/**
 * A field put first in the data of every event of {@link liveEventOf}: which
 * widget (say) an event of a stream that carries several belongs to.
 */
export interface LiveEventLabel {
  /**
   * The field's name, e.g. `widget_id`: a constant of the route (one cache per
   * name is kept for good), none of the items' own fields (`mz_timestamp`,
   * `mz_diff`, `row`, `upstream`).
   */
  readonly name: string;
  /** Its value, sent as a JSON string. */
  readonly value: string;
}

const RESET_EVENT: LiveEvent = Object.freeze({ event: 'reset', data: '{}' });
const STATUS_EVENTS: Readonly<Record<'lost' | 'live', LiveEvent>> = Object.freeze({
  lost: Object.freeze({ event: 'status', data: '{"upstream":"lost"}' }),
  live: Object.freeze({ event: 'status', data: '{"upstream":"live"}' }),
});
const ITEM_FIELDS: ReadonlySet<string> = new Set(['mz_timestamp', 'mz_diff', 'row', 'upstream']);

/** Events already made, per item: a shared subscription gives every viewer the same item object. */
const made = new WeakMap<object, LiveEvent>();
/** Labelled events already made: label name → item → label value → event. */
const labelled = new Map<string, WeakMap<object, Map<string, LiveEvent>>>();

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
 * - `event: reset`, `data: {}`: drop what was applied, a snapshot follows;
 * - `event: status`, `data: {"upstream":"lost"}` or `{"upstream":"live"}`: the
 *   subscription's connection to Materialize is gone (it is resuming) or
 *   delivers again; no data, no position.
 *
 * With a `label` (a stream carrying several widgets), the label's field comes
 * first in every event's data (`{"widget_id":"…","mz_timestamp":"…",…}`, a
 * reset `{"widget_id":"…"}`) and progress has no `id`; the event is made once
 * per item object and label value, so the viewers of one widget still share
 * one string.
 *
 * @throws {MaterializeError} INVALID_ARGUMENT for a label whose name is one of
 *   the items' fields, or whose name or value is not a string
 * @example
 * ```ts
 * source: async function* (signal) {
 *   for await (const item of shared.watch(view, { filter, resumeFrom, signal })) yield liveEventOf(item);
 * },
 * // several widgets on one stream: yield liveEventOf(item, { name: 'widget_id', value: widgetId })
 * ```
 */
export function liveEventOf(item: LiveItem<unknown>, label?: LiveEventLabel): LiveEvent {
  if (label !== undefined) return labelledEventOf(item, label);
  if (item.kind === 'reset') return RESET_EVENT;
  if (item.kind === 'status') return STATUS_EVENTS[item.upstream];
  let event = made.get(item);
  if (event === undefined) {
    const timestamp = item.mzTimestamp.toString();
    event =
      item.kind === 'progress'
        ? { event: 'progress', id: timestamp, data: `{"mz_timestamp":"${timestamp}"}` }
        : { event: 'update', data: updateData(item) };
    made.set(item, event);
  }
  return event;
}

function labelledEventOf(item: LiveItem<unknown>, label: LiveEventLabel): LiveEvent {
  const { name, value } = label;
  let byItem = labelled.get(name);
  if (byItem === undefined) {
    if (typeof name !== 'string' || ITEM_FIELDS.has(name)) {
      throw new MaterializeError(
        'INVALID_ARGUMENT',
        `label name must be a string other than ${[...ITEM_FIELDS].join(', ')}`,
      );
    }
    byItem = new WeakMap();
    labelled.set(name, byItem);
  }
  let byValue = byItem.get(item);
  if (byValue === undefined) {
    byValue = new Map();
    byItem.set(item, byValue);
  }
  let event = byValue.get(value);
  if (event === undefined) {
    if (typeof value !== 'string') {
      throw new MaterializeError('INVALID_ARGUMENT', 'label value must be a string');
    }
    const field = `${JSON.stringify(name)}:${JSON.stringify(value)}`;
    switch (item.kind) {
      case 'reset':
        event = { event: 'reset', data: `{${field}}` };
        break;
      case 'status':
        event = { event: 'status', data: `{${field},"upstream":"${item.upstream}"}` };
        break;
      case 'progress':
        event = {
          event: 'progress',
          data: `{${field},"mz_timestamp":"${item.mzTimestamp.toString()}"}`,
        };
        break;
      default: {
        // The row is encoded once per item: reuse the unlabelled event's when it was made.
        const data = made.get(item)?.data ?? updateData(item);
        event = { event: 'update', data: `{${field},${data.slice(1)}` };
      }
    }
    byValue.set(value, event);
  }
  return event;
}

function updateData(item: Extract<LiveItem<unknown>, { kind: 'update' }>): string {
  return JSON.stringify(
    { mz_timestamp: item.mzTimestamp.toString(), mz_diff: item.mzDiff, row: item.row },
    bigintsAsText,
  );
}

/** JSON cannot hold a bigint: it is sent as its decimal text, like mz_timestamp (a JSON.stringify replacer). */
export function bigintsAsText(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
