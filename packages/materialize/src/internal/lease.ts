import type { FieldDef, PoolClient } from 'pg';
import type { CancelTarget } from './cancel.js';
import { StatementTimeoutError } from './error-map.js';

/** The array-mode result of one statement. */
export interface ArrayResult {
  readonly rows: readonly (readonly unknown[])[];
  readonly fields: readonly FieldDef[];
}

/** What node-postgres keeps about a connected client but does not type. */
interface ClientInternals {
  readonly processID?: number | null;
  readonly secretKey?: number | null;
  readonly host?: string;
  readonly port?: number;
}

function noop(): void {}

/**
 * A client checked out of the pool, with its own `'error'` listener for as
 * long as it is out: node-postgres emits `'error'` on a client whose backend
 * dies, and a checked-out client without a listener crashes the process (the
 * pool listens only to idle ones). Released once: back to the pool, or
 * destroyed when its state is unknown.
 */
export class Lease {
  readonly client: PoolClient;
  /** The socket broke, or a statement went unanswered: never reuse. */
  dead = false;
  /** The first error the client emitted. */
  lostError: unknown = undefined;
  #released = false;
  #onLost: ((error: unknown) => void) | undefined;
  readonly #listener = (error: unknown): void => {
    this.dead = true;
    this.lostError ??= error;
    this.#onLost?.(error);
  };

  constructor(client: PoolClient) {
    this.client = client;
    client.on('error', this.#listener);
  }

  /** Called (once per error) when the client reports its connection broken. */
  set onLost(callback: ((error: unknown) => void) | undefined) {
    this.#onLost = callback;
  }

  get released(): boolean {
    return this.#released;
  }

  /** The session's BackendKeyData and server address, when the server sent them. */
  get cancelTarget(): CancelTarget | undefined {
    const internals = this.client as unknown as ClientInternals;
    const { processID, secretKey, host, port } = internals;
    if (
      typeof processID !== 'number' ||
      typeof secretKey !== 'number' ||
      typeof host !== 'string' ||
      typeof port !== 'number'
    ) {
      return undefined;
    }
    return { host, port, processId: processID, secretKey };
  }

  /**
   * Runs one statement (array rows) bounded by `timeoutMs`: past it the client
   * is destroyed (a hung server or network) and StatementTimeoutError rejects.
   */
  query(text: string, timeoutMs: number): Promise<ArrayResult> {
    if (this.dead || this.#released) {
      return Promise.reject(
        this.lostError instanceof Error
          ? this.lostError
          : new Error('Client has encountered a connection error and is not queryable'),
      );
    }
    return new Promise<ArrayResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.dead = true;
        reject(new StatementTimeoutError(text.split(' ', 1)[0] ?? 'statement', timeoutMs));
        this.release(true);
      }, timeoutMs);
      this.client.query({ text, rowMode: 'array' }).then(
        (result) => {
          clearTimeout(timer);
          resolve(result);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  /** Back to the pool (`destroy`: closed instead; always when dead). Idempotent. */
  release(destroy: boolean): void {
    if (this.#released) return;
    this.#released = true;
    this.#onLost = undefined;
    const gone = destroy || this.dead;
    this.client.removeListener('error', this.#listener);
    // The pool listens again from here on; a late error of a destroyed client must not crash.
    if (gone) this.client.on('error', noop);
    this.client.release(gone ? true : undefined);
  }
}
