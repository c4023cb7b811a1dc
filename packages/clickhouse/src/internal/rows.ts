import type { Readable } from 'node:stream';
import { ClickHouseError } from '../errors.js';
import { parseServerMessage } from './server-errors.js';

/** How much of a failed body is read to find the server's exception text. */
const MAX_ERROR_TAIL = 64 * 1024;

/**
 * JSONEachRow rows from a response body, one line at a time. The body is read
 * as UTF-8 text chunk by chunk (a chunk is only pulled when the rows before it
 * were taken: backpressure reaches the socket); a row is one `indexOf` and one
 * `JSON.parse` of a slice, with no per-row object besides the row itself.
 *
 * A server that fails after it started sending rows appends its exception to
 * the body (18.16: a `Code: N, e.displayText() = …` line; 25.11+: a tagged
 * `__exception__` block). A line that is not JSON is therefore read as the
 * start of that text: the rest of the body (64 KiB at most) is parsed for it.
 */
export class RowReader {
  readonly #stream: Readable;
  readonly #chunks: AsyncIterator<string>;
  #text = '';
  #pos = 0;
  #failedAt = -1;
  /** Rows taken so far. */
  rows = 0;

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    this.#stream = stream;
    this.#chunks = stream[Symbol.asyncIterator]() as AsyncIterator<string>;
  }

  /**
   * The next complete row already read, or undefined when the text read so far
   * holds none (call {@link fill}). Never waits.
   */
  take(): unknown {
    const text = this.#text;
    const pos = this.#pos;
    const newline = text.indexOf('\n', pos);
    if (newline === -1 || this.#failedAt !== -1) return undefined;
    this.#pos = newline + 1;
    try {
      const row: unknown = JSON.parse(text.slice(pos, newline));
      this.rows += 1;
      return row;
    } catch {
      this.#failedAt = pos;
      return undefined;
    }
  }

  /**
   * Reads the next chunk of the body. Resolves false at its end; rejects with
   * the server's error when the body turned out to carry one.
   */
  async fill(): Promise<boolean> {
    if (this.#failedAt !== -1) throw await this.#bodyError(this.#text.slice(this.#failedAt));
    const next = await this.#chunks.next();
    const rest = this.#pos < this.#text.length ? this.#text.slice(this.#pos) : '';
    if (next.done === true) {
      if (rest.trim().length > 0) throw await this.#bodyError(rest);
      this.#text = '';
      this.#pos = 0;
      return false;
    }
    this.#text = rest.length === 0 ? next.value : rest + next.value;
    this.#pos = 0;
    return true;
  }

  /** Stops reading: the response (and its socket) is destroyed. Idempotent. */
  destroy(): void {
    if (!this.#stream.destroyed) this.#stream.destroy();
  }

  async #bodyError(start: string): Promise<Error> {
    let tail = start;
    while (tail.length < MAX_ERROR_TAIL) {
      const next = await this.#chunks.next();
      if (next.done === true) break;
      tail += next.value;
    }
    this.destroy();
    const parsed = parseServerMessage(tail);
    if (parsed) return new Error(tail.slice(tail.search(/Code: \d+[.,] /), MAX_ERROR_TAIL));
    return new ClickHouseError(
      'QUERY_FAILED',
      'the response is not JSONEachRow: a line did not parse as JSON and carried no server error',
    );
  }
}
