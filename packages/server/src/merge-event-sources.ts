import type { EventSource, ServerSentEvent } from './event-streams.js';

/**
 * One source made of many, for one stream that carries several feeds (a
 * browser holds at most six connections per origin, so a page of widgets
 * shares one stream). Every inner source is started with the same signal and
 * its events are passed on as they come, interleaved; each inner source is
 * pulled again only once its last event was taken, so a slow reader holds all
 * of them back, never buffers for them. The merged source ends when every inner
 * one has ended, and fails with the first inner failure (after the events
 * already received; the other sources are closed). When the signal aborts it
 * ends at once and closes every inner source; `return()` closes them too.
 *
 * @example
 * ```ts
 * const source = mergeEventSources(widgetIds.map((id) => widgetSource(id)));
 * await streams.open({ clientId: principal.userId, source });
 * ```
 */
export function mergeEventSources(sources: readonly EventSource[]): EventSource {
  const list = [...sources];
  return (signal) => {
    const iterators: AsyncIterator<ServerSentEvent>[] = [];
    try {
      for (const source of list) iterators.push(source(signal));
    } catch (error) {
      for (const iterator of iterators) void iterator.return?.().catch(() => undefined);
      throw error;
    }
    return new MergedIterator(iterators, signal);
  };
}

/** The merged events of {@link mergeEventSources}. */
class MergedIterator implements AsyncIterator<ServerSentEvent> {
  readonly #iterators: readonly AsyncIterator<ServerSentEvent>[];
  readonly #signal: AbortSignal;
  /** Events received and not yet taken, with the index of the source each came from. */
  readonly #ready: { readonly index: number; readonly event: ServerSentEvent }[] = [];
  /** The source whose event was taken last: pulled again on the next `next()`. */
  #taken: number | undefined;
  #live: number;
  #failure: { readonly error: unknown } | undefined;
  #closed = false;
  #wake: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  readonly #onAbort = (): void => {
    void this.#close();
  };

  constructor(iterators: readonly AsyncIterator<ServerSentEvent>[], signal: AbortSignal) {
    this.#iterators = iterators;
    this.#signal = signal;
    this.#live = iterators.length;
    if (signal.aborted) void this.#close();
    else signal.addEventListener('abort', this.#onAbort, { once: true });
    iterators.forEach((_, index) => this.#pull(index));
  }

  #pull(index: number): void {
    if (this.#closed) return;
    this.#iterators[index]!.next().then(
      (result) => {
        if (result.done === true) this.#live -= 1;
        else this.#ready.push({ index, event: result.value });
        this.#notify();
      },
      (error: unknown) => {
        this.#failure ??= { error };
        this.#live -= 1;
        this.#notify();
      },
    );
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async next(): Promise<IteratorResult<ServerSentEvent>> {
    if (this.#taken !== undefined) {
      this.#pull(this.#taken);
      this.#taken = undefined;
    }
    for (;;) {
      if (this.#closed) return { done: true, value: undefined };
      const item = this.#ready.shift();
      if (item !== undefined) {
        this.#taken = item.index;
        return { done: false, value: item.event };
      }
      if (this.#failure !== undefined) {
        const { error } = this.#failure;
        // Not awaited: a source still waiting for its next event closes once it heeds the signal.
        void this.#close();
        throw error;
      }
      if (this.#live === 0) {
        void this.#close();
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  async return(): Promise<IteratorResult<ServerSentEvent>> {
    await this.#close();
    return { done: true, value: undefined };
  }

  /** Ends the merge (once) and closes every inner source; resolves once they have closed. */
  #close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      this.#signal.removeEventListener('abort', this.#onAbort);
      this.#notify();
      await Promise.all(
        this.#iterators.map(async (iterator) => {
          await iterator.return?.().catch(() => undefined);
        }),
      );
    })();
    return this.#closing;
  }
}
