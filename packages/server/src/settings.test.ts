import { describe, expect, it } from 'vitest';
import { ConfigError, loadSettings, type Settings } from '@flowforge/config';
import { EXIT_CONFIG, createServiceContext, settingsOrExit } from './settings.js';

/** Settings whose first read throws what `loadSettings` throws for `env`, as the lazy singleton does. */
function invalid(env: Record<string, string>): Settings {
  let error: unknown;
  try {
    loadSettings(env);
  } catch (thrown) {
    error = thrown;
  }
  expect(error).toBeInstanceOf(ConfigError);
  return new Proxy({} as Settings, {
    get() {
      throw error;
    },
  });
}

describe('settingsOrExit', () => {
  it('returns valid settings as they are, writing nothing', () => {
    const settings = loadSettings({ APP_ENV: 'test' });
    const written: string[] = [];
    const exit = (): never => {
      throw new Error('no exit expected');
    };
    expect(settingsOrExit({ settings, stderr: { write: (t) => written.push(t) }, exit })).toBe(
      settings,
    );
    expect(written).toEqual([]);
  });

  it('writes every invalid variable (never a secret) to stderr and exits 78 (EX_CONFIG)', () => {
    const written: string[] = [];
    const codes: number[] = [];
    const exit = (code: number): never => {
      codes.push(code);
      throw new Error('exited');
    };
    const settings = invalid({ APP_ENV: 'production', PORT: 'eighty', SECRET_KEY: 'hunter2' });
    expect(() =>
      settingsOrExit({ settings, stderr: { write: (t) => written.push(t) }, exit }),
    ).toThrow('exited');
    expect(codes).toEqual([EXIT_CONFIG]);
    expect(EXIT_CONFIG).toBe(78);
    expect(written.join('')).toContain('PORT');
    expect(written.join('')).not.toContain('hunter2');
  });

  it('rethrows what is not a configuration error', () => {
    const bug = new TypeError('bug');
    const settings = new Proxy({} as Settings, {
      get() {
        throw bug;
      },
    });
    expect(() => settingsOrExit({ settings })).toThrow(bug);
  });
});

describe('createServiceContext', () => {
  it('builds the logger the settings describe and a fresh metrics registry', async () => {
    const settings = loadSettings({ APP_ENV: 'test', LOG_LEVEL: 'warn', APP_NAME: 'embed' });
    const context = createServiceContext({ settings });
    expect(context.settings).toBe(settings);
    expect(context.logger.level).toBe('warn');
    expect(context.logger.bindings()).toMatchObject({ service: 'embed' });
    expect(await context.metrics.render()).not.toContain('flowforge_http_requests_total');
    expect(createServiceContext({ settings }).metrics).not.toBe(context.metrics);
  });
});
