import { describe, expect, it } from 'vitest';
import { expectThrownCode } from '../../test/support/assert.js';
import { prepareQuery, type QueryInput } from './prepare.js';

const DEFAULTS = { requestTimeoutMs: 10_000, allowIdentifiers: false };
const TENANT = '6f1c1d0e-2b7a-4c39-9d55-0d4f3c2b1a00';

function invalidArgument(run: () => unknown): string {
  return expectThrownCode(run, 'INVALID_ARGUMENT').reason;
}

describe('prepareQuery', () => {
  it('binds for a server that binds, and keeps what client binding needs', () => {
    const prepared = prepareQuery('SELECT {n:UInt8} AS n', { n: 7 }, {}, undefined, DEFAULTS);
    expect(prepared).toMatchObject({
      sql: 'SELECT {n:UInt8} AS n',
      params: { n: 7 },
      timeoutMs: 10_000,
      queryId: undefined,
      settings: undefined,
      serverBound: { sql: 'SELECT {n:UInt8} AS n', params: { n: 7 } },
    });
    expect(prepared.placeholders.map((p) => `${p.name}:${p.type}`)).toEqual(['n:UInt8']);
  });

  it('takes the query’s own deadline, id and settings', () => {
    const input: QueryInput = { timeoutMs: 1, queryId: 'mine', settings: { max_threads: 1 } };
    expect(prepareQuery('SELECT 1', undefined, input, undefined, DEFAULTS)).toMatchObject({
      timeoutMs: 1,
      queryId: 'mine',
      settings: { max_threads: 1 },
    });
  });

  it('binds the tenant of a tenant query', () => {
    const prepared = prepareQuery('SELECT {tenant_id:UUID}', undefined, {}, TENANT, DEFAULTS);
    expect(prepared.params).toEqual({ tenant_id: TENANT });
    expect(prepared.serverBound.params).toEqual({ tenant_id: TENANT });
  });

  it('names every problem with the query options in one error', () => {
    expect(
      invalidArgument(() =>
        prepareQuery('SELECT 1', undefined, { timeoutMs: 0, queryId: 'a b' }, undefined, DEFAULTS),
      ),
    ).toBe(
      'timeoutMs: expected a positive whole number from 1 to 2147483647 (got 0); queryId: expected 1 to 128 visible ASCII characters',
    );
  });

  it.each<[string, () => unknown, RegExp]>([
    ['empty SQL', () => prepareQuery(' \n', undefined, {}, undefined, DEFAULTS), /non-empty/],
    [
      'a setting off the allow-list',
      () => prepareQuery('SELECT 1', undefined, { settings: { readonly: 0 } }, undefined, DEFAULTS),
      /setting "readonly" may not be set/,
    ],
    [
      'a value without a placeholder',
      () => prepareQuery('SELECT 1', { x: 1 }, {}, undefined, DEFAULTS),
      /no \{x:Type\} placeholder/,
    ],
    [
      'an Identifier placeholder, unless allowed',
      () => prepareQuery('SELECT * FROM {t:Identifier}', { t: 'x' }, {}, undefined, DEFAULTS),
      /Identifier/,
    ],
    [
      'a tenant query without its placeholder',
      () => prepareQuery('SELECT 1', undefined, {}, TENANT, DEFAULTS),
      /\{tenant_id:UUID\}/,
    ],
  ])('refuses %s', (_what, run, message) => {
    expect(invalidArgument(run)).toMatch(message);
  });

  it('lets an Identifier placeholder through when allowed', () => {
    const prepared = prepareQuery('SELECT * FROM {t:Identifier}', { t: 'events' }, {}, undefined, {
      ...DEFAULTS,
      allowIdentifiers: true,
    });
    expect(prepared.serverBound.params).toEqual({ t: 'events' });
  });
});
