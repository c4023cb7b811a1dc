import { RedisError } from '../errors.js';
import type { Connection } from './connection.js';

/**
 * Connections for blocking reads (XREAD BLOCK): a blocked connection answers
 * nothing else until the read returns, so each read in flight holds one of
 * these, never the command connection. Opened lazily, kept while idle, at most
 * `max` at once; further reads wait in line for one.
 */
export class BlockingPool {
  readonly #open: () => Connection;
  readonly #max: number;
  readonly #idle: Connection[] = [];
  readonly #all = new Set<Connection>();
  readonly #queue: {
    resolve: (connection: Connection) => void;
    reject: (error: unknown) => void;
  }[] = [];
  #closed = false;

  constructor(open: () => Connection, max: number) {
    this.#open = open;
    this.#max = max;
  }

  /** Connections open now (idle or in use). */
  get size(): number {
    return this.#all.size;
  }

  acquire(): Promise<Connection> {
    if (this.#closed) return Promise.reject(closedError());
    const idle = this.#idle.pop();
    if (idle) return Promise.resolve(idle);
    if (this.#all.size < this.#max) {
      const connection = this.#open();
      this.#all.add(connection);
      return Promise.resolve(connection);
    }
    return new Promise((resolve, reject) => this.#queue.push({ resolve, reject }));
  }

  /** Gives a connection back; `discard` closes it (a read that timed out may still be blocked on it). */
  release(connection: Connection, discard: boolean): void {
    if (discard || this.#closed) {
      this.#all.delete(connection);
      void connection.close();
      const next = this.#queue.shift();
      if (next && !this.#closed) {
        const replacement = this.#open();
        this.#all.add(replacement);
        next.resolve(replacement);
      }
      return;
    }
    const next = this.#queue.shift();
    if (next) next.resolve(connection);
    else this.#idle.push(connection);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const waiter of this.#queue.splice(0)) waiter.reject(closedError());
    this.#idle.length = 0;
    await Promise.all([...this.#all].map((connection) => connection.close()));
    this.#all.clear();
  }
}

function closedError(): RedisError {
  return new RedisError('CLOSED', 'the redis handle is closed');
}
