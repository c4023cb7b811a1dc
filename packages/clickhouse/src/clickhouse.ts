// One handle (one @clickhouse/client, keep-alive sockets) per process; what the
// original made per request are per-query settings and query ids.
// Decision record: docs/decisions/003-one-clickhouse-client-per-process.md
import {
  ClickHouseLogLevel,
  createClient,
  type ClickHouseClient,
  type Logger as DriverLogger,
} from '@clickhouse/client';
import type { ClickHouseSettings } from '@flowforge/config';
import { getRequestContext, type Logger, type Metrics } from '@flowforge/observability';
import type { QueryParams } from './internal/binder.js';
import { elapsedMs, systemClock } from './internal/clock.js';
import { detectProfile } from './internal/detect.js';
import { createClickHouseMetrics } from './internal/metrics.js';
import {
  MAX_TIMEOUT_MS,
  resolveOptions,
  safeUrl,
  type QuerySettings,
  type ResolvedOptions,
} from './internal/options.js';
import { nextQueryId } from './internal/query-id.js';
import { createQueryKiller } from './internal/query-killer.js';
import { collect, QueryLifecycle } from './internal/query-lifecycle.js';
import { RowStream } from './internal/row-stream.js';
import { logDetection, ServerDetection } from './internal/server-detection.js';

export type { QueryParams } from './internal/binder.js';
export type { QuerySettings } from './internal/options.js';

/**
 * An @clickhouse/client `ClickHouseClient`, as the `client` option takes it: described by the
 * members this package calls rather than by @clickhouse/client's declarations, so that this
 * package's types compile whatever release of it a consumer resolves
 * ([decision 008](https://github.com/flowforge/flowforge-core/blob/main/docs/decisions/008-driver-types-stay-private.md)).
 */
export interface ClickHouseDriver {
  /** @clickhouse/client's `exec()`: runs a statement and returns its raw stream. */
  exec(params: never): Promise<unknown>;
  /** @clickhouse/client's `close()`. */
  close(): Promise<void>;
}

/**
 * Options of {@link createClickHouse}. `settings.clickhouse` from
 * @flowforge/config (`url`, `user`, `password`, `database`, `requestTimeoutMs`)
 * spreads straight in (the `extends` keeps the two in step); add `logger` and `metrics`.
 */
export interface ClickHouseOptions extends Partial<ClickHouseSettings> {
  /**
   * The HTTP interface, `http://host:8123` (CLICKHOUSE_URL). `null` or absent
   * without `client`: {@link createClickHouse} throws NOT_CONFIGURED. User info
   * in the URL (`http://user:pass@host:8123`) wins over `user`/`password`.
   */
  readonly url?: string | null;
  /** @default 'default' */
  readonly user?: string;
  /** Never logged nor put in an error message. @default '' */
  readonly password?: string;
  /** The database unqualified table names resolve in. @default 'default' */
  readonly database?: string;
  /**
   * The default deadline of a query (connect, run, and read every row), and of
   * the first-use detection. The driver's default of 30 s is too long for a
   * request path. @default 10000
   */
  readonly requestTimeoutMs?: number;
  /**
   * How long an idle keep-alive socket is kept. It must stay below the server's
   * `keep_alive_timeout` (3 s on 18.16 and up to 23.x; 10 s later), or the
   * server closes sockets the client is about to reuse (ECONNRESET). @default 2000
   */
  readonly idleSocketTtlMs?: number;
  /** Most sockets open to the server at once. @default 10 */
  readonly maxOpenConnections?: number;
  /**
   * Ask for gzip responses. Costs CPU on both sides; worth it only across a
   * slow network. A readonly=1 user cannot turn it on per query (the setting is
   * refused), so for such a user it stays off. @default false
   */
  readonly compression?: boolean;
  /**
   * How `{name:Type}` placeholders are bound: `server` sends `param_<name>`
   * (ClickHouse ≥ 19.x, chdb); `client` substitutes checked literals of a
   * strict set of types (18.16 has no query parameters); `auto` probes the
   * server once at first use. @default 'auto'
   */
  readonly parameterBinding?: 'auto' | 'server' | 'client';
  /**
   * How long what the first query learnt (the user's readonly level, parameter
   * binding) is trusted before it is checked again; `0` checks before every
   * query. It is also dropped after AUTH_FAILED and after a READONLY error about
   * a setting (the user's profile changed). @default 300000
   */
  readonly detectionTtlMs?: number;
  /**
   * An @clickhouse/client to use instead of building one (e.g. one on chdb's
   * `createChdbConnection`). `close()` leaves it open: its owner closes it. The
   * connection options above are then unused.
   */
  readonly client?: ClickHouseDriver;
  /**
   * Lets `{name:Identifier}` placeholders through to servers that bind them.
   * Such a value is a table or column name, not a value: it can point a query
   * (a tenant query too) at another table. Client-side binding never binds them.
   * @default false
   */
  readonly allowIdentifierParams?: boolean;
  /**
   * Names the handle in logs and in the driver's User-Agent (`http_user_agent`
   * in system.processes): 1 to 64 letters, digits, `_ . : -`. @default 'flowforge'
   */
  readonly name?: string;
  /** Gets failed queries (debug), the detection result (info) and the driver's own warnings (debug). */
  readonly logger?: Logger;
  /** Gets the query duration histogram and the row, byte and error counters. */
  readonly metrics?: Metrics;
}

