/**
 * What every FlowForge package shares, so it is written once: the error base
 * and catalogs, option checks, network-error classification, reconnect
 * backoff, metric-handle names, the redaction marker, the UUID check and a JSON depth check.
 * Adopters use it to handle any `@flowforge/*` error by `status` and
 * `retryable`, and to give their own packages the same shape.
 * @packageDocumentation
 */
export {
  FlowForgeError,
  defineErrors,
  errorGuard,
  isFlowForgeError,
  sharedErrorKinds,
  type ErrorCatalog,
  type ErrorGuard,
  type ErrorKind,
  type SharedErrorCode,
} from './errors.js';
export {
  OptionChecks,
  describeValue,
  wholeNumberExpectation,
  type WholeNumberRange,
} from './options.js';
export { networkFailureOf, type NetworkFailure } from './network.js';
export { backoffDelay, type Backoff } from './backoff.js';
export { NamedHandles, type HandleState, type NamedHandlesOptions } from './handles.js';
export { REDACTED, isExactOrigin, isUuid, redactSecrets } from './text.js';
export { jsonDepthExceeds } from './json.js';
