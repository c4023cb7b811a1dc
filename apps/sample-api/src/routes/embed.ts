import type { FastifyInstance } from 'fastify';
import { assertWidgetScope } from '@flowforge/auth';
import type { Database } from '@flowforge/db';
import type { WidgetDataReader } from '@flowforge/widgets';
import type { AppDB } from '../db/schema.js';
import { idParams } from './schemas.js';
import { sendWidgetData } from './widget-data.js';

export interface EmbedRoutesOptions {
  readonly database: Database<AppDB> | null;
  readonly widgetData: WidgetDataReader;
}

/**
 * GET /embed/v1/widgets/:id/data, for API keys: only widgets in the key's scope
 * (403 otherwise), only in the key's tenant (row-level security: 404).
 */
export function embedRoutes(app: FastifyInstance, options: EmbedRoutesOptions): void {
  app.get<{ Params: { id: string } }>(
    '/embed/v1/widgets/:id/data',
    { schema: { params: idParams } },
    (request, reply) => {
      assertWidgetScope(request.principal!, request.params.id);
      return sendWidgetData(request, reply, options.database, options.widgetData);
    },
  );
}
