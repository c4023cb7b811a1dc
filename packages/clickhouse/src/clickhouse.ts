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
import { ClickHouseError } from './errors.js';
import {
  bindParams,
  isUuid,
  quoteString,
  scanPlaceholders,
  type BoundQuery,
  type Placeholder,
  type QueryParams,
} from './internal/binder.js';
import { detectProfile } from './internal/detect.js';
import { createClickHouseMetrics, type ClickHouseMetrics } from './internal/metrics.js';
import {
  checkSettings,
  integerOption,
  MAX_TIMEOUT_MS,
  querySettings,
  readonlyOneSettings,
  resolveConnection,
  safeUrl,
  type QuerySettings,
  type ResolvedOptions,
  type ServerProfile,
} from './internal/options.js';
import { isValidQueryId, nextQueryId } from './internal/query-id.js';
import { RowReader } from './internal/rows.js';
import { toClickHouseError, type AbortReason } from './internal/server-errors.js';

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

/** The structural check behind {@link ClickHouseDriver}: the one cast to the driver's type. */
function isClickHouseClient(value: unknown): value is ClickHouseClient {
  const candidate = value as { exec?: unknown; close?: unknown } | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.exec === 'function' &&
    typeof candidate.close === 'function'
  );
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
  /** Names the handle in logs and in the driver's User-Agent (`http_user_agent` in system.processes). @default 'flowforge' */
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

/** A query checked and ready to send. */
interface Prepared {
  readonly placeholders: Placeholder[];
  readonly params: QueryParams | undefined;
  readonly timeoutMs: number;
  /** The query as a server that binds parameters gets it. */
  readonly serverBound: BoundQuery;
}

/** A query in flight: its reader and how it ends. */
interface Execution {
  readonly reader: RowReader;
  readonly queryId: string;
  /** The body ended: success, unless the handle aborted it meanwhile. @throws {ClickHouseError} */
  complete(): void;
  /** The consumer stopped early: the request is aborted. */
  stop(): void;
  /** Maps, records and returns the error that ended the query. */
  fail(error: unknown): ClickHouseError;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * Creates a handle on ClickHouse. Nothing connects here: the first query (or
 * `health()`) detects the user's readonly level and the server's parameter
 * binding, then every query is read-only whatever the user may do.
 *
 * @throws {ClickHouseError} NOT_CONFIGURED when there is neither `url` nor
 *   `client` (CLICKHOUSE_URL unset; the app answers 503); INVALID_OPTIONS for an
 *   option out of range.
 * @example
 * const clickhouse = createClickHouse({ ...settings.clickhouse, logger, metrics });
 */
export function createClickHouse(options: ClickHouseOptions): ClickHouse {
  const name = options.name ?? 'flowforge';
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    throw new ClickHouseError('INVALID_OPTIONS', 'name must be 1–64 letters, digits, _ . or -');
  }
  const binding = options.parameterBinding ?? 'auto';
  const allowIdentifiers = options.allowIdentifierParams ?? false;
  if (typeof allowIdentifiers !== 'boolean') {
    throw new ClickHouseError('INVALID_OPTIONS', 'allowIdentifierParams must be a boolean');
  }
  if (binding !== 'auto' && binding !== 'server' && binding !== 'client') {
    throw new ClickHouseError(
      'INVALID_OPTIONS',
      "parameterBinding must be 'auto', 'server' or 'client'",
    );
  }
  const detectionTtlMs = integerOption(
    'detectionTtlMs',
    options.detectionTtlMs,
    300_000,
    0,
    MAX_TIMEOUT_MS,
  );
  const requestTimeoutMs = integerOption(
    'requestTimeoutMs',
    options.requestTimeoutMs,
    10_000,
    1,
    MAX_TIMEOUT_MS,
  );
  const { logger } = options;
  let client: ClickHouseClient;
  let ownsClient: boolean;
  let resolved: ResolvedOptions | undefined;
  if (options.client) {
    const given: unknown = options.client;
    if (!isClickHouseClient(given)) {
      throw new ClickHouseError(
        'INVALID_OPTIONS',
        '`client` is not an @clickhouse/client client (it has no exec() and close())',
      );
    }
    client = given;
    ownsClient = false;
  } else if (typeof options.url === 'string' && options.url.length > 0) {
    resolved = resolveConnection(options.url, options);
    client = buildClient(resolved, name, logger);
    ownsClient = true;
  } else {
    throw new ClickHouseError(
      'NOT_CONFIGURED',
      'no ClickHouse configured: set CLICKHOUSE_URL (or pass `client`)',
    );
  }
  const compression = resolved?.compression ?? false;
  const instruments: ClickHouseMetrics | undefined = options.metrics
    ? createClickHouseMetrics(options.metrics)
    : undefined;

