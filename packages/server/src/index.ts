/**
 * What every FlowForge service needs around its routes, framework-neutral:
 * readiness checks, ordered start and graceful stop, one mapping from every
 * `@flowforge/*` error to an RFC 9457 problem, and Server-Sent Events with
 * limits, heartbeats, backpressure and an end on shutdown. The bindings are
 * `@flowforge/server/fastify` and `@flowforge/server/node` (node:http, Express 5).
 * @packageDocumentation
 */
export { ServerError, isServerError, storeNotConfigured } from './errors.js';
export type { ServerErrorCode, ServerErrorOptions } from './errors.js';
export { createProblems, problemBody, titleOf, PROBLEM_CONTENT_TYPE } from './problems.js';
export type { ErrorAnswer, ErrorContext, Problem, Problems, ProblemsOptions } from './problems.js';
export { createReadiness, publicReadinessReport, readinessStatusCode } from './readiness.js';
export { MAX_JSON_DEPTH, SECURITY_HEADERS, httpServerOptions } from './http-limits.js';
/** `@flowforge/kernel`'s, here too: the check the Fastify plugin applies to every JSON body. */
export { jsonDepthExceeds } from '@flowforge/kernel';
export type { HttpTimeouts } from './http-limits.js';
export type {
  CheckResult,
  HealthChecked,
  Readiness,
  ReadinessCheck,
  ReadinessOptions,
  ReadinessReport,
} from './readiness.js';
export { createLifecycle, EXIT_CODES } from './lifecycle.js';
export type {
  Closable,
  Component,
  Lifecycle,
  LifecycleOptions,
  ListenOptions,
  StopOutcome,
} from './lifecycle.js';
export {
  createEventStreams,
  eventStreamRefusal,
  formatServerSentEvent,
  lastEventIdOf,
} from './event-streams.js';
export type {
  EventSource,
  EventStream,
  EventStreamRefusal,
  EventStreams,
  EventStreamsOptions,
  OpenEventStream,
  RefusalOfEventStream,
  ServerSentEvent,
} from './event-streams.js';
export { mergeEventSources } from './merge-event-sources.js';
export { createServiceContext, settingsOrExit, EXIT_CONFIG } from './settings.js';
export type { ServiceContext, SettingsOrExitOptions } from './settings.js';
export { openOptionalStores, registerStore } from './stores.js';
export type {
  OptionalStoreName,
  OptionalStores,
  RegisterStoreOptions,
  StoreDependencies,
} from './stores.js';
