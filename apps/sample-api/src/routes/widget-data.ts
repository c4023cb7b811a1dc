import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Database } from '@flowforge/db';
import { storeNotConfigured } from '@flowforge/server';
import { readWidgetData, type WidgetDataBody, type WidgetDataReader } from '@flowforge/widgets';
import type { AppDB } from '../db/schema.js';
import { idParams } from './schemas.js';

export interface WidgetDataRoutesOptions {
  readonly database: Database<AppDB> | null;
  readonly widgetData: WidgetDataReader;
}

/**
 * The widget's data as the request's principal may read it: in its tenant
 * (another tenant's widget is not found: 404), an API key only its widgets (403).
 */
function widgetDataOf(
  request: FastifyRequest<{ Params: { id: string } }>,
  { database, widgetData }: WidgetDataRoutesOptions,
): Promise<WidgetDataBody> {
  if (database === null) throw storeNotConfigured('The database', 'DATABASE_URL');
  return readWidgetData(database, widgetData, request.principal!, request.params.id);
}

/** GET /api/v1/widgets/:id/data: a metric widget's points from ClickHouse, for the principal's tenant. */
export function widgetDataRoutes(
  app: FastifyInstance,
  options: WidgetDataRoutesOptions & {
    /** Lets readers through (403 otherwise); authentication already ran. */
    readonly canRead: onRequestHookHandler;
  },
): void {
  app.get<{ Params: { id: string } }>(
    '/api/v1/widgets/:id/data',
    { onRequest: options.canRead, schema: { params: idParams } },
    (request) => widgetDataOf(request, options),
  );
}

/** GET /embed/v1/widgets/:id/data, for API keys: the same data, only for widgets in the key's scope. */
export function embedRoutes(app: FastifyInstance, options: WidgetDataRoutesOptions): void {
  app.get<{ Params: { id: string } }>(
    '/embed/v1/widgets/:id/data',
    { schema: { params: idParams } },
    (request) => widgetDataOf(request, options),
  );
}
