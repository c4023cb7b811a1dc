import type { Logger } from '@flowforge/observability';
import type { ClickHouseError } from '../errors.js';
import { deadline, type Clock } from './clock.js';
import type { ServerProfile } from './options.js';

/** What {@link ServerDetection} needs. */
export interface ServerDetectionOptions {
  /** Runs one detection (the probe queries), giving up when `signal` aborts. */
  readonly detect: (signal: AbortSignal) => Promise<ServerProfile>;
  /** How long a detected profile is trusted; 0: never reused. */
  readonly ttlMs: number;
  /** The deadline of one detection, whoever waits for it. */
  readonly timeoutMs: number;
  /** Aborts with `'closed'` when the handle closes: any detection in flight stops. */
  readonly closing: AbortSignal;
  readonly clock: Clock;
}

/** One detection in flight, shared by every query that needs it meanwhile. */
interface Detection {
  readonly promise: Promise<ServerProfile>;
  readonly stop: AbortController;
  waiters: number;
}

/**
 * What the handle knows about the server and its user (readonly level,
 * parameter binding), detected at first use and trusted for `ttlMs`. Queries
 * that need it while a detection runs share that one; a query that gives up
 * stops waiting at once, and a detection no query waits for any more is
 * aborted and forgotten.
 */
export class ServerDetection {
  readonly #options: ServerDetectionOptions;
  #profile: { readonly value: ServerProfile; readonly at: number } | undefined;
  #detection: Detection | undefined;

  constructor(options: ServerDetectionOptions) {
    this.#options = options;
  }

  /** The profile while it is trusted, without waiting. */
  cached(): ServerProfile | undefined {
    const profile = this.#profile;
    return profile !== undefined && this.#options.clock.now() - profile.at < this.#options.ttlMs
      ? profile.value
      : undefined;
  }

  /**
   * The profile, detecting it when needed.
   * @throws whatever the detection threw (a ClickHouseError), or a plain Error
   *   when `signal` aborted first (the caller knows why it gave up)
   */
  profile(signal: AbortSignal): Promise<ServerProfile> {
    const cached = this.cached();
    if (cached !== undefined) return Promise.resolve(cached);
    if (signal.aborted) return Promise.reject(new Error('aborted'));
    const current = (this.#detection ??= this.#start());
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
          if (this.#detection === current) this.#detection = undefined;
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
  }

  /**
   * Drops the profile after an error that says it is out of date: AUTH_FAILED
   * (the user changed), or a READONLY refusal of a setting (its profile did:
   * 18.16 says "Cannot override setting (x)" and "Setting 'readonly' cannot be
   * overrided").
   */
  forgetAfter(error: ClickHouseError): void {
    if (
      error.code === 'AUTH_FAILED' ||
      (error.code === 'READONLY' &&
        error.serverCode !== undefined &&
        /setting/i.test(error.message))
    ) {
      this.#profile = undefined;
    }
  }

  #start(): Detection {
    const { clock, closing, timeoutMs } = this.#options;
    const stop = new AbortController();
    const timer = deadline(clock, timeoutMs, 'timeout');
    const promise = this.#options.detect(AbortSignal.any([closing, stop.signal, timer.signal]));
    const started: Detection = { promise, stop, waiters: 0 };
    const settled = (): void => {
      timer.cancel();
      if (this.#detection === started) this.#detection = undefined;
    };
    void promise.then((value) => {
      // Kept even when every waiter left: the next query need not detect again.
      this.#profile = { value, at: clock.now() };
      settled();
    }, settled);
    return started;
  }
}

/** Where the detection is logged from, and what about the handle it mentions. */
export interface DetectionLog {
  readonly logger: Logger | undefined;
  /** The handle's name. */
  readonly name: string;
  /** The server and user, for a handle that built its own client. */
  readonly target: { readonly url: string; readonly user: string } | undefined;
  /** The `compression` option: a readonly=1 user cannot have it. */
  readonly compression: boolean;
}

/**
 * Logs what a detection found (info), and what a readonly=1 user will not get
 * (warn): exact 64-bit JSON, and compression.
 */
export function logDetection(log: DetectionLog, profile: ServerProfile): void {
  const { logger, name } = log;
  logger?.info(
    {
      clickhouse: name,
      server_version: profile.version,
      user_readonly: profile.readonly,
      parameter_binding: profile.binding,
      ...(log.target ?? {}),
    },
    'clickhouse: detected the server and user',
  );
  if (profile.readonly !== 1) return;
  if (Object.keys(profile.exactJson).length > 0) {
    logger?.warn(
      { clickhouse: name, settings: Object.keys(profile.exactJson) },
      'clickhouse: this readonly=1 user cannot ask for quoted 64-bit integers and decimals per query; set them in its profile, or large values lose precision in JSON',
    );
  }
  if (log.compression) {
    logger?.warn(
      { clickhouse: name },
      'clickhouse: compression stays off: a readonly=1 user cannot set enable_http_compression per query',
    );
  }
}
