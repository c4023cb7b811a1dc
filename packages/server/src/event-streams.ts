import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { isFlowForgeError, OptionChecks } from '@flowforge/kernel';
import type { Logger } from '@flowforge/observability';
import { ServerError } from './errors.js';
import { whenAborted } from './internal/http.js';
import type { Component } from './lifecycle.js';

/**
 * One Server-Sent Event.
 *
 * An event object must not be changed once it was sent: its wire text is
 * cached per object (see {@link formatServerSentEvent}). Sending one object to
 * many streams (a shared subscription's update fanned out to every viewer)
 * formats it once; build a new object for a new event.
 */
export interface ServerSentEvent {
  /** The `event:` field; absent: a `message` event. */
  readonly event?: string;
  /**
   * The `id:` field: what a reconnecting browser sends back as `Last-Event-ID`.
   * Only ids that are positions the source can resume from belong here.
   */
  readonly id?: string;
  /** The `data:` field, already serialised (JSON, usually); a line break starts another `data:` line. */
  readonly data: string;
}

/** The events a stream sends, made once the stream's `signal` exists (it aborts when the stream ends). */
export type EventSource = (signal: AbortSignal) => AsyncIterator<ServerSentEvent>;

/** Options of {@link createEventStreams}. */
export interface EventStreamsOptions {
  /** Streams open at once in this process; past it, `STREAMS_FULL` (503). @default 100 */
  readonly maxStreams?: number;
  /** Streams one client (user, API key) may hold at once; past it, `TOO_MANY_STREAMS` (429). @default half of `maxStreams`, at least 2 */
  readonly maxStreamsPerClient?: number;
  /**
   * Streams the clients of one tenant may hold together; past it,
   * `TOO_MANY_STREAMS` (429). It keeps one tenant's users from taking every
   * slot of the process from the others (a per-client cap alone does not: two
   * users of one tenant held all five). Streams opened without a `tenantId` are
   * not counted. @default half of `maxStreams`, rounded up
   */
  readonly maxStreamsPerTenant?: number;
  /** How often an idle stream sends a comment, so proxies keep it open, in ms. @default 15_000 */
  readonly heartbeatMs?: number;
  /** How long a browser waits before reconnecting (the `retry:` field), in ms. @default 2_000 */
  readonly retryMs?: number;
  /**
   * How long {@link EventStreams.open} waits for the first event, in ms, so
   * that a source failing at once (a store down, a name that does not exist)
   * is an error the route answers with a status, not a broken stream. A source
   * that is quiet that long is answered anyway. @default 2_000
   */
  readonly firstEventWaitMs?: number;
  /**
   * How long a stream waits for a client that stopped reading (its buffer full),
   * in ms, before it ends that stream and cuts the connection: the source (a
   * database subscription, say) is not held for a reader that is gone. @default 30_000
   */
  readonly stalledClientMs?: number;
  /** Gets a warning for each stream that fails after it began. */
  readonly logger: Logger;
}

/** What one stream is made of. */
export interface OpenEventStream {
  /** Whose share of `maxStreamsPerClient` the stream counts against: the user id. */
  readonly clientId: string;
  /** Whose share of `maxStreamsPerTenant` the stream counts against: the principal's tenant. */
  readonly tenantId?: string;
  /** The events to send. */
  readonly source: EventSource;
  /** Events sent before the source's (after `retry:`), e.g. a `reset` telling the browser to drop its state. */
  readonly preamble?: readonly ServerSentEvent[];
  /** Aborts the stream: the client went away. The framework bindings pass the response's. */
  readonly signal?: AbortSignal;
}

/** A stream that began: send `headers` and `body` as the response. */
export interface EventStream {
  /** `content-type: text/event-stream`, no caching, no proxy buffering. */
  readonly headers: Readonly<Record<string, string>>;
  /** The response body; it ends when the stream does. */
  readonly body: Readable;
  /** Resolves once the stream ended and its source was closed. */
  readonly done: Promise<void>;
}

/**
 * Every event stream of one service: the limits, and the end of all of them
 * when the service stops. It is a lifecycle component: `drain` ends every stream
 * with `event: shutdown` (browsers reconnect, to another instance) and refuses
 * new ones, `stop` waits until each has closed its source.
 */
