import { isExactOrigin, wholeNumberExpectation } from '@flowforge/kernel';
import { isIP } from 'node:net';
import { z } from 'zod';
import { ALLOWED_JWT_ALGORITHMS, APP_ENVS, LOG_LEVELS } from './constants.js';
import { ConfigError, type ConfigIssue } from './errors.js';
import { parseRedisUrl } from './internal/redis-url.js';
import { harden, hardenDatabase } from './internal/harden.js';
import type { DatabaseOnlySettings, DatabaseSettings, Environment, Settings } from './types.js';
import { freezeDatabaseSettings, freezeSettings } from './views.js';

/**
 * How a variable's value must be treated when shown: `secret` values are never
 * shown; `url-credentials` values are URLs whose password is masked.
 */
type Sensitivity = 'public' | 'secret' | 'url-credentials';

interface VariableSpec<S extends z.ZodType = z.ZodType> {
  readonly schema: S;
  /** Applied when the variable is unset or empty; written as it would be in a .env file. */
  readonly default?: string;
  readonly sensitivity: Sensitivity;
  /** Human-readable type for the reference table. */
  readonly type: string;
  readonly description: string;
}

function spec<S extends z.ZodType>(value: VariableSpec<S>): VariableSpec<S> {
  return value;
}

/**
 * A whole number from `min` to `max`, written in digits only. Every way of being
 * wrong (`-1`, `0` below a minimum of 1, `1.5`, `abc`, too large) gets the one
 * message that says what is accepted: "expected a positive whole number from 1
 * to 1000" (or "a whole number from 0 to …" where 0 is allowed), the kernel's
 * words, so that a factory option and its variable fail alike.
 */
