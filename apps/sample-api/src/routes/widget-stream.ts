import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import type { Database } from '@flowforge/db';
import {
  MaterializeError,
  isMaterializeError,
  liveEventOf,
  type Materialize,
  type SharedSubscriptions,
} from '@flowforge/materialize';
import { lastEventIdOf, storeNotConfigured, type EventStreams } from '@flowforge/server';
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
  /** The shared subscriptions over `materialize` (null with it). */
  readonly live: SharedSubscriptions | null;
  /** Lets readers through (403 otherwise); authentication already ran. */
  readonly canRead: onRequestHookHandler;
  /** The app's event streams: limits, heartbeats, the end on shutdown. */
  readonly streams: EventStreams;
}

/**
 * The SSE `Last-Event-ID` a reconnecting browser sends back: a progress frontier
 * the stream gave it earlier (every update before it was delivered).
 */
const LAST_EVENT_ID_PATTERN = '^[0-9]{1,20}$';

/**
 * GET /api/v1/widgets/:id/stream: Server-Sent Events of the principal's tenant's
 * rows of a live widget's Materialize view (the tenant filter runs inside the
 * SUBSCRIBE, from the verified principal). Every viewer of one widget view and
 * tenant reads one shared SUBSCRIBE (`createSharedSubscriptions`).
 *
 * - `event: update` per change: `{ mz_timestamp, mz_diff, row }` (no id).
 * - `event: progress` with `id: F` whenever every change before timestamp F has
 *   been sent. A reconnecting browser sends `Last-Event-ID: F` and the stream
 *   resumes there exactly: from the subscription's window of recent changes, or
 *   a catch-up SUBSCRIBE `AS OF` F; `event: reset` and a fresh snapshot only
 *   when Materialize no longer has that history. A client applies updates when
 *   the progress event that follows them arrives.
 * - A fresh stream starts with a snapshot of the current rows.
 * - A viewer that falls behind the window is cut off (`event: stream-error`
 *   with `retryable: true`) and resumes from its last progress when it reconnects.
 * - Heartbeats, `event: shutdown`, `event: stream-error` and the stream limits
 *   (429 per user and tenant, 503 per process) are the event streams'
 *   (`@flowforge/server`); 429 TOO_MANY_SUBSCRIPTIONS and 503 SUBSCRIPTIONS_FULL
 *   bound the distinct subscriptions a tenant and the process hold.
 */
export function widgetStreamRoutes(app: FastifyInstance, options: WidgetStreamRoutesOptions): void {
  const { database, materialize, live, streams } = options;

  app.get<{ Params: { id: string }; Headers: { 'last-event-id'?: string } }>(
    '/api/v1/widgets/:id/stream',
    {
      onRequest: options.canRead,
      // Temporary refusals (429, 503) as an event an EventSource retries after, not a final error.
      config: { eventStream: true },
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
      if (materialize === null || live === null) {
        throw storeNotConfigured('Materialize', 'MATERIALIZE_URL');
      }
      // Known to be down (an optional handle retries in the background): fail fast.
      if (materialize.status === 'unavailable' || materialize.status === 'closed') {
        throw new MaterializeError('UNAVAILABLE', 'not connected; retrying in the background');
      }
      const lastEventId = lastEventIdOf(request.headers);
      // Digits only (the schema), but also a timestamp Materialize has: 1 to 2^64 - 1.
      // Anything else is the client's mistake, not a widget that cannot be streamed (409).
      const resumeFrom = lastEventId === undefined ? undefined : BigInt(lastEventId);
      if (resumeFrom !== undefined && !(resumeFrom >= 1n && resumeFrom < 2n ** 64n)) {
        return sendProblem(request, reply, {
          title: 'Bad Request',
          status: 400,
          detail: 'Last-Event-ID is not a position this stream sends.',
        });
      }
      try {
        return await sendEventStream(request, reply, streams, {
          clientId: userId,
          tenantId,
          source: async function* (signal) {
            const items = live.watch(view, {
              filter: { [TENANT_COLUMN]: tenantId },
              tenantId,
              signal,
              ...(resumeFrom === undefined ? {} : { resumeFrom }),
            });
            for await (const item of items) yield liveEventOf(item);
          },
        });
      } catch (error) {
        throw streamRefusal(error);
      }
    },
  );
}

/**
 * The view comes from the widget's config: one Materialize does not have, or
 * without a tenant column, is the widget's fault (409), not a server bug.
 */
export function streamRefusal(error: unknown): unknown {
  return isMaterializeError(error, 'UNKNOWN_VIEW', 'INVALID_ARGUMENT')
    ? new WidgetError(
        'WIDGET_NOT_QUERYABLE',
        "The widget's view cannot be streamed: it does not exist or has no tenant column.",
        { cause: error },
      )
    : error;
}
