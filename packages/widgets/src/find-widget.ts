import type { Database } from '@flowforge/db';
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
