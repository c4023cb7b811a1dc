import { widgetNotQueryable } from './errors.js';
import type { WidgetKind } from './schema.js';

/**
 * A Materialize view name as live widgets may name it (`config.view`): `name`
 * or `schema.name`, plain identifiers only. @flowforge/materialize validates
 * and quotes it again.
 */
export const VIEW_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,62}(\\.[A-Za-z_][A-Za-z0-9_]{0,62})?$';
const VIEW_NAME = new RegExp(VIEW_NAME_PATTERN);

/** The column of every streamable view that holds the tenant id; a live widget's stream filters on it. */
export const TENANT_COLUMN = 'tenant_id';

/**
 * The Materialize view a live widget streams, from its stored config
 * (validated when written, {@link widgetConfigSchemas}; checked again here,
 * since a row may predate the rule).
 * @throws {WidgetError} WIDGET_NOT_QUERYABLE (409) for a widget that is not `live`, or a missing or invalid `config.view`
 */
export function liveViewOf(kind: WidgetKind, config: Readonly<Record<string, unknown>>): string {
  if (kind !== 'live') {
    throw widgetNotQueryable("Only live widgets stream; read a metric widget's data instead.");
  }
  const view = config.view;
  if (typeof view !== 'string') {
    throw widgetNotQueryable("The widget's `config.view` names no Materialize view.");
  }
  if (!VIEW_NAME.test(view)) {
    throw widgetNotQueryable("The widget's `config.view` is not a valid view name.");
  }
  return view;
}