export interface EventStreams extends Component {
  readonly name: 'event-streams';
  /**
   * Begins a stream: checks the limits, starts the source and waits briefly
   * for its first event (see `firstEventWaitMs`).
   *
   * What it sends: `retry:`, the preamble, each event of the source, a
   * `: keep-alive` comment when idle, and at the end one of `event: end` (the
   * source finished), `event: shutdown` (the service stops) or
   * `event: stream-error` with `{"retryable": boolean}` (the source failed; not
   * `error`, which EventSource uses for its own connection trouble).
   *
   * @throws {ServerError} SHUTTING_DOWN, TOO_MANY_STREAMS, STREAMS_FULL
   * @throws the source's own error when it fails before its first event, or
   *   the `signal`'s reason when the client left while waiting
   */
  open(options: OpenEventStream): Promise<EventStream>;
  /** Streams open now. */
  readonly size: number;
  /** Streams `clientId` holds now. */
  heldBy(clientId: string): number;
  /** Streams the clients of `tenantId` hold now. */
  heldByTenant(tenantId: string): number;
  /** Ends every stream with `event: shutdown` and refuses new ones. */
  drain(): void;
  /** Drains, then resolves once every stream has closed its source, or when `signal` (the shutdown deadline) aborts. */
  stop(signal?: AbortSignal): Promise<void>;
}

/**
 * The headers of every event stream. `Connection: close`: the socket closes when
 * the stream ends, whatever ends it, so a browser reconnects on a new connection
 * (which a load balancer may send to another instance) rather than reusing a
 * keep-alive socket to the instance that just said `shutdown`.
 */
const STREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'close',
});

/** What {@link eventStreamRefusal} needs of a refusal: an error answer's status, code and Retry-After. */
export interface RefusalOfEventStream {
  /** The HTTP status the refusal would have had. Only 429 and 503 are temporary. */
  readonly status: number;
  /** The error's code (`TOO_MANY_STREAMS`); absent: `TOO_MANY_REQUESTS` or `SERVICE_UNAVAILABLE`. */
  readonly code?: string | undefined;
  /** Seconds to wait before reconnecting (the answer's `Retry-After`); absent: 5. */
  readonly retryAfterSeconds?: number | undefined;
}

/** A temporary refusal of an event stream, as the `200 text/event-stream` response that says it. */
export interface EventStreamRefusal {
  /** 429 or 503: the status the refusal stands for (the response itself is 200). */
  readonly status: 429 | 503;
  /** The code in the `refused` event. */
  readonly code: string;
  /** The delay in the `retry:` field and the event's `retry_after_ms`. */
  readonly retryAfterMs: number;
  /** The event stream's headers (`Connection: close` included) and the body's length. */
  readonly headers: Readonly<Record<string, string>>;
  /** `retry: <ms>`, then one `event: refused` with `{"status","code","retry_after_ms"}`. */
  readonly body: string;
}

/** The delay of a temporary refusal that names none: long enough not to hammer an instance that is full. */
const DEFAULT_REFUSAL_RETRY_MS = 5_000;

/**
 * The answer to a temporary refusal (429 or 503) of an event stream route, as an
 * event stream; `undefined` for any other status (a 401, 403 or 404 is final and
 * stays a problem). A browser's EventSource treats every answer but a 200
 * `text/event-stream` as final: it never retries a 503 and ignores
 * `Retry-After`. So the refusal is sent as a stream that says so: `retry:` with
 * the delay (EventSource waits that long before it reconnects by itself), one
 * `event: refused` whose data is `{"status":429|503,"code":"…","retry_after_ms":N}`,
 * and the end (the connection closes). The delay is `retryAfterSeconds` × 1000,
 * else 5000 ms. The framework bindings send it for you (Fastify: routes with
 * `config: { eventStream: true }`; node: `sendEventStream`, `sendEventStreamError`).
 *
 * @example
 * ```ts
 * const refusal = eventStreamRefusal({ status: 503, code: 'STREAMS_FULL', retryAfterSeconds: 5 });
 * // refusal?.body === 'retry: 5000

event: refused
data: {"status":503,"code":"STREAMS_FULL","retry_after_ms":5000}

'
 * ```
 */
export function eventStreamRefusal(refusal: RefusalOfEventStream): EventStreamRefusal | undefined {
  const { status } = refusal;
  if (status !== 429 && status !== 503) return undefined;
  const code = refusal.code ?? (status === 429 ? 'TOO_MANY_REQUESTS' : 'SERVICE_UNAVAILABLE');
  const seconds = refusal.retryAfterSeconds;
  const retryAfterMs =
    seconds !== undefined && Number.isFinite(seconds) && seconds >= 0
      ? Math.round(seconds * 1000)
      : DEFAULT_REFUSAL_RETRY_MS;
  const data = JSON.stringify({ status, code, retry_after_ms: retryAfterMs });
  const body = `retry: ${retryAfterMs}\n\n${formatServerSentEvent({ event: 'refused', data })}`;
  return {
    status,
    code,
    retryAfterMs,
    headers: { ...STREAM_HEADERS, 'content-length': String(Buffer.byteLength(body)) },
    body,
  };
}

