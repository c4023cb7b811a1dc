import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from '@flowforge/observability';
import { ClickHouseError } from '../errors.js';
import { bindParams, type QueryParams } from './binder.js';
import { elapsedMs, type Clock } from './clock.js';
import type { ClickHouseMetrics } from './metrics.js';
import { querySettings } from './options.js';
import { prepareQuery, type Prepared, type QueryInput } from './prepare.js';
import { RowReader } from './rows.js';
import type { ServerDetection } from './server-detection.js';
import { toClickHouseError, type AbortReason } from './server-errors.js';

/** A query in flight: its reader and how it ends. */
export interface Execution {
  readonly reader: RowReader;
  readonly queryId: string;
  /** The body ended: success, unless the handle aborted it meanwhile. @throws {ClickHouseError} */
  complete(): void;
  /** The consumer stopped early: the request is aborted. */
  stop(): void;
  /** Maps, records and returns the error that ended the query. */
  fail(error: unknown): ClickHouseError;
}

/** What {@link QueryLifecycle} needs: the handle's parts and options. */
export interface QueryLifecycleOptions {
  /** The driver's `exec()` is all it uses. */
  readonly client: Pick<ClickHouseClient, 'exec'>;
  readonly detection: Pick<ServerDetection, 'cached' | 'profile' | 'forgetAfter'>;
  /** Asks the server to stop a query given up on (see `createQueryKiller`). */
  readonly kill: (queryId: string) => void;
  /** The query_id of a query that brings none of its own. */
  readonly nextQueryId: () => string;
  readonly instruments: ClickHouseMetrics | undefined;
  readonly logger: Logger | undefined;
  /** The handle's name, for the log. */
  readonly name: string;
  readonly requestTimeoutMs: number;
  readonly allowIdentifiers: boolean;
  readonly compression: boolean;
  readonly clock: Clock;
}

/** `read_rows` / `read_bytes` of the X-ClickHouse-Summary header. */
interface Summary {
  readonly readRows: number | undefined;
  readonly readBytes: number | undefined;
}

/** What every query of one handle shares. */
interface Shared {
  readonly options: QueryLifecycleOptions;
  readonly outcomes: QueryOutcomes;
  /** The queries that `close()` aborts. */
  readonly inFlight: Set<QueryRun>;
}

/**
 * Every query of one handle from start to end: checks, the deadline, the
 * caller's signal, the first-use detection, sending, and one recorded outcome
 * (metrics, debug log) per query. `close()` aborts every query in flight.
 */
export class QueryLifecycle {
  readonly #shared: Shared;
  #closed = false;

  constructor(options: QueryLifecycleOptions) {
    this.#shared = { options, outcomes: new QueryOutcomes(options), inFlight: new Set() };
  }

