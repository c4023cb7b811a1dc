import { STATUS_CODES } from 'node:http';
import { isAuthError } from '@flowforge/auth';
import { isFlowForgeError, type FlowForgeError } from '@flowforge/kernel';

/**
 * An RFC 9457 problem detail, as every error response of a FlowForge service is
 * shaped. `type` defaults to `about:blank`; members beyond these are extensions.
 */
export interface Problem {
  /** A URI naming the kind of problem. @default 'about:blank' */
  readonly type?: string;
  /** The status's reason phrase (`Service Unavailable`). */
  readonly title: string;
  /** The HTTP status. */
  readonly status: number;
  /** What happened, written for the client; absent for a server fault. */
  readonly detail?: string;
}

/** The JSON body of `problem` for the request `requestId`: its `instance` and `request_id`. */
export function problemBody(requestId: string, problem: Problem): Record<string, unknown> {
  return {
    type: 'about:blank',
    ...problem,
    instance: `urn:request:${requestId}`,
    request_id: requestId,
  };
}

/** The media type of every problem response. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

/** How a service answers one error: the problem, the headers with it, and what to log. */
export interface ErrorAnswer {
  /** The body. */
  readonly problem: Problem;
  /** Headers to send with it (lower case): `retry-after`, `www-authenticate`. */
  readonly headers: Readonly<Record<string, string>>;
  /** The log level the error deserves; `undefined`: a client's mistake, not worth a line. */
  readonly log: 'warn' | 'error' | undefined;
}

/** What the route that failed accepts, for the `WWW-Authenticate` of a 401/403. */
export interface ErrorContext {
  /** The credential scheme the route takes. @default 'Bearer' */
  readonly scheme?: string;
}

/** Options of {@link createProblems}. */
export interface ProblemsOptions {
  /** The realm of every `WWW-Authenticate` challenge. @default 'flowforge' */
  readonly realm?: string;
  /**
   * What a client reads for a 503 whose message is not written for clients, by
   * the package it came from (`@flowforge/clickhouse` → "Widget data is not
   * available right now; try again."). Merged over the kit's words for every
   * `@flowforge/*` store.
   */
  readonly unavailable?: Readonly<Record<string, string>>;
  /**
   * What a client reads for a 4xx whose message is not written for clients, by
   * code (a database's message may quote the values it refused). Merged over
   * the kit's words for `UNIQUE_VIOLATION` and `TENANT_INVALID`.
   */
  readonly clientDetail?: Readonly<Record<string, string>>;
  /**
   * The app's `Retry-After` policy, tried before the kit's: seconds for `error`
   * (a 503 or 429), or `undefined` for the kit's (see {@link Problems.answer}).
   */
  readonly retryAfter?: (error: FlowForgeError) => number | undefined;
  /**
   * The app's own mapping, tried first: an answer for errors that are not
   * `@flowforge/*` errors (a library's), or `undefined` to leave it to the kit.
   * Errors declared with `defineErrors` from `@flowforge/kernel` need none: their
   * `status`, `retryable` and `clientSafe` already say how to answer.
   */
  readonly map?: (error: unknown, context: ErrorContext) => ErrorAnswer | undefined;
}

/** The one mapping from any error that reached an error handler to its answer. */
export interface Problems {
  /**
   * The answer to `error`: any `@flowforge/*` error (or one built on the kernel)
   * by its `status` and `clientSafe`, with `Retry-After` on a 503 or 429 and a
   * challenge on a 401/403; a framework's error by its `statusCode` (4xx keep
   * their message, which frameworks write for clients); anything else is a 500
   * that describes nothing.
   */
  answer(error: unknown, context?: ErrorContext): ErrorAnswer;
}

const UNAVAILABLE: Readonly<Record<string, string>> = {
  '@flowforge/db': 'The database is not available right now; try again.',
  '@flowforge/clickhouse': 'Analytics data is not available right now; try again.',
  '@flowforge/materialize': 'Live data is not available right now; try again.',
  '@flowforge/redis': 'The cache is not available right now; try again.',
  '@flowforge/auth': 'Authentication is not available right now; try again.',
};
const CLIENT_DETAIL: Readonly<Record<string, string>> = {
  UNIQUE_VIOLATION: 'A record with these values already exists.',
  TENANT_INVALID: 'The credentials carry no usable tenant.',
};
const CLIENT_DETAIL_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'The request has values the data model refuses.',
  409: 'The request conflicts with the data as it is.',
};

