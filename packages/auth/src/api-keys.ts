import { OptionChecks } from '@flowforge/kernel';
/**
 * Tenant-scoped API keys.
 *
 * A key reads `ffk_<tenant id: 32 lower-case hex, no dashes>_<secret>`, the
 * secret being 32 random bytes in base64url (43 characters). Only the SHA-256
 * of the whole key string is stored (`api_keys.key_hash`), with a short
 * `prefix` (`ffk_` + the secret's first 8 characters) for people to recognise a
 * key by; the plaintext is shown once, when the key is created.
 *
 * Why the tenant id is inside the key: authentication then never needs a
 * cross-tenant lookup. The verifier parses the tenant out of the key and looks
 * the hash up inside `withTenant(tenant, …)`, so PostgreSQL row-level security
 * applies to this read exactly as to every other tenant read, and the app
 * needs no role that can see all tenants' keys. The tenant id from the key is
 * trusted only once a row with that hash exists in that tenant. The price: the
 * tenant's UUID is readable in the key. It is an identifier, not a secret (it
 * grants nothing by itself; the 256-bit secret does), so that is accepted.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { sql, type Generated } from 'kysely';
import {
  assertTenantId,
  isDatabaseError,
  isTenantId,
  type Database,
  type TenantScoped,
} from '@flowforge/db';
import type { Logger, Metrics } from '@flowforge/observability';
import { AuthError, isAuthError } from './errors.js';
import { failureCounter } from './internal/metrics.js';
import type { Principal } from './principal.js';

/** The kysely type of the `api_keys` table (see `authMigrations`), without `tenant_id`. */
export interface ApiKeyTable {
  /** The key's id, a UUID the server generates. */
  id: Generated<string>;
  /** 1 to 200 characters. */
  name: string;
  /** SHA-256 of the whole key string (32 bytes). Never the key. */
  key_hash: Buffer;
  /** `ffk_` + the first 8 characters of the secret, for UIs. */
  prefix: string;
  /** The widgets the key may read (uuid[]). */
  widget_ids: Generated<string[]>;
  /** The user who created the key: the principal's `userId` when the key authenticates. */
  created_by: string;
  /** When the key was created (server time). */
  created_at: Generated<Date>;
  /** `null`: never expires. */
  expires_at: Date | null;
  /** When the key was revoked; `null` while it is live. */
  revoked_at: Date | null;
  /** When the key last authenticated, recorded at most once per `lastUsedIntervalMs`; `null`: never used. */
  last_used_at: Date | null;
}

/**
 * The tables of @flowforge/auth, for `Database<AuthDB>` (intersect with an
 * app's own: `Database<AppDB & AuthDB>`).
 */
export interface AuthDB {
  /** Tenant-scoped API keys, created by {@link authMigrations}. */
  api_keys: TenantScoped<ApiKeyTable>;
}

/** A freshly generated key: show `key` once, store `prefix` and `hash`. */
export interface GeneratedApiKey {
  /** The plaintext key. Never store or log it. */
  readonly key: string;
  /** `ffk_` + the first 8 characters of the secret. */
  readonly prefix: string;
  /** SHA-256 of `key` (32 bytes). */
  readonly hash: Buffer;
}

/** What {@link parseApiKey} reads out of a well-formed key. */
export interface ParsedApiKey {
  /** The tenant id in canonical form (lower case, dashed). Not trusted until a row matches. */
  readonly tenantId: string;
  /** SHA-256 of the whole key string, to look the key up by. */
  readonly hash: Buffer;
}

/** Input of {@link createApiKey}. */
export interface CreateApiKeyInput {
  /** A label for people, 1 to 200 characters, not blank. */
  readonly name: string;
  /** The widgets (UUIDs) the key may read; duplicates are dropped. May be empty. */
  readonly widgetIds: readonly string[];
  /** The creating user's id (a UUID): the key authenticates as this user. */
  readonly createdBy: string;
  /** When the key stops working; must be in the future. `null` or absent: never. */
  readonly expiresAt?: Date | null;
}

