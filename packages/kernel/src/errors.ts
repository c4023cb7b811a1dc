/**
 * What one error code means, for the caller and for an HTTP server that lets
 * the error reach its error handler.
 */
export interface ErrorKind {
  /**
   * The HTTP status a server answers with when this error is not handled
   * closer to where it happened: 4xx when the request itself is at fault, 503
   * when a dependency is down or not configured, 500 for a bug.
   */
  readonly status: number;
  /** True when trying the same call again later can succeed. */
  readonly retryable: boolean;
}

/**
 * One package's errors, declared once as a table (the way fastify declares
 * its own): the code union is checked complete by the compiler, and the status
 * and retryability travel with each code.
 *
 * @example
 * ```ts
 * import { defineErrors, type ErrorCatalog } from '@flowforge/kernel';
 *
 * type CacheErrorCode = 'UNAVAILABLE' | 'INVALID_OPTIONS';
 * const CACHE_ERRORS: ErrorCatalog<CacheErrorCode> = defineErrors({
 *   source: '@acme/cache',
 *   name: 'CacheError',
 *   codes: {
 *     UNAVAILABLE: { status: 503, retryable: true },
 *     INVALID_OPTIONS: { status: 500, retryable: false },
 *   },
 * });
 * ```
 */
export interface ErrorCatalog<Code extends string> {
  /** The package, e.g. `@flowforge/redis`; every message starts with it and `: `. */
  readonly source: string;
  /** The error class's name, e.g. `RedisError`. */
  readonly name: string;
  /** Every code of the package, with what it means. */
  readonly codes: Readonly<Record<Code, ErrorKind>>;
  /**
   * True when every message of this catalog is written to be shown to a
   * client (never a secret, a token or a stored value), so a server may put it
   * in a 4xx answer. @default false
   */
  readonly clientSafe?: boolean;
}

/**
 * Codes that mean the same in every package, so they are declared once: a
 * catalog takes them with {@link sharedErrorKinds}, and {@link defineErrors}
 * refuses a catalog that gives one of these names another status or
 * retryability.
 *
 * | code | status | retryable | meaning |
 * |---|---|---|---|
 * | `NOT_CONFIGURED` | 503 | no | the dependency's URL (or driver) was not given |
 * | `INVALID_OPTIONS` | 500 | no | the caller's code passed a bad option: a bug, never the client's fault |
 * | `UNAVAILABLE` | 503 | yes | no connection: refused, unreachable, lost, none within the connect timeout |
 * | `TIMEOUT` | 503 | yes | no answer within the time limit |
 * | `AUTH_FAILED` | 503 | no | the server refused our credentials: an operator must act |
 * | `PERMISSION_DENIED` | 500 | no | our credentials lack a grant: a deployment bug |
 * | `CANCELLED` | 503 | no | the caller's signal aborted the call |
 * | `CLOSED` | 503 | no | the handle was closed (the process is shutting down) |
 */
export type SharedErrorCode =
  | 'NOT_CONFIGURED'
  | 'INVALID_OPTIONS'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'AUTH_FAILED'
  | 'PERMISSION_DENIED'
  | 'CANCELLED'
  | 'CLOSED';

const SHARED_KINDS: Readonly<Record<SharedErrorCode, ErrorKind>> = Object.freeze({
  NOT_CONFIGURED: Object.freeze({ status: 503, retryable: false }),
  INVALID_OPTIONS: Object.freeze({ status: 500, retryable: false }),
  UNAVAILABLE: Object.freeze({ status: 503, retryable: true }),
  TIMEOUT: Object.freeze({ status: 503, retryable: true }),
  AUTH_FAILED: Object.freeze({ status: 503, retryable: false }),
  PERMISSION_DENIED: Object.freeze({ status: 500, retryable: false }),
  CANCELLED: Object.freeze({ status: 503, retryable: false }),
  CLOSED: Object.freeze({ status: 503, retryable: false }),
});

/**
 * The kinds of the shared `codes`, to spread into a catalog's table.
 * @example
 * ```ts
 * codes: { ...sharedErrorKinds('NOT_CONFIGURED', 'UNAVAILABLE'), WRONG_TYPE: { status: 500, retryable: false } }
 * ```
 */
export function sharedErrorKinds<C extends SharedErrorCode>(
  ...codes: readonly C[]
): Readonly<Record<C, ErrorKind>> {
  const kinds = {} as Record<C, ErrorKind>;
  for (const code of codes) kinds[code] = SHARED_KINDS[code];
  return kinds;
}

/**
 * Checks and freezes a catalog: every status must be a whole number from 400
 * to 599, every code an upper-case identifier, and a shared code (see
 * {@link SharedErrorCode}) must mean what it means everywhere, so a typo or a
 * drift fails at import time rather than in an error handler.
 * @throws {TypeError} naming the first code that is wrong
 */