  // ------------------------------------------------------------ detection
  const closing = new AbortController();
  let profile: { readonly value: ServerProfile; readonly at: number } | undefined;
  /** The detection in progress, shared by every query that needs it meanwhile. */
  let detection:
    | { readonly promise: Promise<ServerProfile>; readonly stop: AbortController; waiters: number }
    | undefined;

  const cachedProfile = (): ServerProfile | undefined =>
    profile !== undefined && performance.now() - profile.at < detectionTtlMs
      ? profile.value
      : undefined;

  const detect = async (signal: AbortSignal): Promise<ServerProfile> => {
    const value = await detectProfile(client, binding, signal, requestTimeoutMs);
    profile = { value, at: performance.now() };
    logger?.info(
      {
        clickhouse: name,
        server_version: value.version,
        user_readonly: value.readonly,
        parameter_binding: value.binding,
        ...(resolved ? { url: safeUrl(resolved.url), user: resolved.username } : {}),
      },
      'clickhouse: detected the server and user',
    );
    if (value.readonly === 1 && Object.keys(value.exactJson).length > 0) {
      logger?.warn(
        { clickhouse: name, settings: Object.keys(value.exactJson) },
        'clickhouse: this readonly=1 user cannot ask for quoted 64-bit integers and decimals per query; set them in its profile, or large values lose precision in JSON',
      );
    }
    if (value.readonly === 1 && compression) {
      logger?.warn(
        { clickhouse: name },
        'clickhouse: compression stays off: a readonly=1 user cannot set enable_http_compression per query',
      );
    }
    return value;
  };

