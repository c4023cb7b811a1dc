/**
 * How a call failed at the network level:
 * - `connect`: no connection could be made (refused, unreachable, no such
 *   host, timed out);
 * - `broken`: a connection that existed went away (reset, closed mid-reply).
 *
 * Both mean the server may answer later; a client that keeps its connection
 * (a subscription) tells them apart to report a lost stream.
 */
export type NetworkFailure = 'connect' | 'broken';

/** Node's and undici's codes for a connection that could not be made. */
const CONNECT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Node's and undici's codes for a connection that broke. */
const BROKEN_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_STREAM_DESTROYED',
  'ERR_SOCKET_CLOSED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

/** How deep a chain of `cause`s is followed: drivers wrap once or twice. */
const MAX_DEPTH = 5;

/**
 * The network failure behind `error`, or `undefined` when it is not one.
 * Reads the `code` of the error, of each error of an `AggregateError` (Node's
 * connect tries every address of a host), and of its `cause`s.
 *
 * @example
 * ```ts
 * import { networkFailureOf } from '@flowforge/kernel';
 *
 * const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
 * console.log(networkFailureOf(refused)); // 'connect'
 * ```
 */
export function networkFailureOf(error: unknown): NetworkFailure | undefined {
  return failureAt(error, 0);
}

function failureAt(error: unknown, depth: number): NetworkFailure | undefined {
  if (typeof error !== 'object' || error === null || depth > MAX_DEPTH) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (CONNECT_CODES.has(code)) return 'connect';
    if (BROKEN_CODES.has(code)) return 'broken';
  }
  if (error instanceof AggregateError) {
    for (const member of error.errors as unknown[]) {
      const failure = failureAt(member, depth + 1);
      if (failure !== undefined) return failure;
    }
  }
  return failureAt((error as { cause?: unknown }).cause, depth + 1);
}
