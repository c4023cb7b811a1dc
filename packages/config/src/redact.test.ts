import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { redactUrl, redactSettings, REDACTED } from './redact.js';
import { loadSettings } from './schema.js';

// Distinctive values, so that finding one anywhere in output is a real leak.
const SECRET_KEY = 'sk-0123456789abcdef0123456789abcdef-LEAKCHECK';
const DB_PASSWORD = 'db-pass-LEAKCHECK';
const DB_OWNER_PASSWORD = 'db-owner-pass-LEAKCHECK';
const CH_PASSWORD = 'ch-pass-LEAKCHECK';
const REDIS_PASSWORD = 'redis-pass-LEAKCHECK';
const MZ_PASSWORD = 'mz-pass-LEAKCHECK';
const METRICS_TOKEN = 'metrics-token-LEAKCHECK';
const SECRETS = [
  SECRET_KEY,
  DB_PASSWORD,
  DB_OWNER_PASSWORD,
  CH_PASSWORD,
  REDIS_PASSWORD,
  MZ_PASSWORD,
  METRICS_TOKEN,
];

const env = {
  APP_ENV: 'test',
  SECRET_KEY,
  DATABASE_URL: `postgres://app:${DB_PASSWORD}@127.0.0.1:5432/flowforge`,
  DATABASE_MIGRATION_URL: `postgres://owner:${DB_OWNER_PASSWORD}@127.0.0.1:5432/flowforge`,
  CLICKHOUSE_URL: 'http://127.0.0.1:8123',
  CLICKHOUSE_PASSWORD: CH_PASSWORD,
  REDIS_URL: `redis-sentinel://default:${REDIS_PASSWORD}@127.0.0.1:26379,127.0.0.1:26380/primary`,
  MATERIALIZE_URL: `postgres://mz:${MZ_PASSWORD}@127.0.0.1:6875/materialize`,
  METRICS_TOKEN,
};

function expectNoSecret(text: string): void {
  for (const secret of SECRETS) expect(text).not.toContain(secret);
}

describe('settings never leak secrets when shown', () => {
  const settings = loadSettings(env);
  const sections = Object.values(settings).filter((value) => typeof value === 'object');

  it('still gives the real values to code that reads them', () => {
    expect(settings.secretKey).toBe(SECRET_KEY);
    expect(settings.clickhouse.password).toBe(CH_PASSWORD);
    expect(settings.redis.password).toBe(REDIS_PASSWORD);
    expect(settings.database.url).toContain(DB_PASSWORD);
    expect(settings.database.migrationUrl).toContain(DB_OWNER_PASSWORD);
  });

  it('JSON.stringify of the whole object and of each section is redacted', () => {
    expectNoSecret(JSON.stringify(settings));
    for (const section of sections) expectNoSecret(JSON.stringify(section));
    expect(JSON.parse(JSON.stringify(settings))).toMatchObject({
      secretKey: REDACTED,
      database: { url: `postgres://app:${REDACTED}@127.0.0.1:5432/flowforge` },
      redis: { password: REDACTED },
    });
  });

  it('util.inspect (console.log) of the whole object and of each section is redacted', () => {
    expectNoSecret(inspect(settings, { depth: Infinity }));
    for (const section of sections) expectNoSecret(inspect(section, { depth: Infinity }));
    expect(inspect(settings)).toContain(REDACTED);
  });

  it('redactSettings gives a plain safe copy', () => {
    const view = redactSettings(settings);
    expectNoSecret(JSON.stringify(view));
    expect(view).toMatchObject({
      clickhouse: { password: REDACTED },
      observability: { metricsToken: REDACTED },
      materialize: { url: `postgres://mz:${REDACTED}@127.0.0.1:6875/materialize` },
    });
  });

  it('keeps empty secrets visibly empty', () => {
    expect(redactSettings(loadSettings({ APP_ENV: 'test' }))).toMatchObject({
      secretKey: '',
      clickhouse: { password: '' },
    });
  });
});

describe('errors never echo values', () => {
  const bad = {
    APP_ENV: 'production',
    SECRET_KEY: 'short-LEAKCHECK',
    DATABASE_URL: `not a url ${DB_PASSWORD}`,
    CLICKHOUSE_URL: `ftp://u:${CH_PASSWORD}@h`,
    REDIS_URL: `redis://u:${REDIS_PASSWORD}@a:1,b:2`,
    MATERIALIZE_URL: `${MZ_PASSWORD}`,
    METRICS_TOKEN,
    PORT: 'port-LEAKCHECK',
  };

  it('has none of the values in message, issues, inspect or JSON', () => {
    let caught: unknown;
    try {
      loadSettings(bad);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.issues.map((i) => i.variable)).toEqual(
      expect.arrayContaining([
        'SECRET_KEY',
        'DATABASE_URL',
        'CLICKHOUSE_URL',
        'REDIS_URL',
        'MATERIALIZE_URL',
        'PORT',
      ]),
    );
    for (const text of [
      error.message,
      error.stack ?? '',
      inspect(error, { depth: Infinity }),
      JSON.stringify(error),
    ]) {
      expectNoSecret(text);
      expect(text).not.toContain('LEAKCHECK');
    }
    expect(error.cause).toBeUndefined();
  });
});

describe('redactUrl', () => {
  it.each([
    ['postgres://u:p@h/db', `postgres://u:${REDACTED}@h/db`],
    ['postgres://u@h/db', 'postgres://u@h/db'],
    ['postgres://h/db?user=u&password=p&x=1', `postgres://h/db?user=u&password=${REDACTED}&x=1`],
    ['rediss://:p@h:6380', `rediss://:${REDACTED}@h:6380`],
    ['redis-cluster://u:p@a:1,b:2', `redis-cluster://u:${REDACTED}@a:1,b:2`],
    ['http://h:8123', 'http://h:8123'],
  ])('%s → %s', (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });

  it('keeps null', () => {
    expect(redactUrl(null)).toBeNull();
  });
});

describe('loggableSettings', () => {
  it('gives the redacted view of settings and of each section, and passes anything else through', async () => {
    const { loggableSettings } = await import('./views.js');
    const settings = loadSettings(env);
    expectNoSecret(JSON.stringify(loggableSettings(settings)));
    expectNoSecret(JSON.stringify({ ...(loggableSettings(settings.redis) as object) }));
    expect(loggableSettings(settings.redis)).toMatchObject({ password: REDACTED });
    const other = { password: 'x' };
    expect(loggableSettings(other)).toBe(other);
    expect(loggableSettings('text')).toBe('text');
    expect(loggableSettings(null)).toBeNull();
  });
});
