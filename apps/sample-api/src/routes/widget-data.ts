import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Database } from '@flowforge/db';
import type { Selectable } from 'kysely';
import type { AppDB, WidgetTable } from '../db/schema.js';
import { sendProblem } from '../problem.js';
import type { WidgetDataReader } from '../services/widget-data.js';
import { storeNotConfigured } from '../errors.js';
import { idParams } from './schemas.js';

export interface WidgetDataRoutesOptions {
  readonly database: Database<AppDB> | null;
  readonly widgetData: WidgetDataReader;
  /** Lets readers through (403 otherwise); authentication already ran. */
  readonly canRead: onRequestHookHandler;
}

/** A widget of `tenantId` (another tenant's is not found: RLS), or undefined. */
export async function findWidget(
  database: Database<AppDB> | null,
  tenantId: string,
  id: string,
): Promise<Pick<Selectable<WidgetTable>, 'id' | 'kind' | 'config'> | undefined> {
  if (database === null) throw storeNotConfigured('The database', 'DATABASE_URL');
  return database.withTenant(tenantId, (trx) =>
    trx
      .selectFrom('widgets')
      .select(['id', 'kind', 'config'])
      .where('id', '=', id)
      .executeTakeFirst(),
  );
}

/** The 404 of a widget that does not exist or belongs to another tenant (one body for both). */
export function sendWidgetNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendProblem(request, reply, {
    title: 'Not Found',
    status: 404,
    detail: 'No widget with this id.',
  });
}

/**
 * Looks the widget up in the principal's tenant (another tenant's widget is not
 * found: 404), then reads its data for that same tenant.
 */
export async function sendWidgetData(
  request: FastifyRequest<{ Params: { id: string } }>,
  reply: FastifyReply,
  database: Database<AppDB> | null,
  widgetData: WidgetDataReader,
): Promise<FastifyReply> {
  const { tenantId } = request.principal!;
  const widget = await findWidget(database, tenantId, request.params.id);
  if (!widget) return sendWidgetNotFound(request, reply);
  const data = await widgetData.read(tenantId, widget);
  return reply.send({
    widget_id: widget.id,
    metric: data.metric,
    days: data.days,
    points: data.points,
    cached: data.cached,
  });
}

/** GET /api/v1/widgets/:id/data: a metric widget's points from ClickHouse, for the principal's tenant. */
export function widgetDataRoutes(app: FastifyInstance, options: WidgetDataRoutesOptions): void {
  app.get<{ Params: { id: string } }>(
    '/api/v1/widgets/:id/data',
    { onRequest: options.canRead, schema: { params: idParams } },
    (request, reply) => sendWidgetData(request, reply, options.database, options.widgetData),
  );
}
