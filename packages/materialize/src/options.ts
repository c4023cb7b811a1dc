import type { MaterializeSettings } from '@flowforge/config';
import type { Logger, Metrics } from '@flowforge/observability';

/**
 * How reconnect attempts are spaced: exponential (doubling), capped, with
 * jitter (each delay is drawn from [delay/2, delay], so that many processes do
 * not reconnect in lockstep). Used by `start()`'s background retry and by a
 * subscription that resumes after a lost connection.
 */
export interface ReconnectOptions {
  /** Delay before the first attempt. @default 100 */
  readonly initialDelayMs?: number;
  /** The cap of the delay. @default 10000 */
  readonly maxDelayMs?: number;
  /**
   * Attempts in a row that may fail before giving up: a subscription then
   * throws CONNECTION_LOST, `start()`'s background retry stops (logged).
   * @default Infinity
   */
  readonly maxAttempts?: number;
}

/**
 * Options of {@link createMaterialize}. `settings.materialize` from
 * @flowforge/config (`url`, `poolSize`) spreads straight in; add `logger` and
 * `metrics`.
 */
export interface MaterializeOptions extends Partial<MaterializeSettings> {
  /**
   * MATERIALIZE_URL: `postgres://user[:password]@host:6875/materialize[?sslmode=…]`.
   * `null` or absent: {@link createMaterialize} throws NOT_CONFIGURED. Never
   * logged nor put in an error message with its password.
   * @default null
   */
  readonly url?: string | null;
  /**
   * Most subscriptions at once: each live one holds a connection for its whole
   * life. `health()` and `start()` use one more connection of their own, so a
   * handle busy with subscriptions is never reported down. A subscription that
   * finds no connection free within `connectTimeoutMs` fails with TIMEOUT.
   * @default 5
   */
  readonly poolSize?: number;
  /**
   * Bound of a connection attempt (TCP, TLS and the handshake), of waiting for
   * a free pooled connection, of `health()`'s `SELECT 1`, and of each control
   * statement of a subscription (BEGIN, DECLARE, ROLLBACK).
   * @default 5000
   */
  readonly connectTimeoutMs?: number;
  /**
   * Rows one drain FETCH (`FETCH n … WITH (timeout = '0s')`) may return: the most
   * a subscription reads ahead of its consumer.
   * @default 1000
   */
  readonly fetchBatchSize?: number;
  /**
   * The `WITH (timeout = …)` of the wait FETCH (`FETCH 1`), sent when nothing is
   * ready: how long the server holds it while no row comes. A row is passed on
   * as soon as it exists, never after this timeout. It bounds how late a
   * subscription notices an abort the server did not act on, and with
   * `connectTimeoutMs` a dead server (a wait FETCH unanswered after both is
   * taken as a lost connection). At most one day (86400000), Materialize's limit.
   * @default 1000
   */
  readonly fetchTimeoutMs?: number;
  /** Spacing and limit of reconnect attempts. @default see ReconnectOptions */
  readonly reconnect?: ReconnectOptions;
  /**
   * `start()` never throws for an unreachable server: the status becomes
   * `'unavailable'` and connecting is retried in the background until it
   * works or `close()`. For a Materialize the app can run without.
   * @default false
   */
  readonly optional?: boolean;
  /**
   * Names the handle: the `client` label of its metrics, the `materialize`
   * field of its log lines and the connection's `application_name`
   * (`flowforge-<name>`). Letters, digits, `_ . : -`.
   * @default 'materialize'
   */
  readonly name?: string;
  /** Gets connection events (connected, lost, restored, reconnecting) once per outage. @default undefined (silent) */
  readonly logger?: Logger;
  /** Gets the subscription, row, reconnect, error and pool metrics. @default undefined (none) */
  readonly metrics?: Metrics;
}
