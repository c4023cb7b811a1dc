import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { sql, type Selectable, type Transaction } from 'kysely';
import { isDatabaseError, type Database } from '@flowforge/db';
import type { Principal } from '@flowforge/auth';
import { storeNotConfigured } from '@flowforge/server';
import { sendProblem } from '@flowforge/server/fastify';
import {
  WIDGET_KINDS,
  widgetConfigSchemas,
  type DashboardTable,
  type WidgetKind,
  type WidgetTable,
} from '@flowforge/widgets';
import type { AppDB } from '../db/schema.js';
import { idParams } from './schemas.js';

export interface DashboardRoutesOptions {
  /** `null` when no database is configured: every route answers 503. */
  readonly database: Database<AppDB> | null;
  /** Lets readers through (403 otherwise); authentication already ran. */
  readonly canRead: onRequestHookHandler;
  /** Lets writers through (403 otherwise). */
  readonly canWrite: onRequestHookHandler;
}

const name = { type: 'string', minLength: 1, maxLength: 200 } as const;
const description = { type: ['string', 'null'], maxLength: 2000 } as const;
// Bodies refuse unknown fields (Ajv's removeAdditional is off): a `tenant_id` sent by a
// client is a 400, never used. The tenant comes from the principal only.
const dashboardBody = {
  type: 'object',
  required: ['name'],
  properties: { name, description },
  additionalProperties: false,
} as const;
const dashboardPatch = {
  type: 'object',
  minProperties: 1,
  properties: { name, description },
  additionalProperties: false,
} as const;
// A widget's config follows the data model's rules for its kind (the metric its
// data route reads, the view its stream subscribes to); other fields are the UI's.
const widgetBody = {
  type: 'object',
  required: ['name', 'kind'],
  properties: {
    name,
    kind: { type: 'string', enum: WIDGET_KINDS },
    config: { type: 'object' },
  },
  additionalProperties: false,
  allOf: WIDGET_KINDS.map((kind) => ({
    if: { properties: { kind: { const: kind } } },
    then: { properties: { config: widgetConfigSchemas[kind] } },
  })),
} as const;
const listQuery = {
  type: 'object',
  properties: { limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 } },
  additionalProperties: false,
} as const;

interface DashboardJson {
  id: string;
  name: string;
  description?: string;
  created_by: string;
  created_at: string;
  updated_at: string;
}

