export {
  loadSettings,
  loadDatabaseSettings,
  loggableSettings,
  listVariables,
  ALLOWED_JWT_ALGORITHMS,
  APP_ENVS,
  LOG_LEVELS,
} from './schema.js';
export type { VariableInfo } from './schema.js';
export type {
  Settings,
  DatabaseOnlySettings,
  AppSettings,
  DatabaseSettings,
  AuthSettings,
  KeycloakSettings,
  DevBypassSettings,
  ClickHouseSettings,
  MaterializeSettings,
  RedisSettings,
  RedisTopology,
  RedisNode,
  ObservabilitySettings,
  Environment,
  AppEnv,
  LogLevel,
  JwtAlgorithm,
} from './types.js';
export { settings, getSettings, getDatabaseSettings } from './singleton.js';
export { redactSettings, redactUrl, REDACTED } from './redact.js';
export { isLoopback } from './internal/harden.js';
export { ConfigError } from './errors.js';
export type { ConfigErrorCode, ConfigIssue } from './errors.js';
