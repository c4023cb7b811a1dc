import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import { DatabaseError } from '../errors.js';

export interface QueryDeadlineOptions {
  /** How long one query may wait for its answer, in milliseconds. */
  readonly queryTimeoutMs: number;
  /** What the view's `end()` does: the bounded end of a pool we own, nothing for a shared one. */
  readonly end: () => Promise<void>;
}

/**
 * A view of `pool` for Kysely's Postgres dialect in which every query has a
 * client-side deadline: a query with no answer after `queryTimeoutMs` rejects
 * with DatabaseError QUERY_TIMEOUT, and its connection is discarded (destroyed
 * on release, never returned to the pool), because nobody can tell any more
 * what state its session is in. Why this, and not node-postgres's own
 * `query_timeout`: docs/decisions/013-client-side-query-deadline.md.
 *
 * Waiting for a connection is not covered here: the pool's
 * `connectionTimeoutMillis` bounds it.
 */
export function withQueryDeadline(pool: PostgresPool, options: QueryDeadlineOptions): PostgresPool {
  // One view per driver client: Kysely keys its connection objects by client.
  const views = new WeakMap<PostgresPoolClient, DeadlineClient>();
  return {
    async connect() {
      const client = await pool.connect();
      let view = views.get(client);
      if (!view) {
        view = new DeadlineClient(client, options.queryTimeoutMs);
        views.set(client, view);
      }
      return view;
    },
    end: options.end,
    options: pool.options,
    // Kysely opens its cancel connections with it, as it did on the bare pool.
    ...(pool.Client ? { Client: pool.Client } : {}),
  };
}

class DeadlineClient implements PostgresPoolClient {
  readonly #client: PostgresPoolClient;
  readonly #timeoutMs: number;
  /** Set when a query got no answer in time: the session's state is unknown from then on. */
  #expired = false;

  constructor(client: PostgresPoolClient, timeoutMs: number) {
    this.#client = client;
    this.#timeoutMs = timeoutMs;
  }

  /** The backend's pid, which Kysely reads to cancel a query (0: Kysely asks the server instead). */
  get processID(): number {
    return this.#client.processID ?? 0;
  }

  query<R>(sql: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>>;
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
  query<R>(
    sqlOrCursor: string | PostgresCursor<R>,
    parameters: readonly unknown[] = [],
  ): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    // Kysely sends a cursor only for `.stream()` with a `cursor` in the dialect's
    // config, which createDatabase never sets: every query it sends is text.
    if (typeof sqlOrCursor !== 'string') return this.#client.query(sqlOrCursor);
    if (this.#expired) {
      // The ROLLBACK Kysely sends after the timeout, say: it would only wait behind the lost query.
      return Promise.reject(
        new DatabaseError(
          'QUERY_TIMEOUT',
          `an earlier query on this connection got no answer within ${this.#timeoutMs} ms (queryTimeoutMs); the connection is discarded`,
        ),
      );
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        this.#expired = true;
        reject(
          new DatabaseError(
            'QUERY_TIMEOUT',
            `no answer from PostgreSQL within ${this.#timeoutMs} ms (queryTimeoutMs): the server or the network is stuck; the connection is discarded, and whether the statement ran is unknown`,
          ),
        );
      }, this.#timeoutMs);
    });
    // race() listens to both: once the deadline has won, the driver's late outcome
    // (an answer, or the "Connection terminated" of the discard) is dropped, never unhandled.
    return Promise.race([this.#client.query<R>(sqlOrCursor, parameters), deadline]).finally(() =>
      clearTimeout(timer),
    );
  }

  release(destroy?: boolean): void {
    // pg-pool ends a client released with a truthy argument instead of pooling it.
    this.#client.release(destroy === true || this.#expired);
  }
}
