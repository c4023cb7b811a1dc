import { describe, expect, it } from 'vitest';
import { loadSettings, type Environment } from '@flowforge/config';
import { createMetrics } from '@flowforge/observability';
import { createAuth, type AuthOptions } from './auth.js';
import { isAuthError } from './errors.js';

const DEV = {
  userId: '00000000-0000-4000-8000-000000000001',
  tenantId: '00000000-0000-4000-8000-00000000000a',
};

// The JWKS endpoint is never reached in these tests: every token here fails
// before key resolution (bad header, bad format, size), and a fetch would throw.
const neverFetch: typeof fetch = () => Promise.reject(new Error('no network in unit tests'));

function auth(appEnv: string, extra: Partial<AuthOptions> = {}) {
  const metrics = createMetrics({ defaultMetrics: false });
  const options: AuthOptions = {
    appEnv,
    keycloak: {
      issuer: 'http://127.0.0.1:1/realms/flowforge',
      jwksUrl: 'http://127.0.0.1:1/realms/flowforge/protocol/openid-connect/certs',
      clientId: 'flowforge-api',
    },
    devBypass: DEV,
    fetch: neverFetch,
    ...extra,
  };
  return { auth: createAuth(options, { metrics }), metrics };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isAuthError(error)) return error.code;
    throw error;
  }
  return 'RESOLVED';
}

describe('the development bypass', () => {
  it('in development, no token or the literal dev-token is the dev principal, counted', async () => {
    const { auth: dev, metrics } = auth('development');
    expect(dev.devBypassEnabled).toBe(true);
    for (const header of [undefined, 'Bearer dev-token']) {
      const principal = await dev.authenticateBearer(header);
      expect(principal).toMatchObject({
        ...DEV,
        method: 'dev',
        roles: ['viewer', 'editor', 'admin'],
      });
    }
    expect(await metrics.render()).toContain('flowforge_auth_dev_bypass_total 2');
  });

  it.each(['production', 'staging', 'test'])(
    'does not exist in %s, even with dev settings: no token is 401, dev-token is an invalid token',
    async (appEnv) => {
      const { auth: strict, metrics } = auth(appEnv);
      expect(strict.devBypassEnabled).toBe(false);
      expect(await codeOf(strict.authenticateBearer(undefined))).toBe('CREDENTIALS_MISSING');
      expect(await codeOf(strict.authenticateBearer('Bearer dev-token'))).toBe('TOKEN_INVALID');
      expect(await metrics.render()).not.toMatch(/flowforge_auth_dev_bypass_total [1-9]/);
    },
  );

  it('in development, any other token is verified like in production', async () => {
    const { auth: dev } = auth('development');
    expect(await codeOf(dev.authenticateBearer('Bearer not-a-jwt'))).toBe('TOKEN_INVALID');
  });
});

describe('the development bypass, from the environment through @flowforge/config', () => {
  /** What production hardening asks for; no APP_ENV, no NODE_ENV. */
  const READY: Environment = {
    SECRET_KEY: 's'.repeat(40),
    DATABASE_URL: 'postgres://app@127.0.0.1/flowforge',
    KEYCLOAK_URL: 'http://127.0.0.1:1',
    METRICS_TOKEN: 'm'.repeat(16),
  };
  /** The auth an app builds: `createAuth({ ...settings.auth, appEnv: settings.app.env })`. */
  function authFrom(env: Environment) {
    const settings = loadSettings(env);
    const metrics = createMetrics({ defaultMetrics: false });
    const built = createAuth(
      { ...settings.auth, appEnv: settings.app.env, fetch: neverFetch },
      { metrics },
    );
    return { auth: built, metrics };
  }

  it.each<[string, Environment]>([
    ['APP_ENV unset, NODE_ENV unset', READY],
    ['APP_ENV unset, NODE_ENV=production', { ...READY, NODE_ENV: 'production' }],
    ['APP_ENV unset, NODE_ENV=development', { ...READY, NODE_ENV: 'development' }],
    ['APP_ENV empty', { ...READY, APP_ENV: '' }],
    ['APP_ENV=production', { ...READY, APP_ENV: 'production' }],
    ['APP_ENV=test', { ...READY, APP_ENV: 'test' }],
    ['APP_ENV=test, NODE_ENV=development', { ...READY, APP_ENV: 'test', NODE_ENV: 'development' }],
  ])(
    '%s: off; no token is 401 (CREDENTIALS_MISSING), never the dev principal',
    async (_case, env) => {
      const { auth: built, metrics } = authFrom(env);
      expect(built.devBypassEnabled).toBe(false);
      expect(await codeOf(built.authenticateBearer(undefined))).toBe('CREDENTIALS_MISSING');
      expect(await codeOf(built.authenticateBearer('Bearer dev-token'))).toBe('TOKEN_INVALID');
      expect(await metrics.render()).not.toMatch(/flowforge_auth_dev_bypass_total [1-9]/);
    },
  );

  it('APP_ENV=development set explicitly: on (also with NODE_ENV=production)', async () => {
    for (const env of [
      { APP_ENV: 'development' },
      { APP_ENV: 'development', NODE_ENV: 'production' },
    ]) {
      const { auth: built } = authFrom(env);
      expect(built.devBypassEnabled).toBe(true);
      expect(await built.authenticateBearer(undefined)).toMatchObject({ method: 'dev' });
    }
  });

  it('an appEnv that is not exactly "development" never turns it on, whatever devBypass says', async () => {
    for (const appEnv of [undefined, '', ' development', 'Development', 'dev', 'production']) {
      const { auth: strict } = auth(appEnv as string);
      expect(strict.devBypassEnabled, String(appEnv)).toBe(false);
      expect(await codeOf(strict.authenticateBearer(undefined))).toBe('CREDENTIALS_MISSING');
    }
  });
});

describe('the Authorization header', () => {
  const { auth: strict, metrics } = auth('production');

  it.each([
    [['Bearer a.b.c', 'Bearer d.e.f'], 'REQUEST_INVALID'],
    ['Bearer', 'REQUEST_INVALID'],
    ['Bearer ', 'REQUEST_INVALID'],
    ['Bearer a b', 'REQUEST_INVALID'],
    ['Bearer a"b', 'REQUEST_INVALID'],
    ['Basic dXNlcjpwYXNz', 'CREDENTIALS_MISSING'],
    ['', 'CREDENTIALS_MISSING'],
    ['Bearer !!!.???.***', 'REQUEST_INVALID'],
    ['Bearer bm90.YS5qd3Q', 'TOKEN_INVALID'],
    [`Bearer ${'a'.repeat(9000)}`, 'TOKEN_INVALID'],
  ] as const)('%j → %s', async (header, code) => {
    expect(await codeOf(strict.authenticateBearer(header))).toBe(code);
  });

  it('counts every refusal by reason, never with the token in a label', async () => {
    const text = await metrics.render();
    expect(text).toMatch(/flowforge_auth_failures_total\{reason="malformed_header"\} [1-9]/);
    expect(text).toMatch(/flowforge_auth_failures_total\{reason="missing"\} [1-9]/);
    expect(text).toMatch(/flowforge_auth_failures_total\{reason="oversized"\} 1/);
    expect(text).not.toContain('dXNlcjpwYXNz');
  });

  it('is case-insensitive in the scheme, as RFC 7235 says', async () => {
    expect(await codeOf(strict.authenticateBearer('bearer bm90.YS5qd3Q'))).toBe('TOKEN_INVALID');
  });
});
