import { describe, expect, it } from 'vitest';
import { expectThrownCode } from '../../test/support/assert.js';
import { scanPlaceholders, type QueryParams } from './binder.js';
import { tenantParams } from './tenant-guard.js';

const TENANT = '6f1c1d0e-2b7a-4c39-9d55-0d4f3c2b1a00';
const OTHER = '0b0b0b0b-0000-4000-8000-00000000000b';

function guard(sql: string, params?: QueryParams, tenantId = TENANT): QueryParams {
  return tenantParams(tenantId, scanPlaceholders(sql), params);
}

function refusal(run: () => unknown): string {
  return expectThrownCode(run, 'INVALID_ARGUMENT').reason;
}

describe('tenantParams', () => {
  it('binds tenant_id to the tenant, next to the caller’s params', () => {
    expect(
      guard('SELECT * FROM t WHERE tenant_id = {tenant_id:UUID} AND day = {day:Date}', {
        day: '2026-11-01',
      }),
    ).toEqual({ day: '2026-11-01', tenant_id: TENANT });
    expect(guard('SELECT {tenant_id:UUID}, {tenant_id:UUID}')).toEqual({ tenant_id: TENANT });
  });

  it('refuses a tenant id that is not a UUID', () => {
    expect(refusal(() => guard('SELECT {tenant_id:UUID}', undefined, 'tenant-1'))).toBe(
      'the tenant id must be a UUID',
    );
  });

  it.each<[string, QueryParams]>([
    ['tenant_id', { tenant_id: OTHER }],
    ['the same tenant', { tenant_id: TENANT }],
    ['Tenant_ID', { Tenant_ID: OTHER }],
    ['a non-enumerable tenant_id', Object.defineProperty({}, 'tenant_id', { value: OTHER })],
  ])('refuses a caller param %s', (_what, params) => {
    expect(refusal(() => guard('SELECT {tenant_id:UUID}', params))).toMatch(
      /^params\.tenant_id \(in any letter case\) is refused/,
    );
  });

  it('refuses a lookalike placeholder, whatever its value', () => {
    expect(refusal(() => guard('SELECT {tenant_id:UUID}, {Tenant_Id:UUID}', { x: 1 }))).toMatch(
      /only \{tenant_id:UUID\}, in that letter case/,
    );
  });

  it.each([
    ['no placeholder', 'SELECT 1'],
    ['another type for it', 'SELECT {tenant_id:UUID}, {tenant_id:String}'],
  ])('refuses SQL with %s', (_what, sql) => {
    expect(refusal(() => guard(sql))).toMatch(/must filter on the \{tenant_id:UUID\} placeholder/);
  });
});
