import { backoffDelay } from '@flowforge/kernel';
import type { Logger } from '@flowforge/observability';
import type { MaterializeError } from '../errors.js';
import type { ResolvedOptions } from './options.js';

/**
 * Where a handle stands: `'idle'` before the first check, `'ready'` after a
 * successful `start()` or `health()`, `'unavailable'` after a failed one (an
 * optional handle retries in the background), `'closed'` after `close()`.
 */
export type MaterializeStatus = 'idle' | 'ready' | 'unavailable' | 'closed';

/**
 * A handle's status, the connection events logged once per outage, and
 * `start()`'s background retry of an optional handle.
 */
export class Availability {
  readonly #options: ResolvedOptions;
  readonly #logger: Logger | undefined;
  /** The background check: `SELECT 1` on the handle's own connection. */
  readonly #check: () => Promise<unknown>;
  #status: MaterializeStatus = 'idle';
  #retryTimer: NodeJS.Timeout | undefined;
  #unavailableSince: number | undefined;

  constructor(options: ResolvedOptions, logger: Logger | undefined, check: () => Promise<unknown>) {
    this.#options = options;
    this.#logger = logger;
    this.#check = check;
  }

  get status(): MaterializeStatus {
    return this.#status;
  }

  /** True once `close()` was called: nothing is logged or retried any more. */
  get closing(): boolean {
    return this.#status === 'closed';
  }

  /** A check succeeded: logs `connected` or `available again` (with the downtime). */
  ready(): void {
    this.#stopRetry();
    if (this.closing) return;
    const { name, safeUrl } = this.#options;
    if (this.#unavailableSince !== undefined) {
      this.#logger?.info(
        {
          materialize: name,
          url: safeUrl,
          downtime_ms: Math.round(performance.now() - this.#unavailableSince),
        },
        'materialize: available again',
      );
      this.#unavailableSince = undefined;
    } else if (this.#status !== 'ready') {
      this.#logger?.info({ materialize: name, url: safeUrl }, 'materialize: connected');
    }
    this.#status = 'ready';
  }

  /** A check failed: logs `message` at the start of an outage only. */
  unavailable(error: MaterializeError, message: string): void {
    if (this.closing) return;
    this.#status = 'unavailable';
    if (this.#unavailableSince === undefined) {
      this.#unavailableSince = performance.now();
      this.#logger?.warn(
        {
          materialize: this.#options.name,
          url: this.#options.safeUrl,
          code: error.code,
          err: error,
        },
        message,
      );
    }
  }

  /** Checks again after the `reconnect` backoff, until a check succeeds, `close()` or `maxAttempts`. */
  retry(attempt: number): void {
    if (this.closing || this.#retryTimer !== undefined) return;
    const { name, reconnect } = this.#options;
    if (attempt > reconnect.maxAttempts) {
      this.#logger?.error(
        { materialize: name, attempts: attempt - 1 },
        'materialize: still unavailable; background retries stopped (reconnect.maxAttempts)',
      );
      return;
    }
    this.#retryTimer = setTimeout(
      () => {
        this.#retryTimer = undefined;
        this.#check().then(
          () => this.ready(),
          (error: unknown) => {
            if (this.closing) return;
            if (this.#logger?.isLevelEnabled('debug')) {
              this.#logger.debug(
                { materialize: name, attempt, err: error },
                'materialize: background check failed; retrying',
              );
            }
            this.retry(attempt + 1);
          },
        );
      },
      backoffDelay(attempt, reconnect),
    );
    this.#retryTimer.unref();
  }

  /** The handle is closing: status `'closed'`, no retry any more. */
  close(): void {
    this.#status = 'closed';
    this.#stopRetry();
  }

  #stopRetry(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }
}
