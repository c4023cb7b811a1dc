import type { Duplex, Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { DatabaseError } from '@flowforge/db';
import { deferred, settle, whenAborted, type Deferred, refusal } from '../test/support/deferred.js';
import { capturedLogger } from '../test/support/log-capture.js';
import { isServerError } from './errors.js';
import {
  createEventStreams,
  eventStreamRefusal,
  formatServerSentEvent,
  lastEventIdOf,
  type EventSource,
  type EventStreams,
  type EventStreamsOptions,
  type ServerSentEvent,
  StreamCounts,
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

/** Records each chunk of a body as it was written: one chunk, one write of the response (an HTTP chunk). */
function chunksOf(body: Readable): {
  readonly chunks: string[];
  /** Resolves once `count` chunks arrived; rejects if the body ends first. */
  until(count: number): Promise<void>;
  /** Resolves once the body ended. */
  readonly ended: Promise<void>;
} {
  const chunks: string[] = [];
  const waiting = new Set<() => void>();
  let finished = false;
  // No setEncoding: it would join chunks that were buffered before it.
  body.on('data', (chunk: Buffer) => {
    chunks.push(chunk.toString('utf8'));
    for (const wake of waiting) wake();
  });
  const ended = new Promise<void>((resolve) =>
    body.once('end', () => {
      finished = true;
      for (const wake of waiting) wake();
      resolve();
    }),
  );
  return {
    chunks,
    ended,
    until: (count) =>
      new Promise((resolve, reject) => {
        const wake = (): void => {
          if (chunks.length >= count) {
            waiting.delete(wake);
            resolve();
          } else if (finished) {
            waiting.delete(wake);
            reject(new Error(`the body ended after ${chunks.length} chunks`));
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

  it('formats one event object once, however often it is sent', () => {
    let reads = 0;
    const event: ServerSentEvent = {
      event: 'row',
      get data() {
        reads += 1;
        return '{"n":1}';
      },
    };
    expect(formatServerSentEvent(event)).toBe('event: row\ndata: {"n":1}\n\n');
    expect(formatServerSentEvent(event)).toBe('event: row\ndata: {"n":1}\n\n');
    expect(reads).toBe(1);
    // Another object with the same fields is its own event.
    expect(formatServerSentEvent({ event: 'row', data: '{"n":1}' })).toBe(
      'event: row\ndata: {"n":1}\n\n',
    );
  });

  it('strips line breaks from event and id, so they cannot forge another field', () => {
    expect(
      formatServerSentEvent({ event: 'row\r\ndata: forged', id: '1\nevent: x\r', data: 'ok' }),
    ).toBe('event: rowdata: forged\nid: 1event: x\ndata: ok\n\n');
  });
});

describe('StreamCounts', () => {
  it('counts per key and forgets a key whose count returns to 0, however many keys came and went', () => {
    const counts = new StreamCounts();
    counts.add('a');
    counts.add('a');
    counts.add('b');
    expect([counts.of('a'), counts.of('b'), counts.of('c'), counts.keys]).toEqual([2, 1, 0, 2]);
    counts.remove('a');
    expect([counts.of('a'), counts.keys]).toEqual([1, 2]);
    counts.remove('a');
    counts.remove('b');
    expect([counts.of('a'), counts.of('b'), counts.keys]).toEqual([0, 0, 0]);
    for (let index = 0; index < 10_000; index += 1) {
      counts.add(`client-${index}`);
      counts.remove(`client-${index}`);
    }
    expect(counts.keys).toBe(0);
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
      // The socket closes with the stream: a browser reconnects on a new connection.
      connection: 'close',
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

  it('formats an event sent to many streams once: each gets the same text', async () => {
    const { streams } = streamsWith();
    let reads = 0;
    // A shared subscription's update: one object, fanned out to every viewer.
    const update: ServerSentEvent = {
      event: 'update',
      id: '7',
      get data() {
        reads += 1;
        return '{"rows":[1,2]}';
      },
    };
    const opened = await Promise.all(
      ['user-1', 'user-2', 'user-3'].map((clientId) =>
        streams.open({ clientId, source: sendThen([update]) }),
      ),
    );
    const texts = await Promise.all(opened.map((stream) => readText(stream.body).ended));
    expect(texts).toEqual(
      Array.from(
        { length: 3 },
        () =>
          'retry: 2000\n\nevent: update\nid: 7\ndata: {"rows":[1,2]}\n\nevent: end\ndata: {}\n\n',
      ),
    );
    expect(reads).toBe(1);
  });

  describe('writes', () => {
    it('writes what a source had ready in one turn as one chunk: retry:, the preamble and back-to-back events', async () => {
      const { streams } = streamsWith();
      const stream = await streams.open({
        clientId: 'user-1',
        source: sendThen(
          [
            { event: 'update', id: '1', data: 'a' },
            { event: 'progress', data: 'b' },
            { data: 'c' },
          ],
          'throw on abort',
        ),
        preamble: [{ event: 'reset', data: '{}' }],
      });
      const body = chunksOf(stream.body);
      await body.until(1);
      await settle();
      expect(body.chunks).toEqual([
        'retry: 2000\n\n' +
          'event: reset\ndata: {}\n\n' +
          'event: update\nid: 1\ndata: a\n\n' +
          'event: progress\ndata: b\n\n' +
          'data: c\n\n',
      ]);
      await streams.stop();
      await body.ended;
      expect(body.chunks).toEqual([expect.any(String), 'event: shutdown\ndata: {}\n\n']);
    });

    it('writes events that come in different turns as chunks of their own, none held back', async () => {
      const { streams } = streamsWith();
      const gates = [deferred(), deferred()];
      const source: EventSource = async function* () {
        yield { data: '1' };
        for (const [index, gate] of gates.entries()) {
          await gate.promise;
          yield { data: String(index + 2) };
        }
      };
      const stream = await streams.open({ clientId: 'user-1', source });
      const body = chunksOf(stream.body);
      await body.until(1);
      expect(body.chunks).toEqual(['retry: 2000\n\ndata: 1\n\n']);
      gates[0]?.resolve();
      await body.until(2);
      expect(body.chunks[1]).toBe('data: 2\n\n');
      gates[1]?.resolve();
      await body.ended;
      // The source finished in the turn of its last event: the end goes with it.
      expect(body.chunks.slice(2)).toEqual(['data: 3\n\nevent: end\ndata: {}\n\n']);
    });

    it('writes at once past 64 KiB of ready text, rather than holding it to the end of the turn', async () => {
      const { streams } = streamsWith();
      const events = Array.from({ length: 100 }, (_, index) => ({
        id: String(index),
        data: 'x'.repeat(1_024),
      }));
      const stream = await streams.open({ clientId: 'user-1', source: sendThen(events) });
      const body = chunksOf(stream.body);
      await body.ended;
      expect(body.chunks.join('')).toBe(
        'retry: 2000\n\n' +
          events.map((event) => formatServerSentEvent(event)).join('') +
          'event: end\ndata: {}\n\n',
      );
      const eventLength = formatServerSentEvent(events[99]!).length;
      const [full, ...rest] = body.chunks;
      // The first chunk was written as it passed the limit, not with everything ready.
      expect(full!.length).toBeGreaterThanOrEqual(64 * 1_024);
      expect(full!.length).toBeLessThan(64 * 1_024 + eventLength);
      expect(rest.length).toBeGreaterThan(0);
      expect(rest.length).toBeLessThan(5);
    });
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
    it('keeps each client’s and tenant’s count right across opens, ends, refusals and failed opens', async () => {
      const { streams } = streamsWith({
        maxStreams: 6,
        maxStreamsPerClient: 3,
        maxStreamsPerTenant: 4,
        firstEventWaitMs: 60_000,
      });
      const held = () => ({
        size: streams.size,
        a1: streams.heldBy('a-1'),
        a2: streams.heldBy('a-2'),
        solo: streams.heldBy('solo'),
        tenantA: streams.heldByTenant('tenant-a'),
      });
      const leaving = new AbortController();
      const open = (clientId: string, tenantId?: string, signal?: AbortSignal) =>
        streams.open({
          clientId,
          ...(tenantId === undefined ? {} : { tenantId }),
          ...(signal === undefined ? {} : { signal }),
          source: sendThen([{ data: 'x' }], 'throw on abort'),
        });
      const a1 = await open('a-1', 'tenant-a', leaving.signal);
      await open('a-1', 'tenant-a');
      await open('a-2', 'tenant-a');
      await open('solo');
      expect(held()).toEqual({ size: 4, a1: 2, a2: 1, solo: 1, tenantA: 3 });

      // A source failing before its first event, or as it is made: nothing stays counted.
      const failure = new DatabaseError('UNAVAILABLE', 'refused');
      await refusalOf(
        streams.open({
          clientId: 'a-2',
          tenantId: 'tenant-a',
          source: () => ({ next: () => Promise.reject(failure) }),
        }),
      );
      await refusalOf(
        streams.open({
          clientId: 'a-2',
          tenantId: 'tenant-a',
          source: () => {
            throw failure;
          },
        }),
      );
      expect(held()).toEqual({ size: 4, a1: 2, a2: 1, solo: 1, tenantA: 3 });

      // A client leaving while its stream waits for the first event: counted while it waits, not after.
      const client = new AbortController();
      const waiting = refusalOf(
        streams.open({
          clientId: 'a-2',
          tenantId: 'tenant-a',
          signal: client.signal,
          source: gated(deferred()),
        }),
      );
      await settle();
      expect(held()).toEqual({ size: 5, a1: 2, a2: 2, solo: 1, tenantA: 4 });
      client.abort(new Error('client disconnected'));
      await waiting;
      expect(held()).toEqual({ size: 4, a1: 2, a2: 1, solo: 1, tenantA: 3 });

      // Refusals take nothing: past the tenant's share, past the process's slots.
      await open('a-2', 'tenant-a');
      expect(isServerError(await refusalOf(open('a-3', 'tenant-a')), 'TOO_MANY_STREAMS')).toBe(
        true,
      );
      expect(streams.heldBy('a-3')).toBe(0);
      await open('solo');
      expect(isServerError(await refusalOf(open('b-1', 'tenant-b')), 'STREAMS_FULL')).toBe(true);
      expect(streams.heldBy('b-1')).toBe(0);
      expect(streams.heldByTenant('tenant-b')).toBe(0);
      expect(held()).toEqual({ size: 6, a1: 2, a2: 2, solo: 2, tenantA: 4 });

      // A client leaving mid-stream gives its slot back once, then the rest end.
      leaving.abort();
      await a1.done;
      expect(held()).toEqual({ size: 5, a1: 1, a2: 2, solo: 2, tenantA: 3 });
      await streams.stop();
      expect(held()).toEqual({ size: 0, a1: 0, a2: 0, solo: 0, tenantA: 0 });
    });

    it('counts each of many distinct clients and tenants that came and went back to nothing', async () => {
      const { streams } = streamsWith({ maxStreams: 100 });
      for (let round = 0; round < 20; round += 1) {
        const opened = await Promise.all(
          Array.from({ length: 50 }, (_, index) =>
            streams.open({
              clientId: `user-${round}-${index}`,
              tenantId: `tenant-${round}-${index % 5}`,
              source: sendThen([{ data: 'x' }]),
            }),
          ),
        );
        expect(streams.heldBy(`user-${round}-0`)).toBe(1);
        expect(streams.heldByTenant(`tenant-${round}-0`)).toBe(10);
        await Promise.all(opened.map((stream) => (stream.body.resume(), stream.done)));
        expect(streams.size).toBe(0);
        expect(streams.heldBy(`user-${round}-0`)).toBe(0);
        expect(streams.heldByTenant(`tenant-${round}-0`)).toBe(0);
      }
    });

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

describe('eventStreamRefusal', () => {
  it('says a 429 or 503 as an event stream: retry:, one `refused` event, Connection: close', () => {
    const refusal = eventStreamRefusal({
      status: 503,
      code: 'STREAMS_FULL',
      retryAfterSeconds: 5,
    });
    const body =
      'retry: 5000\n\n' +
      'event: refused\ndata: {"status":503,"code":"STREAMS_FULL","retry_after_ms":5000}\n\n';
    expect(refusal).toEqual({
      status: 503,
      code: 'STREAMS_FULL',
      retryAfterMs: 5000,
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
        connection: 'close',
        'content-length': String(Buffer.byteLength(body)),
      },
      body,
    });
  });

  it('waits Retry-After seconds × 1000, else 5000 ms; names a refusal without a code by its status', () => {
    expect(
      eventStreamRefusal({ status: 429, code: 'TOO_MANY_STREAMS', retryAfterSeconds: 1 }),
    ).toMatchObject({
      retryAfterMs: 1000,
      body: expect.stringMatching(/^retry: 1000\n\n/) as unknown,
    });
    expect(eventStreamRefusal({ status: 429 })).toMatchObject({
      code: 'TOO_MANY_REQUESTS',
      retryAfterMs: 5000,
    });
    expect(eventStreamRefusal({ status: 503, retryAfterSeconds: Number.NaN })).toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      retryAfterMs: 5000,
    });
    expect(eventStreamRefusal({ status: 503, retryAfterSeconds: 0 })?.retryAfterMs).toBe(0);
  });

  it('leaves every other status to a problem: permanent refusals stay HTTP errors', () => {
    for (const status of [400, 401, 403, 404, 409, 413, 500, 502, 504]) {
      expect(eventStreamRefusal({ status, code: 'X' }), String(status)).toBeUndefined();
    }
  });
});