/** The result of {@link createApiKey}. `key` is the only time the plaintext exists. */
export interface CreatedApiKey {
  /** The key's id (a UUID), for {@link revokeApiKey}. */
  readonly id: string;
  /** The plaintext key: hand it to the user once. It is neither stored nor logged. */
  readonly key: string;
  /** `ffk_` + the first 8 characters of the secret, for people to recognise the key by. */
  readonly prefix: string;
  /** The widgets the key may read, lower-cased and without duplicates. */
  readonly widgetIds: readonly string[];
  /** When the key stops working; `null`: never. */
  readonly expiresAt: Date | null;
  /** When the key was created (server time). */
  readonly createdAt: Date;
}

/** One key as {@link listApiKeys} shows it: never the key, never its hash. */
export interface ApiKeyInfo {
  /** The key's id (a UUID). */
  readonly id: string;
  /** The label given at creation. */
  readonly name: string;
  /** `ffk_` + the first 8 characters of the secret. */
  readonly prefix: string;
  /** The widgets the key may read. */
  readonly widgetIds: readonly string[];
  /** The user who created the key (and whom it authenticates as). */
  readonly createdBy: string;
  /** When the key was created. */
  readonly createdAt: Date;
  /** When the key stops working; `null`: never. */
  readonly expiresAt: Date | null;
  /** When the key was revoked; `null` while it is live (revoked keys are listed too). */
  readonly revokedAt: Date | null;
  /** When the key last authenticated (recorded at most once a minute by default); `null`: never. */
  readonly lastUsedAt: Date | null;
}

/** Options of {@link createApiKeyVerifier}. */
export interface ApiKeyVerifierOptions {
  /**
   * `last_used_at` is written at most once per this many milliseconds per key
   * (per process), so a hot key does not write on every request. @default 60000
   */
  readonly lastUsedIntervalMs?: number;
  /** Gets a warning when recording a key's use fails (the request is not affected). */
  readonly logger?: Logger;
  /** Counts refused keys in `flowforge_auth_failures_total{reason}` (api_key_invalid, store_unavailable). */
  readonly metrics?: Metrics;
  /** The clock, in epoch milliseconds: expiry and the `last_used_at` interval. @default Date.now */
  readonly now?: () => number;
}

/** Verifies API keys; make one per process (it remembers when each key was last recorded as used). */
export interface ApiKeyVerifier {
  /**
   * The principal of a valid key: its creator as `userId`, its tenant, no roles,
   * `method: 'api_key'`, its `widgetIds`, `apiKeyId` and `expiresAt`.
   * @throws {AuthError} API_KEY_INVALID when the key is malformed, unknown,
   *   revoked or expired (one message for all: nothing is revealed);
   *   STORE_UNAVAILABLE when PostgreSQL cannot be reached; NOT_CONFIGURED
   *   from a verifier made without a database.
   */
  verify(key: unknown): Promise<Principal>;
}

const KEY_PREFIX = 'ffk_';
/** A key is exactly 80 characters; anything longer than this is refused before any other work. */
const MAX_KEY_LENGTH = 200;
/**
 * `ffk_`, the tenant as 32 lower-case hex digits, `_`, the secret: 43 base64url
 * characters. 32 bytes fill 42 characters and 2 bits of the 43rd, whose 4
 * unused bits are zero in the canonical encoding: its last character is one of
 * 16. The secret's alphabet includes `_`, so the fixed lengths, not the
 * underscores, are what split the key.
 */