export function defineErrors<Code extends string>(catalog: ErrorCatalog<Code>): ErrorCatalog<Code> {
  const codes: Record<string, ErrorKind> = {};
  for (const [code, kind] of Object.entries<ErrorKind>(catalog.codes)) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(code)) {
      throw new TypeError(`${catalog.name}: code ${JSON.stringify(code)} is not UPPER_SNAKE_CASE`);
    }
    if (!Number.isInteger(kind.status) || kind.status < 400 || kind.status > 599) {
      throw new TypeError(
        `${catalog.name}: ${code} has status ${String(kind.status)}, not 400–599`,
      );
    }
    if (typeof kind.retryable !== 'boolean') {
      throw new TypeError(`${catalog.name}: ${code} has no boolean retryable`);
    }
    const shared = (SHARED_KINDS as Readonly<Record<string, ErrorKind>>)[code];
    if (shared && (shared.status !== kind.status || shared.retryable !== kind.retryable)) {
      throw new TypeError(
        `${catalog.name}: ${code} means ${String(shared.status)}, ${shared.retryable ? '' : 'not '}retryable in every package; use sharedErrorKinds('${code}') or another name`,
      );
    }
    codes[code] = Object.freeze({ status: kind.status, retryable: kind.retryable });
  }
  return Object.freeze({
    source: catalog.source,
    name: catalog.name,
    codes: Object.freeze(codes) as Readonly<Record<Code, ErrorKind>>,
    clientSafe: catalog.clientSafe === true,
  });
}

/**
 * Marks every FlowForgeError. A registered symbol, not `instanceof`, so two
 * copies of this package in one app (two versions side by side) still
 * recognise each other's errors.
 */
const BRAND = Symbol.for('@flowforge/kernel.FlowForgeError');

/**
 * The base of every `@flowforge/*` error class. A package declares its codes
 * with {@link defineErrors} and subclasses this once; callers switch on
 * `code`, and a server maps any of them to a response with `status` and
 * `retryable` alone.
 *
 * @example
 * ```ts
 * import { FlowForgeError, defineErrors, errorGuard, type ErrorCatalog, type ErrorGuard } from '@flowforge/kernel';
 *
 * type CacheErrorCode = 'UNAVAILABLE' | 'INVALID_OPTIONS';
 * const CACHE_ERRORS: ErrorCatalog<CacheErrorCode> = defineErrors({
 *   source: '@acme/cache',
 *   name: 'CacheError',
 *   codes: {
 *     UNAVAILABLE: { status: 503, retryable: true },
 *     INVALID_OPTIONS: { status: 500, retryable: false },
 *   },
 * });
 *
 * export class CacheError extends FlowForgeError<CacheErrorCode> {
 *   constructor(code: CacheErrorCode, message: string, options?: ErrorOptions) {
 *     super(CACHE_ERRORS, code, message, options);
 *   }
 * }
 * export const isCacheError: ErrorGuard<CacheError> = errorGuard(CacheError);
 *
 * const error = new CacheError('UNAVAILABLE', 'no connection');
 * console.log(error.message, error.status, error.retryable); // "@acme/cache: no connection" 503 true
 * console.log(isCacheError(error, 'UNAVAILABLE')); // true
 * ```
 */
export class FlowForgeError<Code extends string = string> extends Error {
  /** What went wrong; stable across releases. Switch on this, never on the message. */
  readonly code: Code;
  /** The package that threw it, e.g. `@flowforge/redis`. */
  readonly source: string;
  /**
   * The HTTP status a server answers with when nothing closer handles the
   * error. Fastify reads `status` too, and its default error handler sends the
   * `message` whatever the status: give it an error handler that shows a
   * client only `reason` of `clientSafe` errors (see this package's README).
   */
  readonly status: number;
  /** True when trying the same call again later can succeed. */
  readonly retryable: boolean;
  /** True when the message is written to be shown to a client (see {@link ErrorCatalog.clientSafe}). */
  readonly clientSafe: boolean;
  /** The message without the package prefix, for wrapping it in another error. */
  readonly reason: string;

  /**
   * @param catalog - the package's table, from {@link defineErrors}
   * @param code - one of the catalog's codes
   * @param reason - the explanation; the message is `<source>: <reason>`
   * @param options - `cause`, when another error is behind this one
   */
  constructor(catalog: ErrorCatalog<Code>, code: Code, reason: string, options?: ErrorOptions) {
    super(
      `${catalog.source}: ${reason}`,
      options?.cause === undefined ? {} : { cause: options.cause },
    );
    const kind = catalog.codes[code];
    this.name = catalog.name;
    this.code = code;
    this.source = catalog.source;
    // An unknown code (a caller outside TypeScript) is a bug: a 500, never retried.
    this.status = kind?.status ?? 500;
    this.retryable = kind?.retryable ?? false;
    this.clientSafe = catalog.clientSafe === true;
    this.reason = reason;
  }
}
Object.defineProperty(FlowForgeError.prototype, BRAND, { value: true });

/**
 * True when `error` is an error of any `@flowforge/*` package (or of any
 * package built on this kernel), optionally with one of `codes`. Works across
 * two copies of the kernel, unlike `instanceof`.
 */
export function isFlowForgeError(
  error: unknown,
  ...codes: readonly string[]
): error is FlowForgeError {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { [BRAND]?: unknown })[BRAND] === true &&
    (codes.length === 0 || codes.includes((error as FlowForgeError).code))
  );
}

/** A package's `is…Error(error, ...codes)` guard; see {@link errorGuard}. */
export type ErrorGuard<E extends FlowForgeError> = (
  error: unknown,
  ...codes: readonly E['code'][]
) => error is E;

/**
 * The `is…Error` guard of one error class: true when `error` is an instance
 * (optionally with one of `codes`).
 * @example export const isRedisError: ErrorGuard<RedisError> = errorGuard(RedisError);
 */
export function errorGuard<E extends FlowForgeError>(
  type: abstract new (...args: never[]) => E,
): ErrorGuard<E> {
  return (error: unknown, ...codes: readonly E['code'][]): error is E =>
    error instanceof type && (codes.length === 0 || codes.includes(error.code));
}
