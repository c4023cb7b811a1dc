import type { APP_ENVS, LOG_LEVELS, ALLOWED_JWT_ALGORITHMS } from './constants.js';
import type { RedisTopology } from './internal/redis-url.js';

/** A value of APP_ENV: one of {@link APP_ENVS}. */
export type AppEnv = (typeof APP_ENVS)[number];
/** A pino log level: one of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];
/** An asymmetric JOSE algorithm that tokens may be signed with: one of {@link ALLOWED_JWT_ALGORITHMS}. */
export type JwtAlgorithm = (typeof ALLOWED_JWT_ALGORITHMS)[number];
export type { RedisTopology, RedisNode } from './internal/redis-url.js';

/** The environment to read: `process.env` or any plain record of strings. */
export type Environment = Readonly<Record<string, string | undefined>>;

/** The process itself: environment, HTTP listener, logging, shutdown. `settings.app`. */
export interface AppSettings {
  /**
   * APP_ENV. Unset or empty means `production` (NODE_ENV does not choose it): only an
   * explicit `development` turns on the dev bypass and the embedded database.
   * @default 'production'
   */
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

/** What the HTTP server accepts from a client, and how long it waits. `settings.http`. */
export interface HttpSettings {
  /** HTTP_REQUEST_TIMEOUT_MS: time to receive a whole request. @default 30000 */
  readonly requestTimeoutMs: number;
  /** HTTP_HEADERS_TIMEOUT_MS: time to receive the headers, at most `requestTimeoutMs`. @default 10000, or `requestTimeoutMs` when lower */
  readonly headersTimeoutMs: number;
  /** HTTP_BODY_LIMIT_BYTES: a route's body limit unless it sets its own. @default 65536 */
  readonly bodyLimitBytes: number;
  /** HTTP_TRUST_PROXY: the proxies whose X-Forwarded-For names the client (addresses, CIDR ranges). @default [] */
  readonly trustProxy: readonly string[];
  /** HTTP_CORS_ORIGINS: the browser origins allowed to call the API cross-origin (exact `scheme://host[:port]`). @default [] */
  readonly corsOrigins: readonly string[];
  /** HTTP_MAX_STREAMS: live streams the process holds at once. @default 1000 */
  readonly maxStreams: number;
  /** HTTP_STREAMS_PER_USER: live streams one user may hold. @default 4 */
  readonly streamsPerUser: number;
  /** HTTP_STREAMS_PER_TENANT: live streams one tenant may hold; 0 means half the process's, rounded up. @default 0 */
  readonly streamsPerTenant: number;
}

/** PostgreSQL for @flowforge/db. `settings.database`. */
export interface DatabaseSettings {
  /** DATABASE_URL; `null` means "not configured" (embedded PGlite in development). */
  readonly url: string | null;
  /** DATABASE_MIGRATION_URL, else DATABASE_URL: the schema owner, for migrations only. */
  readonly migrationUrl: string | null;
  /** DATABASE_POOL_SIZE. @default 10 */
  readonly poolSize: number;
  /** DATABASE_STATEMENT_TIMEOUT_MS. @default 30000 */
  readonly statementTimeoutMs: number;
  /** DATABASE_CONNECT_TIMEOUT_MS: a new connection, or one from the full pool. @default 5000 */
  readonly connectTimeoutMs: number;
  /** DATABASE_QUERY_TIMEOUT_MS: the client-side deadline of every query. @default 35000 */
  readonly queryTimeoutMs: number;
  /** DATABASE_SSL. @default 'disable' */
  readonly ssl: 'disable' | 'require' | 'verify-full';
  /** DATABASE_EMBEDDED_DIR. @default '.data/pglite' */
  readonly embeddedDir: string;
}

/** The Keycloak realm whose access tokens are accepted. `settings.auth.keycloak`. */
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

/** The principal the development bypass signs in as. `settings.auth.devBypass`. */
export interface DevBypassSettings {
  /** AUTH_DEV_USER_ID. */
  readonly userId: string;
  /** AUTH_DEV_TENANT_ID. */
  readonly tenantId: string;
}

/** Authentication for @flowforge/auth. `settings.auth`. */
export interface AuthSettings {
  /** The Keycloak realm (KEYCLOAK_URL, KEYCLOAK_REALM, KEYCLOAK_CLIENT_ID). */
  readonly keycloak: KeycloakSettings;
  /** AUTH_ALGORITHMS. @default ['RS256', 'ES256'] */
  readonly algorithms: readonly JwtAlgorithm[];
  /** AUTH_CLOCK_TOLERANCE_SECONDS. @default 30 */
  readonly clockToleranceSeconds: number;
  /** AUTH_MAX_TOKEN_LIFETIME_SECONDS: the longest `exp − iat` accepted. @default 3600 */
  readonly maxTokenLifetimeSeconds: number;
  /** AUTH_JWKS_COOLDOWN_MS. @default 30000 */
  readonly jwksCooldownMs: number;
  /** AUTH_JWKS_MAX_AGE_MS. @default 600000 */
  readonly jwksMaxAgeMs: number;
  /** AUTH_API_KEY_HEADER, lower-cased. @default 'x-api-key' */
  readonly apiKeyHeader: string;
  /** How many wrong API keys one client may send, and over how long. */
  readonly apiKeyFailures: ApiKeyFailureSettings;
  /** The dev-bypass principal; `null` unless APP_ENV=development is set explicitly. */
  readonly devBypass: DevBypassSettings | null;
}

/** The throttle of wrong API keys. `settings.auth.apiKeyFailures`. */
export interface ApiKeyFailureSettings {
  /** AUTH_API_KEY_MAX_FAILURES. @default 10 */
  readonly max: number;
  /** AUTH_API_KEY_FAILURE_WINDOW_SECONDS. @default 60 */
  readonly windowSeconds: number;
}

/** The read-only ClickHouse connection for @flowforge/clickhouse. `settings.clickhouse`. */
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

/** The Materialize connection for @flowforge/materialize. `settings.materialize`. */
export interface MaterializeSettings {
  /** MATERIALIZE_URL; `null` means not configured. */
  readonly url: string | null;
  /** MATERIALIZE_POOL_SIZE. @default 5 */
  readonly poolSize: number;
}

/** The read-only Redis connection for @flowforge/redis. `settings.redis`. */
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

/** Metrics exposition for @flowforge/observability. `settings.observability`. */
export interface ObservabilitySettings {
  /** METRICS_TOKEN (secret): bearer token for /metrics and readiness details; empty (development only) means open. */
  readonly metricsToken: string;
}

/** Every FlowForge setting, grouped by concern, deeply frozen. */
export interface Settings {
  /** Process, listener and logging settings. */
  readonly app: AppSettings;
  /** HTTP limits and timeouts, for the server kit. */
  readonly http: HttpSettings;
  /** PostgreSQL settings, for `createDatabase` of @flowforge/db. */
  readonly database: DatabaseSettings;
  /** Keycloak, API key and dev-bypass settings, for `createAuth` of @flowforge/auth. */
  readonly auth: AuthSettings;
  /** ClickHouse settings, for `createClickHouse` of @flowforge/clickhouse. */
  readonly clickhouse: ClickHouseSettings;
  /** Materialize settings, for @flowforge/materialize. */
  readonly materialize: MaterializeSettings;
  /** Redis settings, for `createRedis` of @flowforge/redis. */
  readonly redis: RedisSettings;
  /** Metrics endpoint settings. */
  readonly observability: ObservabilitySettings;
  /** SECRET_KEY (secret). */
  readonly secretKey: string;
}

/**
 * What `loadDatabaseSettings` reads: APP_ENV and the `database` section, in
 * the shape of {@link Settings} (so a full `Settings` may stand in for it).
 */
export interface DatabaseOnlySettings {
  /** APP_ENV alone. */
  readonly app: Pick<AppSettings, 'env'>;
  /** PostgreSQL settings, as in {@link Settings.database}. */
  readonly database: DatabaseSettings;
}
