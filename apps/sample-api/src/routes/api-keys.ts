import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import { createApiKey, revokeApiKey } from '@flowforge/auth';
import type { Database } from '@flowforge/db';
import { storeNotConfigured } from '@flowforge/server';
import { sendProblem } from '@flowforge/server/fastify';
import type { AppDB } from '../db/schema.js';
import { idParams } from './schemas.js';

export interface ApiKeyRoutesOptions {
  readonly database: Database<AppDB> | null;
  /** Only admins manage keys. */
  readonly canManage: onRequestHookHandler;
}

/**
 * The most bytes a key's body may take (`bodyLimit`; over it: 413): a name of 200
 * characters, 100 widget ids and an expiry fit with room to spare.
 */
const API_KEY_BODY_LIMIT = 8_192;
/** DELETE takes no body: anything bigger than this is not worth reading. */
const NO_BODY_LIMIT = 1_024;

const createBody = {
  type: 'object',
  required: ['name', 'widget_ids'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    widget_ids: {
      type: 'array',
      maxItems: 100,
      items: { type: 'string', format: 'uuid' },
    },
    expires_at: { type: ['string', 'null'], format: 'date-time' },
  },
  additionalProperties: false,
} as const;

/** POST /api/v1/api-keys (the plaintext key is in this answer only) and DELETE /api/v1/api-keys/:id. */
export function apiKeyRoutes(app: FastifyInstance, options: ApiKeyRoutesOptions): void {
  const { database, canManage } = options;
  const store = (): Database<AppDB> => {
    if (database === null) throw storeNotConfigured('The database', 'DATABASE_URL');
    return database;
  };

  app.post<{ Body: { name: string; widget_ids: string[]; expires_at?: string | null } }>(
    '/api/v1/api-keys',
    { onRequest: canManage, bodyLimit: API_KEY_BODY_LIMIT, schema: { body: createBody } },
    async (request, reply) => {
      const principal = request.principal!;
      const db = store();
      // Lower-cased, then de-duplicated: the same UUID in two cases is one widget.
      const widgetIds = [...new Set(request.body.widget_ids.map((id) => id.toLowerCase()))];
      if (widgetIds.length > 0) {
        const found = await db.withTenant(principal.tenantId, (trx) =>
          trx.selectFrom('widgets').select('id').where('id', 'in', widgetIds).execute(),
        );
        if (found.length !== widgetIds.length) {
          // Another tenant's widget and a missing one look the same.
          return sendProblem(request, reply, {
            title: 'Bad Request',
            status: 400,
            detail: 'widget_ids names widgets that do not exist.',
          });
        }
      }
      const expiresAt = request.body.expires_at ? new Date(request.body.expires_at) : null;
      const created = await createApiKey(db, principal.tenantId, {
        name: request.body.name,
        widgetIds,
        createdBy: principal.userId,
        expiresAt,
      });
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .send({
          id: created.id,
          key: created.key,
          prefix: created.prefix,
          widget_ids: created.widgetIds,
          expires_at: created.expiresAt?.toISOString() ?? null,
        });
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/api-keys/:id',
    { onRequest: canManage, bodyLimit: NO_BODY_LIMIT, schema: { params: idParams } },
    async (request, reply) => {
      const revoked = await revokeApiKey(store(), request.principal!.tenantId, request.params.id);
      return revoked
        ? reply.code(204).send()
        : sendProblem(request, reply, {
            title: 'Not Found',
            status: 404,
            detail: 'No active API key with this id.',
          });
    },
  );
}