const KEY_FORMAT = /^ffk_([0-9a-f]{32})_([A-Za-z0-9_-]{42}[AEIMQUYcgkosw048])$/;
const SECRET_BYTES = 32;
const PREFIX_SECRET_CHARS = 8;
const MAX_NAME_LENGTH = 200;
const DEFAULT_LAST_USED_INTERVAL_MS = 60_000;
/** Above this many remembered keys, stale entries are swept (the map never grows without bound). */
const MAX_REMEMBERED_KEYS = 10_000;
/** One message for malformed, unknown, revoked and expired keys. */
const INVALID_KEY_MESSAGE = 'invalid API key';

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Generates a new key for `tenantId`. Pure: nothing is stored (see
 * {@link createApiKey}).
 * @throws {DatabaseError} TENANT_INVALID when `tenantId` is not a UUID.
 * @example
 * const { key, prefix, hash } = generateApiKey(principal.tenantId);
 */
export function generateApiKey(tenantId: string): GeneratedApiKey {
  const tenantHex = assertTenantId(tenantId).replaceAll('-', '');
  const secret = randomBytes(SECRET_BYTES).toString('base64url');
  const key = `${KEY_PREFIX}${tenantHex}_${secret}`;
  return { key, prefix: `${KEY_PREFIX}${secret.slice(0, PREFIX_SECRET_CHARS)}`, hash: sha256(key) };
}

/**
 * Reads the tenant id and hash out of a key of exactly the format
 * {@link generateApiKey} makes. Strict: no trimming, lower-case hex only, the
 * secret's exact length and canonical encoding. Pure; the tenant id is NOT
 * trusted by this: only a matching row in that tenant makes it so.
 * @returns `null` for anything malformed (including non-strings, overlong input and the
 *   nil UUID as tenant).
 */
export function parseApiKey(key: unknown): ParsedApiKey | null {
  if (typeof key !== 'string' || key.length > MAX_KEY_LENGTH) return null;
  const match = KEY_FORMAT.exec(key);
  const hex = match?.[1];
  if (hex === undefined) return null;
  const tenantId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  // The nil UUID names no tenant (isTenantId, one rule everywhere): refused without a lookup.
  return isTenantId(tenantId) ? { tenantId, hash: sha256(key) } : null;
}

function invalidRequest(message: string): AuthError {
  return new AuthError('INPUT_INVALID', message);
}

function uniqueUuids(values: readonly string[], what: string): string[] {
  const seen = new Set<string>();
  for (const value of values) {
    // The value is not echoed: it may be anything.
    if (!isTenantId(value)) throw invalidRequest(`${what} must be UUIDs`);
    seen.add(value.toLowerCase());
  }
  return [...seen];
}

/**
 * Creates a key in `tenantId` (inside `withTenant`, so row-level security
 * checks the row). Only the hash and prefix are stored; the plaintext `key`
 * is in the result and nowhere else.
 * @throws {AuthError} INPUT_INVALID for a blank or over-long name, a
 *   non-UUID widget id or creator, or an `expiresAt` that is invalid or not in
 *   the future.
 * @throws {DatabaseError} TENANT_INVALID for a non-UUID tenant; others from the store.
 * @example
 * const created = await createApiKey(database, principal.tenantId, {
 *   name: 'Wallboard', widgetIds: [widgetId], createdBy: principal.userId,
 * });
 * reply.send({ key: created.key }); // shown once
 */
