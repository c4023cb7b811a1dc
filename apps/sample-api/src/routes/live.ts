import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import {
  bindPrincipal,
  type ApiKeyWatch,
  type Principal,
  type RedeemedTicket,
  type StreamTickets,
} from '@flowforge/auth';
import type { Database } from '@flowforge/db';
import {
  MaterializeError,
  liveEventOf,
  type Materialize,
  type SharedSubscriptions,
} from '@flowforge/materialize';
import {
  mergeEventSources,
  storeNotConfigured,
  type EventSource,
  type EventStreams,
  type ServerSentEvent,
} from '@flowforge/server';
import { sendEventStream } from '@flowforge/server/fastify';
import {
  MAX_LIVE_WIDGETS,
  TENANT_COLUMN,
  requireLiveViews,
  type WidgetsDB,
} from '@flowforge/widgets';
import { streamRefusal } from './widget-stream.js';

export interface LiveRoutesOptions {
  readonly database: Database<WidgetsDB> | null;
  /** `null`: MATERIALIZE_URL is not set, and tickets and streams answer 503 naming it. */
  readonly materialize: Materialize | null;
  /** The shared subscriptions over `materialize` (null with it). */
  readonly live: SharedSubscriptions | null;
  /** The app's event streams: limits, heartbeats, the end on shutdown. */
  readonly streams: EventStreams;
  /** Issues and redeems the single-use tickets a browser opens its stream with. */
  readonly tickets: StreamTickets;
  /** Ends the streams of an API key once it is revoked. */
  readonly apiKeyWatch: ApiKeyWatch;
}

/** Where a ticket's stream is: the answer's `url` (relative, so it works behind any proxy path). */
const LIVE_STREAM_PATH = '/live/v1/stream';

/** A frontier as progress events give it: what a reconnect passes back in `resume`. */
const FRONTIER_PATTERN = '^[0-9]{1,20}$';

/** A ticket's body: a dashboard's live widgets at most, and where each resumes. */
const ticketBody = {
  type: 'object',
  required: ['widget_ids'],
  properties: {
    widget_ids: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_LIVE_WIDGETS,
      items: { type: 'string', format: 'uuid' },
    },
    resume: {
      type: 'object',
      maxProperties: MAX_LIVE_WIDGETS,
      propertyNames: { format: 'uuid' },
      additionalProperties: { type: 'string', pattern: FRONTIER_PATTERN },
      description:
        "Widget id → the `mz_timestamp` of the last `progress` event received for it: the stream resumes each exactly there (a reconnect's; a first connection sends none).",
    },
  },
  additionalProperties: false,
} as const;

interface TicketBody {
  readonly widget_ids: string[];
  readonly resume?: Record<string, string>;
}

/** 16 widget ids, a resume point each and the JSON around them fit in 4 KiB with room to spare. */
const TICKET_BODY_LIMIT = 4_096;

/**
 * POST …/live/tickets: a single-use ticket for one stream of up to 16 live
 * widgets, for the principal an earlier hook authenticated (a bearer token
 * under /api, an API key under /embed). Register it in each scope at its prefix.
 * Every widget is checked now (404, 403 out of an API key's scope, 409 not
 * live), so a browser learns a permanent refusal from a status code, which an
 * `EventSource` cannot show it.
 */
export function liveTicketRoutes(
  app: FastifyInstance,
  prefix: '/api/v1' | '/embed/v1',
  options: LiveRoutesOptions & {
    /** Lets readers through (403 otherwise); authentication already ran. */
    readonly canRead?: onRequestHookHandler;
  },
): void {
  const { database, materialize, live, tickets } = options;
  app.post<{ Body: TicketBody }>(
    `${prefix}/live/tickets`,
    {
      ...(options.canRead === undefined ? {} : { onRequest: options.canRead }),
      bodyLimit: TICKET_BODY_LIMIT,
      schema: { body: ticketBody },
    },
    async (request, reply) => {
      const principal = request.principal!;
      if (database === null) throw storeNotConfigured('The database', 'DATABASE_URL');
      if (materialize === null || live === null) {
        throw storeNotConfigured('Materialize', 'MATERIALIZE_URL');
      }
      const widgets = await requireLiveViews(database, principal, request.body.widget_ids);
      const resume = resumePoints(request.body.resume ?? {}, widgets);
      const { ticket, expiresAt } = await tickets.issue(principal, {
        widgetIds: widgets.map((widget) => widget.id),
        resume,
      });
      return reply.code(201).send({
        ticket,
        expires_at: expiresAt.toISOString(),
        url: `${LIVE_STREAM_PATH}?ticket=${encodeURIComponent(ticket)}`,
      });
    },
  );
}

/** The resume points of the ticket's widgets, lower-cased like their ids; one for another widget is ignored. */
function resumePoints(
  given: Readonly<Record<string, string>>,
  widgets: readonly { readonly id: string }[],
): Record<string, string> {
  const ids = new Set(widgets.map((widget) => widget.id));
  const resume: Record<string, string> = {};
  for (const [id, frontier] of Object.entries(given)) {
    if (ids.has(id.toLowerCase())) resume[id.toLowerCase()] = frontier;
  }
  return resume;
}

