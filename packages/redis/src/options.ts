import type { ConnectionOptions } from 'node:tls';
import type { RedisTopology } from '@flowforge/config';
import type { Logger, Metrics } from '@flowforge/observability';

/**
 * An ioredis `Redis` or `Cluster`, as the `client` option takes it: described by the members
 * this package relies on rather than by ioredis's own declarations, so that this package's
 * types compile whatever ioredis release (and its types) a consumer resolves
 * ([decision 008](https://github.com/flowforge/flowforge-core/blob/main/docs/decisions/008-driver-types-stay-private.md)).
 * {@link createRedis} checks at run time that it is a client of the ioredis this package uses.
 */
export interface IoRedisClient {
  /** ioredis's connection status (`'wait'`, `'connecting'`, `'ready'`, …). */
  readonly status: string;
  /** The options the client was built with. */
  readonly options: object;
  /** ioredis's `duplicate()`: a new client with the same options. */
  duplicate(...args: never[]): unknown;
}

/** How reconnect attempts are spaced: exponential, capped, with jitter. */
export interface RetryOptions {
  /** Delay before the first reconnect attempt. @default 100 */
  readonly initialDelayMs?: number;
  /** The cap of the delay. @default 5000 */
  readonly maxDelayMs?: number;
  /** Growth per attempt. @default 2 */
  readonly factor?: number;
  /**
   * Share of each delay that is random: 0.5 draws it from [delay/2, delay], so
   * that many processes do not reconnect in lockstep. @default 0.5
   */
  readonly jitter?: number;
}

/**
 * Options of {@link createRedis}. `settings.redis` from @flowforge/config spreads
 * straight in (`url`, `topology`, `username`, `password`, `commandTimeoutMs`);
 * add `logger` and `metrics`.
 */
export interface RedisOptions {
  /**
   * REDIS_URL as configured. Only tells "configured" from "not": the connection
   * is made from `topology`. Never logged (it may hold a password).
   * @default null
   */
  readonly url?: string | null;
  /** Standalone, Sentinel or Cluster, as @flowforge/config parsed it from REDIS_URL. @default null */
  readonly topology?: RedisTopology | null;
  /** ACL user; `null` or absent is the `default` user. @default null */
  readonly username?: string | null;
  /** Password of the data nodes (Sentinels are asked without one). Secret. @default '' */
  readonly password?: string;
  /**
   * An already-built ioredis `Redis` or `Cluster` to share instead of
   * `topology`. The handle never quits it (its owner does), but still answers
   * while it is not ready with UNAVAILABLE instead of queueing.
   * @default undefined
   */
  readonly client?: IoRedisClient;
  /**
   * A command with no reply after this long rejects with TIMEOUT (checked by
   * one sweep per connection: up to ⅛ of it, at most 250 ms, late). @default 2000
   */
  readonly commandTimeoutMs?: number;
  /**
   * The longest a command waits for a connection attempt in progress (the
   * first one included) before it rejects with UNAVAILABLE; also the TCP/TLS
   * connect timeout of each attempt. Between attempts commands fail at once.
   * @default 5000
   */
  readonly connectTimeoutMs?: number;
  /** Spacing of the background reconnect attempts (they never stop). @default see RetryOptions */
  readonly retry?: RetryOptions;
  /**
   * TLS options (CA, client certificate, `servername`, …). TLS is on when the
   * topology says so (`rediss://`) or when this is given. @default undefined
   */
  readonly tls?: ConnectionOptions;
  /**
   * Prepended to every key this handle sends, and stripped from keys it
   * returns (`scan`, `xread`); not applied to pub/sub channels. @default ''
   */
  readonly keyPrefix?: string;
  /**
   * Names the handle: the `client` label of its metrics and the connection name
   * (`CLIENT SETNAME flowforge:<name>`). Letters, digits, `_ . : -`. @default 'main'
   */
  readonly name?: string;
  /** Most connections that blocking `xread` calls hold at once; more calls wait. @default 4 */
  readonly maxBlockingConnections?: number;
  /** Gets connection events (connect, ready, lost, restored) and listener errors. @default undefined (silent) */
  readonly logger?: Logger;
  /** Gets the command histogram, the error counter and the connection gauges. @default undefined (none) */
  readonly metrics?: Metrics;
}
