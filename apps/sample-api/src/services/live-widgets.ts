import type { WidgetKind } from '../db/schema.js';
import { widgetNotQueryable } from '../errors.js';

/**
 * A Materialize view name as live widgets may name it: `name` or `schema.name`,
 * plain identifiers only. @flowforge/materialize validates and quotes it again.
 */
export const VIEW_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,62}(\\.[A-Za-z_][A-Za-z0-9_]{0,62})?$';

/** The column of every streamable view that holds the tenant id; the stream filters on it. */
export const TENANT_COLUMN = 'tenant_id';

/**
 * The Materialize view a live widget streams, from its stored config (validated
 * at write time, checked again here: rows may predate the rule): 409 otherwise.
 */
export function liveViewOf(kind: WidgetKind, config: Readonly<Record<string, unknown>>): string {
  if (kind !== 'live') {
    throw widgetNotQueryable('Only live widgets stream; read a metric widget at /data.');
  }
  const view = config.view;
  if (typeof view !== 'string') {
    throw widgetNotQueryable("The widget's `config.view` names no Materialize view.");
  }
  if (!new RegExp(VIEW_NAME_PATTERN).test(view)) {
    throw widgetNotQueryable("The widget's `config.view` is not a valid view name.");
  }
  return view;
}

/**
 * The SSE `Last-Event-ID` a reconnecting browser sends back: a progress frontier
 * the stream gave it earlier (every update before it was delivered).
 */
export const LAST_EVENT_ID_PATTERN = '^[0-9]{1,20}$';
