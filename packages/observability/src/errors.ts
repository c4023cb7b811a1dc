/** Stable codes of {@link ObservabilityError}. */
export type ObservabilityErrorCode = 'METRIC_NAME_INVALID' | 'METRIC_CONFLICT';

/** The one error class of @flowforge/observability; switch on `code`. */
export class ObservabilityError extends Error {
  readonly code: ObservabilityErrorCode;

  constructor(code: ObservabilityErrorCode, message: string, options?: ErrorOptions) {
    super(`@flowforge/observability: ${message}`, options);
    this.name = 'ObservabilityError';
    this.code = code;
  }
}
