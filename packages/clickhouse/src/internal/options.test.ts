import { describe, expect, it } from 'vitest';
import { ClickHouseError } from '../errors.js';
import {
  checkSettings,
  querySettings,
  resolveConnection,
  safeUrl,
  type QuerySettings,
  type ServerProfile,
} from './options.js';

function codeOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ClickHouseError);
    return (error as ClickHouseError).code;
  }
  return 'none';
}

const profile = (readonly: 0 | 1 | 2, extra: Partial<ServerProfile> = {}): ServerProfile => ({
  readonly,
  binding: 'client',
  exactJson: {},
  cancelOnClose: false,
  version: '18.16.1',
  ...extra,
});

describe('resolveConnection', () => {
  it('applies the defaults', () => {
    const resolved = resolveConnection('http://127.0.0.1:8123', {});
    expect(resolved).toMatchObject({
      username: 'default',
      password: '',
      database: 'default',
      requestTimeoutMs: 10_000,
      idleSocketTtlMs: 2_000,
      maxOpenConnections: 10,
      compression: false,
    });
    expect(resolved.url.href).toBe('http://127.0.0.1:8123/');
  });

  it('takes credentials from the URL and removes them from it', () => {
    const resolved = resolveConnection('https://bob:p%40ss@ch.example:8443/path', {
      user: 'other',
      password: 'other',
    });
    expect(resolved).toMatchObject({ username: 'bob', password: 'p@ss' });
    expect(resolved.url.href).toBe('https://ch.example:8443/path');
    expect(safeUrl(resolved.url)).toBe('https://ch.example:8443/path');
  });

  it('refuses a malformed percent-escape in URL credentials (INVALID_OPTIONS), without echoing them', () => {
    for (const url of [
      'http://u:%E0%A4%A-LEAKCHECK@h:8123',
      'http://%E0%A4%A-LEAKCHECK:p@h:8123',
    ]) {
      let error: unknown;
      try {
        resolveConnection(url, {});
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ClickHouseError);
      expect((error as ClickHouseError).code).toBe('INVALID_OPTIONS');
      expect((error as Error).message).toMatch(/malformed percent-escape/);
      expect((error as Error).message).not.toContain('LEAKCHECK');
    }
  });

  it('takes user and password from the options otherwise', () => {
    expect(resolveConnection('http://h:8123', { user: 'u', password: 'p' })).toMatchObject({
      username: 'u',
      password: 'p',
    });
  });

  it('refuses what it cannot use, without echoing the URL', () => {
    const secret = 'http://u:s3cret-LEAKCHECK@h:8123 x';
    let message = '';
    try {
      resolveConnection(secret, {});
    } catch (error) {
      message = (error as Error).message;
      expect((error as ClickHouseError).code).toBe('INVALID_OPTIONS');
    }
    expect(message).not.toContain('LEAKCHECK');
    expect(codeOf(() => resolveConnection('ftp://h', {}))).toBe('INVALID_OPTIONS');
    expect(codeOf(() => resolveConnection('http://h', { user: '' }))).toBe('INVALID_OPTIONS');
    expect(codeOf(() => resolveConnection('http://h', { database: 'a-b' }))).toBe(
      'INVALID_OPTIONS',
    );
    expect(codeOf(() => resolveConnection('http://h', { requestTimeoutMs: 0 }))).toBe(
      'INVALID_OPTIONS',
    );
    expect(codeOf(() => resolveConnection('http://h', { requestTimeoutMs: 1.5 }))).toBe(
      'INVALID_OPTIONS',
    );
    expect(codeOf(() => resolveConnection('http://h', { idleSocketTtlMs: 0 }))).toBe(
      'INVALID_OPTIONS',
    );
    expect(codeOf(() => resolveConnection('http://h', { maxOpenConnections: 0 }))).toBe(
      'INVALID_OPTIONS',
    );
    expect(
      codeOf(() => resolveConnection('http://h', { compression: 'yes' as unknown as boolean })),
    ).toBe('INVALID_OPTIONS');
  });
});

describe('checkSettings', () => {
  it('accepts the limits and tuning settings of the allow-list', () => {
    expect(
      codeOf(() =>
        checkSettings({
          max_result_rows: 10,
          result_overflow_mode: 'break',
          max_threads: 2,
          max_execution_time: 60,
          join_use_nulls: true,
        }),
      ),
    ).toBe('none');
  });

  it.each([
    // 18.16 applies a server profile (readonly=0 included) past the readonly guard.
    'profile',
    // Query control: another query with the same id is killed, or waited for.
    'replace_running_query',
    'replace_running_query_max_wait_ms',
    'queue_max_wait_ms',
    // Not on the list, so refused, whatever the server would make of them.
    'allow_ddl',
    'max_concurrent_queries_for_user',
    'output_format_json_quote_64bit_integers',
    'readonly',
    'user',
    'password',
    'database',
    'query_id',
    'default_format',
    'session_id',
    'enable_http_compression',
    'param_tenant_id',
    'Readonly',
    'max rows',
    '',
  ])('refuses %j', (name) => {
    expect(codeOf(() => checkSettings({ [name]: 1 }))).toBe('INVALID_ARGUMENT');
  });

  it('refuses values that are not string, number or boolean', () => {
    expect(codeOf(() => checkSettings({ max_result_rows: null } as unknown as QuerySettings))).toBe(
      'INVALID_ARGUMENT',
    );
  });
});

describe('querySettings', () => {
  it('sends only readonly=1 to a readonly=1 user (the one setting it takes: unchanged)', () => {
    expect(
      querySettings(
        profile(1, { exactJson: { output_format_json_quote_decimals: 1 } }),
        undefined,
        500,
        false,
      ),
    ).toEqual({ readonly: 1 });
    expect(querySettings(profile(1), {}, 500, false)).toEqual({ readonly: 1 });
  });

  it('switches the driver’s compression setting off for a readonly=1 user', () => {
    const settings = querySettings(profile(1), undefined, 500, true) as Record<string, unknown>;
    expect(Object.keys(settings)).toEqual(['enable_http_compression', 'readonly']);
    expect(settings.enable_http_compression).toBeUndefined();
    expect(settings.readonly).toBe(1);
  });

  it('refuses caller settings for a readonly=1 user (READONLY, before sending)', () => {
    expect(codeOf(() => querySettings(profile(1), { max_result_rows: 1 }, 500, false))).toBe(
      'READONLY',
    );
  });

  it('puts readonly=2 last for a readonly=0 user, after the deadline and the caller’s settings', () => {
    const settings = querySettings(
      profile(0, {
        exactJson: { output_format_json_quote_64bit_integers: 1 },
        cancelOnClose: true,
      }),
      { max_result_rows: 5 },
      1_500,
      false,
    );
    expect(settings).toEqual({
      output_format_json_quote_64bit_integers: 1,
      cancel_http_readonly_queries_on_client_close: 1,
      max_execution_time: 2,
      max_result_rows: 5,
      readonly: 2,
    });
    expect(Object.keys(settings).at(-1)).toBe('readonly');
  });

  it('puts readonly=2 last for a readonly=2 user too, and lets the caller set max_execution_time', () => {
    const settings = querySettings(profile(2), { max_execution_time: 60 }, 500, false);
    expect(settings).toEqual({ max_execution_time: 60, readonly: 2 });
    expect(Object.keys(settings).at(-1)).toBe('readonly');
  });
});
