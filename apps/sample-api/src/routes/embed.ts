import type { FastifyInstance } from 'fastify';
import { assertWidgetScope } from '@flowforge/auth';
import type { Database } from '@flowforge/db';
import type { AppDB } from '../db/schema.js';
import { sendProblem } from '../problem.js';
import { DatabaseNotConfigured } from './dashboards.js';
import { idParams } from './schemas.js';

export interface EmbedRoutesOptions {
  readonly database: Database<AppDB> | null;
}

/**
 * GET /embed/v1/widgets/:id/data, for API keys: only widgets in the key's scope
 * (403 otherwise), only in the key's tenant (row-level security: 404).
 */
export function embedRoutes(app: FastifyInstance, options: EmbedRoutesOptions): void {
  app.get<{ Params: { id: string } }>(
    '/embed/v1/widgets/:id/data',
    { schema: { params: idParams } },
    async (request, reply) => {
      const principal = request.principal!;
      assertWidgetScope(principal, request.params.id);
      if (options.database === null) throw new DatabaseNotConfigured();
      const widget = await options.database.withTenant(principal.tenantId, (trx) =>
        trx
          .selectFrom('widgets')
          .select(['id', 'kind'])
          .where('id', '=', request.params.id)
          .executeTakeFirst(),
      );
      if (!widget) {
        return sendProblem(request, reply, {
          title: 'Not Found',
          status: 404,
          detail: 'No widget with this id.',
        });
      }
      // Widget data comes from ClickHouse (@flowforge/clickhouse, not built yet).
      return sendProblem(request, reply.header('retry-after', '60'), {
        title: 'Service Unavailable',
        status: 503,
        detail: 'Widget data comes from ClickHouse, which is not configured (CLICKHOUSE_URL).',
      });
    },
  );
}
