import { describe, expect, it } from 'vitest';
import { ConfigError, type ConfigIssue } from './errors.js';
import { listVariables, loadSettings } from './schema.js';
import type { Environment } from './types.js';

function issuesOf(env: Environment): readonly ConfigIssue[] {
  try {
    loadSettings(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('CONFIG_INVALID');
    return (error as ConfigError).issues;
  }
  throw new Error('expected loadSettings to throw');
}

/** True when `value` appears in `message` as a word of its own ("0" inside "1000" does not count). */
function mentions(message: string, value: string): boolean {
  const escaped = value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?<![\\w-])${escaped}(?![\\w])`).test(message);
}

/** Everything production hardening asks for, without APP_ENV. */
const PRODUCTION_READY: Environment = {
  SECRET_KEY: 's'.repeat(40),
  DATABASE_URL: 'postgres://app:pw@db.internal:5432/flowforge',
  DATABASE_SSL: 'verify-full',
  KEYCLOAK_URL: 'https://sso.example.com',
  METRICS_TOKEN: 'm'.repeat(24),
};
const PRODUCTION_OK: Environment = { APP_ENV: 'production', ...PRODUCTION_READY };
/** An environment without production hardening, for cases about one variable. */
const TEST: Environment = { APP_ENV: 'test' };

describe('loadSettings: defaults', () => {
  it('gives development-safe defaults with APP_ENV=development and nothing else', () => {
    const s = loadSettings({ APP_ENV: 'development' });
    expect(s.app).toEqual({
      env: 'development',
      name: 'flowforge',
      host: '127.0.0.1',
      port: 8000,
      logLevel: 'info',
      logFormat: 'pretty',
      shutdownTimeoutMs: 10_000,
    });
    expect(s.database.url).toBeNull();
    expect(s.database.ssl).toBe('disable');
    expect(s.auth.keycloak.issuer).toBe('http://localhost:8080/realms/flowforge');
    expect(s.auth.keycloak.jwksUrl).toBe(
      'http://localhost:8080/realms/flowforge/protocol/openid-connect/certs',
    );
    expect(s.auth.algorithms).toEqual(['RS256', 'ES256']);
    expect(s.auth.devBypass).not.toBeNull();
    expect(s.clickhouse.url).toBeNull();
    expect(s.materialize.url).toBeNull();
    expect(s.redis.url).toBeNull();
    expect(s.redis.topology).toBeNull();
  });

  it('has no secret in any default', () => {
    const s = loadSettings(TEST);
    expect(s.secretKey).toBe('');
    expect(s.clickhouse.password).toBe('');
    expect(s.observability.metricsToken).toBe('');
    for (const variable of listVariables().filter((v) => v.secret)) {
      expect(variable.default ?? '', variable.name).toBe('');
    }
  });

  it('treats empty and blank values as unset', () => {
    const s = loadSettings({ ...TEST, PORT: '', LOG_LEVEL: '  ', DATABASE_URL: '' });
    expect(s.app.port).toBe(8000);
    expect(s.app.logLevel).toBe('info');
    expect(s.database.url).toBeNull();
  });

  it('migrates with DATABASE_MIGRATION_URL, else with DATABASE_URL', () => {
    const app = 'postgres://app@127.0.0.1/flowforge';
    const owner = 'postgres://owner@127.0.0.1/flowforge';
    expect(loadSettings(TEST).database.migrationUrl).toBeNull();
    expect(loadSettings({ ...TEST, DATABASE_URL: app }).database.migrationUrl).toBe(app);
    expect(
      loadSettings({ ...TEST, DATABASE_URL: app, DATABASE_MIGRATION_URL: owner }).database
        .migrationUrl,
    ).toBe(owner);
  });

  it('is pure: equal inputs give equal outputs and the input is not touched', () => {
    const env = { APP_ENV: 'test', PORT: '9000' };
    expect(loadSettings(env)).toEqual(loadSettings(env));
    expect(env).toEqual({ APP_ENV: 'test', PORT: '9000' });
  });

  it('returns a deeply frozen object', () => {
    const s = loadSettings({ ...TEST, REDIS_URL: 'redis-cluster://a:7000,b:7001' });
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s.auth.keycloak)).toBe(true);
    expect(Object.isFrozen(s.auth.algorithms)).toBe(true);
    expect(Object.isFrozen(s.redis.topology)).toBe(true);
    expect(() => {
      (s.app as { port: number }).port = 1;
    }).toThrow(TypeError);
  });
});

describe('loadSettings: APP_ENV unset means production (fail closed)', () => {
  // [case, environment, the APP_ENV it becomes]: NODE_ENV never chooses it.
  it.each<[string, Environment, string]>([
    ['APP_ENV unset, NODE_ENV unset', PRODUCTION_READY, 'production'],
    [
      'APP_ENV unset, NODE_ENV=production',
      { ...PRODUCTION_READY, NODE_ENV: 'production' },
      'production',
    ],
    [
      'APP_ENV unset, NODE_ENV=development',
      { ...PRODUCTION_READY, NODE_ENV: 'development' },
      'production',
    ],
    ['APP_ENV empty', { ...PRODUCTION_READY, APP_ENV: ' ' }, 'production'],
    ['APP_ENV=production', { ...PRODUCTION_READY, APP_ENV: 'production' }, 'production'],
    ['APP_ENV=test', { ...PRODUCTION_READY, APP_ENV: 'test' }, 'test'],
    [
      'APP_ENV=test, NODE_ENV=development',
      { ...PRODUCTION_READY, APP_ENV: 'test', NODE_ENV: 'development' },
      'test',
    ],
  ])('%s: %s, hardened where production, and no dev bypass', (_case, env, appEnv) => {
    const s = loadSettings(env);
    expect(s.app.env).toBe(appEnv);
    expect(s.auth.devBypass).toBeNull();
    expect(s.app.logFormat).toBe('json');
  });

  it('APP_ENV=development set explicitly is the only way to the dev bypass', () => {
    const s = loadSettings({ APP_ENV: 'development', NODE_ENV: 'production' });
    expect(s.app.env).toBe('development');
    expect(s.auth.devBypass).not.toBeNull();
  });

  it('APP_ENV unset, NODE_ENV unset, nothing else: one error that says to set APP_ENV first', () => {
    let error: unknown;
    try {
      loadSettings({});
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { issues, message } = error as ConfigError;
    expect(issues.map((i) => [i.variable, i.kind])).toEqual([
      ['APP_ENV', 'invalid'],
      ['SECRET_KEY', 'insecure'],
      ['METRICS_TOKEN', 'insecure'],
      ['DATABASE_URL', 'insecure'],
      ['KEYCLOAK_URL', 'insecure'],
    ]);
    expect(issues[0]?.message).toContain('is not set');
    expect(message).toContain('APP_ENV: is not set');
    expect(message).toContain('set APP_ENV=development for local work');
    expect(message).toContain('production');
  });

  it('APP_ENV unset, NODE_ENV=production: the same error (NODE_ENV does not choose)', () => {
    const issues = issuesOf({ NODE_ENV: 'production' });
    expect(issues[0]?.variable).toBe('APP_ENV');
    expect(issues.map((i) => i.variable)).toContain('SECRET_KEY');
  });

  it('APP_ENV unset, NODE_ENV=development: production, and the error says NODE_ENV is not APP_ENV', () => {
    const issues = issuesOf({ NODE_ENV: 'development' });
    expect(issues[0]?.variable).toBe('APP_ENV');
    expect(issues[0]?.message).toContain('NODE_ENV=development does not choose');
    expect(issues[0]?.message).toContain('set APP_ENV=development for local work');
  });

  it('dev-bypass variables alone never turn the bypass on: refused when APP_ENV is unset', () => {
    const issues = issuesOf({
      ...PRODUCTION_READY,
      AUTH_DEV_USER_ID: '6f1c3a52-3c1e-4f7a-9a41-2b0c5d7e8f90',
    });
    expect(issues.map((i) => i.variable)).toEqual(['APP_ENV', 'AUTH_DEV_USER_ID']);
  });

  it('names APP_ENV only when it is unset: an explicit production lists just the settings', () => {
    expect(issuesOf({ APP_ENV: 'production' }).map((i) => i.variable)).not.toContain('APP_ENV');
    expect(issuesOf({ APP_ENV: 'test', PORT: 'x' }).map((i) => i.variable)).toEqual(['PORT']);
  });

  it('reports APP_ENV as its default in listVariables: production', () => {
    expect(listVariables().find((v) => v.name === 'APP_ENV')?.default).toBe('production');
  });
});

describe('loadSettings: whole-number variables say what they accept', () => {
  const positive = [
    'DATABASE_POOL_SIZE',
    'DATABASE_CONNECT_TIMEOUT_MS',
    'AUTH_JWKS_MAX_AGE_MS',
    'CLICKHOUSE_REQUEST_TIMEOUT_MS',
    'MATERIALIZE_POOL_SIZE',
    'REDIS_COMMAND_TIMEOUT_MS',
    'DATABASE_QUERY_TIMEOUT_MS',
    'HTTP_REQUEST_TIMEOUT_MS',
    'HTTP_HEADERS_TIMEOUT_MS',
    'HTTP_BODY_LIMIT_BYTES',
    'HTTP_MAX_STREAMS',
    'HTTP_STREAMS_PER_USER',
    'AUTH_MAX_TOKEN_LIFETIME_SECONDS',
    'AUTH_API_KEY_MAX_FAILURES',
    'AUTH_API_KEY_FAILURE_WINDOW_SECONDS',
  ];

  it.each(['-1', '0', '1.5', 'abc', ' -3 ', '1e3', '+5'])(
    'DATABASE_POOL_SIZE=%j is "a positive whole number" from 1 to 1000',
    (value) => {
      expect(issuesOf({ ...TEST, DATABASE_POOL_SIZE: value })).toEqual([
        {
          variable: 'DATABASE_POOL_SIZE',
          kind: 'invalid',
          message: 'expected a positive whole number from 1 to 1000',
        },
      ]);
    },
  );

  it.each(positive)(
    '%s: every way of being wrong gives the same "positive whole number" message',
    (name) => {
      const messages = new Set(
        ['-1', '0', '1.5', 'abc', '99999999999'].map(
          (value) => issuesOf({ ...TEST, [name]: value })[0]?.message,
        ),
      );
      expect(messages.size).toBe(1);
      expect([...messages][0]).toMatch(/^expected a positive whole number from \d+ to \d+$/);
    },
  );

  it('variables that accept 0 say "a whole number", with the range', () => {
    expect(issuesOf({ ...TEST, PORT: '-1' })[0]?.message).toBe(
      'expected a whole number from 0 to 65535',
    );
    expect(issuesOf({ ...TEST, DATABASE_STATEMENT_TIMEOUT_MS: '1.5' })[0]?.message).toBe(
      'expected a whole number from 0 to 3600000',
    );
  });

  it('the list above is every variable whose lower bound is 1 or more', () => {
    const kinds = listVariables().flatMap((v): [string, boolean][] => {
      try {
        loadSettings({ ...TEST, [v.name]: '-1' });
        return [];
      } catch (error) {
        const message = (error as ConfigError).issues[0]?.message ?? '';
        return message.includes('whole number') ? [[v.name, message.includes('positive')]] : [];
      }
    });
    expect(kinds.length).toBeGreaterThan(positive.length);
    expect(
      kinds
        .filter(([, isPositive]) => isPositive)
        .map(([name]) => name)
        .sort(),
    ).toEqual([...positive].sort());
  });
});

describe('loadSettings: each variable parses and rejects', () => {
  // [variable, a valid value, what it becomes, an invalid value]
  const cases: [
    string,
    string,
    (s: ReturnType<typeof loadSettings>) => unknown,
    unknown,
    string,
  ][] = [
    ['APP_ENV', 'test', (s) => s.app.env, 'test', 'live'],
    ['APP_NAME', 'canvas-api', (s) => s.app.name, 'canvas-api', 'Canvas API'],
    ['HOST', '0.0.0.0', (s) => s.app.host, '0.0.0.0', 'exa mple'],
    ['PORT', '3000', (s) => s.app.port, 3000, '70000'],
    ['LOG_LEVEL', 'debug', (s) => s.app.logLevel, 'debug', 'verbose'],
    ['LOG_FORMAT', 'json', (s) => s.app.logFormat, 'json', 'xml'],
    ['SHUTDOWN_TIMEOUT_MS', '2500', (s) => s.app.shutdownTimeoutMs, 2500, '-1'],
    [
      'DATABASE_URL',
      'postgresql://u:p@h/db',
      (s) => s.database.url,
      'postgresql://u:p@h/db',
      'mysql://h/db',
    ],
    [
      'DATABASE_MIGRATION_URL',
      'postgres://owner@h/db',
      (s) => s.database.migrationUrl,
      'postgres://owner@h/db',
      'http://h/db',
    ],
    ['DATABASE_POOL_SIZE', '25', (s) => s.database.poolSize, 25, '0'],
    ['DATABASE_STATEMENT_TIMEOUT_MS', '0', (s) => s.database.statementTimeoutMs, 0, '1.5'],
    ['DATABASE_CONNECT_TIMEOUT_MS', '100', (s) => s.database.connectTimeoutMs, 100, '0'],
    ['DATABASE_SSL', 'require', (s) => s.database.ssl, 'require', 'true'],
    [
      'DATABASE_EMBEDDED_DIR',
      '/tmp/pg',
      (s) => s.database.embeddedDir,
      '/tmp/pg',
      undefined as never,
    ],
    [
      'KEYCLOAK_URL',
      'https://sso.example.com/',
      (s) => s.auth.keycloak.url,
      'https://sso.example.com',
      'sso.example.com',
    ],
    ['KEYCLOAK_REALM', 'acme', (s) => s.auth.keycloak.realm, 'acme', 'a/b'],
    ['KEYCLOAK_CLIENT_ID', 'dash', (s) => s.auth.keycloak.clientId, 'dash', undefined as never],
    ['AUTH_ALGORITHMS', 'ES256, PS256', (s) => s.auth.algorithms, ['ES256', 'PS256'], 'HS256'],
    ['AUTH_CLOCK_TOLERANCE_SECONDS', '5', (s) => s.auth.clockToleranceSeconds, 5, '301'],
    ['AUTH_JWKS_COOLDOWN_MS', '1000', (s) => s.auth.jwksCooldownMs, 1000, 'soon'],
    ['AUTH_JWKS_MAX_AGE_MS', '60000', (s) => s.auth.jwksMaxAgeMs, 60_000, '999'],
    ['AUTH_API_KEY_HEADER', 'X-Embed-Key', (s) => s.auth.apiKeyHeader, 'x-embed-key', 'x key'],
    [
      'AUTH_DEV_USER_ID',
      '6f1c3a52-3c1e-4f7a-9a41-2b0c5d7e8f90',
      (s) => s.auth.devBypass?.userId,
      '6f1c3a52-3c1e-4f7a-9a41-2b0c5d7e8f90',
      'admin',
    ],
    [
      'AUTH_DEV_TENANT_ID',
      '6f1c3a52-3c1e-4f7a-9a41-2b0c5d7e8f91',
      (s) => s.auth.devBypass?.tenantId,
      '6f1c3a52-3c1e-4f7a-9a41-2b0c5d7e8f91',
      '42',
    ],
    [
      'CLICKHOUSE_URL',
      'http://127.0.0.1:8123',
      (s) => s.clickhouse.url,
      'http://127.0.0.1:8123',
      'tcp://h:9000',
    ],
    ['CLICKHOUSE_USER', 'reader', (s) => s.clickhouse.user, 'reader', undefined as never],
    ['CLICKHOUSE_PASSWORD', 'pw', (s) => s.clickhouse.password, 'pw', undefined as never],
    ['CLICKHOUSE_DATABASE', 'events', (s) => s.clickhouse.database, 'events', 'drop table'],
    ['CLICKHOUSE_REQUEST_TIMEOUT_MS', '500', (s) => s.clickhouse.requestTimeoutMs, 500, '0'],
    [
      'MATERIALIZE_URL',
      'postgres://mz@h:6875/materialize',
      (s) => s.materialize.url,
      'postgres://mz@h:6875/materialize',
      'http://h:6875',
    ],
    ['MATERIALIZE_POOL_SIZE', '3', (s) => s.materialize.poolSize, 3, 'many'],
    [
      'REDIS_URL',
      'rediss://h:6380/2',
      (s) => s.redis.topology,
      { mode: 'standalone', tls: true, node: { host: 'h', port: 6380 }, db: 2 },
      'http://h',
    ],
    ['REDIS_COMMAND_TIMEOUT_MS', '250', (s) => s.redis.commandTimeoutMs, 250, '0'],
    ['DATABASE_QUERY_TIMEOUT_MS', '2500', (s) => s.database.queryTimeoutMs, 2500, '0'],
    ['HTTP_REQUEST_TIMEOUT_MS', '20000', (s) => s.http.requestTimeoutMs, 20_000, '999'],
    ['HTTP_HEADERS_TIMEOUT_MS', '5000', (s) => s.http.headersTimeoutMs, 5000, '0'],
    ['HTTP_BODY_LIMIT_BYTES', '1024', (s) => s.http.bodyLimitBytes, 1024, '1e6'],
    ['HTTP_MAX_STREAMS', '20000', (s) => s.http.maxStreams, 20_000, '0'],
    ['HTTP_STREAMS_PER_USER', '2', (s) => s.http.streamsPerUser, 2, '0'],
    [
      'HTTP_TRUST_PROXY',
      '10.0.0.0/8, 127.0.0.1,fd00::/8',
      (s) => s.http.trustProxy,
      ['10.0.0.0/8', '127.0.0.1', 'fd00::/8'],
      '10.0.0.0/33',
    ],
    ['HTTP_STREAMS_PER_TENANT', '0', (s) => s.http.streamsPerTenant, 0, '-1'],
    [
      'HTTP_CORS_ORIGINS',
      'https://app.example.com, http://localhost:5173',
      (s) => s.http.corsOrigins,
      ['https://app.example.com', 'http://localhost:5173'],
      'https://app.example.com/path',
    ],
    ['AUTH_MAX_TOKEN_LIFETIME_SECONDS', '300', (s) => s.auth.maxTokenLifetimeSeconds, 300, '59'],
    ['AUTH_API_KEY_MAX_FAILURES', '5', (s) => s.auth.apiKeyFailures.max, 5, '0'],
    [
      'AUTH_API_KEY_FAILURE_WINDOW_SECONDS',
      '30',
      (s) => s.auth.apiKeyFailures.windowSeconds,
      30,
      '0',
    ],
    ['METRICS_TOKEN', 'scrape', (s) => s.observability.metricsToken, 'scrape', undefined as never],
    ['SECRET_KEY', 'k', (s) => s.secretKey, 'k', undefined as never],
  ];

  it('covers every variable in the table', () => {
    expect(cases.map(([name]) => name).sort()).toEqual(
      listVariables()
        .map((v) => v.name)
        .sort(),
    );
  });

  for (const [name, valid, read, expected, invalid] of cases) {
    it(`${name}: parses ${JSON.stringify(valid)}`, () => {
      // The dev principal exists only in development.
      const base = name.startsWith('AUTH_DEV_') ? { APP_ENV: 'development' } : TEST;
      expect(read(loadSettings({ ...base, [name]: valid }))).toEqual(expected);
    });
    if (invalid !== undefined) {
      it(`${name}: rejects ${JSON.stringify(invalid)}`, () => {
        const issues = issuesOf({ ...TEST, [name]: invalid });
        expect(issues).toHaveLength(1);
        expect(issues[0]).toMatchObject({ variable: name, kind: 'invalid' });
        expect(mentions(issues[0]?.message ?? '', invalid)).toBe(false);
      });
    }
  }

  it('HTTP_CORS_ORIGINS: empty by default; only exact origins, never a wildcard or a path', () => {
    expect(loadSettings(TEST).http.corsOrigins).toEqual([]);
    for (const invalid of [
      '*',
      'https://*.example.com',
      'app.example.com',
      'https://app.example.com/',
      'https://app.example.com:443',
      'HTTPS://App.example.com',
      'ftp://files.example.com',
      'null',
      'https://app.example.com,https://other.example.com/x',
    ]) {
      const issues = issuesOf({ ...TEST, HTTP_CORS_ORIGINS: invalid });
      expect(issues, invalid).toHaveLength(1);
      expect(issues[0]).toMatchObject({ variable: 'HTTP_CORS_ORIGINS', kind: 'invalid' });
    }
    expect(
      loadSettings({ ...TEST, HTTP_CORS_ORIGINS: 'http://[::1]:3000' }).http.corsOrigins,
    ).toEqual(['http://[::1]:3000']);
  });

  it('lists every invalid variable in one error', () => {
    const issues = issuesOf({
      ...TEST,
      PORT: 'x',
      LOG_LEVEL: 'loud',
      DATABASE_URL: 'nope',
      AUTH_ALGORITHMS: 'none',
    });
    expect(issues.map((issue) => issue.variable)).toEqual([
      'PORT',
      'LOG_LEVEL',
      'DATABASE_URL',
      'AUTH_ALGORITHMS',
    ]);
  });

  it('refuses alg none and every HS* algorithm', () => {
    for (const alg of ['none', 'HS256', 'HS384', 'HS512', 'RS256,HS256']) {
      expect(issuesOf({ ...TEST, AUTH_ALGORITHMS: alg })[0]?.variable).toBe('AUTH_ALGORITHMS');
    }
  });

  it('derives the log format from APP_ENV unless set', () => {
    expect(loadSettings({ APP_ENV: 'test' }).app.logFormat).toBe('json');
    expect(loadSettings({ APP_ENV: 'development', LOG_FORMAT: 'json' }).app.logFormat).toBe('json');
  });

  it('offers the dev bypass only in development', () => {
    expect(loadSettings({ APP_ENV: 'development' }).auth.devBypass).toEqual({
      userId: '00000000-0000-4000-8000-000000000001',
      tenantId: '00000000-0000-4000-8000-00000000000a',
    });
    expect(loadSettings({ APP_ENV: 'test' }).auth.devBypass).toBeNull();
    expect(loadSettings(PRODUCTION_OK).auth.devBypass).toBeNull();
  });
});

describe('loadSettings: production hardening', () => {
  it('accepts a hardened production environment', () => {
    const s = loadSettings(PRODUCTION_OK);
    expect(s.app.env).toBe('production');
    expect(s.app.logFormat).toBe('json');
  });

  it('refuses development defaults and lists every problem at once', () => {
    const issues = issuesOf({ APP_ENV: 'production' });
    expect(issues.map((i) => [i.variable, i.kind])).toEqual([
      ['SECRET_KEY', 'insecure'],
      ['METRICS_TOKEN', 'insecure'],
      ['DATABASE_URL', 'insecure'],
      ['KEYCLOAK_URL', 'insecure'],
    ]);
  });

  it('refuses an empty or short metrics token: /metrics and readiness details would be open', () => {
    for (const token of ['', 'short-token']) {
      const issues = issuesOf({ ...PRODUCTION_OK, METRICS_TOKEN: token });
      expect(issues).toEqual([
        {
          variable: 'METRICS_TOKEN',
          kind: 'insecure',
          message: expect.stringContaining('at least 16 characters') as string,
        },
      ]);
      expect(mentions(issues[0]?.message ?? '', 'short-token')).toBe(false);
    }
    expect(loadSettings({ APP_ENV: 'development' }).observability.metricsToken).toBe('');
  });

  it.each(['staging', 'production'])('hardens %s', (appEnv) => {
    expect(issuesOf({ ...PRODUCTION_OK, APP_ENV: appEnv, SECRET_KEY: '' })[0]?.variable).toBe(
      'SECRET_KEY',
    );
  });

  it('does not harden development or test', () => {
    expect(() => loadSettings({ APP_ENV: 'test' })).not.toThrow();
    expect(() =>
      loadSettings({ APP_ENV: 'development', AUTH_DEV_USER_ID: PRODUCTION_OK.SECRET_KEY }),
    ).toThrow(ConfigError);
  });

  it('refuses a short secret key', () => {
    expect(issuesOf({ ...PRODUCTION_OK, SECRET_KEY: 'x'.repeat(31) })).toEqual([
      {
        variable: 'SECRET_KEY',
        kind: 'insecure',
        message: 'must be set to at least 32 characters in production',
      },
    ]);
  });

  it('refuses dev-bypass variables', () => {
    const issues = issuesOf({
      ...PRODUCTION_OK,
      AUTH_DEV_USER_ID: '6f1c3a52-3c1e-4f7a-9a41-2b0c5d7e8f90',
      AUTH_DEV_TENANT_ID: '6f1c3a52-3c1e-4f7a-9a41-2b0c5d7e8f91',
    });
    expect(issues.map((i) => i.variable)).toEqual(['AUTH_DEV_USER_ID', 'AUTH_DEV_TENANT_ID']);
  });

  it('refuses database TLS off for a non-loopback host, and allows it on loopback', () => {
    expect(issuesOf({ ...PRODUCTION_OK, DATABASE_SSL: 'disable' })[0]?.variable).toBe(
      'DATABASE_SSL',
    );
    for (const url of [
      'postgres://u:p@127.0.0.1/db',
      'postgres://u:p@localhost/db',
      'postgres://u:p@[::1]/db',
      'postgres://u:p@db.internal/db?sslmode=require',
    ]) {
      expect(
        () => loadSettings({ ...PRODUCTION_OK, DATABASE_SSL: 'disable', DATABASE_URL: url }),
        url,
      ).not.toThrow();
    }
    // node-postgres takes a `host` query parameter over the URL's host.
    for (const url of [
      'postgres://u:p@localhost/db?host=db.prod',
      'postgres://u:p@127.0.0.1/db?host=10.0.0.5',
    ]) {
      expect(
        issuesOf({ ...PRODUCTION_OK, DATABASE_SSL: 'disable', DATABASE_URL: url })[0]?.variable,
        url,
      ).toBe('DATABASE_SSL');
    }
  });

  it('refuses plain http to a non-loopback Keycloak', () => {
    expect(issuesOf({ ...PRODUCTION_OK, KEYCLOAK_URL: 'http://sso.example.com' })[0]).toMatchObject(
      {
        variable: 'KEYCLOAK_URL',
        kind: 'insecure',
      },
    );
    expect(() =>
      loadSettings({ ...PRODUCTION_OK, KEYCLOAK_URL: 'http://127.0.0.1:8080' }),
    ).not.toThrow();
  });

  it('requires a ClickHouse password when ClickHouse is configured', () => {
    expect(issuesOf({ ...PRODUCTION_OK, CLICKHOUSE_URL: 'https://ch:8443' })[0]?.variable).toBe(
      'CLICKHOUSE_PASSWORD',
    );
    expect(() =>
      loadSettings({
        ...PRODUCTION_OK,
        CLICKHOUSE_URL: 'https://ch:8443',
        CLICKHOUSE_PASSWORD: 'pw',
      }),
    ).not.toThrow();
  });

  it('refuses a headers timeout longer than the request timeout (Node would throw at listen)', () => {
    expect(
      issuesOf({ ...TEST, HTTP_REQUEST_TIMEOUT_MS: '5000', HTTP_HEADERS_TIMEOUT_MS: '6000' }),
    ).toEqual([
      {
        variable: 'HTTP_HEADERS_TIMEOUT_MS',
        kind: 'invalid',
        message: 'must not exceed HTTP_REQUEST_TIMEOUT_MS (5000)',
      },
    ]);
    expect(
      loadSettings({ ...TEST, HTTP_REQUEST_TIMEOUT_MS: '5000', HTTP_HEADERS_TIMEOUT_MS: '5000' })
        .http.headersTimeoutMs,
    ).toBe(5000);
    // Unset, the headers timeout follows a request timeout below its 10 s default.
    expect(loadSettings({ ...TEST, HTTP_REQUEST_TIMEOUT_MS: '5000' }).http.headersTimeoutMs).toBe(
      5000,
    );
    expect(loadSettings(TEST).http.headersTimeoutMs).toBe(10_000);
  });

  it('reports parse errors and hardening problems together', () => {
    const issues = issuesOf({ ...PRODUCTION_OK, PORT: 'eighty', SECRET_KEY: '' });
    expect(issues.map((i) => [i.variable, i.kind])).toEqual([
      ['PORT', 'invalid'],
      ['SECRET_KEY', 'insecure'],
    ]);
  });
});

describe('listVariables', () => {
  it('describes every variable with a type and a description', () => {
    const all = listVariables();
    expect(all.length).toBeGreaterThan(30);
    for (const v of all) {
      expect(v.name).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(v.description.length).toBeGreaterThan(10);
      expect(v.type.length).toBeGreaterThan(0);
    }
    expect(all.filter((v) => v.secret).map((v) => v.name)).toEqual([
      'DATABASE_URL',
      'DATABASE_MIGRATION_URL',
      'CLICKHOUSE_URL',
      'CLICKHOUSE_PASSWORD',
      'MATERIALIZE_URL',
      'REDIS_URL',
      'METRICS_TOKEN',
      'SECRET_KEY',
    ]);
  });
});
