export { createLogger, flushLogger } from './logger.js';
export { createLogDestination } from './stdout.js';
export type { LineWriter } from './stdout.js';
export type { Logger, LoggerOptions, OpenTelemetryTraceApi } from './logger.js';
export { DEFAULT_REDACT_PATHS } from './redaction.js';
export {
  runWithRequestContext,
  getRequestContext,
  bindRequestContext,
  setRequestValue,
  getRequestValue,
  setRefusalReason,
} from './context.js';
export type { RequestContext, BindableContext } from './context.js';
export { acceptRequestId, parseTraceparent, MAX_REQUEST_ID_LENGTH } from './request-id.js';
export type { TraceParent } from './request-id.js';
export { createMetrics, METRIC_PREFIX, OVERFLOW_LABEL_VALUE } from './metrics.js';
export type {
  Metrics,
  MetricsOptions,
  MetricConfig,
  HistogramConfig,
  CollectedMetricConfig,
  MetricSample,
} from './metrics.js';
export { createHttpObservability, UNMATCHED_ROUTE, CLIENT_CLOSED_REQUEST } from './http.js';
export type {
  HttpObservability,
  HttpObservabilityOptions,
  ObservedRequest,
  RequestStart,
} from './http.js';
export { bearerTokenCheck, createMetricsEndpoint } from './metrics-endpoint.js';
export type { MetricsEndpointOptions, MetricsResponse } from './metrics-endpoint.js';
export { nodeHttpObservability } from './node-http.js';
export type { NodeHttpObservabilityOptions } from './node-http.js';
export { ObservabilityError, isObservabilityError } from './errors.js';
export type { ObservabilityErrorCode } from './errors.js';
