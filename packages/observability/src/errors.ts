/** Stable codes of {@link ObservabilityError}. */
export type ObservabilityErrorCode = 'METRIC_NAME_INVALID' | 'METRIC_CONFLICT';

/** The one error class of @flowforge/observability; switch on `code`. */
export class ObservabilityError extends Error {
  /** Why it was thrown; stable across releases. */
  readonly code: ObservabilityErrorCode;

  /**
   * @param code - the stable code callers switch on
   * @param message - the explanation, prefixed with `@flowforge/observability: `
   * @param options - `cause`, when another error is behind this one
   */
  constructor(code: ObservabilityErrorCode, message: string, options?: ErrorOptions) {
    super(`@flowforge/observability: ${message}`, options);
    this.name = 'ObservabilityError';
    this.code = code;
  }
}
