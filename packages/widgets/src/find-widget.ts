import { assertWidgetScope, type Principal } from '@flowforge/auth';
import type { Database } from '@flowforge/db';
import { isUuid } from '@flowforge/kernel';
import { WidgetError } from './errors.js';
import { liveViewOf } from './live-widgets.js';
import type { WidgetKind, WidgetsDB } from './schema.js';

/** A widget as reading its data or streaming it needs it: its id, kind and stored config. */
export interface StoredWidget {
  /** The widget's UUID. */
  readonly id: string;
  /** What it shows. */
  readonly kind: WidgetKind;
  /** Its stored `config` (checked again when read: a row may predate a rule). */
  readonly config: Readonly<Record<string, unknown>>;
}

/**
 * The widget `id` of `tenantId`, or `undefined` when there is none. Runs in
 * `withTenant(tenantId)`: row-level security hides another tenant's widget, so
 * it is not found either, and a caller answers both with the same 404.
 * `tenantId` must come from the verified principal.
 *
 * @throws {DatabaseError} TENANT_INVALID for a non-UUID tenant; UNAVAILABLE and others from the store
 * @example
 * const widget = await findWidget(database, principal.tenantId, request.params.id);
 * if (widget === undefined) return notFound(); // missing, or another tenant's
 */
export async function findWidget(
  database: Database<WidgetsDB>,
  tenantId: string,
  id: string,
): Promise<StoredWidget | undefined> {
  return database.withTenant(tenantId, (trx) =>
    trx
      .selectFrom('widgets')
      .select(['id', 'kind', 'config'])
      .where('id', '=', id)
      .executeTakeFirst(),
  );
}

/**
 * The widget `id` as `principal` may read it, or a client-safe error a route
 * answers as it is: the one lookup every widget route of every app starts with.
 *
 * @throws {WidgetError} WIDGET_ID_INVALID (400) when `id` is not a UUID; WIDGET_NOT_FOUND (404) when the principal's tenant has none
 * @throws {AuthError} INSUFFICIENT_SCOPE (403) for an API key whose scope lacks it (`assertWidgetScope`)
 * @example
 * const widget = await requireWidget(database, request.principal!, request.params.id);
 */
export async function requireWidget(
  database: Database<WidgetsDB>,
  principal: Principal,
  id: string,
): Promise<StoredWidget> {
  // Checked here, not only by a route schema: Ajv's `uuid` format also takes `urn:uuid:…`.
  if (!isUuid(id)) throw new WidgetError('WIDGET_ID_INVALID', 'The widget id must be a UUID.');
  assertWidgetScope(principal, id);
  const widget = await findWidget(database, principal.tenantId, id);
  if (widget === undefined) throw new WidgetError('WIDGET_NOT_FOUND', 'No widget with this id.');
  return widget;
}

/** A live widget and the Materialize view it streams. */
export interface LiveWidgetView {
  /** The widget's UUID, lower case. */
  readonly id: string;
  /** Its `config.view` (`name` or `schema.name`). */
  readonly view: string;
}

/** The longest list {@link requireLiveViews} takes: a dashboard's live widgets, on one stream. */
export const MAX_LIVE_WIDGETS = 16;

/**
 * The Materialize view of each live widget in `ids` as `principal` may stream
 * it, in the order given, read in one tenant-scoped query (one round trip for
 * a dashboard's worth of widgets instead of one per widget).
 *
 * @throws {WidgetError} WIDGET_ID_INVALID (400) for an empty list, one over {@link MAX_LIVE_WIDGETS}, a repeated id or one that is not a UUID; WIDGET_NOT_FOUND (404) when the tenant lacks one of them; WIDGET_NOT_QUERYABLE (409) for one that is not live or names no valid view
 * @throws {AuthError} INSUFFICIENT_SCOPE (403) for an API key whose scope lacks one
 * @example
 * const views = await requireLiveViews(database, principal, ['0d5c…', '7f1e…']);
 * for (const { id, view } of views) shared.watch(view, { filter: { tenant_id: principal.tenantId } });
 */
export async function requireLiveViews(
  database: Database<WidgetsDB>,
  principal: Principal,
  ids: readonly string[],
): Promise<readonly LiveWidgetView[]> {
  if (ids.length === 0 || ids.length > MAX_LIVE_WIDGETS) {
    throw new WidgetError(
      'WIDGET_ID_INVALID',
      `Between 1 and ${MAX_LIVE_WIDGETS} widget ids, please.`,
    );
  }
  const wanted = ids.map((id) => id.toLowerCase());
  if (new Set(wanted).size !== wanted.length) {
    throw new WidgetError('WIDGET_ID_INVALID', 'A widget id is listed twice.');
  }
  for (const id of wanted) {
    if (!isUuid(id)) throw new WidgetError('WIDGET_ID_INVALID', 'The widget id must be a UUID.');
    assertWidgetScope(principal, id);
  }
  const rows = await database.withTenant(principal.tenantId, (trx) =>
    trx.selectFrom('widgets').select(['id', 'kind', 'config']).where('id', 'in', wanted).execute(),
  );
  const byId = new Map(rows.map((row) => [row.id.toLowerCase(), row]));
  return wanted.map((id) => {
    const widget = byId.get(id);
    // Missing and another tenant's (hidden by row-level security) look the same.
    if (widget === undefined) throw new WidgetError('WIDGET_NOT_FOUND', 'No widget with this id.');
    return { id, view: liveViewOf(widget.kind, widget.config) };
  });
}
