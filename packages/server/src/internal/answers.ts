import { bearerTokenCheck, setRefusalReason, type Logger } from '@flowforge/observability';
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
  const { code } = (error ?? {}) as { code?: unknown };
  // The access line says why a request was refused, so a burst of 401s or 503s explains itself.
  if (typeof code === 'string') setRefusalReason(code);
  if (answer.log !== undefined) logger[answer.log]({ err: error, code }, 'request failed');
  return answer;
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
