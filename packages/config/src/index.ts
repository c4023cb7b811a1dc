export { loadSettings, loadDatabaseSettings, listVariables } from './schema.js';
export { ALLOWED_JWT_ALGORITHMS, APP_ENVS, LOG_LEVELS } from './constants.js';
export { loggableSettings } from './views.js';
export type { VariableInfo } from './schema.js';
export type {
  Settings,
  DatabaseOnlySettings,
  AppSettings,
  HttpSettings,
  DatabaseSettings,
  AuthSettings,
  ApiKeyFailureSettings,
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
export { settings, getDatabaseSettings } from './singleton.js';
export { redactSettings, redactUrl, REDACTED } from './redact.js';
export { ConfigError } from './errors.js';
export type { ConfigErrorCode, ConfigIssue } from './errors.js';
