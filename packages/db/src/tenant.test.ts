import { describe, expect, it } from 'vitest';
import { assertRoleName, assertTenantId, isTenantId } from './tenant.js';

describe('tenant ids', () => {
  it('accepts canonical UUIDs of any version and case, and returns them in lower case', () => {
    expect(assertTenantId('0B5CBB2E-6C3E-4A56-9D0E-3F1B1C1A0A01')).toBe(
      '0b5cbb2e-6c3e-4a56-9d0e-3f1b1c1a0a01',
    );
    expect(isTenantId('00000000-0000-4000-8000-000000000001')).toBe(true);
    // The nil UUID is well-formed but names no tenant: refused everywhere a tenant is taken.
    expect(isTenantId('00000000-0000-0000-0000-000000000000')).toBe(false);
  });

  it.each([
    '',
    'tenant-a',
    '0b5cbb2e6c3e4a569d0e3f1b1c1a0a01',
    '{0b5cbb2e-6c3e-4a56-9d0e-3f1b1c1a0a01}',
    "0b5cbb2e-6c3e-4a56-9d0e-3f1b1c1a0a01'; drop table notes; --",
    ' 0b5cbb2e-6c3e-4a56-9d0e-3f1b1c1a0a01',
    '0b5cbb2e-6c3e-4a56-9d0e-3f1b1c1a0a01\n',
    '00000000-0000-0000-0000-000000000000',
  ])('refuses %j with TENANT_INVALID and does not echo it', (value) => {
    expect(() => assertTenantId(value)).toThrowError(
      expect.objectContaining({
        code: 'TENANT_INVALID',
        message: '@flowforge/db: tenant id must be a UUID other than the nil UUID',
      }),
    );
  });

  it('refuses non-strings', () => {
    for (const value of [undefined, null, 42, {}]) expect(isTenantId(value)).toBe(false);
  });
});

describe('role names', () => {
  it('accepts lower-case identifiers and refuses anything that would need quoting', () => {
    expect(assertRoleName('flowforge_app')).toBe('flowforge_app');
    for (const bad of [
      'Flowforge',
      'app-role',
      "x'; drop role y; --",
      '1role',
      '',
      // Keywords to SET ROLE: `none` would keep the login role, silently.
      'none',
      'public',
      'current_user',
      'session_user',
      'pg_read_all_data',
    ]) {
      expect(() => assertRoleName(bad)).toThrowError(
        expect.objectContaining({ code: 'INVALID_OPTIONS' }),
      );
    }
  });
});