/** The longest `Last-Event-ID` accepted: ids are positions, never payloads. */
const MAX_LAST_EVENT_ID = 1024;

/**
 * The `Last-Event-ID` a reconnecting browser sends back (the `id` of the last
 * event it received), or `undefined` on a first connection. What it means is the
 * source's to say (a position it can resume from); this refuses what no id the
 * stream sent can be.
 *
 * @throws {ServerError} LAST_EVENT_ID_INVALID (400) for one over 1024 characters or with a control character
 * @example
 * ```ts
 * const resumeFrom = lastEventIdOf(request.headers); // then hand it to the source
 * ```
 */
export function lastEventIdOf(headers: IncomingHttpHeaders): string | undefined {
  const value = headers['last-event-id'];
  if (value === undefined) return undefined;
  const id = Array.isArray(value) ? value.join(', ') : value;
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (id.length > MAX_LAST_EVENT_ID || /[\u0000-\u001f\u007f]/.test(id)) {
    throw new ServerError('LAST_EVENT_ID_INVALID', 'Last-Event-ID is not an id this stream sends.');
  }
  return id;
}

/**
 * The wire text of each event object formatted so far. Events are readonly by
 * contract, so one object sent to thousands of streams is formatted once; weak,
 * so an event nobody holds any more takes its text with it.
 */
const formatted = new WeakMap<ServerSentEvent, string>();

/**
 * One event in the wire format. The text is cached per event object, so an
 * event must not be changed after it was formatted (or sent).
 */
