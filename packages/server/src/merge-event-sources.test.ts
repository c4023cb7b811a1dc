import { describe, expect, it } from 'vitest';
import { DatabaseError } from '@flowforge/db';
import { settle, whenAborted } from '../test/support/deferred.js';
import { capturedLogger } from '../test/support/log-capture.js';
import { createEventStreams, type EventSource, type ServerSentEvent } from './event-streams.js';
import { mergeEventSources } from './merge-event-sources.js';

/** A source the test feeds by hand, counting how it is pulled and closed. */
function manual() {
  const queue: (IteratorResult<ServerSentEvent> | { readonly error: Error })[] = [];
  let waiting: ((value: IteratorResult<ServerSentEvent>) => void) | undefined;
  let failWaiting: ((error: Error) => void) | undefined;
  let nexts = 0;
  let returns = 0;
  let signal: AbortSignal | undefined;
  const deliver = (item: IteratorResult<ServerSentEvent> | { readonly error: Error }): void => {
    if (waiting === undefined) {
      queue.push(item);
      return;
    }
    const [resolve, reject] = [waiting, failWaiting!];
    waiting = undefined;
    failWaiting = undefined;
    if ('error' in item) reject(item.error);
    else resolve(item);
  };
  const source: EventSource = (given) => {
    signal = given;
    return {
      next: () => {
        nexts += 1;
        const item = queue.shift();
        if (item !== undefined) {
          return 'error' in item ? Promise.reject(item.error) : Promise.resolve(item);
        }
        return new Promise((resolve, reject) => {
          waiting = resolve;
          failWaiting = reject;
        });
      },
      return: () => {
        returns += 1;
        // A source that heeds its close: a pending next() ends.
        deliver({ done: true, value: undefined });
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  };
  return {
    source,
    push: (data: string) => deliver({ done: false, value: { event: 'update', data } }),
    end: () => deliver({ done: true, value: undefined }),
    fail: (error: Error) => deliver({ error }),
    nexts: () => nexts,
    returns: () => returns,
    signal: () => signal,
  };
}

/** Every event `iterator` gives until it ends, and how it ended. */
async function drain(iterator: AsyncIterator<ServerSentEvent>): Promise<{
  readonly data: string[];
  readonly error?: unknown;
}> {
  const data: string[] = [];
  try {
    for (;;) {
      const result = await iterator.next();
      if (result.done === true) return { data };
      data.push(result.value.data);
    }
  } catch (error) {
    return { data, error };
  }
}

describe('mergeEventSources', () => {
  it('passes events on in the order they arrive, whichever source sends them, and ends when every source has', async () => {
    const [a, b] = [manual(), manual()];
    const merged = mergeEventSources([a.source, b.source])(new AbortController().signal);
    const draining = drain(merged);
    b.push('b1');
    await settle();
    a.push('a1');
    await settle();
    b.push('b2');
    b.end();
    await settle();
    a.push('a2');
    await settle();
    a.end();
    expect(await draining).toEqual({ data: ['b1', 'a1', 'b2', 'a2'] });
  });

  it('starts every source with the same signal, and aborting it ends the merge at once and closes them all', async () => {
    const [a, b] = [manual(), manual()];
    const controller = new AbortController();
    const merged = mergeEventSources([a.source, b.source])(controller.signal);
    expect(a.signal()).toBe(controller.signal);
    expect(b.signal()).toBe(controller.signal);
    const pending = merged.next();
    controller.abort();
    expect(await pending).toEqual({ done: true, value: undefined });
    await settle();
    expect([a.returns(), b.returns()]).toEqual([1, 1]);
    expect(await merged.next()).toEqual({ done: true, value: undefined });
  });

  it('fails with the first failure, after the events already received, and closes the other sources', async () => {
    const [a, b] = [manual(), manual()];
    const merged = mergeEventSources([a.source, b.source])(new AbortController().signal);
    a.push('a1');
    const failure = new DatabaseError('UNAVAILABLE', 'connection lost');
    b.fail(failure);
    await settle();
    expect(await drain(merged)).toEqual({ data: ['a1'], error: failure });
    await settle();
    expect(a.returns()).toBe(1);
  });

  it('pulls a source again only once its event was taken: a slow reader is never buffered for', async () => {
    const a = manual();
    const merged = mergeEventSources([a.source])(new AbortController().signal);
    expect(a.nexts()).toBe(1);
    a.push('a1');
    a.push('a2');
    a.push('a3');
    await settle();
    expect(a.nexts()).toBe(1);
    expect((await merged.next()).value).toMatchObject({ data: 'a1' });
    await settle();
    expect(a.nexts()).toBe(1);
    expect((await merged.next()).value).toMatchObject({ data: 'a2' });
    expect(a.nexts()).toBe(2);
  });

  it('return() closes every source and ends the merge', async () => {
    const [a, b] = [manual(), manual()];
    const merged = mergeEventSources([a.source, b.source])(new AbortController().signal);
    expect(await merged.return?.()).toEqual({ done: true, value: undefined });
    expect([a.returns(), b.returns()]).toEqual([1, 1]);
    expect(await merged.next()).toEqual({ done: true, value: undefined });
  });

  it('no sources: ends at once; a source that throws when started closes the ones already started', async () => {
    expect(await mergeEventSources([])(new AbortController().signal).next()).toEqual({
      done: true,
      value: undefined,
    });
    const a = manual();
    const broken: EventSource = () => {
      throw new Error('cannot start');
    };
    expect(() => mergeEventSources([a.source, broken])(new AbortController().signal)).toThrow(
      'cannot start',
    );
    await settle();
    expect(a.returns()).toBe(1);
  });

  it('is a source for createEventStreams: one stream carries every feed, and a feed failing at once refuses it', async () => {
    const { logger } = capturedLogger();
    const streams = createEventStreams({ logger, firstEventWaitMs: 1_000 });
    const feed = (name: string): EventSource =>
      async function* (signal) {
        yield { event: 'update', data: JSON.stringify({ widget_id: name }) };
        await whenAborted(signal);
      };
    const stream = await streams.open({
      clientId: 'user-1',
      source: mergeEventSources([feed('a'), feed('b')]),
    });
    let text = '';
    stream.body.setEncoding('utf8');
    stream.body.on('data', (chunk: string) => (text += chunk));
    await settle(20);
    expect(text).toContain('data: {"widget_id":"a"}\n\n');
    expect(text).toContain('data: {"widget_id":"b"}\n\n');
    await streams.stop();
    expect(text).toMatch(/event: shutdown\ndata: \{\}\n\n$/);

    const down = new DatabaseError('UNAVAILABLE', 'down');
    const failing: EventSource = () => ({ next: () => Promise.reject(down) });
    const quiet: EventSource = () => ({ next: () => new Promise(() => undefined) });
    const third = createEventStreams({ logger, firstEventWaitMs: 1_000 });
    await expect(
      third.open({ clientId: 'user-1', source: mergeEventSources([quiet, failing]) }),
    ).rejects.toBe(down);
    await third.stop();
  });
});