/**
 * Seconds a client should wait: what the error says when it knows
 * (`retryAfterSeconds`), long for something not configured (an operator must
 * act), a few for the identity provider or a limit, one for the rest (a store
 * that is down, or this instance closing: another one may answer).
 */
function retryAfterOf(error: FlowForgeError): number {
  const { retryAfterSeconds } = error as { retryAfterSeconds?: unknown };
  const given = seconds(retryAfterSeconds);
  if (given !== undefined) return given;
  if (error.code.endsWith('NOT_CONFIGURED')) return 60;
  return error.source === '@flowforge/auth' || error.status === 429 ? 5 : 1;
}

/** Retry-After is whole seconds (RFC 9110 §10.2.3): a fraction rounds up; NaN, Infinity or a negative is none. */
function seconds(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
    ? Math.ceil(value)
    : undefined;
}

/**
 * Builds the mapping from errors to RFC 9457 problems that every FlowForge
 * service shares; the framework bindings (`@flowforge/server/fastify`,
 * `@flowforge/server/node`) send what it answers.
 *
 * @example
 * ```ts
 * const problems = createProblems({ unavailable: { '@flowforge/clickhouse': 'Reports are not available right now.' } });
 * const { problem, headers } = problems.answer(error, { scheme: 'ApiKey' });
 * ```
 */
export function createProblems(options: ProblemsOptions = {}): Problems {
  const realm = options.realm ?? 'flowforge';
  const unavailable = { ...UNAVAILABLE, ...options.unavailable };
  const clientDetail = { ...CLIENT_DETAIL, ...options.clientDetail };

  function flowForgeAnswer(error: FlowForgeError, scheme: string): ErrorAnswer {
    const { status } = error;
    const headers: Record<string, string> = {};
    if (status === 503 || status === 429) {
      headers['retry-after'] = String(seconds(options.retryAfter?.(error)) ?? retryAfterOf(error));
    }
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
            ? (unavailable[error.source] ?? 'A dependency is not available right now; try again.')
            : (clientDetail[error.code] ?? CLIENT_DETAIL_BY_STATUS[status]);
    return {
      problem: { title: titleOf(status), status, ...(detail === undefined ? {} : { detail }) },
      headers,
      log: logLevelOf(error, status),
    };
  }

  return {
    answer(error, context = {}) {
      const mapped = options.map?.(error, context);
      if (mapped !== undefined) return mapped;
      if (isFlowForgeError(error)) return flowForgeAnswer(error, context.scheme ?? 'Bearer');
      return frameworkAnswer(error);
    },
  };
}

/**
 * The line a failed request is worth beside its access line (which already says
 * the status and the code as `reason`): none for a client's mistake, nor for a
 * refusal whose words are for clients (a stream limit, a store not configured,
 * shutting down: the access line at warn says it all); a dependency's fault (503)
 * at warn with the error; a fault of ours at error.
 */
function logLevelOf(error: FlowForgeError, status: number): ErrorAnswer['log'] {
  if (status < 500) return undefined;
  if (status !== 503) return 'error';
  return error.clientSafe ? undefined : 'warn';
}

/** The reason phrase of `status`, as the problem's `title`. */
export function titleOf(status: number): string {
  return STATUS_CODES[status] ?? (status >= 500 ? 'Internal Server Error' : 'Bad Request');
}

/** An error that is not ours: a framework's (validation 400, body too large 413, …) or a bug. */
function frameworkAnswer(error: unknown): ErrorAnswer {
  const {
    statusCode,
    status: given,
    message,
  } = (error ?? {}) as {
    statusCode?: unknown;
    status?: unknown;
    message?: unknown;
  };
  // Fastify sets statusCode, Express's body parser (http-errors) sets both.
  const code = typeof statusCode === 'number' ? statusCode : given;
  const status =
    typeof code === 'number' && Number.isInteger(code) && code >= 400 && code <= 599 ? code : 500;
  return {
    problem: {
      title: titleOf(status),
      status,
      // A client's mistake is explained; a server fault is not described to the client.
      ...(status < 500 && typeof message === 'string' && message !== '' ? { detail: message } : {}),
    },
    headers: {},
    log: status >= 500 ? 'error' : undefined,
  };
}
