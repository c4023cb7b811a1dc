import type { APP_ENVS, LOG_LEVELS, ALLOWED_JWT_ALGORITHMS } from './schema.js';
import type { RedisTopology } from './internal/redis-url.js';

export type AppEnv = (typeof APP_ENVS)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];
export type JwtAlgorithm = (typeof ALLOWED_JWT_ALGORITHMS)[number];
export type { RedisTopology, RedisNode } from './internal/redis-url.js';

/** The environment to read: `process.env` or any plain record of strings. */
export type Environment = Readonly<Record<string, string | undefined>>;

export interface AppSettings {
  /** APP_ENV. */
  readonly env: AppEnv;
  /** APP_NAME. @default 'flowforge' */
  readonly name: string;
  /** HOST. @default '127.0.0.1' */
  readonly host: string;
  /** PORT. @default 8000 */
  readonly port: number;
  /** LOG_LEVEL. @default 'info' */
  readonly logLevel: LogLevel;
  /** LOG_FORMAT. @default 'pretty' in development, 'json' elsewhere */
  readonly logFormat: 'json' | 'pretty';
  /** SHUTDOWN_TIMEOUT_MS. @default 10000 */
  readonly shutdownTimeoutMs: number;
}

export interface DatabaseSettings {
  /** DATABASE_URL; `null` means "not configured" (embedded PGlite in development). */
  readonly url: string | null;
  /** DATABASE_MIGRATION_URL, else DATABASE_URL: the schema owner, for migrations only. */
  readonly migrationUrl: string | null;
  /** DATABASE_POOL_SIZE. @default 10 */
  readonly poolSize: number;
  /** DATABASE_STATEMENT_TIMEOUT_MS. @default 30000 */
  readonly statementTimeoutMs: number;
  /** DATABASE_CONNECT_TIMEOUT_MS. @default 5000 */
  readonly connectTimeoutMs: number;
  /** DATABASE_SSL. @default 'disable' */
  readonly ssl: 'disable' | 'require' | 'verify-full';
  /** DATABASE_EMBEDDED_DIR. @default '.data/pglite' */
  readonly embeddedDir: string;
}

export interface KeycloakSettings {
  /** KEYCLOAK_URL without a trailing slash. @default 'http://localhost:8080' */
  readonly url: string;
  /** KEYCLOAK_REALM. @default 'flowforge' */
  readonly realm: string;
  /** KEYCLOAK_CLIENT_ID: the audience expected in access tokens. @default 'flowforge-api' */
  readonly clientId: string;
  /** `{url}/realms/{realm}`, the `iss` of every token. */
  readonly issuer: string;
  /** `{issuer}/protocol/openid-connect/certs`. */
  readonly jwksUrl: string;
}

export interface DevBypassSettings {
  /** AUTH_DEV_USER_ID. */
  readonly userId: string;
  /** AUTH_DEV_TENANT_ID. */
  readonly tenantId: string;
}

export interface AuthSettings {
  readonly keycloak: KeycloakSettings;
  /** AUTH_ALGORITHMS. @default ['RS256', 'ES256'] */
  readonly algorithms: readonly JwtAlgorithm[];
  /** AUTH_CLOCK_TOLERANCE_SECONDS. @default 30 */
  readonly clockToleranceSeconds: number;
  /** AUTH_JWKS_COOLDOWN_MS. @default 30000 */
  readonly jwksCooldownMs: number;
  /** AUTH_JWKS_MAX_AGE_MS. @default 600000 */
  readonly jwksMaxAgeMs: number;
  /** AUTH_API_KEY_HEADER, lower-cased. @default 'x-api-key' */
  readonly apiKeyHeader: string;
  /** The dev-bypass principal; `null` unless APP_ENV is development. */
  readonly devBypass: DevBypassSettings | null;
}

export interface ClickHouseSettings {
  /** CLICKHOUSE_URL; `null` means not configured. */
  readonly url: string | null;
  /** CLICKHOUSE_USER. @default 'default' */
  readonly user: string;
  /** CLICKHOUSE_PASSWORD (secret). @default '' */
  readonly password: string;
  /** CLICKHOUSE_DATABASE. @default 'default' */
  readonly database: string;
  /** CLICKHOUSE_REQUEST_TIMEOUT_MS. @default 10000 */
  readonly requestTimeoutMs: number;
}

export interface MaterializeSettings {
  /** MATERIALIZE_URL; `null` means not configured. */
  readonly url: string | null;
  /** MATERIALIZE_POOL_SIZE. @default 5 */
  readonly poolSize: number;
}

export interface RedisSettings {
  /** REDIS_URL as given; `null` means not configured. */
  readonly url: string | null;
  /** REDIS_URL parsed: standalone, sentinel or cluster. */
  readonly topology: RedisTopology | null;
  /** The user from REDIS_URL, if any. */
  readonly username: string | null;
  /** The password from REDIS_URL (secret). */
  readonly password: string;
  /** REDIS_COMMAND_TIMEOUT_MS. @default 2000 */
  readonly commandTimeoutMs: number;
}

export interface ObservabilitySettings {
  /** METRICS_TOKEN (secret): bearer token for /metrics; empty means open. */
  readonly metricsToken: string;
}

/** Every FlowForge setting, grouped by concern, deeply frozen. */
export interface Settings {
  readonly app: AppSettings;
  readonly database: DatabaseSettings;
  readonly auth: AuthSettings;
  readonly clickhouse: ClickHouseSettings;
  readonly materialize: MaterializeSettings;
  readonly redis: RedisSettings;
  readonly observability: ObservabilitySettings;
  /** SECRET_KEY (secret). */
  readonly secretKey: string;
}
