export { createAuth } from './auth.js';
export type { Auth, AuthDependencies, AuthOptions } from './auth.js';
export { createJwtVerifier } from './jwt.js';
export type {
  IdentityProviderHealth,
  JwtAlgorithm,
  JwtVerifier,
  JwtVerifierOptions,
} from './jwt.js';
export {
  clientOfAddress,
  createFailureThrottle,
  FAILURE_THROTTLE_PREFIX,
} from './failure-throttle.js';
export type {
  CounterSetOptions,
  CounterStore,
  FailureThrottle,
  FailureThrottleOptions,
} from './failure-throttle.js';
export {
  bindPrincipal,
  getCurrentPrincipal,
  getCurrentTenantId,
  getCurrentUserId,
  assertWidgetScope,
  credentialExpiresAt,
} from './principal.js';
export type { AuthMethod, Principal } from './principal.js';
export { AuthError, isAuthError } from './errors.js';
export type { AuthErrorCode, AuthErrorDetails, TokenFailure } from './errors.js';
export {
  createApiKey,
  createApiKeyVerifier,
  generateApiKey,
  listApiKeys,
  parseApiKey,
  revokeApiKey,
} from './api-keys.js';
export type {
  ApiKeyInfo,
  ApiKeyTable,
  ApiKeyVerifier,
  ApiKeyVerifierOptions,
  AuthDB,
  CreateApiKeyInput,
  CreatedApiKey,
  GeneratedApiKey,
  ParsedApiKey,
} from './api-keys.js';
export { authMigrations } from './migrations.js';
export {
  createStreamTickets,
  STREAM_TICKET_MAX_WIDGETS,
  STREAM_TICKET_PREFIX,
} from './stream-tickets.js';
export type {
  IssuedTicket,
  RedeemedTicket,
  StreamTicketRequest,
  StreamTickets,
  StreamTicketsOptions,
} from './stream-tickets.js';
export { createApiKeyWatch } from './api-key-watch.js';
export type { ApiKeyEnd, ApiKeyWatch, ApiKeyWatchOptions, WatchedApiKey } from './api-key-watch.js';
export type { KeyspaceSetOptions, KeyspaceStore } from './keyspace-store.js';
