import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import type { Database } from '@flowforge/db';
import {
  isMaterializeError,
  MaterializeError,
  type Materialize,
  type SubscribeProgress,
  type SubscribeUpdate,
} from '@flowforge/materialize';
import type { Logger } from '@flowforge/observability';
import {
  lastEventIdOf,
  storeNotConfigured,
  type EventStreams,
  type ServerSentEvent,
} from '@flowforge/server';
import { sendEventStream, sendProblem } from '@flowforge/server/fastify';
import {
  requireWidget,
  liveViewOf,
  TENANT_COLUMN,
  WidgetError,
  type WidgetsDB,
} from '@flowforge/widgets';
import { idParams } from './schemas.js';

export interface WidgetStreamRoutesOptions {
  readonly database: Database<WidgetsDB> | null;
  /** `null`: MATERIALIZE_URL is not set, and streams answer 503 naming it. */
  readonly materialize: Materialize | null;
  /** Lets readers through (403 otherwise); authentication already ran. */
  readonly canRead: onRequestHookHandler;
  /** The app's event streams: limits, heartbeats, the end on shutdown. */
  readonly streams: EventStreams;
  readonly logger: Logger;
}

/**
 * The SSE `Last-Event-ID` a reconnecting browser sends back: a progress frontier
 * the stream gave it earlier (every update before it was delivered).
 */
const LAST_EVENT_ID_PATTERN = '^[0-9]{1,20}$';

/**
 * GET /api/v1/widgets/:id/stream: Server-Sent Events of the principal's tenant's
 * rows of a live widget's Materialize view (the tenant filter runs inside the
 * SUBSCRIBE, from the verified principal).
 *
 * - `event: update` per change: `{ mz_timestamp, mz_diff, row }` (no id).
 * - `event: progress` with `id: F` whenever every change before timestamp F has
 *   been sent. A reconnecting browser sends `Last-Event-ID: F` and the stream
 *   resumes there: no change is lost (as far as Materialize still retains
 *   history; otherwise `event: reset` and a fresh snapshot). Updates that came
 *   after the last progress event are sent again: a client applies updates when
 *   the progress event that follows them arrives.
 * - A fresh stream starts with a snapshot of the current rows.
 * - Heartbeats, `event: shutdown`, `event: stream-error` and the limits (429 per
 *   user, 503 per process) are the event streams' (`@flowforge/server`).
 */
export function widgetStreamRoutes(app: FastifyInstance, options: WidgetStreamRoutesOptions): void {
  const { database, materialize, streams, logger } = options;

  app.get<{ Params: { id: string }; Headers: { 'last-event-id'?: string } }>(
    '/api/v1/widgets/:id/stream',
    {
      onRequest: options.canRead,
      schema: {
        params: idParams,
        headers: {
          type: 'object',
          properties: { 'last-event-id': { type: 'string', pattern: LAST_EVENT_ID_PATTERN } },
        },
      },
    },
    async (request, reply) => {
      const { tenantId, userId } = request.principal!;
      if (database === null) throw storeNotConfigured('The database', 'DATABASE_URL');
      const widget = await requireWidget(database, request.principal!, request.params.id);
      const view = liveViewOf(widget.kind, widget.config);
      if (materialize === null) throw storeNotConfigured('Materialize', 'MATERIALIZE_URL');
      // Known to be down (an optional handle retries in the background): fail fast.
      if (materialize.status === 'unavailable' || materialize.status === 'closed') {
        throw new MaterializeError('UNAVAILABLE', 'not connected; retrying in the background');
      }
      const lastEventId = lastEventIdOf(request.headers);
      // Digits only (the schema), but also a timestamp Materialize has: 1 to 2^64 - 1.
      // Anything else is the client's mistake, not a widget that cannot be streamed (409).
      if (lastEventId !== undefined && !isResumePoint(BigInt(lastEventId))) {
        return sendProblem(request, reply, {
          title: 'Bad Request',
          status: 400,
          detail: 'Last-Event-ID is not a position this stream sends.',
        });
      }
      const send = (resumeFrom: bigint | undefined, preamble: readonly ServerSentEvent[] = []) =>
        sendEventStream(request, reply, streams, {
          clientId: userId,
          tenantId,
          preamble,
          source: (signal) => changesOf(materialize, view, tenantId, resumeFrom, signal),
        });
      try {
        return await send(lastEventId === undefined ? undefined : BigInt(lastEventId));
      } catch (error) {
        if (lastEventId === undefined || !isMaterializeError(error, 'HISTORY_UNAVAILABLE')) {
          throw streamRefusal(error);
        }
      }
      // Too old to resume exactly: tell the browser to drop its state, then snapshot.
      logger.info({ view }, 'stream resume point no longer retained; sending a fresh snapshot');
      try {
        return await send(undefined, [{ event: 'reset', data: '{}' }]);
      } catch (error) {
        throw streamRefusal(error);
      }
    },
  );
}

/** The tenant's changes of `view` as events, from `resumeFrom` or from a snapshot. */
async function* changesOf(
  materialize: Materialize,
  view: string,
  tenantId: string,
  resumeFrom: bigint | undefined,
  signal: AbortSignal,
): AsyncGenerator<ServerSentEvent> {
  const changes = materialize.subscribe(view, {
    filter: { [TENANT_COLUMN]: tenantId },
    progress: true,
    signal,
    ...(resumeFrom === undefined ? { snapshot: true } : { resumeFrom }),
  });
  for await (const change of changes) yield eventOf(change);
}

/** Progress ids are Materialize timestamps (u64); resuming needs one after the first. */
function isResumePoint(frontier: bigint): boolean {
  return frontier >= 1n && frontier < 2n ** 64n;
}

function eventOf(change: SubscribeUpdate | SubscribeProgress): ServerSentEvent {
  const timestamp = change.mzTimestamp.toString();
  if (change.kind === 'progress') {
    return { event: 'progress', id: timestamp, data: `{"mz_timestamp":"${timestamp}"}` };
  }
  return {
    event: 'update',
    data: JSON.stringify({ mz_timestamp: timestamp, mz_diff: change.mzDiff, row: change.row }),
  };
}

/**
 * The view comes from the widget's config: one Materialize does not have, or
 * without a tenant column, is the widget's fault (409), not a server bug.
 */
function streamRefusal(error: unknown): unknown {
  return isMaterializeError(error, 'UNKNOWN_VIEW', 'INVALID_ARGUMENT')
    ? new WidgetError(
        'WIDGET_NOT_QUERYABLE',
        "The widget's view cannot be streamed: it does not exist or has no tenant column.",
        { cause: error },
      )
    : error;
}
