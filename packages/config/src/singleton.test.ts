import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

// Whatever the shell running the tests has set, each test starts from APP_ENV=test
// (an unset APP_ENV means production, whose hardening these cases are not about).
beforeEach(() => {
  vi.stubEnv('APP_ENV', 'test');
});

// Each test imports a fresh copy of the module, so the singleton starts unparsed.
afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
});

describe('settings singleton', () => {
  it('reads nothing until a field is accessed, then parses process.env once', async () => {
    vi.stubEnv('PORT', 'not-a-port');
    const { settings } = await import('./singleton.js');
    // Importing did not parse: the invalid PORT has not thrown yet.
    vi.stubEnv('PORT', '4321');
    expect(settings.app.port).toBe(4321);
    const first = settings.app;
    vi.stubEnv('PORT', '9999');
    expect(settings.app.port).toBe(4321);
    // The same frozen section every time: parsed once, never again.
    expect(settings.app).toBe(first);
    expect(Object.isFrozen(settings.app)).toBe(true);
  });

  it('parses again on the next access after a failure, once the environment is fixed', async () => {
    vi.stubEnv('PORT', 'not-a-port');
    const { settings } = await import('./singleton.js');
    expect(() => settings.app).toThrow(/PORT: expected a whole number from 0 to 65535/);
    vi.stubEnv('PORT', '4321');
    expect(settings.app.port).toBe(4321);
  });

  it('throws ConfigError on access when process.env is invalid', async () => {
    vi.stubEnv('LOG_LEVEL', 'chatty');
    const { settings } = await import('./singleton.js');
    expect(() => settings.app).toThrow(/LOG_LEVEL: expected one of/);
  });

  it('behaves like the settings object for keys, spread and JSON, and refuses writes', async () => {
    vi.stubEnv('SECRET_KEY', 'singleton-secret-LEAKCHECK');
    const { settings } = await import('./singleton.js');
    expect(Object.keys(settings)).toEqual([
      'app',
      'http',
      'database',
      'auth',
      'clickhouse',
      'materialize',
      'redis',
      'observability',
      'secretKey',
    ]);
    expect('database' in settings).toBe(true);
    expect(JSON.stringify(settings)).not.toContain('LEAKCHECK');
    // console.log reads a proxy's target, not its traps: it still shows the redacted view.
    const shown = inspect(settings, { depth: Infinity });
    expect(shown).not.toContain('LEAKCHECK');
    expect(shown).toContain("secretKey: '[redacted]'");
    expect(shown).toContain('logLevel:');
    expect(() => {
      (settings as { secretKey: string }).secretKey = 'x';
    }).toThrow(TypeError);
  });

  it('with APP_ENV unset and NODE_ENV=production, process.env is production: no dev bypass', async () => {
    vi.stubEnv('APP_ENV', undefined);
    vi.stubEnv('NODE_ENV', 'production');
    vi.stubEnv('SECRET_KEY', 'k'.repeat(32));
    vi.stubEnv('DATABASE_URL', 'postgres://app@127.0.0.1/flowforge');
    vi.stubEnv('KEYCLOAK_URL', 'https://sso.example.com');
    vi.stubEnv('METRICS_TOKEN', 'm'.repeat(16));
    const { settings } = await import('./singleton.js');
    expect(settings.app.env).toBe('production');
    expect(settings.auth.devBypass).toBeNull();
  });

  it('with APP_ENV unset and nothing else, access fails naming APP_ENV first', async () => {
    vi.stubEnv('APP_ENV', undefined);
    vi.stubEnv('NODE_ENV', 'development');
    for (const name of ['SECRET_KEY', 'DATABASE_URL', 'KEYCLOAK_URL']) vi.stubEnv(name, undefined);
    const { settings } = await import('./singleton.js');
    expect(() => settings.app).toThrow(
      /APP_ENV: is not set.*set APP_ENV=development for local work/,
    );
  });
});
