import { assertWidgetScope, type Principal } from '@flowforge/auth';
import type { Database } from '@flowforge/db';
import { isUuid } from '@flowforge/kernel';
import { WidgetError } from './errors.js';
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