export function formatServerSentEvent(event: ServerSentEvent): string {
  let text = formatted.get(event);
  if (text !== undefined) return text;
  text = event.event === undefined ? '' : `event: ${singleLine(event.event)}\n`;
  if (event.id !== undefined) text += `id: ${singleLine(event.id)}\n`;
  for (const line of event.data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
  text += '\n';
  formatted.set(event, text);
  return text;
}

/** A field other than data cannot span lines: a line break would start a forged field. */
function singleLine(value: string): string {
  return value.replace(/[\r\n]/g, '');
}

/**
 * How many streams each key (a client, a tenant) holds. A key whose count
 * returns to 0 is deleted, so the map holds only keys with a stream open now,
 * however many distinct clients came and went. Not exported by the package.
 */
export class StreamCounts {
  readonly #counts = new Map<string, number>();

  /** Streams `key` holds now. */
  of(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Keys holding at least one stream now. */
  get keys(): number {
    return this.#counts.size;
  }

  /** Counts one more stream for `key`. */
  add(key: string): void {
    this.#counts.set(key, this.of(key) + 1);
  }

  /** Counts one stream less for `key`, forgetting the key at 0. */
  remove(key: string): void {
    const count = this.of(key) - 1;
    if (count > 0) this.#counts.set(key, count);
    else this.#counts.delete(key);
  }
}

/** Past this much text (in UTF-16 units: 64 KiB of ASCII) waiting for the end of the turn, it is written at once. */
const COALESCE_LIMIT = 64 * 1024;

interface Tracked {
  readonly clientId: string;
  readonly tenantId: string | undefined;
  /** Ends the stream with `event: shutdown`; undefined while it is still opening. */
  end?: () => void;
  /** Resolves once the stream ended (or failed to open) and its source was closed. */
  readonly done: Promise<void>;
  readonly finish: () => void;
}

/**
 * Creates the registry of a service's event streams.
 *
 * @example
 * ```ts
 * const streams = lifecycle.add(createEventStreams({ logger, maxStreams: 50 }));
 * const stream = await streams.open({
 *   clientId: principal.userId,
 *   source: (signal) => ticks(signal), // an async generator of { event, id, data }
 * });
 * ```
 */
export function createEventStreams(options: EventStreamsOptions): EventStreams {
  const checks = new OptionChecks();
  const maxStreams = checks.wholeNumber(
    'maxStreams',
    options.maxStreams,
    { min: 1, max: 1_000_000 },
    100,
  );
  const maxStreamsPerClient = checks.wholeNumber(
    'maxStreamsPerClient',
    options.maxStreamsPerClient,
    { min: 1, max: 1_000_000 },
    Math.max(2, Math.ceil(maxStreams / 2)),
  );
  const maxStreamsPerTenant = checks.wholeNumber(
    'maxStreamsPerTenant',
    options.maxStreamsPerTenant,
    { min: 1, max: 1_000_000 },
    Math.ceil(maxStreams / 2),
  );
  const heartbeatMs = checks.wholeNumber(
    'heartbeatMs',
    options.heartbeatMs,
    { min: 1, max: 3_600_000 },
    15_000,
  );
  const retryMs = checks.wholeNumber('retryMs', options.retryMs, { min: 0, max: 3_600_000 }, 2_000);
  const firstEventWaitMs = checks.wholeNumber(
    'firstEventWaitMs',
    options.firstEventWaitMs,
    { min: 0, max: 600_000 },
    2_000,
  );
  const stalledClientMs = checks.wholeNumber(
    'stalledClientMs',
    options.stalledClientMs,
    { min: 1, max: 3_600_000 },
    30_000,
  );
  checks.throwIfAny((message) => new ServerError('INVALID_OPTIONS', message));
  const { logger } = options;
  const streams = new Set<Tracked>();
  // Kept with the set, so that admitting a stream is not a scan over every stream.
  const byClient = new StreamCounts();
  const byTenant = new StreamCounts();
  let closing = false;

  const heldBy = (clientId: string): number => byClient.of(clientId);
  const heldByTenant = (tenantId: string): number => byTenant.of(tenantId);

  /** Frees a slot (once, however often it is called). */
  function release(slot: Tracked): void {
    if (!streams.delete(slot)) return;
    byClient.remove(slot.clientId);
    if (slot.tenantId !== undefined) byTenant.remove(slot.tenantId);
  }

  // The streams with text waiting for the end of this turn, written by one setImmediate for all.
  const unflushed = new Set<() => void>();
  let flushScheduled = false;
  const flushAll = (): void => {
    flushScheduled = false;
    // Each flush takes itself out of the set; one added meanwhile is visited too.
    for (const flush of unflushed) flush();
  };
  function flushSoon(flush: () => void): void {
    unflushed.add(flush);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  /** Takes a slot before anything awaits, so concurrent opens cannot pass the limits together. */
  function admit(clientId: string, tenantId: string | undefined): Tracked {
    if (closing) {
      throw new ServerError('SHUTTING_DOWN', 'The server is shutting down; reconnect.', {
        retryAfterSeconds: 1,
      });
    }
    if (heldBy(clientId) >= maxStreamsPerClient) {
      throw new ServerError(
        'TOO_MANY_STREAMS',
        `At most ${maxStreamsPerClient} live streams per user at once.`,
        {
          retryAfterSeconds: 5,
        },
      );
    }
    if (tenantId !== undefined && heldByTenant(tenantId) >= maxStreamsPerTenant) {
      throw new ServerError(
        'TOO_MANY_STREAMS',
        `At most ${maxStreamsPerTenant} live streams per tenant at once.`,
        { retryAfterSeconds: 5 },
      );
    }
    if (streams.size >= maxStreams) {
      throw new ServerError('STREAMS_FULL', 'Every live stream slot is taken; try again shortly.', {
        retryAfterSeconds: 5,
      });
    }
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const slot: Tracked = { clientId, tenantId, done, finish };
    streams.add(slot);
    byClient.add(clientId);
    if (tenantId !== undefined) byTenant.add(tenantId);
    return slot;
  }

  async function open(request: OpenEventStream): Promise<EventStream> {
    const slot = admit(request.clientId, request.tenantId);
    const controller = new AbortController();
    const { signal: clientSignal } = request;
    const onClientGone = (): void => controller.abort(clientSignal?.reason);
    clientSignal?.addEventListener('abort', onClientGone, { once: true });
    if (clientSignal?.aborted === true) onClientGone();
    let events: AsyncIterator<ServerSentEvent> | undefined;
    let first: Promise<IteratorResult<ServerSentEvent>>;
    try {
      events = request.source(controller.signal);
      first = events.next();
      await settledWithin(first, firstEventWaitMs, controller.signal);
    } catch (error) {
      release(slot);
      clientSignal?.removeEventListener('abort', onClientGone);
      controller.abort();
      // Not awaited: a generator whose first next() never settled queues return() behind it.
      void events?.return?.().catch(() => undefined);
      slot.finish();
      throw controller.signal.aborted && clientSignal?.aborted === true
        ? clientSignal.reason
        : error;
    }
    // The first result is handled by the pump below; a rejection is not unhandled meanwhile.
    first.catch(() => undefined);

    const body = new PassThrough();
    let ended = false;
    let shutdown = false;
    let stalled = false;
    slot.end = () => {
      shutdown = true;
      controller.abort(new Error('shutting down'));
    };
    // A stream that began while drain() ran has been passed by: end it now.
    if (closing) slot.end();
    // What is sent in one turn of the event loop (the events a source had ready,
    // an update and its progress event) is one write: one socket write and one
    // HTTP chunk, not one per event. It waits at most until the turn ends.
    let pending = '';
    const flush = (): void => {
      unflushed.delete(flush);
      if (pending === '') return;
      const text = pending;
      pending = '';
      if (!ended && !body.destroyed) body.write(text);
    };
    const send = (text: string): void => {
      pending += text;
      if (pending.length >= COALESCE_LIMIT) flush();
      else flushSoon(flush);
    };
    // A client that is not reading needs no heartbeat: it would only grow the buffer.
    const heartbeat = setInterval(() => {
      if (!body.writableNeedDrain) send(': keep-alive\n\n');
    }, heartbeatMs);
    heartbeat.unref();
    const source = events;

    void (async () => {
      try {
        send(`retry: ${retryMs}\n\n`);
        for (const event of request.preamble ?? []) send(formatServerSentEvent(event));
        let result = await first;
        while (result.done !== true) {
          send(formatServerSentEvent(result.value));
          // Set by a write past the body's buffer (at once, or at the end of an earlier turn).
          if (body.writableNeedDrain) {
            // Only as fast as the client reads; one that stops reading is let go, not buffered for.
            const stall = AbortSignal.timeout(stalledClientMs);
            await once(body, 'drain', {
              signal: AbortSignal.any([controller.signal, stall]),
            }).catch((error: unknown) => {
              if (stall.aborted && !controller.signal.aborted) stalled = true;
              throw error;
            });
          }
          if (controller.signal.aborted) throw controller.signal.reason;
          result = await source.next();
        }
        // A source may end quietly when its signal aborts: that is a shutdown or a client gone, not an end.
        if (controller.signal.aborted) throw controller.signal.reason;
        send('event: end\ndata: {}\n\n');
      } catch (error) {
        if (stalled) {
          logger.info({ stalledClientMs }, 'event stream client stopped reading; stream ended');
          pending = '';
          body.destroy();
        } else if (shutdown) {
          send('event: shutdown\ndata: {}\n\n');
        } else if (!controller.signal.aborted) {
          logger.warn({ err: error }, 'event stream failed');
          const retryable = isFlowForgeError(error) && error.retryable;
          send(`event: stream-error\ndata: ${JSON.stringify({ retryable })}\n\n`);
        }
      } finally {
        // The last event is not held back while the source closes.
        if (!body.destroyed) flush();
        clearInterval(heartbeat);
        clientSignal?.removeEventListener('abort', onClientGone);
        controller.abort();
        await source.return?.().catch(() => undefined);
        ended = true;
        unflushed.delete(flush);
        if (!body.destroyed) body.end();
        release(slot);
        slot.finish();
      }
    })();

    return { headers: STREAM_HEADERS, body, done: slot.done };
  }

  const streamsComponent: EventStreams = {
    name: 'event-streams',
    open,
    get size() {
      return streams.size;
    },
    heldBy,
    heldByTenant,
    drain() {
      closing = true;
      for (const stream of streams) stream.end?.();
    },
    async stop(signal) {
      streamsComponent.drain();
      // At the deadline, a source that ignores its abort is left behind rather than waited for.
      await Promise.race([
        Promise.all([...streams].map((stream) => stream.done)),
        ...(signal ? [whenAborted(signal)] : []),
      ]);
    },
  };
  return streamsComponent;
}

/** Resolves when `promise` settles, `ms` pass or `signal` aborts (whichever is first); rejects with its error. */
async function settledWithin(
  promise: Promise<unknown>,
  ms: number,
  signal: AbortSignal,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<void>((resolve, reject) => {
        timer = setTimeout(resolve, ms);
        // The abort's own reason: the caller tells a client that left by it.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        onAbort = () => reject(signal.reason);
        // An abort that already happened fires no event: the client left before the source began.
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
