export { createMaterialize } from './materialize.js';
export type {
  Materialize,
  MaterializeHealth,
  MaterializeStatus,
  SubscribeFilter,
  SubscribeOptions,
  SubscribeProgress,
  SubscribeUpdate,
} from './materialize.js';
export type { MaterializeOptions, ReconnectOptions } from './options.js';
export { MaterializeError, isMaterializeError } from './errors.js';
export type { MaterializeErrorCode, MaterializeErrorDetails } from './errors.js';
export { createSharedSubscriptions } from './shared.js';
export type {
  LiveItem,
  SharedSubscriptions,
  SharedSubscriptionsOptions,
  SharedSubscriptionsStats,
  SubscribeReset,
  SubscribeStatus,
  WatchOptions,
} from './shared.js';
export { liveEventOf, type LiveEvent, type LiveEventLabel } from './live-events.js';