/** Options of one query. */
export interface QueryOptions {
  /** Cancels the query (CANCELLED): before sending, while waiting, or mid-stream. */
  readonly signal?: AbortSignal;
  /** This query's deadline, from start to last row (TIMEOUT). @default the handle's requestTimeoutMs */
  readonly timeoutMs?: number;
  /**
   * The query_id to send instead of the derived `<request id>:<random>` (1–128
   * visible ASCII characters). Sent as given: a second query with it while the
   * first runs is UNAVAILABLE (ClickHouse 216).
   */
  readonly queryId?: string;
  /**
   * ClickHouse settings for this query only: limits, overflow modes and tuning
   * (`max_result_rows`, `max_threads`, … the README lists them); any other name
   * is refused (INVALID_ARGUMENT), and a readonly=1 user accepts none (READONLY).
   */
  readonly settings?: QuerySettings;
}

/** What {@link ClickHouse.health} reports when the server answers. */
export interface ClickHouseHealth {
  /** Always `up`: a server that does not answer makes `health()` throw instead. */
  readonly status: 'up';
  /** The round trip of `SELECT 1`, in milliseconds (the first call includes connecting and detection). */
  readonly latencyMs: number;
}

/** A handle on one ClickHouse server. Nothing connects until the first query. */
export interface ClickHouse {
  /** The `name` option. */
  readonly name: string;
  /**
   * Runs a read and resolves to every row (JSONEachRow, parsed). Values are
   * bound only through `{name:Type}` placeholders and `params`.
   * @throws {ClickHouseError}
   * @example
   * const rows = await clickhouse.query<{ day: string; hits: string }>(
   *   'SELECT toDate(ts) AS day, count() AS hits FROM events WHERE ts >= {from:DateTime} GROUP BY day',
   *   { from: '2026-11-01 00:00:00' },
   * );
   */
  query<T = Record<string, unknown>>(
    sql: string,
    params?: QueryParams,
    options?: QueryOptions,
  ): Promise<T[]>;
  /**
   * The rows of a read, one at a time, as they arrive: the socket is read only
   * as fast as you consume. Breaking out of the loop (or `return()`) aborts the
   * HTTP request and destroys its socket. Nothing is sent until the first
   * `next()`; every error, argument errors included, rejects an iteration.
   * One consumer at a time.
   * @example
   * for await (const row of clickhouse.stream<{ id: string }>('SELECT id FROM events')) {
   *   if (done(row)) break; // the request is aborted here
   * }
   */
  stream<T = Record<string, unknown>>(
    sql: string,
    params?: QueryParams,
    options?: QueryOptions,
  ): AsyncIterable<T>;
  /**
   * {@link query} for one tenant: the SQL must filter on a `{tenant_id:UUID}`
   * placeholder, which is bound to `tenantId` (a UUID, from the verified
   * principal). A `tenant_id` in `params` (in any letter case) and a lookalike
   * placeholder such as `{Tenant_Id:UUID}` are refused: the tenant can never be
   * overridden. What the SQL does with the placeholder (`IN (…)`, `OR`) is the
   * caller's: the helper guarantees the binding, not the filter.
   * @throws {ClickHouseError} INVALID_ARGUMENT for a missing placeholder, a non-UUID tenant id, a `params.tenant_id` or a lookalike
   * @example
   * const rows = await clickhouse.queryForTenant(principal.tenantId,
   *   'SELECT count() AS n FROM events WHERE tenant_id = {tenant_id:UUID}');
   */
  queryForTenant<T = Record<string, unknown>>(
    tenantId: string,
    sql: string,
    params?: QueryParams,
    options?: QueryOptions,
  ): Promise<T[]>;
  /** {@link stream} for one tenant, with the rules of {@link queryForTenant}. */
  streamForTenant<T = Record<string, unknown>>(
    tenantId: string,
    sql: string,
    params?: QueryParams,
    options?: QueryOptions,
  ): AsyncIterable<T>;
  /** Runs `SELECT 1` as a query (authenticated, detected). @throws {ClickHouseError} UNAVAILABLE, TIMEOUT, AUTH_FAILED, CLOSED, … */
  health(): Promise<ClickHouseHealth>;
  /** Aborts queries in flight (CLOSED) and closes the client it built. Idempotent. */
  close(): Promise<void>;
}