function dashboardJson(row: Omit<Selectable<DashboardTable>, never>): DashboardJson {
  return {
    id: row.id,
    name: row.name,
    ...(row.description === null ? {} : { description: row.description }),
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

function widgetJson(row: Selectable<WidgetTable>) {
  return {
    id: row.id,
    dashboard_id: row.dashboard_id,
    name: row.name,
    kind: row.kind,
    config: row.config,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

const DASHBOARD_COLUMNS = [
  'id',
  'name',
  'description',
  'created_by',
  'created_at',
  'updated_at',
] as const;
const WIDGET_COLUMNS = [
  'id',
  'dashboard_id',
  'name',
  'kind',
  'config',
  'created_at',
  'updated_at',
] as const;

/**
 * /api/v1/dashboards (CRUD) and /api/v1/dashboards/:id/widgets. Every query runs
 * in `withTenant(principal.tenantId)`: PostgreSQL's row-level security decides
 * what a tenant sees, so another tenant's id is simply not found (404, never 403:
 * a 403 would confirm that the id exists).
 */
export function dashboardRoutes(app: FastifyInstance, options: DashboardRoutesOptions): void {
  const { database, canRead, canWrite } = options;

  /** The get_db() of the original: the request's tenant transaction. */
  function inTenant<T>(
    request: FastifyRequest,
    fn: (trx: Transaction<AppDB>, principal: Principal) => Promise<T>,
  ): Promise<T> {
    const principal = request.principal!;
    if (database === null) throw storeNotConfigured('The database', 'DATABASE_URL');
    return database.withTenant(principal.tenantId, (trx) => fn(trx, principal));
  }

  const notFound = (request: FastifyRequest, reply: FastifyReply, what: string) =>
    sendProblem(request, reply, {
      title: 'Not Found',
      status: 404,
      detail: `No ${what} with this id.`,
    });

  {
    const api = app;

    api.get<{ Querystring: { limit: number } }>(
      '/api/v1/dashboards',
      { onRequest: canRead, schema: { querystring: listQuery } },
      async (request) => {
        const rows = await inTenant(request, (trx) =>
          trx
            .selectFrom('dashboards')
            .select(DASHBOARD_COLUMNS)
            .orderBy('created_at', 'desc')
            .orderBy('id')
            .limit(request.query.limit)
            .execute(),
        );
        return { items: rows.map(dashboardJson) };
      },
    );

    api.post<{ Body: { name: string; description?: string | null } }>(
      '/api/v1/dashboards',
      { onRequest: canWrite, schema: { body: dashboardBody } },
      async (request, reply) => {
        const row = await inTenant(request, (trx, principal) =>
          trx
            .insertInto('dashboards')
            .values({
              name: request.body.name,
              description: request.body.description ?? null,
              created_by: principal.userId,
            })
            .returning(DASHBOARD_COLUMNS)
            .executeTakeFirstOrThrow(),
        );
        return reply
          .code(201)
          .header('location', `/api/v1/dashboards/${row.id}`)
          .send(dashboardJson(row));
      },
    );

    api.get<{ Params: { id: string } }>(
      '/api/v1/dashboards/:id',
      { onRequest: canRead, schema: { params: idParams } },
      async (request, reply) => {
        const row = await inTenant(request, (trx) =>
          trx
            .selectFrom('dashboards')
            .select(DASHBOARD_COLUMNS)
            .where('id', '=', request.params.id)
            .executeTakeFirst(),
        );
        return row ? dashboardJson(row) : notFound(request, reply, 'dashboard');
      },
    );

    api.patch<{ Params: { id: string }; Body: { name?: string; description?: string | null } }>(
      '/api/v1/dashboards/:id',
      { onRequest: canWrite, schema: { params: idParams, body: dashboardPatch } },
      async (request, reply) => {
        const { name: newName, description: newDescription } = request.body;
        const row = await inTenant(request, (trx) =>
          trx
            .updateTable('dashboards')
            .set({
              ...(newName === undefined ? {} : { name: newName }),
              ...(newDescription === undefined ? {} : { description: newDescription }),
              updated_at: sql<Date>`now()`,
            })
            .where('id', '=', request.params.id)
            .returning(DASHBOARD_COLUMNS)
            .executeTakeFirst(),
        );
        return row ? dashboardJson(row) : notFound(request, reply, 'dashboard');
      },
    );

    api.delete<{ Params: { id: string } }>(
      '/api/v1/dashboards/:id',
      { onRequest: canWrite, schema: { params: idParams } },
      async (request, reply) => {
        const result = await inTenant(request, (trx) =>
          trx.deleteFrom('dashboards').where('id', '=', request.params.id).executeTakeFirst(),
        );
        return result.numDeletedRows === 0n
          ? notFound(request, reply, 'dashboard')
          : reply.code(204).send();
      },
    );

    api.get<{ Params: { id: string } }>(
      '/api/v1/dashboards/:id/widgets',
      { onRequest: canRead, schema: { params: idParams } },
      async (request, reply) => {
        const found = await inTenant(request, async (trx) => {
          const dashboard = await trx
            .selectFrom('dashboards')
            .select('id')
            .where('id', '=', request.params.id)
            .executeTakeFirst();
          if (!dashboard) return null;
          return trx
            .selectFrom('widgets')
            .select(WIDGET_COLUMNS)
            .where('dashboard_id', '=', request.params.id)
            .orderBy('created_at')
            .orderBy('id')
            .execute();
        });
        return found ? { items: found.map(widgetJson) } : notFound(request, reply, 'dashboard');
      },
    );

    api.post<{
      Params: { id: string };
      Body: { name: string; kind: WidgetKind; config?: Record<string, unknown> };
    }>(
      '/api/v1/dashboards/:id/widgets',
      { onRequest: canWrite, schema: { params: idParams, body: widgetBody } },
      async (request, reply) => {
        try {
          const row = await inTenant(request, (trx) =>
            trx
              .insertInto('widgets')
              .values({
                dashboard_id: request.params.id,
                name: request.body.name,
                kind: request.body.kind,
                config: JSON.stringify(request.body.config ?? {}),
              })
              .returning(WIDGET_COLUMNS)
              .executeTakeFirstOrThrow(),
          );
          return await reply.code(201).send(widgetJson(row));
        } catch (error) {
          // The foreign key includes tenant_id: another tenant's dashboard fails it
          // exactly like one that does not exist.
          if (isDatabaseError(error, 'FOREIGN_KEY_VIOLATION')) {
            return notFound(request, reply, 'dashboard');
          }
          throw error;
        }
      },
    );
  }
}
