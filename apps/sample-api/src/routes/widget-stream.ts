import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Database } from '@flowforge/db';
import {
  isMaterializeError,
  type Materialize,
  type SubscribeProgress,
  type SubscribeUpdate,
} from '@flowforge/materialize';
import type { Logger } from '@flowforge/observability';
import type { AppDB } from '../db/schema.js';
import { sendProblem } from '../problem.js';
import { LAST_EVENT_ID_PATTERN, liveViewOf, TENANT_COLUMN } from '../services/live-widgets.js';
import { storeNotConfigured, widgetNotQueryable } from '../errors.js';
import { findWidget, sendWidgetNotFound } from './widget-data.js';
import { idParams } from './schemas.js';

/** The streams being served, so that shutdown can end them (they never end on their own). */
export interface LiveStreams {
  /** Ends every stream with a `shutdown` event; new streams are refused from now on. */
  endAll(): Promise<void>;
  readonly size: number;
}

interface TrackedStream {
  /** Who holds it: streams are capped per user. */
  readonly userId: string;
  end(): void;
  readonly done: Promise<void>;
}

interface StreamRegistry extends LiveStreams {
  readonly closing: boolean;
  /** Streams `userId` holds now. */
  heldBy(userId: string): number;
  /** Tracks `stream`; one added after shutdown began is ended at once. */
  add(stream: TrackedStream): () => void;
}

/** The registry of live SSE streams of one app. */
export function createLiveStreams(): StreamRegistry {
  const streams = new Set<TrackedStream>();
  let closing = false;
  return {
    get closing() {
      return closing;
    },
    get size() {
      return streams.size;
    },
    heldBy(userId) {
      let count = 0;
      for (const stream of streams) if (stream.userId === userId) count += 1;
      return count;
    },
    add(stream) {
      streams.add(stream);
      // A stream that was still starting when shutdown began: endAll() has passed it by.
      if (closing) stream.end();
      return () => streams.delete(stream);
    },
    async endAll() {
      closing = true;
      const ending = [...streams];
      for (const stream of ending) stream.end();
      await Promise.all(ending.map((stream) => stream.done));
    },
  };
}

export interface WidgetStreamRoutesOptions {
  readonly database: Database<AppDB> | null;
  /** `null`: MATERIALIZE_URL is not set, and streams answer 503 naming it. */
  readonly materialize: Materialize | null;
  /** Lets readers through (403 otherwise); authentication already ran. */
  readonly canRead: onRequestHookHandler;
  readonly streams: StreamRegistry;
  readonly logger: Logger;
  /** How often an idle stream sends a comment line, so proxies keep it open. @default 15_000 */
  readonly heartbeatMs?: number;
  /**
   * Streams open at once in this process; past it, 503 with Retry-After. Each
   * holds a pooled Materialize connection: keep it at or below MATERIALIZE_POOL_SIZE.
   */
  readonly maxStreams: number;
  /** Streams one user may hold at once; past it, 429. @default half of `maxStreams`, at least 2 */
  readonly maxStreamsPerUser?: number;
}

type Change = SubscribeUpdate | SubscribeProgress;

/** How long a browser waits before reconnecting (the SSE `retry` field). */
const RETRY_MS = 2_000;
/** How long a new stream waits for its first item before answering 200 regardless. */
const FIRST_ITEM_WAIT_MS = 2_000;

/** Resolves when `promise` settles or `ms` pass (whichever is first); rejects with its error. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * GET /api/v1/widgets/:id/stream: Server-Sent Events of the principal's tenant's
 * rows of a live widget's Materialize view.
 *
 * - `event: update` per change: `{ mz_timestamp, mz_diff, row }` (no id).
 * - `event: progress` with `id: F` whenever every change before timestamp F has
 *   been sent. A reconnecting browser sends `Last-Event-ID: F` and the stream
 *   resumes there: no change is lost (as far as Materialize still retains
 *   history; otherwise `event: reset` and a fresh snapshot). Updates that came
 *   after the last progress event are sent again: a client applies updates when
 *   the progress event that follows them arrives.
 * - A fresh stream starts with a snapshot of the current rows.
 * - Comment heartbeats; `event: shutdown` when the app stops (the browser reconnects
 *   elsewhere); `event: stream-error` when the stream cannot go on.
 * - At most `maxStreams` at once (503 past it) and `maxStreamsPerUser` per user (429).
 *
 * The tenant filter runs inside Materialize's SUBSCRIBE, from the verified principal.
 */
