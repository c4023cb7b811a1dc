import { describe, expect, it } from 'vitest';
import { ConfigError, loadDatabaseSettings } from '@flowforge/config';
import { createLogger, createMetrics } from '@flowforge/observability';
import { createDatabase, type DatabaseOptions } from './database.js';
import { DatabaseError } from './errors.js';

// node-postgres connects lazily: none of these handles ever opens a connection.
const url = 'postgres://nobody@127.0.0.1:1/none';

describe('createDatabase', () => {
  it('refuses to start with nothing to connect to, naming DATABASE_URL', () => {
    expect(() => createDatabase({})).toThrowError(/set DATABASE_URL/);
    expect(() => createDatabase({})).toThrowError(
      expect.objectContaining({ code: 'NOT_CONFIGURED' }),
    );
    expect(() => createDatabase({ url: null, embedded: false })).toThrowError(
      expect.objectContaining({ code: 'NOT_CONFIGURED' }),
    );
  });

  it('refuses an app role that would need quoting or is a keyword', () => {
    for (const appRole of ['Robert"; drop', 'none']) {
      expect(() => createDatabase({ url, appRole })).toThrowError(
        expect.objectContaining({ code: 'INVALID_OPTIONS' }),
      );
    }
  });

  it('refuses a second live handle with the same name on one metrics registry', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const first = createDatabase({ url, metrics });
    expect(() => createDatabase({ url, metrics })).toThrowError(/a handle named "main" already/);
    const other = createDatabase({ url, metrics, name: 'audit' });
    await first.close();
    // Once closed, the name is free again.
    const again = createDatabase({ url, metrics });
    await Promise.all([other.close(), again.close()]);
  });

  it.each<[keyof DatabaseOptions, unknown, string]>([
    ['poolSize', -1, 'poolSize: expected a positive whole number from 1 to 1000 (got -1)'],
    ['poolSize', 0, 'poolSize: expected a positive whole number from 1 to 1000 (got 0)'],
    ['poolSize', 1.5, 'poolSize: expected a positive whole number from 1 to 1000 (got 1.5)'],
    ['poolSize', 1001, 'poolSize: expected a positive whole number from 1 to 1000 (got 1001)'],
    ['poolSize', Number.NaN, 'poolSize: expected a positive whole number from 1 to 1000 (got NaN)'],
    // The kernel's wording: a string is quoted, cut at 64 characters.
    ['poolSize', '10', 'poolSize: expected a positive whole number from 1 to 1000 (got "10")'],
    [
      'connectTimeoutMs',
      0,
      'connectTimeoutMs: expected a positive whole number from 1 to 600000 (got 0)',
    ],
    [
      'connectTimeoutMs',
      Number.POSITIVE_INFINITY,
      'connectTimeoutMs: expected a positive whole number from 1 to 600000 (got Infinity)',
    ],
    [
      'statementTimeoutMs',
      -1,
      'statementTimeoutMs: expected a whole number from 0 to 3600000 (got -1)',
    ],
    [
      'statementTimeoutMs',
      2.5,
      'statementTimeoutMs: expected a whole number from 0 to 3600000 (got 2.5)',
    ],
    ['idleTimeoutMs', -5, 'idleTimeoutMs: expected a whole number from 0 to 3600000 (got -5)'],
    // No "none" for the client-side deadline: 0 would let a frozen server hang every request.
    [
      'queryTimeoutMs',
      0,
      'queryTimeoutMs: expected a positive whole number from 1 to 3600000 (got 0)',
    ],
    [
      'queryTimeoutMs',
      3_600_001,
      'queryTimeoutMs: expected a positive whole number from 1 to 3600000 (got 3600001)',
    ],
  ])(
    'refuses %s: %j synchronously with INVALID_OPTIONS, before connecting',
    (key, value, message) => {
      const create = (): unknown => createDatabase({ url, [key]: value });
      expect(create).toThrowError(DatabaseError);
      expect(create).toThrowError(
        expect.objectContaining({ code: 'INVALID_OPTIONS', message: `@flowforge/db: ${message}` }),
      );
    },
  );

  it('names every bad number in one error, whatever it would connect to', () => {
    for (const target of [{ url }, { embedded: true }, {}] as const) {
      expect(() =>
        createDatabase({ ...target, poolSize: 0, connectTimeoutMs: -1, idleTimeoutMs: 0.5 }),
      ).toThrowError(
        expect.objectContaining({
          code: 'INVALID_OPTIONS',
          message:
            '@flowforge/db: poolSize: expected a positive whole number from 1 to 1000 (got 0); ' +
            'connectTimeoutMs: expected a positive whole number from 1 to 600000 (got -1); ' +
            'idleTimeoutMs: expected a whole number from 0 to 3600000 (got 0.5)',
        }),
      );
    }
  });

  it('accepts the ends of every range (and leaves unset options to their defaults)', async () => {
    const handles = [
      createDatabase({ url }),
      createDatabase({
        url,
        poolSize: 1,
        connectTimeoutMs: 1,
        statementTimeoutMs: 0,
        queryTimeoutMs: 1,
        idleTimeoutMs: 0,
      }),
      createDatabase({
        url,
        poolSize: 1000,
        connectTimeoutMs: 600_000,
        statementTimeoutMs: 3_600_000,
        queryTimeoutMs: 3_600_000,
        idleTimeoutMs: 3_600_000,
      }),
    ];
    await Promise.all(handles.map((handle) => handle.close()));
  });

  it('words a bad number as @flowforge/config does for the variable behind it', () => {
    const cases = [
      ['DATABASE_POOL_SIZE', 'poolSize', '0', 0],
      ['DATABASE_CONNECT_TIMEOUT_MS', 'connectTimeoutMs', '0', 0],
      ['DATABASE_STATEMENT_TIMEOUT_MS', 'statementTimeoutMs', '-1', -1],
      ['DATABASE_QUERY_TIMEOUT_MS', 'queryTimeoutMs', '0', 0],
    ] as const;
    for (const [variable, option, text, value] of cases) {
      let configMessage: string | undefined;
      try {
        loadDatabaseSettings({ APP_ENV: 'test', [variable]: text });
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        configMessage = (error as ConfigError).issues.find(
          (issue) => issue.variable === variable,
        )?.message;
      }
      expect(configMessage).toBeDefined();
      expect(() => createDatabase({ url, [option]: value })).toThrowError(
        `@flowforge/db: ${option}: ${configMessage} (got ${value})`,
      );
    }
  });

  it('warns when the query deadline is not above statement_timeout (the server should cancel first)', async () => {
    const handles: { close(): Promise<void> }[] = [];
    const warnings = (options: Partial<DatabaseOptions>): unknown[] => {
      const lines: string[] = [];
      const logger = createLogger({
        level: 'warn',
        destination: { write: (line) => lines.push(line) },
      });
      handles.push(createDatabase({ url, logger, ...options }));
      return lines.map((line) => JSON.parse(line) as unknown);
    };
    expect(warnings({ statementTimeoutMs: 30_000, queryTimeoutMs: 30_000 })).toEqual([
      expect.objectContaining({
        level: 'warn',
        queryTimeoutMs: 30_000,
        statementTimeoutMs: 30_000,
        msg: expect.stringMatching(/queryTimeoutMs is not above statementTimeoutMs/) as unknown,
      }),
    ]);
    // The defaults (35 s over 30 s), no statement_timeout, and a deadline above it: silent.
    expect(warnings({})).toEqual([]);
    expect(warnings({ statementTimeoutMs: 0, queryTimeoutMs: 1_000 })).toEqual([]);
    expect(warnings({ statementTimeoutMs: 1_500, queryTimeoutMs: 2_000 })).toEqual([]);
    await Promise.all(handles.map((handle) => handle.close()));
  });
});
