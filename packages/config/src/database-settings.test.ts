import { inspect } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, type ConfigIssue } from './errors.js';
import { loadDatabaseSettings, loadSettings } from './schema.js';
import { getDatabaseSettings } from './singleton.js';
import type { Environment } from './types.js';
import { loggableSettings } from './views.js';

function issuesOf(env: Environment): readonly ConfigIssue[] {
  try {
    loadDatabaseSettings(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('CONFIG_INVALID');
    return (error as ConfigError).issues;
  }
  throw new Error('expected loadDatabaseSettings to throw');
}

const OWNER_URL = 'postgres://owner:0wner-PASSWORD@db.internal:5432/flowforge';

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('loadDatabaseSettings', () => {
  it('gives the same database section as loadSettings, and APP_ENV', () => {
    const env: Environment = {
      APP_ENV: 'test',
      DATABASE_URL: 'postgres://app@127.0.0.1/flowforge',
      DATABASE_MIGRATION_URL: 'postgres://owner@127.0.0.1/flowforge',
      DATABASE_POOL_SIZE: '3',
      DATABASE_SSL: 'require',
    };
    const only = loadDatabaseSettings(env);
    expect(only.database).toEqual(loadSettings(env).database);
    expect(only.app).toEqual({ env: 'test' });
    expect(Object.keys(only)).toEqual(['app', 'database']);
  });

  it('ignores every other variable: a production migration job needs no SECRET_KEY or Keycloak', () => {
    const env: Environment = {
      APP_ENV: 'production',
      DATABASE_MIGRATION_URL: OWNER_URL,
      DATABASE_SSL: 'verify-full',
      // Each of these makes loadSettings throw; none is read here.
      SECRET_KEY: 'short',
      PORT: 'eighty',
      REDIS_URL: 'not a url',
    };
    expect(() => loadSettings(env)).toThrow(ConfigError);
    const only = loadDatabaseSettings(env);
    expect(only.app.env).toBe('production');
    expect(only.database.url).toBeNull();
    expect(only.database.migrationUrl).toBe(OWNER_URL);
  });

  it('does not require DATABASE_URL, even in production: both URLs are then null', () => {
    const only = loadDatabaseSettings({ APP_ENV: 'production' });
    expect(only.database.url).toBeNull();
    expect(only.database.migrationUrl).toBeNull();
  });

  it('reports every invalid database variable at once, and only those', () => {
    const issues = issuesOf({
      APP_ENV: 'test',
      DATABASE_URL: 'mysql://x@127.0.0.1/db',
      DATABASE_POOL_SIZE: '0',
      DATABASE_SSL: 'maybe',
      PORT: 'eighty',
    });
    expect(issues.map((issue) => [issue.variable, issue.kind])).toEqual([
      ['DATABASE_URL', 'invalid'],
      ['DATABASE_POOL_SIZE', 'invalid'],
      ['DATABASE_SSL', 'invalid'],
    ]);
  });

  it('refuses DATABASE_SSL=disable in production for a non-loopback host of either URL', () => {
    for (const env of [
      { DATABASE_MIGRATION_URL: OWNER_URL },
      { DATABASE_URL: 'postgres://app@db.internal/flowforge' },
      {
        DATABASE_URL: 'postgres://app@127.0.0.1/flowforge',
        DATABASE_MIGRATION_URL: OWNER_URL,
      },
    ]) {
      const issues = issuesOf({ APP_ENV: 'production', DATABASE_SSL: 'disable', ...env });
      expect(issues).toEqual([
        {
          variable: 'DATABASE_SSL',
          kind: 'insecure',
          message: 'must be require or verify-full for a non-loopback database host',
        },
      ]);
      // Outside staging and production it is allowed.
      expect(() =>
        loadDatabaseSettings({ APP_ENV: 'test', DATABASE_SSL: 'disable', ...env }),
      ).not.toThrow();
    }
    for (const url of [
      'postgres://owner@127.0.0.1/flowforge',
      'postgres://owner@[::1]/flowforge',
      `${OWNER_URL}?sslmode=verify-full`,
    ]) {
      expect(
        () =>
          loadDatabaseSettings({
            APP_ENV: 'production',
            DATABASE_SSL: 'disable',
            DATABASE_MIGRATION_URL: url,
          }),
        url,
      ).not.toThrow();
    }
  });

  it('with APP_ENV unset (production) and a refusal, says first that APP_ENV is not set', () => {
    const issues = issuesOf({ DATABASE_SSL: 'disable', DATABASE_MIGRATION_URL: OWNER_URL });
    expect(issues.map((issue) => issue.variable)).toEqual(['APP_ENV', 'DATABASE_SSL']);
  });

  it('is frozen, and logs and serialises without passwords', () => {
    const only = loadDatabaseSettings({ APP_ENV: 'test', DATABASE_MIGRATION_URL: OWNER_URL });
    expect(Object.isFrozen(only)).toBe(true);
    expect(Object.isFrozen(only.database)).toBe(true);
    expect(only.database.migrationUrl).toBe(OWNER_URL);
    for (const shown of [
      JSON.stringify(only),
      JSON.stringify(only.database),
      inspect(only, { depth: 5 }),
      JSON.stringify(loggableSettings(only.database)),
    ]) {
      expect(shown).not.toContain('0wner-PASSWORD');
      expect(shown).toContain('owner:[redacted]@db.internal');
    }
  });
});

describe('getDatabaseSettings', () => {
  it('reads process.env on every call, ignoring variables outside the database section', () => {
    vi.stubEnv('APP_ENV', 'production');
    vi.stubEnv('DATABASE_MIGRATION_URL', 'postgres://owner@127.0.0.1/one');
    vi.stubEnv('SECRET_KEY', '');
    vi.stubEnv('KEYCLOAK_URL', '');
    expect(getDatabaseSettings().database.migrationUrl).toBe('postgres://owner@127.0.0.1/one');
    vi.stubEnv('DATABASE_MIGRATION_URL', 'postgres://owner@127.0.0.1/two');
    expect(getDatabaseSettings().database.migrationUrl).toBe('postgres://owner@127.0.0.1/two');
  });
});