/**
 * Creates a handle on ClickHouse. Nothing connects here: the first query (or
 * `health()`) detects the user's readonly level and the server's parameter
 * binding, then every query is read-only whatever the user may do.
 *
 * @throws {ClickHouseError} NOT_CONFIGURED when there is neither `url` nor
 *   `client` (CLICKHOUSE_URL unset; the app answers 503); INVALID_OPTIONS naming
 *   every option out of range, checked first.
 * @example
 * const clickhouse = createClickHouse({ ...settings.clickhouse, logger, metrics });
 */
export function createClickHouse(options: ClickHouseOptions): ClickHouse {
  const { name, binding, requestTimeoutMs, server, ...checked } = resolveOptions(options);
  const { logger } = options;
  const clock = systemClock;
  const connection = server.kind === 'url' ? server.connection : undefined;
  const client =
    server.kind === 'url' ? buildClient(server.connection, name, logger) : server.client;
  const compression = connection?.compression ?? false;
  const closing = new AbortController();
  const detection = new ServerDetection({
    detect: async (signal) => {
      const profile = await detectProfile(client, binding, signal, requestTimeoutMs);
      const target = connection && { url: safeUrl(connection.url), user: connection.username };
      logDetection({ logger, name, target, compression }, profile);
      return profile;
    },
    ttlMs: checked.detectionTtlMs,
    timeoutMs: requestTimeoutMs,
    closing: closing.signal,
    clock,
  });
  const queries = new QueryLifecycle({
    client,
    detection,
    kill: createQueryKiller({
      client,
      closing: closing.signal,
      timeoutMs: requestTimeoutMs,
      compression,
      logger,
      name,
      clock,
    }),
    nextQueryId: () => nextQueryId(getRequestContext()),
    instruments: options.metrics ? createClickHouseMetrics(options.metrics) : undefined,
    logger,
    name,
    requestTimeoutMs,
    allowIdentifiers: checked.allowIdentifiers,
    compression,
    clock,
  });
  let closed: Promise<void> | undefined;
  return {
    name,
    query: (sql, params, queryOptions) => collect(queries.start(sql, params, queryOptions)),
    stream: (sql, params, queryOptions) =>
      new RowStream(() => queries.start(sql, params, queryOptions)),
    queryForTenant: (tenantId, sql, params, queryOptions) =>
      collect(queries.start(sql, params, queryOptions, tenantId)),
    streamForTenant: (tenantId, sql, params, queryOptions) =>
      new RowStream(() => queries.start(sql, params, queryOptions, tenantId)),
    async health() {
      const started = clock.now();
      await collect(queries.start('SELECT 1', undefined));
      return { status: 'up', latencyMs: elapsedMs(clock, started) };
    },
    close() {
      closed ??= (async () => {
        closing.abort('closed');
        queries.close();
        // A client given as `client` is its owner's to close.
        if (connection !== undefined) await client.close();
      })();
      return closed;
    },
  };
}

/** The driver's own log lines go to ours at debug: its warnings include every early break. */
function driverLogger(logger: Logger | undefined, name: string): new () => DriverLogger {
  const write = (params: { module: string; message: string; err?: Error }): void => {
    if (logger?.isLevelEnabled('debug')) {
      logger.debug(
        { clickhouse: name, module: params.module, err: params.err },
        `@clickhouse/client: ${params.message}`,
      );
    }
  };
  return class implements DriverLogger {
    trace(): void {}
    debug(): void {}
    info(): void {}
    warn(params: { module: string; message: string; err?: Error }): void {
      write(params);
    }
    error(params: { module: string; message: string; err: Error }): void {
      write(params);
    }
  };
}

function buildClient(
  resolved: ResolvedOptions,
  name: string,
  logger: Logger | undefined,
): ClickHouseClient {
  return createClient({
    url: resolved.url,
    username: resolved.username,
    password: resolved.password,
    database: resolved.database,
    application: `flowforge-${name}`,
    // Our own deadline (timeoutMs) ends every query; the driver's socket timer
    // must never fire first with its own error.
    request_timeout: MAX_TIMEOUT_MS,
    max_open_connections: resolved.maxOpenConnections,
    compression: { response: resolved.compression, request: false },
    keep_alive: {
      enabled: true,
      idle_socket_ttl: resolved.idleSocketTtlMs,
      // On a busy event loop the TTL timer fires late: check the age before reuse too.
      eagerly_destroy_stale_sockets: true,
    },
    log: { LoggerClass: driverLogger(logger, name), level: ClickHouseLogLevel.WARN },
  });
}
