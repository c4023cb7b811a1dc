import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { credentialExpiresAt, type Principal } from './principal.js';

const base = {
  userId: 'u',
  tenantId: randomUUID(),
  roles: [],
  claims: {},
} as const;

describe('credentialExpiresAt', () => {
  it("is a token's exp, an API key's expiry, and null for the dev principal or a key without one", () => {
    const jwt: Principal = { ...base, method: 'jwt', claims: { exp: 1_900_000_000 } };
    expect(credentialExpiresAt(jwt)).toEqual(new Date(1_900_000_000_000));
    const expiresAt = new Date('2030-01-02T03:04:05Z');
    const key: Principal = { ...base, method: 'api_key', widgetIds: [], expiresAt };
    expect(credentialExpiresAt(key)).toEqual(expiresAt);
    // A copy: whoever holds the answer cannot move the principal's expiry.
    expect(credentialExpiresAt(key)).not.toBe(expiresAt);
    expect(credentialExpiresAt({ ...key, expiresAt: null })).toBeNull();
    expect(credentialExpiresAt({ ...base, method: 'api_key' })).toBeNull();
    expect(credentialExpiresAt({ ...base, method: 'dev' })).toBeNull();
    // A principal made by hand without a numeric exp: no expiry known.
    expect(credentialExpiresAt({ ...base, method: 'jwt', claims: { exp: '1' } })).toBeNull();
  });
});
