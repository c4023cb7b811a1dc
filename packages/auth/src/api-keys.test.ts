import { createHash } from 'node:crypto';
import { DatabaseError, type Database, type TenantScoped } from '@flowforge/db';
import type { Generated } from 'kysely';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  createApiKey,
  createApiKeyVerifier,
  generateApiKey,
  parseApiKey,
  revokeApiKey,
  type AuthDB,
} from './api-keys.js';
import { AuthError } from './errors.js';

const TENANT = '0b5cbb2e-6c3e-4a56-9d0e-3f1b1c1a0a01';
const TENANT_HEX = TENANT.replaceAll('-', '');
const USER = '7f0c5d1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f';
const KEY_FORMAT = /^ffk_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$/;

const sha256 = (value: string): Buffer => createHash('sha256').update(value).digest();

/** The secret part of a well-formed key (it may itself contain `_`). */
const secretOf = (key: string): string => key.slice(4 + 32 + 1);

/** A store that must never be reached, or that fails every transaction with `error`. */
function stubDatabase(error?: Error): { database: Database<AuthDB>; calls: () => number } {
  let calls = 0;
  const database = {
    withTenant: () => {
      calls += 1;
      return Promise.reject(error ?? new Error('the store must not be reached'));
    },
  } as unknown as Database<AuthDB>;
  return { database, calls: () => calls };
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('generateApiKey', () => {
  it('makes ffk_<tenant hex>_<43-char base64url secret>, with the prefix and the SHA-256', () => {
    const { key, prefix, hash } = generateApiKey(TENANT);
    expect(key).toMatch(KEY_FORMAT);
    expect(key).toHaveLength(80);
    expect(key.startsWith(`ffk_${TENANT_HEX}_`)).toBe(true);
    const secret = secretOf(key);
    expect(secret).toHaveLength(43);
    expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
    expect(prefix).toBe(`ffk_${secret.slice(0, 8)}`);
    expect(hash).toEqual(sha256(key));
    expect(hash).toHaveLength(32);
  });

  it('accepts an upper-case tenant id and writes it in lower case', () => {
    expect(generateApiKey(TENANT.toUpperCase()).key.startsWith(`ffk_${TENANT_HEX}_`)).toBe(true);
  });

  it('draws a fresh secret every time', () => {
    const secrets = new Set<string>();
    const prefixes = new Set<string>();
    const characters = new Set<string>();
    for (let i = 0; i < 2000; i += 1) {
      const { key, prefix } = generateApiKey(TENANT);
      const secret = secretOf(key);
      secrets.add(secret);
      prefixes.add(prefix);
      for (const character of secret.slice(0, 42)) characters.add(character);
    }
    expect(secrets.size).toBe(2000);
    // 48 random bits: a collision among 2000 prefixes would be a broken generator.
    expect(prefixes.size).toBe(2000);
    // The whole base64url alphabet shows up: the secret is not drawn from a narrow set.
    expect(characters.size).toBe(64);
  });

  it('refuses a tenant id that is not a UUID', () => {
    for (const bad of ['', 'tenant-a', `${TENANT}0`, TENANT_HEX, ` ${TENANT}`]) {
      expect(() => generateApiKey(bad)).toThrow(DatabaseError);
    }
  });
});

describe('parseApiKey', () => {
  it('round-trips: the canonical tenant id and the SHA-256 of the key', () => {
    for (let i = 0; i < 200; i += 1) {
      const { key, hash } = generateApiKey(TENANT);
      expect(parseApiKey(key)).toEqual({ tenantId: TENANT, hash });
    }
  });

  it('copes with underscores and dashes inside the secret', () => {
    const key = `ffk_${TENANT_HEX}_${'_'.repeat(21)}${'-'.repeat(21)}A`;
    expect(parseApiKey(key)).toEqual({ tenantId: TENANT, hash: sha256(key) });
  });

  const good = generateApiKey(TENANT).key;
  const secret = secretOf(good);

  it.each([
    ['an empty string', ''],
    ['a wrong prefix', `ffx_${TENANT_HEX}_${secret}`],
    ['an upper-case prefix', `FFK_${TENANT_HEX}_${secret}`],
    ['no prefix', `${TENANT_HEX}_${secret}`],
    ['a non-hex tenant', `ffk_${'g'.repeat(32)}_${secret}`],
    ['upper-case hex in the tenant', `ffk_${TENANT_HEX.toUpperCase()}_${secret}`],
    ['a dashed tenant', `ffk_${TENANT}_${secret}`],
    ['a short tenant', `ffk_${TENANT_HEX.slice(1)}_${secret}`],
    ['a long tenant', `ffk_${TENANT_HEX}0_${secret}`],
    ['a short secret', `ffk_${TENANT_HEX}_${secret.slice(1)}`],
    ['a long secret', `ffk_${TENANT_HEX}_${secret}A`],
    ['a padded secret', `ffk_${TENANT_HEX}_${secret}=`],
    ['a standard-base64 secret', `ffk_${TENANT_HEX}_${'+'.repeat(42)}A`],
    ['a non-canonical last character', `ffk_${TENANT_HEX}_${'A'.repeat(42)}B`],
    ['no secret', `ffk_${TENANT_HEX}_`],
    ['no separator', `ffk_${TENANT_HEX}${secret}`],
    ['an extra underscore after the prefix', `ffk__${TENANT_HEX}_${secret}`],
    ['a doubled separator', `ffk_${TENANT_HEX}__${secret}`],
    ['a trailing underscore', `${good}_`],
    ['a leading space', ` ${good}`],
    ['a trailing space', `${good} `],
    ['a trailing newline', `${good}\n`],
    ['a space inside', `${good.slice(0, 40)} ${good.slice(41)}`],
    ['a Bearer scheme', `Bearer ${good}`],
    ['two keys', `${good},${good}`],
    ['a non-ASCII digit', `ffk_${TENANT_HEX.slice(0, 31)}٣_${secret}`],
    ['an overlong input', `${good}${'A'.repeat(1_000_000)}`],
    ['the nil UUID as tenant', `ffk_${'0'.repeat(32)}_${secret}`],
  ])('rejects %s', (_what, input) => {
    expect(parseApiKey(input)).toBeNull();
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['an array', [good]],
    ['a Buffer', Buffer.from(good)],
    ['an object', { toString: () => good }],
  ])('rejects %s', (_what, input) => {
    expect(parseApiKey(input)).toBeNull();
  });
});

describe('createApiKey input checks (before the store)', () => {
  const input = { name: 'Wallboard', widgetIds: [], createdBy: USER };

  it.each([
    ['an empty name', { ...input, name: '' }],
    ['a blank name', { ...input, name: '   ' }],
    ['a 201-character name', { ...input, name: 'x'.repeat(201) }],
    ['a widget id that is not a UUID', { ...input, widgetIds: ['widget-1'] }],
    ['a creator that is not a UUID', { ...input, createdBy: 'alice' }],
    ['an expiry in the past', { ...input, expiresAt: new Date(Date.now() - 1000) }],
    ['an invalid expiry date', { ...input, expiresAt: new Date(Number.NaN) }],
  ])('refuses %s with INPUT_INVALID', async (_what, bad) => {
    const { database, calls } = stubDatabase();
    const error = await rejectionOf(createApiKey(database, TENANT, bad));
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).code).toBe('INPUT_INVALID');
    expect(calls()).toBe(0);
  });

  it('counts name length in characters, as PostgreSQL does', async () => {
    // 200 astral characters are 400 UTF-16 units but 200 characters: allowed, so the store is reached.
    const { database, calls } = stubDatabase(new Error('reached'));
    const error = await rejectionOf(
      createApiKey(database, TENANT, { ...input, name: '😀'.repeat(200) }),
    );
    expect((error as Error).message).toBe('reached');
    expect(calls()).toBe(1);
  });
});

