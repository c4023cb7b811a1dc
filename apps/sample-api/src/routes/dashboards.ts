import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { sql, type Selectable, type Transaction } from 'kysely';
import { isDatabaseError, type Database } from '@flowforge/db';
import type { Principal } from '@flowforge/auth';
import { storeNotConfigured } from '@flowforge/server';
import { sendProblem } from '@flowforge/server/fastify';
import {
  WIDGET_CONFIG_MAX_BYTES,
  WIDGET_CONFIG_MAX_DEPTH,
  WIDGET_KINDS,
  checkWidgetConfig,
  widgetConfigSchemas,
  type DashboardTable,
  type WidgetTable,
} from '@flowforge/widgets';
import type { AppDB } from '../db/schema.js';
import { createdAtUs, decodeCursor, pageOf, rowOf } from './pagination.js';
import { idParams, pageQuery, pageSchema, type PageQuery } from './schemas.js';

export interface DashboardRoutesOptions {
  /** `null` when no database is configured: every route answers 503. */
  readonly database: Database<AppDB> | null;
  /** Lets readers through (403 otherwise); authentication already ran. */
  readonly canRead: onRequestHookHandler;
  /** Lets writers through (403 otherwise). */
  readonly canWrite: onRequestHookHandler;
}

/**
 * The most bytes a dashboard body may take (`bodyLimit`; over it: 413): a name of
 * 200 and a description of 2,000 characters, at four UTF-8 bytes each, fit twice over.
 */
const DASHBOARD_BODY_LIMIT = 16_384;
/**
 * The most bytes a widget body may take: twice the config's own cap (a client may
 * indent its JSON or escape its text) and room for the name. A body within it whose
 * config is over WIDGET_CONFIG_MAX_BYTES is a 400 that names the cap.
 */