/**
 * GET /live/v1/stream?ticket=…: one Server-Sent Events stream for every widget
 * of the ticket (one connection per tab, whatever the widget count: browsers
 * open at most six per origin over HTTP/1.1). No header authenticates it; the
 * ticket does, once. Each widget's events carry `widget_id`; see the README's
 * event table. The stream ends with `credential-expired` when the token or key
 * that got the ticket expires, and with `revoked` when its API key is revoked.
 */
export function liveStreamRoutes(app: FastifyInstance, options: LiveRoutesOptions): void {
  const { database, materialize, live, streams, tickets, apiKeyWatch } = options;
  app.get<{ Querystring: { ticket: string } }>(
    LIVE_STREAM_PATH,
    {
      config: { eventStream: true },
      schema: {
        querystring: {
          type: 'object',
          required: ['ticket'],
          properties: { ticket: { type: 'string', minLength: 1, maxLength: 256 } },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const redeemed = await tickets.redeem(request.query.ticket);
      const { principal } = redeemed;
      request.principal = principal;
      bindPrincipal(principal);
      if (database === null) throw storeNotConfigured('The database', 'DATABASE_URL');
      if (materialize === null || live === null) {
        throw storeNotConfigured('Materialize', 'MATERIALIZE_URL');
      }
      // Looked up again: a widget may have been deleted or changed since the ticket was issued.
      const widgets = await requireLiveViews(database, principal, redeemed.widgetIds);
      if (materialize.status === 'unavailable' || materialize.status === 'closed') {
        throw new MaterializeError('UNAVAILABLE', 'not connected; retrying in the background');
      }
      const sources = widgets.map(
        ({ id, view }): EventSource =>
          async function* widgetEvents(signal) {
            const resumeFrom = redeemed.resume[id];
            const label = { name: 'widget_id', value: id };
            const items = live.watch(view, {
              filter: { [TENANT_COLUMN]: principal.tenantId },
              tenantId: principal.tenantId,
              signal,
              ...(resumeFrom === undefined ? {} : { resumeFrom: BigInt(resumeFrom) }),
            });
            for await (const item of items) yield liveEventOf(item, label);
          },
      );
      try {
        return await sendEventStream(request, reply, streams, {
          clientId: clientIdOf(principal, request.ip),
          tenantId: principal.tenantId,
          source: untilCredentialEnds(mergeEventSources(sources), redeemed, apiKeyWatch),
        });
      } catch (error) {
        throw streamRefusal(error);
      }
    },
  );
}

/**
 * Whose share of the per-client stream limit a stream takes. An embed key is
 * used by every visitor of the site that embeds it, so its streams count per
 * key and visitor address, not per key (one site's visitors would share four).
 */
function clientIdOf(principal: Principal, ip: string): string {
  return principal.method === 'api_key' ? `api-key:${principal.apiKeyId}:${ip}` : principal.userId;
}

/** The longest a timer waits (about 24.8 days); a later expiry is re-armed by the next stream. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const CREDENTIAL_EXPIRED: ServerSentEvent = Object.freeze({
  event: 'credential-expired',
  data: '{}',
});
const REVOKED: ServerSentEvent = Object.freeze({ event: 'revoked', data: '{}' });

/**
 * `source`, ended by the credential behind the ticket: at its expiry with
 * `event: credential-expired` (the browser reconnects with a fresh one), and
 * when its API key is revoked with `event: revoked` (it does not).
 */
function untilCredentialEnds(
  source: EventSource,
  redeemed: RedeemedTicket,
  apiKeyWatch: ApiKeyWatch,
): EventSource {
  return async function* (signal) {
    const stop = new AbortController();
    const both = AbortSignal.any([signal, stop.signal]);
    const endings: Promise<ServerSentEvent>[] = [];
    const expiresAt = redeemed.credentialExpiresAt;
    if (expiresAt !== null) {
      endings.push(
        new Promise((resolve) => {
          const timer = setTimeout(
            () => resolve(CREDENTIAL_EXPIRED),
            Math.min(MAX_TIMER_MS, Math.max(0, expiresAt.getTime() - Date.now())),
          );
          both.addEventListener('abort', () => clearTimeout(timer), { once: true });
        }),
      );
    }
    if (redeemed.principal.apiKeyId !== undefined) {
      endings.push(
        apiKeyWatch
          .until(redeemed.principal, both)
          .then((why) => (why === 'revoked' ? REVOKED : CREDENTIAL_EXPIRED)),
      );
    }
    const ended =
      endings.length === 0 ? undefined : Promise.race(endings).then((event) => ({ ending: event }));
    // An ending that never comes (the stream ended first, aborting the watch) must not reject unhandled.
    ended?.catch(() => undefined);
    const events = source(both);
    try {
      let next = events.next();
      for (;;) {
        const result = await (ended === undefined ? next : Promise.race([next, ended]));
        if ('ending' in result) {
          yield result.ending;
          return;
        }
        if (result.done === true) return;
        yield result.value;
        next = events.next();
      }
    } finally {
      stop.abort();
      await events.return?.();
    }
  };
}