describe('revokeApiKey', () => {
  it('answers false for an id that is not a UUID without asking the store', async () => {
    const { database, calls } = stubDatabase();
    await expect(revokeApiKey(database, TENANT, 'not-a-key')).resolves.toBe(false);
    expect(calls()).toBe(0);
  });
});

describe('createApiKeyVerifier(null): no database configured', () => {
  it('refuses every key with NOT_CONFIGURED (503, naming DATABASE_URL), still checking its options', async () => {
    const error = await rejectionOf(createApiKeyVerifier(null).verify(`ffk_${TENANT_HEX}_x`));
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).code).toBe('NOT_CONFIGURED');
    expect((error as AuthError).status).toBe(503);
    expect((error as AuthError).reason).toContain('DATABASE_URL');
    expect(() => createApiKeyVerifier(null, { lastUsedIntervalMs: -1 })).toThrow(AuthError);
  });
});

describe('createApiKeyVerifier (store stubbed)', () => {
  it('refuses a malformed key with API_KEY_INVALID without asking the store', async () => {
    const { database, calls } = stubDatabase();
    const verifier = createApiKeyVerifier(database);
    for (const bad of [undefined, '', 'ffk_nope', `ffk_${TENANT_HEX}_short`]) {
      const error = await rejectionOf(verifier.verify(bad));
      expect(error).toBeInstanceOf(AuthError);
      expect((error as AuthError).code).toBe('API_KEY_INVALID');
      expect((error as AuthError).status).toBe(401);
    }
    expect(calls()).toBe(0);
  });

  it.each(['UNAVAILABLE', 'TIMEOUT', 'CLOSED'] as const)(
    'maps a store %s to STORE_UNAVAILABLE, keeping the cause and not the key',
    async (code) => {
      const cause = new DatabaseError(code, 'down');
      const { database } = stubDatabase(cause);
      const { key, hash } = generateApiKey(TENANT);
      const error = await rejectionOf(createApiKeyVerifier(database).verify(key));
      expect(error).toBeInstanceOf(AuthError);
      expect((error as AuthError).code).toBe('STORE_UNAVAILABLE');
      expect((error as AuthError).status).toBe(503);
      expect((error as AuthError).cause).toBe(cause);
      expect((error as AuthError).message).not.toContain(key);
      expect((error as AuthError).message).not.toContain(hash.toString('hex'));
    },
  );

  it('passes any other store error through unchanged', async () => {
    const cause = new DatabaseError('QUERY_FAILED', 'relation "api_keys" does not exist');
    const { database } = stubDatabase(cause);
    await expect(createApiKeyVerifier(database).verify(generateApiKey(TENANT).key)).rejects.toBe(
      cause,
    );
  });

  it('refuses a negative or non-finite lastUsedIntervalMs with INVALID_OPTIONS (a 500)', () => {
    const { database } = stubDatabase();
    for (const [value, got] of [
      [-1, '-1'],
      [Number.NaN, 'NaN'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
      ['60000', '"60000"'],
    ] as const) {
      expect(() =>
        createApiKeyVerifier(database, { lastUsedIntervalMs: value as number }),
      ).toThrowError(
        expect.objectContaining({
          code: 'INVALID_OPTIONS',
          status: 500,
          message: `@flowforge/auth: lastUsedIntervalMs: expected a finite number of at least 0 (got ${got})`,
        }),
      );
    }
    expect(() => createApiKeyVerifier(database, { lastUsedIntervalMs: -1 })).toThrow(AuthError);
    // The ends of what was always accepted: 0 (record every use) and a fraction.
    for (const lastUsedIntervalMs of [0, 0.5]) {
      expect(() => createApiKeyVerifier(database, { lastUsedIntervalMs })).not.toThrow();
    }
  });

  it("takes an app's wider database handle (type level)", () => {
    interface AppDB {
      dashboards: TenantScoped<{ id: Generated<string>; name: string }>;
    }
    expectTypeOf<Database<AppDB & AuthDB>>().toExtend<Database<AuthDB>>();
  });
});
