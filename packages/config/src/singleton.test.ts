import { afterEach, describe, expect, it, vi } from 'vitest';

// Each test imports a fresh copy of the module, so the singleton starts unparsed.
afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
});

describe('settings singleton', () => {
  it('reads nothing until a field is accessed, then parses process.env once', async () => {
    vi.stubEnv('PORT', 'not-a-port');
    const { settings, getSettings } = await import('./singleton.js');
    // Importing did not parse: the invalid PORT has not thrown yet.
    vi.stubEnv('PORT', '4321');
    expect(settings.app.port).toBe(4321);
    const first = getSettings();
    vi.stubEnv('PORT', '9999');
    expect(settings.app.port).toBe(4321);
    expect(getSettings()).toBe(first);
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
    expect(() => {
      (settings as { secretKey: string }).secretKey = 'x';
    }).toThrow(TypeError);
  });
});
