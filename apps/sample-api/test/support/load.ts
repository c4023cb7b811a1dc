/**
 * Steady concurrent load for the fault tests: a bounded pool of fetch callers,
 * each request recorded with its status, timing and the headers the assertions
 * check. Every request has a generous deadline, so a hang shows up as a
 * recorded failure (status 0), never as a stuck test.
 */

/** One request as the load saw it. */
export interface Outcome {
  /** Which kind of request (the caller's label). */
  readonly label: string;
  /** HTTP status; 0 when no response came (network error or the deadline). */
  readonly status: number;
  /** The error's name/code and message when status is 0. */
  readonly error?: string;
  /** performance.now() when the request was sent. */
  readonly startedAt: number;
  /** performance.now() when the response (body included) was in. */
  readonly endedAt: number;
  readonly contentType: string | null;
  readonly retryAfter: string | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped JSON; the assertions check its shape
  readonly body: any;
}

/** How long one request may take before it counts as hung. */
export const HANG_MS = 15_000;

/** Sends one request and records what came back (never throws). */
export async function timed(
  label: string,
  url: string,
  init: RequestInit = {},
  hangMs: number = HANG_MS,
): Promise<Outcome> {
  const startedAt = performance.now();
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(hangMs) });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: kept as text
    }
    return {
      label,
      status: response.status,
      startedAt,
      endedAt: performance.now(),
      contentType: response.headers.get('content-type'),
      retryAfter: response.headers.get('retry-after'),
      body,
    };
  } catch (error) {
    const { name, message, cause } = error as Error & { cause?: { code?: string } };
    return {
      label,
      status: 0,
      error: `${cause?.code ?? name}: ${message}`,
      startedAt,
      endedAt: performance.now(),
      contentType: null,
      retryAfter: null,
      body: null,
    };
  }
}

export interface Load {
  /** Every outcome so far, in completion order. */
  readonly outcomes: readonly Outcome[];
  /** Outcomes of requests sent at or after `since` (performance.now()). */
  since(since: number): readonly Outcome[];
  /** Waits until `predicate` holds for the outcomes (polling), at most `timeoutMs`. */
  until(
    what: string,
    predicate: (outcomes: readonly Outcome[]) => boolean,
    timeoutMs?: number,
  ): Promise<void>;
  /** Lets every caller finish its current request, then stops. */
  stop(): Promise<void>;
}

/**
 * Starts `concurrency` callers; caller `worker` sends `next(worker, n)` for
 * n = 0, 1, 2, … back to back until `stop()`.
 */
export function startLoad(
  concurrency: number,
  next: (worker: number, n: number) => Promise<Outcome>,
): Load {
  const outcomes: Outcome[] = [];
  let stopping = false;
  const workers = Array.from({ length: concurrency }, async (_, worker) => {
    for (let n = 0; !stopping; n += 1) outcomes.push(await next(worker, n));
  });
  return {
    outcomes,
    since: (since) => outcomes.filter((outcome) => outcome.startedAt >= since),
    async until(what, predicate, timeoutMs = 20_000) {
      const deadline = performance.now() + timeoutMs;
      while (!predicate(outcomes)) {
        if (performance.now() > deadline) {
          throw new Error(`load: timed out after ${timeoutMs} ms waiting for ${what}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stop() {
      stopping = true;
      await Promise.all(workers);
    },
  };
}

/** A short description of an outcome, for assertion messages. */
export function describeOutcome(outcome: Outcome): string {
  const ms = Math.round(outcome.endedAt - outcome.startedAt);
  return `${outcome.label} → ${outcome.status}${outcome.error ? ` (${outcome.error})` : ''} in ${ms} ms`;
}

/**
 * The outcomes that break the fault contract: a status outside `allowed`, no
 * response at all (a network error or a hang), or a 503 or 429 without
 * Retry-After or without a problem+json body. Empty when the contract holds.
 */
export function contractViolations(
  outcomes: readonly Outcome[],
  allowed: readonly number[],
): string[] {
  const violations: string[] = [];
  for (const outcome of outcomes) {
    if (!allowed.includes(outcome.status)) violations.push(describeOutcome(outcome));
    else if (outcome.status === 503 || outcome.status === 429) {
      if (outcome.retryAfter === null)
        violations.push(`${describeOutcome(outcome)}: no Retry-After`);
      if (!outcome.contentType?.startsWith('application/problem+json')) {
        violations.push(
          `${describeOutcome(outcome)}: ${String(outcome.contentType)}, not problem+json`,
        );
      }
    }
  }
  return violations;
}

/** Counts by status, e.g. `{ 200: 410, 503: 37 }`, for the report. */
export function statusCounts(outcomes: readonly Outcome[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const outcome of outcomes) counts[outcome.status] = (counts[outcome.status] ?? 0) + 1;
  return counts;
}