export async function createApiKey(
  database: Database<AuthDB>,
  tenantId: string,
  input: CreateApiKeyInput,
): Promise<CreatedApiKey> {
  const { name, createdBy, expiresAt = null } = input;
  // Characters as PostgreSQL's length() counts them (code points, not UTF-16 units).
  const nameLength = typeof name === 'string' ? [...name].length : 0;
  if (typeof name !== 'string' || name.trim() === '' || nameLength > MAX_NAME_LENGTH) {
    throw invalidRequest(`API key name must be 1 to ${MAX_NAME_LENGTH} characters and not blank`);
  }
  if (!isTenantId(createdBy)) throw invalidRequest('API key creator must be a UUID');
  if (!Array.isArray(input.widgetIds)) throw invalidRequest('widget ids must be an array');
  const widgetIds = uniqueUuids(input.widgetIds, 'widget ids');
  if (expiresAt !== null) {
    if (!(expiresAt instanceof Date) || Number.isNaN(expiresAt.getTime())) {
      throw invalidRequest('API key expiry must be a valid date');
    }
    if (expiresAt.getTime() <= Date.now()) {
      throw invalidRequest('API key expiry must be in the future');
    }
  }

  const generated = generateApiKey(tenantId);
  const row = await database.withTenant(tenantId, (trx) =>
    trx
      .insertInto('api_keys')
      .values({
        name,
        key_hash: generated.hash,
        prefix: generated.prefix,
        widget_ids: widgetIds,
        created_by: createdBy.toLowerCase(),
        expires_at: expiresAt,
      })
      .returning(['id', 'widget_ids', 'expires_at', 'created_at'])
      .executeTakeFirstOrThrow(),
  );
  return {
    id: row.id,
    key: generated.key,
    prefix: generated.prefix,
    widgetIds: row.widget_ids,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
  };
}

/**
 * Revokes a key of `tenantId` (sets `revoked_at`). Idempotent.
 * @returns true when this call revoked it; false when `tenantId` has no such
 *   key (another tenant's key included) or it was already revoked.
 * @throws {DatabaseError} TENANT_INVALID for a non-UUID tenant; others from the store.
 */
export async function revokeApiKey(
  database: Database<AuthDB>,
  tenantId: string,
  id: string,
): Promise<boolean> {
  // Not a UUID: not a key (and never a cast error from the server).
  if (!isTenantId(id)) {
    assertTenantId(tenantId);
    return false;
  }
  const result = await database.withTenant(tenantId, (trx) =>
    trx
      .updateTable('api_keys')
      .set({ revoked_at: sql<Date>`now()` })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst(),
  );
  return result.numUpdatedRows > 0n;
}

/**
 * The keys of `tenantId`, newest first: never the key, never its hash.
 * @throws {DatabaseError} TENANT_INVALID for a non-UUID tenant; others from the store.
 */
export async function listApiKeys(
  database: Database<AuthDB>,
  tenantId: string,
): Promise<ApiKeyInfo[]> {
  const rows = await database.withTenant(tenantId, (trx) =>
    trx
      .selectFrom('api_keys')
      .select([
        'id',
        'name',
        'prefix',
        'widget_ids',
        'created_by',
        'created_at',
        'expires_at',
        'revoked_at',
        'last_used_at',
      ])
      .orderBy('created_at', 'desc')
      .orderBy('id')
      .execute(),
  );
  return rows.map((row) => ({
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    widgetIds: row.widget_ids,
    createdBy: row.created_by,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
  }));
}

/**
 * Makes the verifier of API keys, for the auth plugin. Make one per process
 * and keep it: it remembers when it last recorded each key's use. With
 * `database` `null` (DATABASE_URL is not set) every key is refused with
 * `NOT_CONFIGURED` (503), so a route answers as for any store not configured
 * and a request without a key still gets its 401.
 * @throws {AuthError} INVALID_OPTIONS for a `lastUsedIntervalMs` that is negative or not finite.
 * @example
 * const apiKeys = createApiKeyVerifier(database, { logger });
 * const principal = await apiKeys.verify(request.headers['x-api-key']);
 */
