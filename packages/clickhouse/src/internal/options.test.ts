import { describe, expect, it } from 'vitest';
import { expectThrownCode } from '../../test/support/assert.js';
import { ClickHouseError } from '../errors.js';
import {
  checkSettings,
  querySettings,
  resolveOptions,
  safeUrl,
  type HandleOptionsInput,
  type HandleSettings,
  type QuerySettings,
  type ResolvedOptions,
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

function connectionOf(settings: HandleSettings): ResolvedOptions {
  if (settings.server.kind !== 'url') throw new Error('expected a connection');
  return settings.server.connection;
}

const profile = (readonly: 0 | 1 | 2, extra: Partial<ServerProfile> = {}): ServerProfile => ({
  readonly,
  binding: 'client',
  exactJson: {},
  cancelOnClose: false,
  version: '18.16.1',
  ...extra,
});

function invalidOptions(input: HandleOptionsInput): string {
  return expectThrownCode(() => resolveOptions(input), 'INVALID_OPTIONS').reason;
}

describe('resolveOptions', () => {
  it('applies the defaults', () => {
    const resolved = resolveOptions({ url: 'http://127.0.0.1:8123' });
    expect(resolved).toMatchObject({
      name: 'flowforge',
      binding: 'auto',
      allowIdentifiers: false,
      detectionTtlMs: 300_000,
      requestTimeoutMs: 10_000,
      server: {
        kind: 'url',
        connection: {
          username: 'default',
          password: '',
          database: 'default',
          idleSocketTtlMs: 2_000,
          maxOpenConnections: 10,
          compression: false,
        },
      },
    });
    expect(connectionOf(resolved).url.href).toBe('http://127.0.0.1:8123/');
  });

  it('takes credentials from the URL and removes them from it', () => {
    const resolved = connectionOf(
      resolveOptions({
        url: 'https://bob:p%40ss@ch.example:8443/path',
        user: 'other',
        password: 'other',
      }),
    );
    expect(resolved).toMatchObject({ username: 'bob', password: 'p@ss' });
    expect(resolved.url.href).toBe('https://ch.example:8443/path');
    expect(safeUrl(resolved.url)).toBe('https://ch.example:8443/path');
  });

  it('takes user and password from the options otherwise', () => {
    expect(
      connectionOf(resolveOptions({ url: 'http://h:8123', user: 'u', password: 'p' })),
    ).toMatchObject({ username: 'u', password: 'p' });
  });

  it('takes a given client instead of a URL, leaving the connection options unchecked', () => {
    const client = { exec: () => Promise.resolve(), close: () => Promise.resolve() };
    const resolved = resolveOptions({ client, url: 'ftp://unused', database: 'a-b' });
    expect(resolved.server).toEqual({ kind: 'given', client });
  });

  it('throws NOT_CONFIGURED without url and client, once the options are valid', () => {
    for (const url of [undefined, null, '']) {
      expect(() => resolveOptions({ url })).toThrow(
        expect.objectContaining({ code: 'NOT_CONFIGURED' }),
      );
    }
    expect(invalidOptions({ name: 'a b' })).toBe(
      'name: expected 1 to 64 letters, digits, _ . : or - (got "a b")',
    );
  });

  it('names every problem in one error, in the kernel’s words', () => {
    expect(
      invalidOptions({
        url: 'http://h:8123',
        name: 'a b',
        parameterBinding: 'maybe' as 'auto',
        allowIdentifierParams: 'yes' as unknown as boolean,
        detectionTtlMs: -1,
        requestTimeoutMs: 0,
        user: '',
        database: 'x;y',
        compression: 'yes' as unknown as boolean,
        idleSocketTtlMs: 1.5,
        maxOpenConnections: 10_001,
      }),
    ).toBe(
      [
        'name: expected 1 to 64 letters, digits, _ . : or - (got "a b")',
        'parameterBinding: expected one of auto, server, client (got "maybe")',
        'allowIdentifierParams: expected true or false (got "yes")',
        'detectionTtlMs: expected a whole number from 0 to 2147483647 (got -1)',
        'requestTimeoutMs: expected a positive whole number from 1 to 2147483647 (got 0)',
        'user: expected a user name (got "")',
        'database: expected an identifier: letters, digits and _, not starting with a digit (got "x;y")',
        'compression: expected true or false (got "yes")',
        'idleSocketTtlMs: expected a positive whole number from 1 to 3600000 (got 1.5)',
        'maxOpenConnections: expected a positive whole number from 1 to 10000 (got 10001)',
      ].join('; '),
    );
  });

  it('accepts a name with `:` (the kernel’s handle-name rule)', () => {
    expect(resolveOptions({ url: 'http://h', name: 'reports:eu-1' }).name).toBe('reports:eu-1');
    expect(invalidOptions({ url: 'http://h', name: 'x'.repeat(65) })).toMatch(/^name: /);
  });

  it('refuses a `client` that is not an @clickhouse/client client', () => {
    expect(invalidOptions({ client: { close: () => Promise.resolve() } })).toBe(
      'client: expected an @clickhouse/client client, with exec() and close()',
    );
  });

  it('refuses a malformed percent-escape in URL credentials, without echoing them', () => {
    for (const [url, part] of [
      ['http://u:%E0%A4%A-LEAKCHECK@h:8123', 'password'],
      ['http://%E0%A4%A-LEAKCHECK:p@h:8123', 'user'],
    ] as const) {
      expect(invalidOptions({ url })).toBe(`url: the ${part} in it has a malformed percent-escape`);
    }
  });

  it('refuses a URL it cannot use, without echoing it', () => {
    expect(invalidOptions({ url: 'http://u:s3cret-LEAKCHECK@h:8123 x' })).toBe(
      'url: expected an http(s) URL such as http://host:8123',
    );
    expect(invalidOptions({ url: 'ftp://u:s3cret-LEAKCHECK@h' })).toBe(
      'url: expected http: or https: (got ftp:)',
    );
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
