import type { Logger } from '@flowforge/observability';
import type { Cluster, Redis as IORedis } from 'ioredis';
import { RedisError } from '../errors.js';
import { toRedisError } from './error-map.js';

/** A standalone/Sentinel client or a Cluster client of ioredis. */
export type Client = IORedis | Cluster;

export interface ConnectionSettings {
  /** What this connection is for, in log lines. */
  readonly role: 'commands' | 'subscriber' | 'blocking';
  /** The handle's name, in log lines. */
  readonly handle: string;
  /** Quit and disconnect the client on close (false for a client the caller passed in). */
  readonly owned: boolean;
  readonly connectTimeoutMs: number;
  /** How long close() waits for QUIT before it drops the socket. */
  readonly closeTimeoutMs: number;
  readonly logger: Logger | undefined;
  /** Called on every reconnect attempt ioredis schedules. */
  readonly onReconnecting?: () => void;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: RedisError) => void;
  readonly timer: NodeJS.Timeout;
}

function noop(): void {}

/**
 * One ioredis client and what the handle needs around it: a readiness gate
 * that never queues (commands either go out now, wait for a connection attempt
 * already in progress for at most `connectTimeoutMs`, or fail with
 * UNAVAILABLE at once), error mapping that knows the last connection error (so
 * a refused password is AUTH_FAILED, not UNAVAILABLE), and connection events
 * logged once per outage rather than once per retry.
 */
export class Connection {
  readonly client: Client;
  readonly #settings: ConnectionSettings;
  readonly #waiters = new Set<Waiter>();
  readonly #listeners: [string, (...args: unknown[]) => void][] = [];
  readonly #warnedNodes = new Set<string>();
  #lastError: unknown = undefined;
  #outageSince: number | undefined = undefined;
  #attempts = 0;
  #connectedOnce = false;
  #closing = false;
  #handshake: NodeJS.Timeout | undefined;
  #closed: Promise<void> | undefined;