const WIDGET_BODY_LIMIT = 2 * WIDGET_CONFIG_MAX_BYTES + 4_096;
/** Routes that take no body: anything bigger than this is not worth reading. */
const NO_BODY_LIMIT = 1_024;

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
// This schema gives the early 400 and the OpenAPI document; the handler's
// checkWidgetConfig is the check that cannot be skipped (size, depth, exact kind).
const widgetBody = {
  type: 'object',
  required: ['name', 'kind'],
  properties: {
    name,
    // `enum` without `type`: no Ajv coercion can turn ["metric"] into "metric".
    kind: { enum: WIDGET_KINDS },
    config: {
      type: 'object',
      description: `At most ${WIDGET_CONFIG_MAX_BYTES} bytes as compact JSON, nested at most ${WIDGET_CONFIG_MAX_DEPTH} levels.`,
    },
  },
  additionalProperties: false,
  allOf: WIDGET_KINDS.map((kind) => ({
    if: { properties: { kind: { const: kind } } },
    then: { properties: { config: widgetConfigSchemas[kind] } },
  })),
} as const;
const timestamp = { type: 'string', format: 'date-time' } as const;
const dashboardItem = {
  type: 'object',
  required: ['id', 'name', 'created_by', 'created_at', 'updated_at'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    name: { type: 'string' },
    description: { type: 'string' },
    created_by: { type: 'string' },
    created_at: timestamp,
    updated_at: timestamp,
  },
} as const;
const widgetItem = {
  type: 'object',
  required: ['id', 'dashboard_id', 'name', 'kind', 'config', 'created_at', 'updated_at'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    dashboard_id: { type: 'string', format: 'uuid' },
    name: { type: 'string' },
    kind: { type: 'string', enum: WIDGET_KINDS },
    config: { type: 'object', additionalProperties: true },
    created_at: timestamp,
    updated_at: timestamp,
  },
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

  /** The position `request.query.cursor` names in `list`, or `null` (first page); `undefined`: a 400 was sent. */
  const positionOf = (request: FastifyRequest<{ Querystring: PageQuery }>, list: string) => {
    const { cursor } = request.query;
    if (cursor === undefined) return null;
    return decodeCursor(list, cursor);
  };
  const badCursor = (request: FastifyRequest, reply: FastifyReply) =>
    sendProblem(request, reply, {
      title: 'Bad Request',
      status: 400,
      detail:
        "The cursor is not one this list gave out: pass a page's next_cursor as it was, or no cursor for the first page.",
    });

  {
    const api = app;

    // Newest first; each page resumes after the last row of the one before (keyset, never OFFSET).
    api.get<{ Querystring: PageQuery }>(
      '/api/v1/dashboards',
      {
        onRequest: canRead,
        schema: { querystring: pageQuery, response: { 200: pageSchema(dashboardItem) } },
      },
      async (request, reply) => {
        const { limit } = request.query;
        const after = positionOf(request, 'dashboards');
        if (after === undefined) return badCursor(request, reply);
        const rows = await inTenant(request, (trx) =>
          trx
            .selectFrom('dashboards')
            .select([...DASHBOARD_COLUMNS, createdAtUs.as('position_us')])
            .where(
              after === null
                ? sql<boolean>`true`
                : sql<boolean>`(created_at, id) < ${rowOf(after)}`,
            )
            .orderBy('created_at', 'desc')
            .orderBy('id', 'desc')
            .limit(limit + 1)
            .execute(),
        );
        const page = pageOf('dashboards', rows, limit);
        return { items: page.rows.map(dashboardJson), next_cursor: page.nextCursor };
      },
    );

    api.post<{ Body: { name: string; description?: string | null } }>(
      '/api/v1/dashboards',
      { onRequest: canWrite, bodyLimit: DASHBOARD_BODY_LIMIT, schema: { body: dashboardBody } },
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
      {
        onRequest: canWrite,
        bodyLimit: DASHBOARD_BODY_LIMIT,
        schema: { params: idParams, body: dashboardPatch },
      },
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
      { onRequest: canWrite, bodyLimit: NO_BODY_LIMIT, schema: { params: idParams } },
      async (request, reply) => {
        const result = await inTenant(request, (trx) =>
          trx.deleteFrom('dashboards').where('id', '=', request.params.id).executeTakeFirst(),
        );
        return result.numDeletedRows === 0n
          ? notFound(request, reply, 'dashboard')
          : reply.code(204).send();
      },
    );

    // Oldest first, as they were added; keyset pages like the dashboards list.
    api.get<{ Params: { id: string }; Querystring: PageQuery }>(
      '/api/v1/dashboards/:id/widgets',
      {
        onRequest: canRead,
        schema: {
          params: idParams,
          querystring: pageQuery,
          response: { 200: pageSchema(widgetItem) },
        },
      },
      async (request, reply) => {
        const { limit } = request.query;
        // A cursor belongs to one dashboard's list (ids compare in lower case).
        const list = `widgets:${request.params.id.toLowerCase()}`;
        const after = positionOf(request, list);
        if (after === undefined) return badCursor(request, reply);
        const found = await inTenant(request, async (trx) => {
          const dashboard = await trx
            .selectFrom('dashboards')
            .select('id')
            .where('id', '=', request.params.id)
            .executeTakeFirst();
          if (!dashboard) return null;
          return trx
            .selectFrom('widgets')
            .select([...WIDGET_COLUMNS, createdAtUs.as('position_us')])
            .where('dashboard_id', '=', request.params.id)
            .where(
              after === null
                ? sql<boolean>`true`
                : sql<boolean>`(created_at, id) > ${rowOf(after)}`,
            )
            .orderBy('created_at')
            .orderBy('id')
            .limit(limit + 1)
            .execute();
        });
        if (!found) return notFound(request, reply, 'dashboard');
        const page = pageOf(list, found, limit);
        return { items: page.rows.map(widgetJson), next_cursor: page.nextCursor };
      },
    );

    api.post<{
      Params: { id: string };
      Body: { name: string; kind: unknown; config?: unknown };
    }>(
      '/api/v1/dashboards/:id/widgets',
      {
        onRequest: canWrite,
        bodyLimit: WIDGET_BODY_LIMIT,
        schema: { params: idParams, body: widgetBody },
      },
      async (request, reply) => {
        // Whatever the schema let through: exact kind, the kind's rules, size and depth (400s).
        const { kind, configJson } = checkWidgetConfig(
          request.body.kind,
          request.body.config ?? {},
        );
        try {
          const row = await inTenant(request, (trx) =>
            trx
              .insertInto('widgets')
              .values({
                dashboard_id: request.params.id,
                name: request.body.name,
                kind,
                config: configJson,
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