export function createApiKeyVerifier(
  database: Database<AuthDB> | null,
  options: ApiKeyVerifierOptions = {},
): ApiKeyVerifier {
  const checks = new OptionChecks();
  // Milliseconds, fractions allowed (as always): a finite number from 0 up.
  const interval = checks.number(
    'lastUsedIntervalMs',
    options.lastUsedIntervalMs,
    { min: 0, max: Infinity },
    DEFAULT_LAST_USED_INTERVAL_MS,
  );
  checks.throwIfAny((message) => new AuthError('INVALID_OPTIONS', message));
  if (database === null) {
    return {
      verify: () =>
        Promise.reject(
          new AuthError('NOT_CONFIGURED', 'API keys cannot be checked: set DATABASE_URL.'),
        ),
    };
  }
  const store: Database<AuthDB> = database;
  const failures = options.metrics ? failureCounter(options.metrics) : undefined;
  const now = options.now ?? Date.now;
  const { logger } = options;
  /** Key id → when (by `now()`) its use was last recorded by this process. */
  const recorded = new Map<string, number>();

  function forget(at: number): void {
    for (const [id, when] of recorded) if (at - when >= interval) recorded.delete(id);
    if (recorded.size >= MAX_REMEMBERED_KEYS) recorded.clear();
  }

  /** Records the key's use without holding up the request; failures are only logged. */
  function recordUse(tenantId: string, id: string): void {
    const at = now();
    const last = recorded.get(id);
    if (last !== undefined && at - last < interval) return;
    if (last === undefined && recorded.size >= MAX_REMEMBERED_KEYS) forget(at);
    recorded.set(id, at);
    store
      .withTenant(tenantId, (trx) =>
        trx
          .updateTable('api_keys')
          .set({ last_used_at: sql<Date>`now()` })
          .where('id', '=', id)
          .execute(),
      )
      .catch((error: unknown) => {
        // Try again on the next request rather than after a whole interval.
        if (recorded.get(id) === at) recorded.delete(id);
        logger?.warn(
          { err: error, tenant_id: tenantId, api_key_id: id },
          'could not record the use of an API key',
        );
      });
  }

  return {
    async verify(key) {
      try {
        return await check(key);
      } catch (error) {
        if (isAuthError(error)) {
          failures?.inc({
            reason: error.code === 'STORE_UNAVAILABLE' ? 'store_unavailable' : 'api_key_invalid',
          });
        }
        throw error;
      }
    },
  };

  async function check(key: unknown): Promise<Principal> {
    {
      const parsed = parseApiKey(key);
      if (!parsed) throw new AuthError('API_KEY_INVALID', INVALID_KEY_MESSAGE);
      const { tenantId, hash } = parsed;

      let row;
      try {
        // The lookup runs as the tenant the key names, under row-level security:
        // another tenant's rows are invisible, so a key whose tenant part was
        // rewritten finds nothing. The explicit tenant_id test is defence in
        // depth and lets the (tenant_id, key_hash) unique index answer alone.
        //
        // No timingSafeEqual: the secret is never compared here. The server
        // compares SHA-256 digests by index lookup, and timing can at most tell
        // an attacker about a digest of their own guess, which does not help
        // them find a preimage of a stored one.
        row = await store.withTenant(tenantId, (trx) =>
          trx
            .selectFrom('api_keys')
            .select(['id', 'tenant_id', 'widget_ids', 'created_by', 'expires_at', 'revoked_at'])
            .where('tenant_id', '=', tenantId)
            .where('key_hash', '=', hash)
            .executeTakeFirst(),
        );
      } catch (error) {
        if (isDatabaseError(error, 'UNAVAILABLE', 'TIMEOUT', 'CLOSED')) {
          throw new AuthError('STORE_UNAVAILABLE', 'the API key store is unavailable', {
            cause: error,
          });
        }
        throw error;
      }

      // Unknown, revoked and expired all answer alike: nothing is revealed.
      if (
        !row ||
        row.tenant_id !== tenantId ||
        row.revoked_at !== null ||
        (row.expires_at !== null && row.expires_at.getTime() <= now())
      ) {
        throw new AuthError('API_KEY_INVALID', INVALID_KEY_MESSAGE);
      }

      recordUse(tenantId, row.id);
      return Object.freeze({
        userId: row.created_by,
        tenantId,
        roles: Object.freeze([]),
        claims: Object.freeze({}),
        method: 'api_key',
        widgetIds: Object.freeze([...row.widget_ids]),
        apiKeyId: row.id,
        expiresAt: row.expires_at,
      });
    }
  }
}
