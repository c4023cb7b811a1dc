import { STATUS_CODES } from 'node:http';
import { isFlowForgeError, type FlowForgeError } from '@flowforge/kernel';
import { isAuthError } from '@flowforge/auth';
import type { Problem } from './problem.js';

/** How the app answers one error: the problem, the headers with it, and what to log. */
export interface ErrorAnswer {
  readonly problem: Problem;
  readonly headers: Readonly<Record<string, string>>;
  /** `undefined`: a client's mistake, not worth a line. */
  readonly log: 'warn' | 'error' | undefined;
}

/** What a client reads for a dependency that is down, by the package it came from. */
const UNAVAILABLE: Readonly<Record<string, string>> = {
  '@flowforge/db': 'The database is not available right now; try again.',
  '@flowforge/clickhouse': 'Widget data is not available right now; try again.',
  '@flowforge/materialize': 'Live data is not available right now; try again.',
  '@flowforge/redis': 'The cache is not available right now; try again.',
};

/**
 * What a client reads for a 4xx whose message is not written for clients (a
 * database's message may quote the values it refused), by code.
 */
const CLIENT_DETAIL: Readonly<Record<string, string>> = {
  UNIQUE_VIOLATION: 'A record with these values already exists.',
  TENANT_INVALID: 'The credentials carry no usable tenant.',
};
const CLIENT_DETAIL_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'The request has values the data model refuses.',
  409: 'The request conflicts with the data as it is.',
};

/**
 * Seconds a client should wait: long for a store that is not configured (an
 * operator must act), a few for the identity provider, one for the rest (a
 * store that is down, or this instance closing: another one may answer).
 */
function retryAfterOf(error: FlowForgeError): string {
  if (error.code.endsWith('NOT_CONFIGURED')) return '60';
  return error.source === '@flowforge/auth' ? '5' : '1';
}

/**
 * The one mapping from an error that reached the error handler to its answer:
 * any `@flowforge/*` or app error by its `status` and `clientSafe` (and its
 * `code` and `source` for the words and the Retry-After); anything else by the framework's `statusCode` (Fastify's own
 * 4xx keep their reason phrase), or a 500 that describes nothing.
 *
 * `scheme` is the credential the route takes (`Bearer`, or `ApiKey` for the
 * embed routes), for the `WWW-Authenticate` of a 401/403.
 */
export function answerError(error: unknown, realm: string, scheme: string): ErrorAnswer {
  if (!isFlowForgeError(error)) return frameworkAnswer(error);
  const { status } = error;
  const headers: Record<string, string> = {};
  if (status === 503) headers['retry-after'] = retryAfterOf(error);
  if (isAuthError(error)) {
    const challenge = error.challenge(realm, scheme);
    if (challenge !== undefined) headers['www-authenticate'] = challenge;
  } else if (status === 401) {
    headers['www-authenticate'] = `${scheme} realm="${realm}", error="invalid_token"`;
  }
  const detail =
    status === 500
      ? undefined // a server fault is not described to the client
      : error.clientSafe
        ? error.reason
        : status === 503
          ? (UNAVAILABLE[error.source] ?? 'A dependency is not available right now; try again.')
          : (CLIENT_DETAIL[error.code] ?? CLIENT_DETAIL_BY_STATUS[status]);
  return {
    problem: {
      title: STATUS_CODES[status] ?? 'Error',
      status,
      ...(detail === undefined ? {} : { detail }),
    },
    headers,
    log: status >= 500 ? (status === 503 ? 'warn' : 'error') : undefined,
  };
}

/** An error that is not ours: Fastify's (validation 400, body too large 413, …) or a bug. */
function frameworkAnswer(error: unknown): ErrorAnswer {
  const { statusCode, message } = (error ?? {}) as { statusCode?: unknown; message?: unknown };
  const status =
    typeof statusCode === 'number' && statusCode >= 400 && statusCode <= 599 ? statusCode : 500;
  return {
    problem: {
      title: STATUS_CODES[status] ?? (status >= 500 ? 'Internal Server Error' : 'Bad Request'),
      status,
      // A client's mistake is explained; a server fault is not described to the client.
      ...(status < 500 && typeof message === 'string' && message !== '' ? { detail: message } : {}),
    },
    headers: {},
    log: status >= 500 ? 'error' : undefined,
  };
}
