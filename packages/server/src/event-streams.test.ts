import type { Duplex, Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { DatabaseError } from '@flowforge/db';
import { deferred, settle, whenAborted, type Deferred, refusal } from '../test/support/deferred.js';
import { capturedLogger } from '../test/support/log-capture.js';
import { isServerError } from './errors.js';
import {
  createEventStreams,
  formatServerSentEvent,
  lastEventIdOf,
  type EventSource,
  type EventStreams,
  type EventStreamsOptions,
  type ServerSentEvent,
} from './event-streams.js';

/** Reads a stream's body as text as it arrives. */
function readText(body: Readable): {
  text(): string;
  /** Resolves once the text so far satisfies `done`; rejects if the body ends first. */
  until(done: (text: string) => boolean): Promise<string>;
  /** Resolves with the whole text once the body ended. */
  ended: Promise<string>;
} {
  let text = '';
  let finished = false;
  const waiting = new Set<() => void>();
  body.setEncoding('utf8');
  body.on('data', (chunk: string) => {
    text += chunk;
    for (const wake of waiting) wake();
  });
  const ended = new Promise<string>((resolve) => {
    body.once('end', () => {
      finished = true;
      for (const wake of waiting) wake();
      resolve(text);
    });
  });
  return {
    text: () => text,
    ended,
    until: (done) =>
      new Promise((resolve, reject) => {
        const wake = (): void => {
          if (done(text)) {
            waiting.delete(wake);
            resolve(text);
          } else if (finished) {
            waiting.delete(wake);
            reject(new Error(`the body ended without what was awaited: ${JSON.stringify(text)}`));
          }
        };
        waiting.add(wake);
        wake();
      }),
  };
}

/** A source whose calls are counted: how often it was pulled, and whether it was closed. */
interface Tracked {
  readonly source: EventSource;
  nexts(): number;
  returns(): number;
  signal(): AbortSignal | undefined;
}

function tracked(make: EventSource): Tracked {
  let nexts = 0;
  let returns = 0;
  let seen: AbortSignal | undefined;
  return {
    nexts: () => nexts,
    returns: () => returns,
    signal: () => seen,
    source: (signal) => {
      seen = signal;
      const inner = make(signal);
      return {
        next: () => {
          nexts += 1;
          return inner.next();
        },
        return: async () => {
          returns += 1;
          return (await inner.return?.()) ?? { done: true, value: undefined };
        },
      };
    },
  };
}

/** Sends `events`, then, as `then` says: finishes, or waits for the stream to end and throws or returns. */
function sendThen(
  events: readonly ServerSentEvent[],
  then: 'finish' | 'throw on abort' | 'return on abort' = 'finish',
): EventSource {
  return async function* (signal) {
    for (const event of events) yield event;
    if (then === 'finish') return;
    await whenAborted(signal);
    if (then === 'throw on abort') throw signal.reason;
  };
}

/** Sends `event`, then fails with `error`. */
function failsAfter(event: ServerSentEvent, error: Error): EventSource {
  return () => {
    let sent = false;
    return {
      next: () => {
        if (sent) return Promise.reject(error);
        sent = true;
        return Promise.resolve({ done: false, value: event });
      },
    };
  };
}

/** A source whose first event waits for `gate`, then is `event`. */
function gated(gate: Deferred<void>, event: ServerSentEvent = { data: '1' }): EventSource {
  return async function* (signal) {
    await gate.promise;
    yield event;
    await whenAborted(signal);
  };
}

function streamsWith(options: Partial<EventStreamsOptions> = {}): {
  streams: EventStreams;
  lines: () => Record<string, unknown>[];
} {
  const capture = capturedLogger();
  return {
    streams: createEventStreams({ logger: capture.logger, ...options }),
    lines: capture.lines,
  };
}

async function refusalOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a refusal');
}