  /**
   * Checks and sends a query; resolves once its response headers arrived.
   * @throws {ClickHouseError} whatever ended it (and recorded as such)
   */
  async start(
    sql: string,
    params: QueryParams | undefined,
    input: QueryInput = {},
    tenantId?: string,
  ): Promise<Execution> {
    const { options, outcomes } = this.#shared;
    const started = options.clock.now();
    let prepared: Prepared;
    try {
      if (this.#closed) throw new ClickHouseError('CLOSED', 'the ClickHouse handle is closed');
      prepared = prepareQuery(sql, params, input, tenantId, options);
    } catch (error) {
      throw outcomes.failed(toClickHouseError(error), started);
    }
    const queryId = prepared.queryId ?? options.nextQueryId();
    const run = new QueryRun(this.#shared, started, queryId, prepared.timeoutMs, input.signal);
    const reader = await run.send(prepared);
    return {
      reader,
      queryId,
      complete: () => run.complete(reader),
      stop: () => run.stop(reader),
      fail: (error) => run.fail(error),
    };
  }

  /** Aborts every query in flight (CLOSED); queries started after are refused. */
  close(): void {
    this.#closed = true;
    for (const run of [...this.#shared.inFlight]) run.abort('closed');
  }
}

/** Records how each query ended: metrics, the debug log, and what the detection must forget. */
class QueryOutcomes {
  readonly #options: QueryLifecycleOptions;

  constructor(options: QueryLifecycleOptions) {
    this.#options = options;
  }

  /** A finished query's duration and counts. */
  finished(outcome: 'ok' | 'error', started: number, reader?: RowReader, summary?: Summary): void {
    this.#options.instruments?.finished(outcome, (this.#options.clock.now() - started) / 1000, {
      resultRows: reader?.rows ?? 0,
      readRows: summary?.readRows,
      readBytes: summary?.readBytes,
    });
  }

  /** A failed query; returns its error. */
  failed(error: ClickHouseError, started: number, reader?: RowReader): ClickHouseError {
    const { instruments, logger, detection, name, clock } = this.#options;
    instruments?.failed(error.code);
    this.finished('error', started, reader);
    detection.forgetAfter(error);
    if (logger?.isLevelEnabled('debug')) {
      logger.debug(
        {
          clickhouse: name,
          code: error.code,
          server_code: error.serverCode,
          query_id: error.queryId,
          duration_ms: elapsedMs(clock, started),
        },
        'clickhouse: query failed',
      );
    }
    return error;
  }
}

/**
 * One query after its checks: armed with its deadline and the caller's signal
 * from construction, it ends exactly once (complete, stop or fail), and is
 * killed on the server when given up on without a server-side deadline.
 */
class QueryRun {
  readonly #shared: Shared;
  readonly #started: number;
  readonly #queryId: string;
  readonly #timeoutMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #controller = new AbortController();
  readonly #cancelTimer: () => void;
  #aborted: AbortReason | undefined;
  #reader: RowReader | undefined;
  #summary: Summary | undefined;
  /** Set when the request goes out without a server-side deadline: given up on, it is killed. */
  #killOnAbort = false;
  /** Set once the outcome is recorded (metrics, log): a query ends once. */
  #settled = false;

  constructor(
    shared: Shared,
    started: number,
    queryId: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ) {
    this.#shared = shared;
    this.#started = started;
    this.#queryId = queryId;
    this.#timeoutMs = timeoutMs;
    this.#signal = signal;
    this.#cancelTimer = shared.options.clock.setTimer(() => this.abort('timeout'), timeoutMs);
    signal?.addEventListener('abort', this.#onSignal, { once: true });
    shared.inFlight.add(this);
    if (signal?.aborted) this.abort('cancelled');
  }

  readonly #onSignal = (): void => this.abort('cancelled');

  /** Gives up on the query: the request is aborted, its body destroyed. */
  abort(reason: AbortReason): void {
    if (this.#aborted !== undefined) return;
    this.#aborted = reason;
    this.#release();
    this.#controller.abort(reason);
    this.#reader?.destroy();
    if (this.#killOnAbort && reason !== 'closed') this.#shared.options.kill(this.#queryId);
  }

  /**
   * Waits for the server profile, binds, and sends the query.
   * @throws {ClickHouseError} what ended it, recorded
   */
  async send(prepared: Prepared): Promise<RowReader> {
    const { client, detection, allowIdentifiers, compression } = this.#shared.options;
    try {
      if (this.#aborted) throw new Error('aborted before sending');
      const profile = detection.cached() ?? (await detection.profile(this.#controller.signal));
      const bound =
        profile.binding === 'server'
          ? prepared.serverBound
          : bindParams(
              prepared.sql,
              prepared.placeholders,
              prepared.params,
              'client',
              allowIdentifiers,
            );
      const settings = querySettings(profile, prepared.settings, prepared.timeoutMs, compression);
      // A readonly=1 user's query carries no server-side deadline (the server
      // refuses max_execution_time from it): if we give up, it is killed.
      this.#killOnAbort = profile.readonly === 1;
      const result = await client.exec({
        query: `${stripTrailingSemicolons(bound.sql)}\nFORMAT JSONEachRow`,
        query_id: this.#queryId,
        abort_signal: this.#controller.signal,
        clickhouse_settings: settings,
        ...(bound.params === undefined ? {} : { query_params: bound.params }),
      });
      this.#summary = summaryOf(result.summary);
      const reader = new RowReader(result.stream);
      this.#reader = reader;
      // Aborted while the headers were on their way: the driver no longer listens.
      if (this.#aborted) reader.destroy();
      return reader;
    } catch (error) {
      throw this.fail(error);
    }
  }

  /** The body ended. @throws {ClickHouseError} when the handle aborted the query meanwhile */
  complete(reader: RowReader): void {
    if (this.#aborted) throw this.fail(new Error('the response ended after the query was aborted'));
    this.#release();
    this.#succeeded(reader);
  }

  /** The consumer stopped early: an outcome of `ok`. */
  stop(reader: RowReader): void {
    this.#release();
    reader.destroy();
    this.#succeeded(reader);
  }

  /** Maps the error that ended the query, recording it the first time. */
  fail(error: unknown): ClickHouseError {
    this.#release();
    this.#reader?.destroy();
    const mapped = toClickHouseError(error, {
      queryId: this.#queryId,
      aborted: this.#aborted,
      timeoutMs: this.#timeoutMs,
    });
    if (this.#settled) return mapped;
    this.#settled = true;
    return this.#shared.outcomes.failed(mapped, this.#started, this.#reader);
  }

  #succeeded(reader: RowReader): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#shared.outcomes.finished('ok', this.#started, reader, this.#summary);
  }

  /** Timer, signal listener, close hook: idempotent. */
  #release(): void {
    this.#cancelTimer();
    this.#signal?.removeEventListener('abort', this.#onSignal);
    this.#shared.inFlight.delete(this);
  }
}

/** Every row of a query, then its end. @throws {ClickHouseError} */
export async function collect<T>(execution: Promise<Execution>): Promise<T[]> {
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
