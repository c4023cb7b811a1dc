/**
 * Time as the handle reads and waits for it, injected so the deadline,
 * detection and kill logic can be tested without real waits.
 */
export interface Clock {
  /** Milliseconds from an arbitrary origin, never going back (`performance.now()`). */
  readonly now: () => number;
  /**
   * Calls `callback` once after `ms`, without keeping the process alive;
   * returns what cancels it (idempotent).
   */
  readonly setTimer: (callback: () => void, ms: number) => () => void;
}

/** The real clock: `performance.now()` and unref'd `setTimeout`s. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(callback, ms) {
    const timer = setTimeout(callback, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/** A signal that aborts with `reason` once `ms` pass on `clock`, and what stops its timer. */
export interface Deadline {
  readonly signal: AbortSignal;
  readonly cancel: () => void;
}

/**
 * `AbortSignal.timeout` on an injected clock, whose timer can also be
 * cancelled once the work it bounds is over (the built-in one stays armed).
 */
export function deadline(clock: Clock, ms: number, reason: string): Deadline {
  const controller = new AbortController();
  const cancel = clock.setTimer(() => controller.abort(reason), ms);
  return { signal: controller.signal, cancel };
}

/** Milliseconds since `started`, to a hundredth, as logs and `health()` report them. */
export function elapsedMs(clock: Clock, started: number): number {
  return Math.round((clock.now() - started) * 100) / 100;
}