export function widgetStreamRoutes(app: FastifyInstance, options: WidgetStreamRoutesOptions): void {
  const { database, materialize, streams, logger } = options;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxStreamsPerUser =
    options.maxStreamsPerUser ?? Math.max(2, Math.ceil(options.maxStreams / 2));

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
      const { tenantId } = request.principal!;
      const widget = await findWidget(database, tenantId, request.params.id);
      if (!widget) return sendWidgetNotFound(request, reply);
      const view = liveViewOf(widget.kind, widget.config);
      if (materialize === null) throw storeNotConfigured('Materialize', 'MATERIALIZE_URL');
      const refuse = (status: 429 | 503, detail: string, retryAfter: string) => {
        void reply.header('retry-after', retryAfter);
        return sendProblem(request, reply, {
          title: status === 429 ? 'Too Many Requests' : 'Service Unavailable',
          status,
          detail,
        });
      };
      if (streams.closing) return refuse(503, 'The server is shutting down; reconnect.', '1');
      // Known to be down (an optional handle retries in the background): fail fast.
      if (materialize.status === 'unavailable' || materialize.status === 'closed') {
        return refuse(503, 'Live data is not available right now; try again.', '5');
      }
      if (streams.heldBy(request.principal!.userId) >= maxStreamsPerUser) {
        return refuse(429, `At most ${maxStreamsPerUser} live streams per user at once.`, '5');
      }
      if (streams.size >= options.maxStreams) {
        return refuse(503, 'Every live stream slot is taken; try again shortly.', '5');
      }
      const lastEventId = request.headers['last-event-id'];
      // Digits only (the schema), but also a timestamp Materialize has: 1 to 2^64 - 1.
      // Anything else is the client's mistake, not a widget that cannot be streamed (409).
      if (lastEventId !== undefined && !isResumePoint(BigInt(lastEventId))) {
        return sendProblem(request, reply, {
          title: 'Bad Request',
          status: 400,
          detail: 'Last-Event-ID is not a position this stream sends.',
        });
      }
      return startStream(request, reply, view, tenantId, request.principal!.userId, lastEventId);
    },
  );

  async function startStream(
    request: FastifyRequest,
    reply: FastifyReply,
    view: string,
    tenantId: string,
    userId: string,
    lastEventId: string | undefined,
  ): Promise<FastifyReply> {
    const controller = new AbortController();
    // The browser went away (or the connection broke): cancel the subscription.
    reply.raw.on('close', () => controller.abort(new Error('client disconnected')));
    const open = (resumeFrom: bigint | undefined): AsyncIterator<Change> =>
      materialize!.subscribe(view, {
        filter: { [TENANT_COLUMN]: tenantId },
        progress: true,
        signal: controller.signal,
        ...(resumeFrom === undefined ? { snapshot: true } : { resumeFrom }),
      });

    // The first item (a progress row, at once when Materialize is up) is awaited
    // briefly before answering, so that an unavailable store or a view that does
    // not exist is a problem+json status, not a broken stream. A subscription that
    // is established but quiet is answered anyway once the wait is over.
    let changes = open(lastEventId === undefined ? undefined : BigInt(lastEventId));
    let reset = false;
    let first: Promise<IteratorResult<Change>> = changes.next();
    try {
      await settledWithin(first, FIRST_ITEM_WAIT_MS);
    } catch (error) {
      // The browser left while we waited: nobody to answer, nothing went wrong.
      if (controller.signal.aborted) return reply;
      if (lastEventId === undefined || !isMaterializeError(error, 'HISTORY_UNAVAILABLE')) {
        controller.abort();
        throw streamRefusal(error);
      }
      // Too old to resume exactly: tell the browser to drop its state, then snapshot.
      logger.info({ view }, 'stream resume point no longer retained; sending a fresh snapshot');
      reset = true;
      changes = open(undefined);
      first = changes.next();
      try {
        await settledWithin(first, FIRST_ITEM_WAIT_MS);
      } catch (retryError) {
        controller.abort();
        throw streamRefusal(retryError);
      }
    }

    const body = new PassThrough();
    let ended = false;
    let shutdown = false;
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    const untrack = streams.add({
      userId,
      end: () => {
        shutdown = true;
        controller.abort(new Error('shutting down'));
      },
      done,
    });
    const write = (chunk: string): boolean => !ended && body.write(chunk);
    const heartbeat = setInterval(() => write(': keep-alive\n\n'), heartbeatMs);
    heartbeat.unref();

    void (async () => {
      try {
        write(`retry: ${RETRY_MS}\n\n`);
        if (reset) write('event: reset\ndata: {}\n\n');
        let result = await first;
        while (result.done !== true) {
          if (!write(formatChange(result.value))) {
            await once(body, 'drain', { signal: controller.signal });
          }
          result = await changes.next();
        }
        write('event: end\ndata: {}\n\n');
      } catch (error) {
        if (shutdown) {
          write('event: shutdown\ndata: {}\n\n');
        } else if (!controller.signal.aborted) {
          logger.warn({ err: error, view }, 'live widget stream failed');
          const retryable = isMaterializeError(error) && error.retryable;
          // Not `error`: EventSource fires its own `error` events for connection trouble.
          write(`event: stream-error\ndata: ${JSON.stringify({ retryable })}\n\n`);
        }
      } finally {
        clearInterval(heartbeat);
        await changes.return?.().catch(() => undefined);
        ended = true;
        body.end();
        untrack();
        finished();
      }
    })();

    return reply
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache, no-transform')
      .header('x-accel-buffering', 'no')
      .send(body);
  }
}

/** Progress ids are Materialize timestamps (u64); resuming needs one after the first. */
function isResumePoint(frontier: bigint): boolean {
  return frontier >= 1n && frontier < 2n ** 64n;
}

function formatChange(change: Change): string {
  if (change.kind === 'progress') {
    const frontier = change.mzTimestamp.toString();
    return `event: progress\nid: ${frontier}\ndata: {"mz_timestamp":"${frontier}"}\n\n`;
  }
  // JSON.stringify escapes newlines, so the payload stays on one data: line.
  return `event: update\ndata: ${JSON.stringify({
    mz_timestamp: change.mzTimestamp.toString(),
    mz_diff: change.mzDiff,
    row: change.row,
  })}\n\n`;
}

/**
 * The view comes from the widget's config: one Materialize does not have, or
 * without a tenant column, is the widget's fault (409), not a server bug.
 */
function streamRefusal(error: unknown): unknown {
  return isMaterializeError(error, 'UNKNOWN_VIEW', 'INVALID_ARGUMENT')
    ? widgetNotQueryable(
        "The widget's view cannot be streamed: it does not exist or has no tenant column.",
        { cause: error },
      )
    : error;
}
