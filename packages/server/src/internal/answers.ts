import { bearerTokenCheck, setRefusalReason, type Logger } from '@flowforge/observability';
import { eventStreamRefusal, type EventStreamRefusal } from '../event-streams.js';
import type { ErrorAnswer, Problem, Problems } from '../problems.js';
import {
  publicReadinessReport,
  readinessStatusCode,
  type Readiness,
  type ReadinessReport,
} from '../readiness.js';

// What both bindings answer, written once; they only send it.

/** The 404 of a request no route matched. */
export const NOT_FOUND: Problem = Object.freeze({
  title: 'Not Found',
  status: 404,
  detail: 'No route matches this request.',
});

/** The 401 of a scrape of /metrics without the token. */
export const METRICS_UNAUTHORIZED: Problem = Object.freeze({
  title: 'Unauthorized',
  status: 401,
  detail: 'Scraping /metrics needs the metrics bearer token.',
});

/** The answer to `error`, logged at the level it deserves (a client's mistake is not). */
export function answerAndLog(
  problems: Problems,
  logger: Logger,
  error: unknown,
  scheme: string,
): ErrorAnswer {
  const answer = problems.answer(error, { scheme });
  logAnswer(logger, error, answer);
  return answer;
}

/** Names the refusal on the access line and logs `answer` at the level it asks for. */
function logAnswer(logger: Logger, error: unknown, answer: ErrorAnswer): void {
  const { code } = (error ?? {}) as { code?: unknown };
  // The access line says why a request was refused, so a burst of 401s or 503s explains itself.
  if (typeof code === 'string') setRefusalReason(code);
  if (answer.log !== undefined) logger[answer.log]({ err: error, code }, 'request failed');
}

/** The answer to `error`, and the event stream refusal it becomes on a stream route when it is a 429 or 503. */
export function streamAnswerOf(
  problems: Problems,
  error: unknown,
  scheme: string,
): { readonly answer: ErrorAnswer; readonly refusal: EventStreamRefusal | undefined } {
  const answer = problems.answer(error, { scheme });
  const { code } = (error ?? {}) as { code?: unknown };
  const retryAfter = answer.headers['retry-after'];
  const refusal = eventStreamRefusal({
    status: answer.problem.status,
    code: typeof code === 'string' ? code : undefined,
    retryAfterSeconds:
      retryAfter !== undefined && /^\d+$/.test(retryAfter) ? Number(retryAfter) : undefined,
  });
  return { answer, refusal };
}

/**
 * Names `refusal` on the access line (which says 200, what went on the wire,
 * with the code as `reason`) and, with a `logger`, logs it at the level a 429
 * or 503 problem gets: warn, with the error when it is a dependency's fault.
 */
export function logRefusal(
  logger: Logger | undefined,
  error: unknown,
  answer: ErrorAnswer,
  refusal: EventStreamRefusal,
): void {
  setRefusalReason(refusal.code);
  logger?.[answer.log ?? 'warn'](
    {
      ...(answer.log === undefined ? {} : { err: error }),
      code: refusal.code,
      status: refusal.status,
      retry_after_ms: refusal.retryAfterMs,
    },
    'event stream refused',
  );
}

/**
 * The answer to `error` on an event stream route: a temporary refusal (429/503)
 * as the event stream that says it (`eventStreamRefusal`), logged by
 * {@link logRefusal}; anything else as the problem `answerAndLog` gives.
 */
export function answerStreamAndLog(
  problems: Problems,
  logger: Logger,
  error: unknown,
  scheme: string,
): { readonly refusal: EventStreamRefusal } | { readonly problem: ErrorAnswer } {
  const { answer, refusal } = streamAnswerOf(problems, error, scheme);
  if (refusal === undefined) {
    logAnswer(logger, error, answer);
    return { problem: answer };
  }
  logRefusal(logger, error, answer, refusal);
  return { refusal };
}

/**
 * GET /health/ready's answerer: the report and its status. Anyone sees the
 * status of each dependency; with a non-empty `token` (the metrics token), only
 * a request with `Authorization: Bearer <token>` sees each check's error,
 * latency and detail (a driver's message names hosts, ports and users).
 */
export function readinessAnswerer(
  readiness: Readiness,
  token: string,
): (
  authorization: string | undefined,
) => Promise<{ readonly status: 200 | 503; readonly body: ReadinessReport }> {
  const entitled = bearerTokenCheck(token);
  return async (authorization) => {
    const report = await readiness.report();
    const status = readinessStatusCode(report);
    return { status, body: entitled(authorization) ? report : publicReadinessReport(report) };
  };
}