describe('lastEventIdOf', () => {
  it('gives the id a reconnecting browser sent, or undefined on a first connection', () => {
    expect(lastEventIdOf({})).toBeUndefined();
    expect(lastEventIdOf({ 'last-event-id': '1765000000000' })).toBe('1765000000000');
  });

  it('refuses an id no stream sends (too long, control characters) with a 400', () => {
    for (const bad of ['x'.repeat(1_025), 'a\u0000b', 'a\u007fb']) {
      const error = refusal(() => lastEventIdOf({ 'last-event-id': bad }));
      expect(isServerError(error, 'LAST_EVENT_ID_INVALID')).toBe(true);
      expect((error as { status: number }).status).toBe(400);
    }
  });
});

describe('formatServerSentEvent', () => {
  it('writes each line of data as its own data: field, and event and id on one line each', () => {
    expect(formatServerSentEvent({ data: '{"a":1}' })).toBe('data: {"a":1}\n\n');
    expect(formatServerSentEvent({ event: 'row', id: '42', data: 'one\ntwo\r\nthree\rfour' })).toBe(
      'event: row\nid: 42\ndata: one\ndata: two\ndata: three\ndata: four\n\n',
    );
    expect(formatServerSentEvent({ data: '' })).toBe('data: \n\n');
  });

  it('strips line breaks from event and id, so they cannot forge another field', () => {
    expect(
      formatServerSentEvent({ event: 'row\r\ndata: forged', id: '1\nevent: x\r', data: 'ok' }),
    ).toBe('event: rowdata: forged\nid: 1event: x\ndata: ok\n\n');
  });
});