const wholeNumber = (min: number, max: number) => {
  const message = wholeNumberExpectation({ min, max });
  return z.string().transform((value, ctx) => {
    const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN;
    if (!(parsed >= min && parsed <= max)) {
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return parsed;
  });
};

const url = (protocols: readonly string[]) =>
  z.string().superRefine((value, ctx) => {
    // One check, not two refinements: zod runs every refinement, and `new URL`
    // on an unparseable value would throw an error that carries the value.
    const parsed = URL.parse(value);
    if (parsed === null) {
      ctx.addIssue({ code: 'custom', message: 'expected an absolute URL' });
    } else if (!protocols.includes(parsed.protocol.slice(0, -1))) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a URL with scheme ${protocols.join(', ')}`,
      });
    }
  });

const redisUrl = z.string().transform((value, ctx) => {
  const parsed = parseRedisUrl(value);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

/** A comma-separated list of `item`; at least `min` values (an empty list only where `min` is 0). */
const list = <T extends z.ZodType<string, string>>(item: T, min = 1) =>
  z
    .string()
    .transform((value) =>
      value
        .split(',')
        .map((part) => part.trim())
        .filter((part) => part.length > 0),
    )
    .pipe(z.array(item).min(min, 'expected at least one value'));

const uuid = z.uuid('expected a UUID');

/** An IPv4 or IPv6 address, optionally with a prefix length (`10.0.0.0/8`, `fd00::/8`). */
function isAddressOrCidr(value: string): boolean {
  const [address = '', prefix, extra] = value.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * Every environment variable FlowForge reads. This table is the single source
 * for parsing, error messages, `.env.example` and the reference in ENVIRONMENT.md.
 */
const variables = {
  // app
  APP_ENV: spec({
    schema: z.enum(APP_ENVS, { error: `expected one of ${APP_ENVS.join(', ')}` }),
    // Fail closed: a deployment that forgets APP_ENV gets production's checks, never the dev bypass.
    default: 'production',
    sensitivity: 'public',
    type: APP_ENVS.join(' \\| '),
    description:
      'Deployment environment. Unset or empty means production (NODE_ENV does not choose it); set APP_ENV=development for local work: only an explicit development turns on the dev bypass and the embedded database. staging and production turn on production hardening.',
  }),
  APP_NAME: spec({
    schema: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'expected a lower-case slug'),
    default: 'flowforge',
    sensitivity: 'public',
    type: 'slug',
    description: 'Service name, used in logs and as the database application_name.',
  }),
  HOST: spec({
    schema: z.string().regex(/^[A-Za-z0-9.:-]+$/, 'expected a host name or IP address'),
    default: '127.0.0.1',
    sensitivity: 'public',
    type: 'host',
    description: 'Interface the HTTP server listens on.',
  }),
  PORT: spec({
    schema: wholeNumber(0, 65535),
    default: '8000',
    sensitivity: 'public',
    type: 'port',
    description: 'Port the HTTP server listens on (0 picks a free one).',
  }),
  LOG_LEVEL: spec({
    schema: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }),
    default: 'info',
    sensitivity: 'public',
    type: LOG_LEVELS.join(' \\| '),
    description: 'Lowest log level written.',
  }),
  LOG_FORMAT: spec({
    schema: z.enum(['json', 'pretty'], { error: 'expected json or pretty' }).optional(),
    sensitivity: 'public',
    type: 'json \\| pretty',
    description: 'Log line format. Unset: pretty in development, json elsewhere.',
  }),
  SHUTDOWN_TIMEOUT_MS: spec({
    schema: wholeNumber(0, 600_000),
    default: '10000',
    sensitivity: 'public',
    type: 'milliseconds',
    description: 'How long a graceful shutdown may drain in-flight work before it gives up.',
  }),

  // http
  HTTP_REQUEST_TIMEOUT_MS: spec({
    schema: wholeNumber(1000, 600_000),
    default: '30000',
    sensitivity: 'public',
    type: 'milliseconds',
    description:
      'How long a client may take to send a whole request (headers and body); then 408 and the connection is closed. Responses, streams included, are not limited by it.',
  }),
  HTTP_HEADERS_TIMEOUT_MS: spec({
    schema: wholeNumber(1000, 600_000).optional(),
    sensitivity: 'public',
    type: 'milliseconds',
    description:
      'How long a client may take to send the request headers. At most HTTP_REQUEST_TIMEOUT_MS. Unset: 10000, or HTTP_REQUEST_TIMEOUT_MS when that is lower.',
  }),
  HTTP_BODY_LIMIT_BYTES: spec({
    schema: wholeNumber(1, 104_857_600),
    default: '65536',
    sensitivity: 'public',
    type: 'bytes',
    description:
      'Largest request body a route accepts unless it sets its own limit; a larger one is refused with 413 before it is read.',
  }),
  HTTP_TRUST_PROXY: spec({
    schema: list(z.string().refine(isAddressOrCidr, 'expected IP addresses or CIDR ranges'), 0),
    default: '',
    sensitivity: 'public',
    type: 'comma list',
    description:
      "The proxies in front of the service (IP addresses or CIDR ranges, e.g. 10.0.0.0/8), whose X-Forwarded-For is believed for the client's address. Empty: none, the peer is the client. Behind a load balancer, set it: the API-key throttle counts per client address.",
  }),
  HTTP_CORS_ORIGINS: spec({
    schema: list(
      z.string().refine(isExactOrigin, 'expected exact origins like https://app.example.com'),
      0,
    ),
    default: '',
    sensitivity: 'public',
    type: 'comma list',
    description:
      "The browser origins (scheme://host[:port], e.g. https://app.example.com; no path, no *) that may call the API from another site: preflights answered, Access-Control-Allow-Origin sent. Empty: none; a request whose Origin is neither the API's own nor listed is refused with 403.",
  }),
  HTTP_MAX_STREAMS: spec({
    schema: wholeNumber(1, 1_000_000),
    default: '1000',
    sensitivity: 'public',
    type: 'integer',
    description:
      'Live (SSE) streams the process holds open at once; the next is refused with 503. Viewers of one live view share one Materialize subscription, so this is bounded by sockets and memory, not by MATERIALIZE_POOL_SIZE.',
  }),
  HTTP_STREAMS_PER_USER: spec({
    schema: wholeNumber(1, 10_000),
    default: '4',
    sensitivity: 'public',
    type: 'integer',
    description: 'Live (SSE) streams one user may hold open at once; the next is refused with 429.',
  }),
  HTTP_STREAMS_PER_TENANT: spec({
    schema: wholeNumber(0, 100_000),
    default: '0',
    sensitivity: 'public',
    type: 'integer',
    description:
      "Live (SSE) streams one tenant's users may hold open together, so that one tenant cannot take every stream of the process; the next is refused with 429. 0: half the process's streams, rounded up.",
  }),

  // database
  DATABASE_URL: spec({
    schema: url(['postgres', 'postgresql']).optional(),
    sensitivity: 'url-credentials',
    type: 'postgres URL',
    description:
      'PostgreSQL connection URL. Unset in development: the sample app uses embedded PGlite. Required in staging and production.',
  }),
  DATABASE_MIGRATION_URL: spec({
    schema: url(['postgres', 'postgresql']).optional(),
    sensitivity: 'url-credentials',
    type: 'postgres URL',
    description:
      'The role that owns the schema, for `flowforge-db migrate`. Unset: DATABASE_URL. The app itself never connects with it.',
  }),
  DATABASE_POOL_SIZE: spec({
    schema: wholeNumber(1, 1000),
    default: '10',
    sensitivity: 'public',
    type: 'integer',
    description: 'Maximum pooled connections.',
  }),
  DATABASE_STATEMENT_TIMEOUT_MS: spec({
    schema: wholeNumber(0, 3_600_000),
    default: '30000',
    sensitivity: 'public',
    type: 'milliseconds',
    description: 'Server-side statement_timeout for every pooled connection (0 = none).',
  }),
  DATABASE_CONNECT_TIMEOUT_MS: spec({
    schema: wholeNumber(1, 600_000),
    default: '5000',
    sensitivity: 'public',
    type: 'milliseconds',
    description:
      'How long to wait for a connection, new or from the pool, before failing (never 0: that waits forever).',
  }),
  DATABASE_QUERY_TIMEOUT_MS: spec({
    schema: wholeNumber(1, 3_600_000),
    default: '35000',
    sensitivity: 'public',
    type: 'milliseconds',
    description:
      'Client-side deadline of every query: a server that never answers (a frozen primary, a black-holed network) fails the query after this long and its connection is discarded. Keep it above DATABASE_STATEMENT_TIMEOUT_MS so the server cancels a slow query first.',
  }),
  DATABASE_SSL: spec({
    schema: z.enum(['disable', 'require', 'verify-full'], {
      error: 'expected disable, require or verify-full',
    }),
    default: 'disable',
    sensitivity: 'public',
    type: 'disable \\| require \\| verify-full',
    description: 'TLS to PostgreSQL. Production refuses disable for a non-loopback host.',
  }),
  DATABASE_EMBEDDED_DIR: spec({
    schema: z.string().min(1),
    default: '.data/pglite',
    sensitivity: 'public',
    type: 'path',
    description: 'Where embedded PGlite keeps its data (development without DATABASE_URL only).',
  }),

  // auth
  KEYCLOAK_URL: spec({
    schema: url(['http', 'https']),
    default: 'http://localhost:8080',
    sensitivity: 'public',
    type: 'URL',
    description: 'Keycloak base URL; the issuer is {KEYCLOAK_URL}/realms/{KEYCLOAK_REALM}.',
  }),
  KEYCLOAK_REALM: spec({
    schema: z.string().regex(/^[A-Za-z0-9._-]{1,255}$/, 'expected a realm name'),
    default: 'flowforge',
    sensitivity: 'public',
    type: 'string',
    description: 'Keycloak realm.',
  }),
  KEYCLOAK_CLIENT_ID: spec({
    schema: z.string().min(1),
    default: 'flowforge-api',
    sensitivity: 'public',
    type: 'string',
    description: 'Audience expected in access tokens (aud or azp).',
  }),
  AUTH_ALGORITHMS: spec({
    schema: list(
      z.enum(ALLOWED_JWT_ALGORITHMS, { error: 'only asymmetric JOSE algorithms are allowed' }),
    ),
    default: 'RS256,ES256',
    sensitivity: 'public',
    type: 'comma list',
    description: `Accepted JWT signature algorithms, from ${ALLOWED_JWT_ALGORITHMS.join(', ')}. none and HS* are refused.`,
  }),
  AUTH_CLOCK_TOLERANCE_SECONDS: spec({
    schema: wholeNumber(0, 300),
    default: '30',
    sensitivity: 'public',
    type: 'seconds',
    description: 'Clock skew tolerated on exp, nbf and iat.',
  }),
  AUTH_MAX_TOKEN_LIFETIME_SECONDS: spec({
    schema: wholeNumber(60, 2_592_000),
    default: '3600',
    sensitivity: 'public',
    type: 'seconds',
    description:
      "Longest lifetime (exp − iat) of an access token accepted. Keycloak's default access token lifespan is 300 s; a token valid for longer than this is refused.",
  }),
  AUTH_API_KEY_MAX_FAILURES: spec({
    schema: wholeNumber(1, 100_000),
    default: '10',
    sensitivity: 'public',
    type: 'integer',
    description:
      'Wrong API keys one client (IP address) may send per AUTH_API_KEY_FAILURE_WINDOW_SECONDS; then 429 with Retry-After. Counted in Redis when REDIS_URL is set (shared by every instance), in memory otherwise.',
  }),
  AUTH_API_KEY_FAILURE_WINDOW_SECONDS: spec({
    schema: wholeNumber(1, 86_400),
    default: '60',
    sensitivity: 'public',
    type: 'seconds',
    description: 'The window AUTH_API_KEY_MAX_FAILURES counts over.',
  }),
  AUTH_JWKS_COOLDOWN_MS: spec({
    schema: wholeNumber(0, 3_600_000),
    default: '30000',
    sensitivity: 'public',
    type: 'milliseconds',
    description: 'Minimum time between two JWKS refetches caused by an unknown kid.',
  }),
  AUTH_JWKS_MAX_AGE_MS: spec({
    schema: wholeNumber(1000, 86_400_000),
    default: '600000',
    sensitivity: 'public',
    type: 'milliseconds',
    description: 'Age after which cached JWKS keys are refreshed.',
  }),
  AUTH_API_KEY_HEADER: spec({
    schema: z
      .string()
      .regex(/^[A-Za-z0-9-]+$/, 'expected an HTTP header name')
      .transform((value) => value.toLowerCase()),
    default: 'x-api-key',
    sensitivity: 'public',
    type: 'header name',
    description: 'Header that carries an embed API key.',
  }),
  AUTH_DEV_USER_ID: spec({
    schema: uuid,
    default: '00000000-0000-4000-8000-000000000001',
    sensitivity: 'public',
    type: 'UUID',
    description:
      'User of the dev bypass (APP_ENV=development only; refused when set in production).',
  }),
  AUTH_DEV_TENANT_ID: spec({
    schema: uuid,
    default: '00000000-0000-4000-8000-00000000000a',
    sensitivity: 'public',
    type: 'UUID',
    description:
      'Tenant of the dev bypass (APP_ENV=development only; refused when set in production).',
  }),

  // clickhouse
  CLICKHOUSE_URL: spec({
    schema: url(['http', 'https']).optional(),
    sensitivity: 'url-credentials',
    type: 'URL',
    description: 'ClickHouse HTTP interface. Unset: ClickHouse routes answer 503.',
  }),
  CLICKHOUSE_USER: spec({
    schema: z.string().min(1),
    default: 'default',
    sensitivity: 'public',
    type: 'string',
    description: 'ClickHouse user (ideally a readonly one).',
  }),
  CLICKHOUSE_PASSWORD: spec({
    schema: z.string(),
    default: '',
    sensitivity: 'secret',
    type: 'string',
    description: 'ClickHouse password.',
  }),
  CLICKHOUSE_DATABASE: spec({
    schema: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected a database identifier'),
    default: 'default',
    sensitivity: 'public',
    type: 'identifier',
    description: 'ClickHouse database.',
  }),
  CLICKHOUSE_REQUEST_TIMEOUT_MS: spec({
    schema: wholeNumber(1, 3_600_000),
    default: '10000',
    sensitivity: 'public',
    type: 'milliseconds',
    description: 'Per-request timeout (the client default of 30 s is too long for a request path).',
  }),

  // materialize
  MATERIALIZE_URL: spec({
    schema: url(['postgres', 'postgresql']).optional(),
    sensitivity: 'url-credentials',
    type: 'postgres URL',
    description: 'Materialize SQL endpoint (PG wire). Unset: streaming routes answer 503.',
  }),
  MATERIALIZE_POOL_SIZE: spec({
    schema: wholeNumber(1, 1000),
    default: '5',
    sensitivity: 'public',
    type: 'integer',
    description: 'Maximum pooled Materialize connections (each SUBSCRIBE holds one).',
  }),

  // redis
  REDIS_URL: spec({
    schema: redisUrl.optional(),
    sensitivity: 'url-credentials',
    type: 'redis URL',
    description:
      'redis[s]://[user:pass@]host:port[/db], redis[s]-sentinel://[user:pass@]h1:p1,h2:p2/<master>, or redis[s]-cluster://[user:pass@]h1:p1,h2:p2. Unset: Redis is not configured.',
  }),
  REDIS_COMMAND_TIMEOUT_MS: spec({
    schema: wholeNumber(1, 600_000),
    default: '2000',
    sensitivity: 'public',
    type: 'milliseconds',
    description: 'A Redis command fails after this long instead of waiting out an outage.',
  }),

  // observability
  METRICS_TOKEN: spec({
    schema: z.string(),
    default: '',
    sensitivity: 'secret',
    type: 'string',
    description:
      'Bearer token required to scrape /metrics and to see the checks of /health/ready. Required (at least 16 characters) in staging and production; empty in development: /metrics is open.',
  }),

  // secrets
  SECRET_KEY: spec({
    schema: z.string(),
    default: '',
    sensitivity: 'secret',
    type: 'string',
    description: 'Application secret. Required (at least 32 characters) in staging and production.',
  }),
} as const;

type VariableName = keyof typeof variables;

/** Parsed values, one per variable, before they are grouped into Settings. */
type ParsedVariables = {
  -readonly [K in VariableName]: z.output<(typeof variables)[K]['schema']>;
};

/** Public description of one variable, for docs and tooling. */
export interface VariableInfo {
  /** The environment variable, e.g. `DATABASE_URL`. */
  readonly name: string;
  /**
   * The accepted values in words, as ENVIRONMENT.md shows them (`port`, `postgres URL`);
   * alternatives are joined with a Markdown-escaped pipe (`json \| pretty`).
   */
  readonly type: string;
  /** The default as it would be written in a .env file; `undefined` when there is none. */
  readonly default: string | undefined;
  /** True when the value is secret or may carry credentials (never logged, never echoed). */
  readonly secret: boolean;
  /** What the variable is for, as written in ENVIRONMENT.md. */
  readonly description: string;
}

/** Every variable FlowForge reads, in table order. */
export function listVariables(): readonly VariableInfo[] {
  return Object.entries(variables).map(([name, entry]: [string, VariableSpec]) => ({
    name,
    type: entry.type,
    default: entry.default,
    secret: entry.sensitivity !== 'public',
    description: entry.description,
  }));
}

const flatSchema = z.object(
  Object.fromEntries(Object.entries(variables).map(([name, entry]) => [name, entry.schema])),
);

/**
 * Reads FlowForge settings from `env`. Pure: the same input gives an equal
 * result, nothing global is read or written.
 *
 * Unset and empty variables take their defaults. An unset or empty APP_ENV
 * means `production` (NODE_ENV does not choose it): only an explicit
 * APP_ENV=development turns on the dev bypass. For staging and production,
 * insecure settings are refused (see ENVIRONMENT.md); when APP_ENV was unset,
 * the error says so first.
 *
 * @throws {ConfigError} listing every invalid variable at once.
 * @example
 * const settings = loadSettings({ APP_ENV: 'test', DATABASE_URL: 'postgres://127.0.0.1/app' });
 * settings.database.url; // 'postgres://127.0.0.1/app'
 */
export function loadSettings(env: Environment): Settings {
  const raw = rawValues(env, Object.keys(variables) as VariableName[]);
  const parsed = parseOrThrow(flatSchema, raw, [...crossChecks(raw), ...harden(raw, env)], env);
  return freezeSettings(group(parsed as ParsedVariables));
}

/** Rules between variables that each parse on their own. */
function crossChecks(raw: Readonly<Record<string, string | undefined>>): ConfigIssue[] {
  const headers = variables.HTTP_HEADERS_TIMEOUT_MS.schema.safeParse(raw.HTTP_HEADERS_TIMEOUT_MS);
  const request = variables.HTTP_REQUEST_TIMEOUT_MS.schema.safeParse(raw.HTTP_REQUEST_TIMEOUT_MS);
  // Only between two valid values (an invalid one is reported once, by itself). Node refuses
  // a server whose headers timeout exceeds its request timeout.
  return headers.success &&
    request.success &&
    headers.data !== undefined &&
    headers.data > request.data
    ? [
        {
          variable: 'HTTP_HEADERS_TIMEOUT_MS',
          kind: 'invalid',
          message: `must not exceed HTTP_REQUEST_TIMEOUT_MS (${request.data})`,
        },
      ]
    : [];
}

function isUnset(value: string | undefined): boolean {
  return value === undefined || value.trim() === '';
}

/** The variables `names` of `env`, trimmed, the default where one is unset or empty. */
function rawValues(
  env: Environment,
  names: readonly VariableName[],
): Record<string, string | undefined> {
  const raw: Record<string, string | undefined> = {};
  for (const name of names) {
    const value = env[name];
    raw[name] = value === undefined || value.trim() === '' ? variables[name].default : value.trim();
  }
  return raw;
}

/**
 * `raw` parsed by `schema`, or a ConfigError listing every variable that does
 * not parse and every setting production hardening `refused`.
 */
function parseOrThrow<S extends z.ZodType>(
  schema: S,
  raw: Record<string, string | undefined>,
  refused: readonly ConfigIssue[],
  env: Environment,
): z.output<S> {
  const issues: ConfigIssue[] = [];
  const result = schema.safeParse(raw);
  if (!result.success) {
    for (const issue of result.error.issues) {
      issues.push({ variable: String(issue.path[0]), kind: 'invalid', message: issue.message });
    }
  }
  // An unset APP_ENV is production (fail closed). When that is what refuses the
  // environment, the first line says so: the likely fix is APP_ENV itself.
  if (refused.length > 0 && isUnset(env.APP_ENV)) issues.unshift(appEnvUnset(env));
  issues.push(...refused);
  if (issues.length > 0 || !result.success) throw new ConfigError(issues);
  return result.data;
}

function appEnvUnset(env: Environment): ConfigIssue {
  // NODE_ENV never chooses the environment; say so to whoever expected it to.
  const nodeEnv =
    env.NODE_ENV?.trim() === 'development' ? ' (NODE_ENV=development does not choose it)' : '';
  return {
    variable: 'APP_ENV',
    kind: 'invalid',
    message: `is not set, so production rules apply${nodeEnv}: set APP_ENV=development for local work, or APP_ENV=production with the settings below fixed`,
  };
}

/** The `database` section from the parsed DATABASE_* variables: both loaders build it here. */
function databaseSection(v: z.output<typeof databaseSchema>): DatabaseSettings {
  return {
    url: v.DATABASE_URL ?? null,
    migrationUrl: v.DATABASE_MIGRATION_URL ?? v.DATABASE_URL ?? null,
    poolSize: v.DATABASE_POOL_SIZE,
    statementTimeoutMs: v.DATABASE_STATEMENT_TIMEOUT_MS,
    connectTimeoutMs: v.DATABASE_CONNECT_TIMEOUT_MS,
    queryTimeoutMs: v.DATABASE_QUERY_TIMEOUT_MS,
    ssl: v.DATABASE_SSL,
    embeddedDir: v.DATABASE_EMBEDDED_DIR,
  };
}

function group(v: ParsedVariables): Settings {
  const keycloakUrl = v.KEYCLOAK_URL.replace(/\/+$/, '');
  const issuer = `${keycloakUrl}/realms/${v.KEYCLOAK_REALM}`;
  const parsedRedis = v.REDIS_URL;
  return {
    app: {
      env: v.APP_ENV,
      name: v.APP_NAME,
      host: v.HOST,
      port: v.PORT,
      logLevel: v.LOG_LEVEL,
      logFormat: v.LOG_FORMAT ?? (v.APP_ENV === 'development' ? 'pretty' : 'json'),
      shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_MS,
    },
    http: {
      requestTimeoutMs: v.HTTP_REQUEST_TIMEOUT_MS,
      headersTimeoutMs: v.HTTP_HEADERS_TIMEOUT_MS ?? Math.min(10_000, v.HTTP_REQUEST_TIMEOUT_MS),
      bodyLimitBytes: v.HTTP_BODY_LIMIT_BYTES,
      trustProxy: v.HTTP_TRUST_PROXY,
      corsOrigins: v.HTTP_CORS_ORIGINS,
      maxStreams: v.HTTP_MAX_STREAMS,
      streamsPerUser: v.HTTP_STREAMS_PER_USER,
      streamsPerTenant: v.HTTP_STREAMS_PER_TENANT,
    },
    database: databaseSection(v),
    auth: {
      keycloak: {
        url: keycloakUrl,
        realm: v.KEYCLOAK_REALM,
        clientId: v.KEYCLOAK_CLIENT_ID,
        issuer,
        jwksUrl: `${issuer}/protocol/openid-connect/certs`,
      },
      algorithms: v.AUTH_ALGORITHMS,
      clockToleranceSeconds: v.AUTH_CLOCK_TOLERANCE_SECONDS,
      maxTokenLifetimeSeconds: v.AUTH_MAX_TOKEN_LIFETIME_SECONDS,
      jwksCooldownMs: v.AUTH_JWKS_COOLDOWN_MS,
      jwksMaxAgeMs: v.AUTH_JWKS_MAX_AGE_MS,
      apiKeyHeader: v.AUTH_API_KEY_HEADER,
      apiKeyFailures: {
        max: v.AUTH_API_KEY_MAX_FAILURES,
        windowSeconds: v.AUTH_API_KEY_FAILURE_WINDOW_SECONDS,
      },
      devBypass:
        v.APP_ENV === 'development'
          ? { userId: v.AUTH_DEV_USER_ID, tenantId: v.AUTH_DEV_TENANT_ID }
          : null,
    },
    clickhouse: {
      url: v.CLICKHOUSE_URL ?? null,
      user: v.CLICKHOUSE_USER,
      password: v.CLICKHOUSE_PASSWORD,
      database: v.CLICKHOUSE_DATABASE,
      requestTimeoutMs: v.CLICKHOUSE_REQUEST_TIMEOUT_MS,
    },
    materialize: { url: v.MATERIALIZE_URL ?? null, poolSize: v.MATERIALIZE_POOL_SIZE },
    redis: {
      url: parsedRedis?.url ?? null,
      topology: parsedRedis?.topology ?? null,
      username: parsedRedis?.username ?? null,
      password: parsedRedis?.password ?? '',
      commandTimeoutMs: v.REDIS_COMMAND_TIMEOUT_MS,
    },
    observability: { metricsToken: v.METRICS_TOKEN },
    secretKey: v.SECRET_KEY,
  };
}

/** The variables {@link loadDatabaseSettings} reads: APP_ENV and every DATABASE_* one. */
const databaseSchema = z.object({
  APP_ENV: variables.APP_ENV.schema,
  DATABASE_URL: variables.DATABASE_URL.schema,
  DATABASE_MIGRATION_URL: variables.DATABASE_MIGRATION_URL.schema,
  DATABASE_POOL_SIZE: variables.DATABASE_POOL_SIZE.schema,
  DATABASE_STATEMENT_TIMEOUT_MS: variables.DATABASE_STATEMENT_TIMEOUT_MS.schema,
  DATABASE_CONNECT_TIMEOUT_MS: variables.DATABASE_CONNECT_TIMEOUT_MS.schema,
  DATABASE_QUERY_TIMEOUT_MS: variables.DATABASE_QUERY_TIMEOUT_MS.schema,
  DATABASE_SSL: variables.DATABASE_SSL.schema,
  DATABASE_EMBEDDED_DIR: variables.DATABASE_EMBEDDED_DIR.schema,
});

/**
 * Reads only APP_ENV and the DATABASE_* variables from `env`: what a tool that
 * touches nothing but PostgreSQL needs (the `flowforge-db` migration CLI).
 * Every other variable is ignored, so a migration job needs no SECRET_KEY,
 * Keycloak or store settings, and a bad one of those does not stop it. Pure,
 * like {@link loadSettings}, with the same defaults, parsing and redaction.
 *
 * Production hardening applies to the database only: `DATABASE_SSL=disable`
 * is refused for a non-loopback host of DATABASE_URL or DATABASE_MIGRATION_URL.
 * A missing DATABASE_URL is not an error here (`url` and `migrationUrl` are
 * `null`): the tool says which URL it needs.
 *
 * @throws {ConfigError} listing every invalid variable it reads.
 * @example
 * const { app, database } = loadDatabaseSettings({
 *   APP_ENV: 'production',
 *   DATABASE_MIGRATION_URL: 'postgres://owner@127.0.0.1/app',
 * });
 * database.migrationUrl; // 'postgres://owner@127.0.0.1/app'
 */
export function loadDatabaseSettings(env: Environment): DatabaseOnlySettings {
  const raw = rawValues(env, Object.keys(databaseSchema.shape) as VariableName[]);
  const v = parseOrThrow(databaseSchema, raw, hardenDatabase(raw), env);
  return freezeDatabaseSettings({ app: { env: v.APP_ENV }, database: databaseSection(v) });
}