  constructor(client: Client, settings: ConnectionSettings) {
    this.client = client;
    this.#settings = settings;
    this.#listen('connect', () => this.#onConnect());
    this.#listen('ready', () => this.#onReady());
    this.#listen('error', (error) => this.#onError(error));
    this.#listen('close', () => this.#onClose());
    this.#listen('end', () => {
      this.#clearHandshake();
      this.#rejectWaiters();
    });
    this.#listen('reconnecting', (delay) => this.#onReconnecting(delay));
    this.#listen('node error', (error, node) => this.#onNodeError(error, node));
    this.#listen('+node', (node: unknown) => {
      const redis = node as IORedis;
      const key = `${redis.options.host ?? ''}:${redis.options.port ?? ''}`;
      redis.once('ready', () => this.#warnedNodes.delete(key));
    });
  }

  /** True when a command can be written now: the hot path's only check. */
  get ready(): boolean {
    return !this.#closing && this.client.status === 'ready';
  }

  /** True once close() was called. */
  get closing(): boolean {
    return this.#closing;
  }

  /**
   * Resolves when the connection is ready: at once, after the attempt in
   * progress (or one it starts for a lazy client), or rejects with
   * UNAVAILABLE/AUTH_FAILED/CLOSED.
   */
  whenReady(): Promise<void> {
    if (this.#closing) return Promise.reject(this.#closedError());
    const { client } = this;
    const status = client.status;
    if (status === 'ready') return Promise.resolve();
    if (status === 'wait') {
      // Errors reach the 'error' listener; the promise itself is not needed.
      client.connect().catch(noop);
    } else if (status !== 'connecting' && status !== 'connect') {
      return Promise.reject(this.#notConnected());
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(
            new RedisError(
              'UNAVAILABLE',
              `no connection within connectTimeoutMs (${this.#settings.connectTimeoutMs} ms)`,
              this.#lastError === undefined ? {} : { cause: this.#lastError },
            ),
          );
        }, this.#settings.connectTimeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  /** Maps an error of a command sent on this connection. */
  error(error: unknown): RedisError {
    if (error instanceof RedisError && error.code === 'CLOSED') return error;
    if (this.#closing) return this.#closedError(error);
    const mapped = toRedisError(error);
    if (mapped.code === 'UNAVAILABLE') {
      const connection = this.#connectionProblem();
      if (connection) return connection;
    }
    return mapped;
  }

  /** Quits (owned clients; bounded by closeTimeoutMs, then the socket is dropped). Idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#clearHandshake();
    this.#rejectWaiters();
    const { client } = this;
    if (this.#settings.owned) {
      if (client.status === 'ready') {
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#settings.closeTimeoutMs);
        });
        await Promise.race([client.quit().then(noop, noop), bound]);
        clearTimeout(timer);
      }
      client.disconnect();
    }
    for (const [event, listener] of this.#listeners) client.off(event, listener);
    // ioredis prints errors no one listens to; an owned client may still emit one while it winds down.
    if (this.#settings.owned) client.on('error', noop);
  }

  #listen(event: string, listener: (...args: unknown[]) => void): void {
    this.client.on(event, listener);
    this.#listeners.push([event, listener]);
  }

  #log(level: 'debug' | 'info' | 'warn', fields: Record<string, unknown>, message: string): void {
    this.#settings.logger?.[level](
      { redis: this.#settings.handle, connection: this.#settings.role, ...fields },
      message,
    );
  }

  /**
   * ioredis bounds only the TCP connect (`connectTimeout`); a server that
   * accepts and then never answers HELLO would hold the connection in
   * 'connect' for good. Give the handshake `connectTimeoutMs` too, then
   * reconnect.
   */
  #onConnect(): void {
    this.#clearHandshake();
    this.#handshake = setTimeout(() => {
      this.#handshake = undefined;
      if (this.#closing || this.client.status !== 'connect') return;
      this.#onError(
        new RedisError(
          'UNAVAILABLE',
          'the server accepted the connection but did not answer the handshake',
        ),
      );
      this.client.disconnect(true);
    }, this.#settings.connectTimeoutMs);
    this.#handshake.unref();
  }

  #clearHandshake(): void {
    clearTimeout(this.#handshake);
    this.#handshake = undefined;
  }

  #onReady(): void {
    this.#clearHandshake();
    if (this.#outageSince !== undefined) {
      this.#log(
        'info',
        {
          downtime_ms: Math.round(performance.now() - this.#outageSince),
          attempts: this.#attempts,
        },
        'redis connection restored',
      );
    } else {
      this.#log(this.#connectedOnce ? 'debug' : 'info', {}, 'redis connected');
    }
    this.#connectedOnce = true;
    this.#outageSince = undefined;
    this.#attempts = 0;
    this.#lastError = undefined;
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
    this.#waiters.clear();
  }

  #onError(error: unknown): void {
    this.#lastError = error;
    if (this.#closing) return;
    const mapped = toRedisError(error);
    if (this.#outageSince === undefined) {
      this.#outageSince = performance.now();
      this.#log('warn', { err: mapped, code: mapped.code }, 'redis connection error');
    } else {
      this.#log('debug', { err: mapped, code: mapped.code }, 'redis connection error (again)');
    }
    // A Sentinel lookup that found no Sentinel keeps the status at 'connecting': fail the waiters now.
    if (this.client.status === 'connecting') this.#rejectWaiters();
  }

  #onClose(): void {
    this.#clearHandshake();
    if (this.#closing) return;
    if (this.#outageSince === undefined && this.#connectedOnce) {
      this.#outageSince = performance.now();
      this.#log('warn', {}, 'redis connection lost; reconnecting in the background');
    }
    this.#rejectWaiters();
  }

  #onReconnecting(delay: unknown): void {
    this.#attempts += 1;
    this.#settings.onReconnecting?.();
    this.#log('debug', { delay_ms: delay, attempt: this.#attempts }, 'redis reconnect scheduled');
  }

  #onNodeError(error: unknown, node: unknown): void {
    if (this.#closing) return;
    const key = typeof node === 'string' ? node : '';
    const mapped = toRedisError(error);
    const first = !this.#warnedNodes.has(key);
    this.#warnedNodes.add(key);
    this.#log(
      first ? 'warn' : 'debug',
      { err: mapped, code: mapped.code, node: key },
      'redis cluster node error',
    );
  }

  #rejectWaiters(): void {
    if (this.#waiters.size === 0) return;
    const error = this.#closing ? this.#closedError() : this.#notConnected();
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.#waiters.clear();
  }

  /** AUTH_FAILED/PERMISSION_DENIED when the last connection error says so, else undefined. */
  #connectionProblem(): RedisError | undefined {
    if (this.#lastError === undefined) return undefined;
    const last = toRedisError(this.#lastError);
    return last.code === 'AUTH_FAILED' || last.code === 'PERMISSION_DENIED' ? last : undefined;
  }

  #notConnected(): RedisError {
    return (
      this.#connectionProblem() ??
      new RedisError(
        'UNAVAILABLE',
        `not connected to Redis (connection ${this.client.status}; reconnecting in the background)`,
        this.#lastError === undefined ? {} : { cause: this.#lastError },
      )
    );
  }

  #closedError(cause?: unknown): RedisError {
    return new RedisError(
      'CLOSED',
      'the redis handle is closed',
      cause === undefined ? {} : { cause },
    );
  }
}
