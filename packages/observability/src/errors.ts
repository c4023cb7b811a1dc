import {
  FlowForgeError,
  defineErrors,
  errorGuard,
  type ErrorCatalog,
  type ErrorGuard,
} from '@flowforge/kernel';

/**
 * Stable codes of {@link ObservabilityError}; switch on these, never on
 * messages. Both are bugs in the code that declares the metric, so `status`
 * (what an HTTP server answers when the error reaches its error handler
 * unhandled) is 500 and trying again cannot help.
 *
 * | code | status | when | retry? |
 * |---|---|---|---|
 * | `METRIC_NAME_INVALID` | 500 | a metric name is not snake_case starting with a letter | no |
 * | `METRIC_CONFLICT` | 500 | a name is declared again with another type, help, labels or buckets | no |
 */
export type ObservabilityErrorCode = 'METRIC_NAME_INVALID' | 'METRIC_CONFLICT';

/** The table of {@link ObservabilityErrorCode}s: the HTTP status and retryability of each. */
const OBSERVABILITY_ERRORS: ErrorCatalog<ObservabilityErrorCode> = defineErrors({
  source: '@flowforge/observability',
  name: 'ObservabilityError',
  codes: {
    METRIC_NAME_INVALID: { status: 500, retryable: false },
    METRIC_CONFLICT: { status: 500, retryable: false },
  },
});

/**
 * The one error class of @flowforge/observability; switch on `code`. `code`,
 * `status`, `retryable` and `reason` come from the kernel's base,
 * `FlowForgeError`.
 */
export class ObservabilityError extends FlowForgeError<ObservabilityErrorCode> {
  /**
   * @param code - the stable code callers switch on
   * @param message - the explanation, prefixed with `@flowforge/observability: `
   * @param options - `cause`, when another error is behind this one
   */
  constructor(code: ObservabilityErrorCode, message: string, options?: ErrorOptions) {
    super(OBSERVABILITY_ERRORS, code, message, options);
  }
}

/**
 * True when `error` is an {@link ObservabilityError} (optionally with one of
 * `codes`).
 *
 * @example
 * ```ts
 * import { createMetrics, isObservabilityError } from '@flowforge/observability';
 *
 * const metrics = createMetrics({ defaultMetrics: false });
 * metrics.counter({ name: 'jobs_total', help: 'Jobs run.' });
 * try {
 *   metrics.gauge({ name: 'jobs_total', help: 'Jobs run.' });
 * } catch (error) {
 *   if (!isObservabilityError(error, 'METRIC_CONFLICT')) throw error;
 *   console.log(error.code); // METRIC_CONFLICT
 * }
 * ```
 */
export const isObservabilityError: ErrorGuard<ObservabilityError> = errorGuard(ObservabilityError);