  /**
   * The profile, detecting it when needed. A query that gives up (its deadline,
   * its signal) stops waiting at once; the detection itself runs on its own
   * deadline (requestTimeoutMs) and is aborted when no query waits for it any more.
   */
  const awaitProfile = (signal: AbortSignal): Promise<ServerProfile> => {
    if (signal.aborted) return Promise.reject(new Error('aborted'));
    if (detection === undefined) {
      const stop = new AbortController();
      const all = AbortSignal.any([
        closing.signal,
        stop.signal,
        AbortSignal.timeout(requestTimeoutMs),
      ]);
      const started = { promise: detect(all), stop, waiters: 0 };
      const settled = (): void => {
        if (detection === started) detection = undefined;
      };
      void started.promise.then(settled, settled);
      detection = started;
    }
    const current = detection;
    current.waiters += 1;
    return new Promise<ServerProfile>((resolve, reject) => {
      let left = false;
      const leave = (): boolean => {
        if (left) return false;
        left = true;
        signal.removeEventListener('abort', onAbort);
        current.waiters -= 1;
        return true;
      };
      const onAbort = (): void => {
        if (!leave()) return;
        if (current.waiters === 0) {
          // Forgotten now, not when the aborted request has unwound: a query
          // arriving meanwhile must start a detection, not join a dead one.
          if (detection === current) detection = undefined;
          current.stop.abort('abandoned');
        }
        reject(new Error('aborted while detecting the server'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      current.promise.then(
        (value) => {
          if (leave()) resolve(value);
        },
        (error: unknown) => {
          if (leave()) reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  };

  const forgetProfile = (error: ClickHouseError): void => {
    if (
      error.code === 'AUTH_FAILED' ||
      // 18.16 says "Cannot override setting (x)" and "Setting 'readonly' cannot be overrided".
      (error.code === 'READONLY' &&
        error.serverCode !== undefined &&
        /setting/i.test(error.message))
    ) {
      profile = undefined;
    }
  };

  // ------------------------------------------------------------ queries
  const inFlight = new Set<(reason: AbortReason) => void>();
  let closed: Promise<void> | undefined;

  /**
   * Asks the server to stop a query we gave up on (deadline, signal). 18.16
   * notices a closed socket only when it next writes, so a query that reads
   * much and returns little runs on; the user may KILL its own queries even at
   * readonly=1 (measured on 18.16 and chdb). Fire and forget: logged at debug.
   */
  function killQuery(queryId: string): void {
    if (closing.signal.aborted) return;
    void client
      .command({
        query: `KILL QUERY WHERE query_id = ${quoteString(queryId)} ASYNC`,
        // Readonly as the user (nothing else is accepted at readonly=1): its own queries only.
        clickhouse_settings: readonlyOneSettings(compression),
        abort_signal: AbortSignal.any([closing.signal, AbortSignal.timeout(requestTimeoutMs)]),
      })
      .then(
        () =>
          logger?.debug(
            { clickhouse: name, query_id: queryId },
            'clickhouse: killed a query given up on',
          ),
        (error: unknown) =>
          logger?.debug(
            { clickhouse: name, query_id: queryId, err: error },
            'clickhouse: could not kill a query given up on',
          ),
      );
  }

  function record(
    outcome: 'ok' | 'error',
    started: number,
    reader?: RowReader,
    summary?: Summary,
  ): void {
    instruments?.finished(outcome, (performance.now() - started) / 1000, {
      resultRows: reader?.rows ?? 0,
      readRows: summary?.readRows,
      readBytes: summary?.readBytes,
    });
  }

  function failed(error: ClickHouseError, started: number, reader?: RowReader): ClickHouseError {
    instruments?.failed(error.code);
    record('error', started, reader);
    forgetProfile(error);
    if (logger?.isLevelEnabled('debug')) {
      logger.debug(
        {
          clickhouse: name,
          code: error.code,
          server_code: error.serverCode,
          query_id: error.queryId,
          duration_ms: Math.round((performance.now() - started) * 100) / 100,
        },
        'clickhouse: query failed',
      );
    }
    return error;
  }

  /** Checks what can be checked before sending. @throws {ClickHouseError} */
  function prepare(
    sql: string,
    params: QueryParams | undefined,
    queryOptions: QueryOptions,
    tenantId: string | undefined,
  ): Prepared {
    if (closed) throw new ClickHouseError('CLOSED', 'the ClickHouse handle is closed');
    if (typeof sql !== 'string' || sql.trim().length === 0) {
      throw new ClickHouseError('INVALID_ARGUMENT', 'sql must be a non-empty string');
    }
    const timeoutMs =
      queryOptions.timeoutMs === undefined ? requestTimeoutMs : queryOptions.timeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
      throw new ClickHouseError(
        'INVALID_ARGUMENT',
        `timeoutMs must be an integer from 1 to ${MAX_TIMEOUT_MS}`,
      );
    }
    if (queryOptions.queryId !== undefined && !isValidQueryId(queryOptions.queryId)) {
      throw new ClickHouseError(
        'INVALID_ARGUMENT',
        'queryId must be 1–128 visible ASCII characters',
      );
    }
    if (queryOptions.settings !== undefined) checkSettings(queryOptions.settings);
    const placeholders = scanPlaceholders(sql);
    // Checked here, before the first use detects how the server binds: a bad
    // value never waits for (nor depends on) a server. Client mode binds again.
    const bind = (all: QueryParams | undefined): Prepared => ({
      placeholders,
      params: all,
      timeoutMs,
      serverBound: bindParams(sql, placeholders, all, 'server', allowIdentifiers),
    });
    if (tenantId === undefined) return bind(params);

    if (!isUuid(tenantId)) {
      throw new ClickHouseError('INVALID_ARGUMENT', 'the tenant id must be a UUID');
    }
    if (
      params !== undefined &&
      (Object.hasOwn(params, 'tenant_id') ||
        Object.keys(params).some((key) => key.toLowerCase() === 'tenant_id'))
    ) {
      throw new ClickHouseError(
        'INVALID_ARGUMENT',
        'params.tenant_id (in any letter case) is refused: the tenant is the tenantId argument and cannot be overridden',
      );
    }
    // {Tenant_Id:UUID} next to {tenant_id:UUID} reads like the tenant and binds
    // a caller's value: one spelling only.
    if (placeholders.some((p) => p.name !== 'tenant_id' && p.name.toLowerCase() === 'tenant_id')) {
      throw new ClickHouseError(
        'INVALID_ARGUMENT',
        'a tenant query may name its tenant placeholder only {tenant_id:UUID}, in that letter case',
      );
    }
    const tenantPlaceholders = placeholders.filter((p) => p.name === 'tenant_id');
    if (tenantPlaceholders.length === 0 || tenantPlaceholders.some((p) => p.type !== 'UUID')) {
      throw new ClickHouseError(
        'INVALID_ARGUMENT',
        'a tenant query must filter on the {tenant_id:UUID} placeholder (and use no other type for it)',
      );
    }
    return bind({ ...params, tenant_id: tenantId });
  }

  async function start(
    sql: string,
    params: QueryParams | undefined,
    queryOptions: QueryOptions = {},
    tenantId?: string,
  ): Promise<Execution> {
    const started = performance.now();
    let prepared: Prepared;
    try {
      prepared = prepare(sql, params, queryOptions, tenantId);
    } catch (error) {
      throw failed(toClickHouseError(error), started);
    }
    const { timeoutMs } = prepared;
    const queryId = queryOptions.queryId ?? nextQueryId(getRequestContext());
    const { signal } = queryOptions;

    const controller = new AbortController();
    let aborted: AbortReason | undefined;
    let reader: RowReader | undefined;
    /** Set when the request goes out without a server-side deadline: given up on, it is killed. */
    let killOnAbort = false;
    /** Timer, signal listener, close hook: idempotent. */
    const release = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onSignal);
      inFlight.delete(abort);
    };
    const abort = (reason: AbortReason): void => {
      if (aborted !== undefined) return;
      aborted = reason;
      release();
      controller.abort(reason);
      reader?.destroy();
      if (killOnAbort && reason !== 'closed') killQuery(queryId);
    };
    const onSignal = (): void => abort('cancelled');
    const timer = setTimeout(() => abort('timeout'), timeoutMs);
    timer.unref();
    signal?.addEventListener('abort', onSignal, { once: true });
    inFlight.add(abort);
    /** Set once the outcome is recorded (metrics, log): a query ends once. */
    let settled = false;
    const fail = (error: unknown): ClickHouseError => {
      release();
      reader?.destroy();
      const mapped = toClickHouseError(error, { queryId, aborted, timeoutMs });
      if (settled) return mapped;
      settled = true;
      return failed(mapped, started, reader);
    };
    if (signal?.aborted) abort('cancelled');

    let summary: Summary | undefined;
    try {
      if (aborted) throw new Error('aborted before sending');
      const serverProfile = cachedProfile() ?? (await awaitProfile(controller.signal));
      const bound =
        serverProfile.binding === 'server'
          ? prepared.serverBound
          : bindParams(sql, prepared.placeholders, prepared.params, 'client', allowIdentifiers);
      const settings = querySettings(serverProfile, queryOptions.settings, timeoutMs, compression);
      // A readonly=1 user's query carries no server-side deadline (the server
      // refuses max_execution_time from it): if we give up, it is killed.
      killOnAbort = serverProfile.readonly === 1;
      const result = await client.exec({
        query: `${stripTrailingSemicolons(bound.sql)}\nFORMAT JSONEachRow`,
        query_id: queryId,
        abort_signal: controller.signal,
        clickhouse_settings: settings,
        ...(bound.params === undefined ? {} : { query_params: bound.params }),
      });
      summary = summaryOf(result.summary);
      reader = new RowReader(result.stream);
      // Aborted while the headers were on their way: the driver no longer listens.
      if (aborted) reader.destroy();
    } catch (error) {
      throw fail(error);
    }
    const current = reader;
    return {
      reader: current,
      queryId,
      complete() {
        if (aborted) throw fail(new Error('the response ended after the query was aborted'));
        release();
        if (settled) return;
        settled = true;
        record('ok', started, current, summary);
      },
      stop() {
        release();
        current.destroy();
        if (settled) return;
        settled = true;
        record('ok', started, current, summary);
      },
      fail,
    };
  }

  async function collect<T>(execution: Promise<Execution>): Promise<T[]> {
    const running = await execution;
    const rows: T[] = [];
    const { reader } = running;
    try {
      for (;;) {
        let row: unknown;
        while ((row = reader.take()) !== undefined) rows.push(row as T);
        if (!(await reader.fill())) break;
      }
    } catch (error) {
      throw running.fail(error);
    }
    running.complete();
    return rows;
  }

  const handle: ClickHouse = {
    name,
    query: (sql, params, queryOptions) => collect(start(sql, params, queryOptions)),
    stream: (sql, params, queryOptions) => new RowStream(() => start(sql, params, queryOptions)),
    queryForTenant: (tenantId, sql, params, queryOptions) =>
      collect(start(sql, params, queryOptions, tenantId)),
    streamForTenant: (tenantId, sql, params, queryOptions) =>
      new RowStream(() => start(sql, params, queryOptions, tenantId)),
    async health() {
      const started = performance.now();
      await collect(start('SELECT 1', undefined));
      return { status: 'up', latencyMs: Math.round((performance.now() - started) * 100) / 100 };
    },
    close() {
      closed ??= (async () => {
        closing.abort('closed');
        for (const abort of [...inFlight]) abort('closed');
        if (ownsClient) await client.close();
      })();
      return closed;
    },
  };
  return handle;
}

/**
 * The async iterator of {@link ClickHouse.stream}: a row already read costs one
 * resolved promise, nothing else; the query starts on the first `next()`.
 */
class RowStream<T> implements AsyncIterableIterator<T> {
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

interface Summary {
  readonly readRows: number | undefined;
  readonly readBytes: number | undefined;
}

function summaryOf(
  summary: { read_rows?: string; read_bytes?: string } | undefined,
): Summary | undefined {
  if (summary === undefined) return undefined;
  const count = (value: string | undefined): number | undefined => {
    const number = Number(value);
    return value !== undefined && Number.isFinite(number) && number >= 0 ? number : undefined;
  };
  return { readRows: count(summary.read_rows), readBytes: count(summary.read_bytes) };
}

/** `SELECT 1;` + `\nFORMAT …` would be two statements. */
function stripTrailingSemicolons(sql: string): string {
  return sql.replace(/[\s;]+$/, '');
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
