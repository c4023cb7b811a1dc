import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Database } from '@flowforge/db';
import { storeNotConfigured } from '@flowforge/server';
import { sendProblem } from '@flowforge/server/fastify';
import { readWidgetData, type WidgetDataReader } from '@flowforge/widgets';
import type { AppDB } from '../db/schema.js';
import { idParams } from './schemas.js';

export interface WidgetDataRoutesOptions {
  readonly database: Database<AppDB> | null;
  readonly widgetData: WidgetDataReader;
  /** Lets readers through (403 otherwise); authentication already ran. */
  readonly canRead: onRequestHookHandler;
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
  if (database === null) throw storeNotConfigured('The database', 'DATABASE_URL');
  const body = await readWidgetData(database, widgetData, tenantId, request.params.id);
  return body === undefined ? sendWidgetNotFound(request, reply) : reply.send(body);
}

/** GET /api/v1/widgets/:id/data: a metric widget's points from ClickHouse, for the principal's tenant. */
export function widgetDataRoutes(app: FastifyInstance, options: WidgetDataRoutesOptions): void {
  app.get<{ Params: { id: string } }>(
    '/api/v1/widgets/:id/data',
    { onRequest: options.canRead, schema: { params: idParams } },
    (request, reply) => sendWidgetData(request, reply, options.database, options.widgetData),
  );
}
