import type { Execution } from './query-lifecycle.js';

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * The async iterator of `ClickHouse.stream()`: a row already read costs one
 * resolved promise, nothing else; the query starts on the first `next()`.
 */
export class RowStream<T> implements AsyncIterableIterator<T> {
  readonly #start: () => Promise<Execution>;
  #execution: Execution | undefined;
  #done = false;
  /** The consumer called return(): a next() still pending ends with DONE. */
  #returned = false;

  constructor(start: () => Promise<Execution>) {
    this.#start = start;
  }

  next(): Promise<IteratorResult<T>> {
    const execution = this.#execution;
    if (execution !== undefined && !this.#done) {
      const row = execution.reader.take();
      if (row !== undefined) return Promise.resolve({ done: false, value: row as T });
    }
    return this.#pull();
  }

  async #pull(): Promise<IteratorResult<T>> {
    if (this.#done) return DONE;
    let execution = this.#execution;
    try {
      if (execution === undefined) {
        execution = await this.#start();
        // return() came while the query was starting: stop it now, not at its deadline.
        if (this.#returned) {
          execution.stop();
          return DONE;
        }
        this.#execution = execution;
      }
      const { reader } = execution;
      for (;;) {
        const row = reader.take();
        if (row !== undefined) return { done: false, value: row as T };
        const more = await reader.fill();
        if (this.#returned) return DONE;
        if (!more) {
          this.#done = true;
          execution.complete();
          return DONE;
        }
      }
    } catch (error) {
      this.#done = true;
      // The body was destroyed by return() under a pending next(): that is the end asked for.
      if (this.#returned && execution !== undefined) return DONE;
      throw execution === undefined ? error : execution.fail(error);
    }
  }

  return(): Promise<IteratorResult<T>> {
    this.#done = true;
    this.#returned = true;
    this.#execution?.stop();
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