describe('createEventStreams', () => {
  it('sends retry:, the preamble, every event and `event: end` when the source finishes', async () => {
    const { streams } = streamsWith({ retryMs: 1_500 });
    const source = tracked(
      sendThen([{ event: 'row', id: '1', data: '{"n":1}' }, { data: 'multi\nline' }]),
    );
    const stream = await streams.open({
      clientId: 'user-1',
      source: source.source,
      preamble: [{ event: 'reset', data: '{}' }],
    });
    expect(stream.headers).toEqual({
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    const text = await readText(stream.body).ended;
    expect(text).toBe(
      'retry: 1500\n\n' +
        'event: reset\ndata: {}\n\n' +
        'event: row\nid: 1\ndata: {"n":1}\n\n' +
        'data: multi\ndata: line\n\n' +
        'event: end\ndata: {}\n\n',
    );
    await stream.done;
    expect(streams.size).toBe(0);
    expect(streams.heldBy('user-1')).toBe(0);
    expect(source.returns()).toBe(1);
    expect(source.signal()?.aborted).toBe(true);
  });

  it('answers open() without the first event when the source is quiet past firstEventWaitMs', async () => {
    const { streams } = streamsWith({ firstEventWaitMs: 10 });
    const gate = deferred();
    const stream = await streams.open({ clientId: 'user-1', source: gated(gate) });
    const body = readText(stream.body);
    await body.until((text) => text.startsWith('retry: 2000\n\n'));
    expect(body.text()).not.toContain('data:');
    gate.resolve();
    await body.until((text) => text.includes('data: 1\n\n'));
    await streams.stop();
  });

  it('sends a keep-alive comment while the source is idle', async () => {
    const { streams } = streamsWith({ heartbeatMs: 5 });
    const stream = await streams.open({
      clientId: 'user-1',
      source: sendThen([{ data: 'first' }], 'throw on abort'),
    });
    const body = readText(stream.body);
    const text = await body.until((seen) => seen.split(': keep-alive\n\n').length > 2);
    expect(text.startsWith('retry: 2000\n\ndata: first\n\n: keep-alive\n\n')).toBe(true);
    await streams.stop();
  });

  describe('shutdown', () => {
    for (const then of ['throw on abort', 'return on abort'] as const) {
      it(`ends every stream with \`event: shutdown\` on drain, and stop() resolves once sources closed (a source that ${then.replace(' on abort', 's')})`, async () => {
        const { streams } = streamsWith({ firstEventWaitMs: 10 });
        const sources = [tracked(sendThen([{ data: 'a' }], then)), tracked(sendThen([], then))];
        const opened = await Promise.all(
          sources.map((source, index) =>
            streams.open({ clientId: `user-${index}`, source: source.source }),
          ),
        );
        const bodies = opened.map((stream) => readText(stream.body));
        expect(streams.size).toBe(2);
        await streams.stop();
        expect(sources.map((source) => source.returns())).toEqual([1, 1]);
        expect(streams.size).toBe(0);
        const texts = await Promise.all(bodies.map((body) => body.ended));
        expect(texts[0]).toBe('retry: 2000\n\ndata: a\n\nevent: shutdown\ndata: {}\n\n');
        expect(texts[1]).toBe('retry: 2000\n\nevent: shutdown\ndata: {}\n\n');
      });
    }

    it('refuses new streams once draining, with SHUTTING_DOWN (503, Retry-After 1)', async () => {
      const { streams } = streamsWith();
      streams.drain();
      const error = await refusalOf(
        streams.open({ clientId: 'user-1', source: sendThen([{ data: 'x' }]) }),
      );
      expect(isServerError(error, 'SHUTTING_DOWN')).toBe(true);
      expect(error).toMatchObject({ status: 503, retryable: true, retryAfterSeconds: 1 });
      expect(streams.size).toBe(0);
    });

    it('ends a stream that was still opening when drain began, and stop() waits for it', async () => {
      const { streams } = streamsWith({ firstEventWaitMs: 60_000 });
      const gate = deferred();
      const source = tracked(gated(gate));
      const opening = streams.open({ clientId: 'user-1', source: source.source });
      await settle();
      let stopped = false;
      const stopping = streams.stop().then(() => (stopped = true));
      await settle();
      expect(stopped).toBe(false);
      gate.resolve();
      const stream = await opening;
      const text = await readText(stream.body).ended;
      await stopping;
      expect(text).toBe('retry: 2000\n\ndata: 1\n\nevent: shutdown\ndata: {}\n\n');
      expect(source.returns()).toBe(1);
    });
  });

  it('ends a stream whose source fails with `event: stream-error`, saying whether to retry', async () => {
    const { streams, lines } = streamsWith();
    const retryable = await streams.open({
      clientId: 'user-1',
      source: failsAfter({ data: 'a' }, new DatabaseError('UNAVAILABLE', 'connection lost')),
    });
    expect(await readText(retryable.body).ended).toBe(
      'retry: 2000\n\ndata: a\n\nevent: stream-error\ndata: {"retryable":true}\n\n',
    );
    const fatal = await streams.open({
      clientId: 'user-1',
      source: failsAfter({ data: 'a' }, new Error('bug')),
    });
    expect(await readText(fatal.body).ended).toBe(
      'retry: 2000\n\ndata: a\n\nevent: stream-error\ndata: {"retryable":false}\n\n',
    );
    await Promise.all([retryable.done, fatal.done]);
    expect(streams.size).toBe(0);
    expect(
      lines().filter((line) => line.msg === 'event stream failed' && line.level === 'warn'),
    ).toHaveLength(2);
  });

  it('rejects open() with the source’s own error when it fails before its first event, releasing the slot', async () => {
    const { streams } = streamsWith({ maxStreamsPerClient: 1 });
    const failure = new DatabaseError('UNAVAILABLE', 'refused');
    const source = tracked(() => ({ next: () => Promise.reject(failure) }));
    expect(await refusalOf(streams.open({ clientId: 'user-1', source: source.source }))).toBe(
      failure,
    );
    expect(source.returns()).toBe(1);
    expect(streams.size).toBe(0);
    // A source that throws as it is made fails the same way.
    const thrown = new Error('no such view');
    expect(
      await refusalOf(
        streams.open({
          clientId: 'user-1',
          source: () => {
            throw thrown;
          },
        }),
      ),
    ).toBe(thrown);
    // The client's one slot is free again.
    const stream = await streams.open({ clientId: 'user-1', source: sendThen([{ data: 'x' }]) });
    await readText(stream.body).ended;
  });

  it('rejects open() with the signal’s reason when the client leaves while it waits for the first event', async () => {
    const { streams } = streamsWith({ firstEventWaitMs: 60_000 });
    const client = new AbortController();
    const source = tracked((signal) => ({
      next: () =>
        whenAborted(signal).then(() => {
          throw new Error('subscription cancelled');
        }),
    }));
    const opening = streams.open({
      clientId: 'user-1',
      source: source.source,
      signal: client.signal,
    });
    await settle();
    expect(streams.heldBy('user-1')).toBe(1);
    const gone = new Error('client disconnected');
    client.abort(gone);
    expect(await refusalOf(opening)).toBe(gone);
    expect(streams.size).toBe(0);
    expect(source.signal()?.aborted).toBe(true);
  });

  it('rejects open() with the signal’s reason when the client had already left, not waiting for the first event', async () => {
    const { streams } = streamsWith({ firstEventWaitMs: 60_000 });
    const client = new AbortController();
    const gone = new Error('client disconnected');
    client.abort(gone);
    // A source that does not look at its signal: its first event comes when it comes.
    const gate = deferred();
    const source = tracked(async function* () {
      await gate.promise;
      yield { data: 'late' };
    });
    const opening = refusalOf(
      streams.open({ clientId: 'user-1', source: source.source, signal: client.signal }),
    );
    await settle();
    // An async generator closes only once its pending next() is done.
    gate.resolve();
    expect(await opening).toBe(gone);
    expect(source.returns()).toBe(1);
    expect(streams.size).toBe(0);
  });

  it('ends the body, closes the source and frees the slot when the client leaves mid-stream, sending nothing more', async () => {
    const { streams } = streamsWith();
    const client = new AbortController();
    const source = tracked(sendThen([{ data: 'a' }], 'throw on abort'));
    const stream = await streams.open({
      clientId: 'user-1',
      source: source.source,
      signal: client.signal,
    });
    const body = readText(stream.body);
    await body.until((text) => text.includes('data: a'));
    client.abort(new Error('client disconnected'));
    expect(await body.ended).toBe('retry: 2000\n\ndata: a\n\n');
    await stream.done;
    expect(source.returns()).toBe(1);
    expect(streams.heldBy('user-1')).toBe(0);
  });

  describe('limits', () => {
    it('refuses a client past maxStreamsPerClient with TOO_MANY_STREAMS (429, Retry-After 5); others still get theirs', async () => {
      const { streams } = streamsWith({ maxStreams: 10, maxStreamsPerClient: 2 });
      const open = (clientId: string) =>
        streams.open({ clientId, source: sendThen([{ data: 'x' }], 'throw on abort') });
      await open('user-1');
      await open('user-1');
      const error = await refusalOf(open('user-1'));
      expect(isServerError(error, 'TOO_MANY_STREAMS')).toBe(true);
      expect(error).toMatchObject({ status: 429, retryable: true, retryAfterSeconds: 5 });
      expect((error as Error).message).toContain('At most 2 live streams per user at once.');
      await open('user-2');
      expect(streams.heldBy('user-1')).toBe(2);
      expect(streams.size).toBe(3);
      await streams.stop();
      expect(streams.heldBy('user-1')).toBe(0);
    });

    it('refuses a tenant past maxStreamsPerTenant (429), so two users of one tenant cannot take every slot from another', async () => {
      const { streams } = streamsWith({ maxStreams: 5, maxStreamsPerClient: 4 });
      const open = (clientId: string, tenantId: string) =>
        streams.open({ clientId, tenantId, source: sendThen([{ data: 'x' }], 'throw on abort') });
      // The default share of a tenant is half the process's slots, rounded up: 3 of 5.
      await open('a-user-1', 'tenant-a');
      await open('a-user-1', 'tenant-a');
      await open('a-user-2', 'tenant-a');
      const error = await refusalOf(open('a-user-2', 'tenant-a'));
      expect(isServerError(error, 'TOO_MANY_STREAMS')).toBe(true);
      expect(error).toMatchObject({ status: 429, retryAfterSeconds: 5 });
      expect((error as Error).message).toContain('At most 3 live streams per tenant at once.');
      // Another tenant's user still gets a stream: the slots were not all taken.
      await open('b-user-1', 'tenant-b');
      expect(streams.heldByTenant('tenant-a')).toBe(3);
      expect(streams.heldByTenant('tenant-b')).toBe(1);
      await streams.stop();
      expect(streams.heldByTenant('tenant-a')).toBe(0);
    });

    it('takes maxStreamsPerTenant as given, and refuses one out of range', async () => {
      const { streams } = streamsWith({ maxStreams: 10, maxStreamsPerTenant: 1 });
      await streams.open({
        clientId: 'u1',
        tenantId: 't',
        source: sendThen([{ data: 'x' }], 'throw on abort'),
      });
      const error = await refusalOf(
        streams.open({ clientId: 'u2', tenantId: 't', source: sendThen([{ data: 'x' }]) }),
      );
      expect(isServerError(error, 'TOO_MANY_STREAMS')).toBe(true);
      await streams.stop();
      expect(() => streamsWith({ maxStreamsPerTenant: 0 })).toThrow(/maxStreamsPerTenant/);
    });

    it('defaults maxStreamsPerClient to half of maxStreams', async () => {
      const { streams } = streamsWith({ maxStreams: 10 });
      for (let i = 0; i < 5; i += 1) {
        await streams.open({
          clientId: 'user-1',
          source: sendThen([{ data: 'x' }], 'throw on abort'),
        });
      }
      const error = await refusalOf(
        streams.open({ clientId: 'user-1', source: sendThen([{ data: 'x' }]) }),
      );
      expect(isServerError(error, 'TOO_MANY_STREAMS')).toBe(true);
      await streams.stop();
    });

    it('refuses past maxStreams with STREAMS_FULL (503, Retry-After 5), and admits again once one ended', async () => {
      const { streams } = streamsWith({ maxStreams: 2 });
      const first = tracked(sendThen([{ data: 'x' }], 'throw on abort'));
      const client = new AbortController();
      await streams.open({ clientId: 'a', source: first.source, signal: client.signal });
      await streams.open({ clientId: 'b', source: sendThen([{ data: 'x' }], 'throw on abort') });
      const error = await refusalOf(
        streams.open({ clientId: 'c', source: sendThen([{ data: 'x' }]) }),
      );
      expect(isServerError(error, 'STREAMS_FULL')).toBe(true);
      expect(error).toMatchObject({ status: 503, retryable: true, retryAfterSeconds: 5 });
      client.abort();
      await vi.waitFor(() => expect(streams.size).toBe(1));
      await streams.open({ clientId: 'c', source: sendThen([{ data: 'x' }], 'throw on abort') });
      await streams.stop();
    });

    it('takes the slot before awaiting anything: concurrent opens cannot pass the limits together', async () => {
      const { streams } = streamsWith({
        maxStreams: 3,
        maxStreamsPerClient: 2,
        firstEventWaitMs: 60_000,
      });
      const gate = deferred();
      // Each outcome is taken as it settles: a refusal is never left unhandled.
      const outcome = (clientId: string): Promise<string> =>
        streams.open({ clientId, source: gated(gate) }).then(
          () => 'open',
          (error: unknown) => (error as { code: string }).code,
        );
      const opening = Array.from({ length: 6 }, () => outcome('user-1'));
      const others = Array.from({ length: 4 }, (_, index) => outcome(`other-${index}`));
      await settle();
      expect(streams.heldBy('user-1')).toBe(2);
      expect(streams.size).toBe(3);
      gate.resolve();
      const codes = await Promise.all([...opening, ...others]);
      expect(codes).toEqual([
        'open',
        'open',
        'TOO_MANY_STREAMS',
        'TOO_MANY_STREAMS',
        'TOO_MANY_STREAMS',
        'TOO_MANY_STREAMS',
        'open',
        'STREAMS_FULL',
        'STREAMS_FULL',
        'STREAMS_FULL',
      ]);
      await streams.stop();
    });
  });

  it('stops pulling a source whose body nobody reads (backpressure), and pulls again once it is read', async () => {
    const { streams } = streamsWith();
    const source = tracked(() => ({
      next: () => Promise.resolve({ done: false, value: { data: 'x'.repeat(1_024) } }),
    }));
    const stream = await streams.open({ clientId: 'user-1', source: source.source });
    await settle(50);
    const pulled = source.nexts();
    await settle(50);
    // Stopped: nothing pulled while nobody reads, no more than the body's two buffers hold.
    expect(source.nexts()).toBe(pulled);
    // The body is a pass-through: what it holds is its written side and its readable side.
    const body = stream.body as Duplex;
    const buffers = body.writableHighWaterMark + body.readableHighWaterMark;
    expect(pulled * 1_024).toBeLessThanOrEqual(buffers + 4 * 1_024);
    expect(body.readableLength + body.writableLength).toBeLessThanOrEqual(buffers + 4 * 1_024);
    while (stream.body.read() !== null);
    await settle(50);
    expect(source.nexts()).toBeGreaterThan(pulled);
    await streams.stop();
    expect(source.returns()).toBe(1);
  });

  it('lets a client that stopped reading go after stalledClientMs: the body is destroyed and the source closed', async () => {
    const { streams, lines } = streamsWith({ stalledClientMs: 50 });
    const source = tracked(() => ({
      next: () => Promise.resolve({ done: false, value: { data: 'x'.repeat(1_024) } }),
    }));
    const stream = await streams.open({ clientId: 'user-1', source: source.source });
    await stream.done;
    expect(stream.body.destroyed).toBe(true);
    expect(source.returns()).toBe(1);
    expect(streams.size).toBe(0);
    expect(lines()).toContainEqual(
      expect.objectContaining({ msg: 'event stream client stopped reading; stream ended' }),
    );
  });

  it('stop(signal) gives up on a source that ignores its abort once the signal aborts', async () => {
    const { streams } = streamsWith();
    let release!: () => void;
    // A source that neither yields again nor settles when aborted.
    const stuck: EventSource = () => {
      let first = true;
      return {
        next: () => {
          if (first) {
            first = false;
            return Promise.resolve({ done: false, value: { data: '1' } });
          }
          return new Promise(
            (resolve) => (release = () => resolve({ done: true, value: undefined })),
          );
        },
      };
    };
    const stream = await streams.open({ clientId: 'user-1', source: stuck });
    stream.body.resume();
    const deadline = new AbortController();
    const stopping = streams.stop(deadline.signal);
    await settle(20);
    deadline.abort();
    await stopping; // resolves although the stream has not ended
    release();
    await stream.done;
  });

  it('refuses bad options with INVALID_OPTIONS', () => {
    const { logger } = capturedLogger();
    let error: unknown;
    try {
      createEventStreams({
        logger,
        maxStreams: 0,
        heartbeatMs: 0,
        retryMs: -1,
        firstEventWaitMs: 1.5,
      });
    } catch (caught) {
      error = caught;
    }
    expect(isServerError(error, 'INVALID_OPTIONS')).toBe(true);
    for (const name of ['maxStreams', 'heartbeatMs', 'retryMs', 'firstEventWaitMs']) {
      expect((error as Error).message).toContain(`${name}:`);
    }
  });
});
