import type { Generated } from 'kysely';
import { isUuid } from '@flowforge/kernel';
import { DatabaseError } from './errors.js';

/**
 * The transaction-local setting that row-level security policies read. Set only
 * by `withTenant`, with `set_config(…, true)`, so it ends with the transaction.
 */
export const TENANT_SETTING = 'app.tenant_id';

/**
 * The role tenant transactions run as. It is neither superuser nor a table
 * owner (both bypass row-level security); the core migration creates it.
 */
export const DEFAULT_APP_ROLE = 'flowforge_app';

/**
 * Adds the `tenant_id` column every tenant-scoped table has (the TenantMixin).
 * It is `Generated`: inserts inside `withTenant` may leave it out, and the
 * column default fills in the current tenant.
 *
 * @example
 * interface DashboardTable { id: Generated<string>; name: string }
 * interface DB { dashboards: TenantScoped<DashboardTable> }
 */
export type TenantScoped<T> = T & {
  /** The owning tenant; filled from the transaction's tenant when an insert omits it. */
  tenant_id: Generated<string>;
};

/** The nil UUID: what a zeroed or forged identity carries, never a tenant. */
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

/**
 * True for a UUID in its canonical 8-4-4-4-12 hex form (any version, either case),
 * other than the nil UUID: every layer that takes a tenant (tokens, API keys, the dev
 * bypass, `withTenant`) refuses it through this one check.
 */
export function isTenantId(value: unknown): value is string {
  return isUuid(value) && value !== NIL_UUID;
}

/** @throws {DatabaseError} TENANT_INVALID. Returns the id in lower case. */
export function assertTenantId(value: unknown): string {
  if (!isTenantId(value)) {
    // The value is not echoed: it came from somewhere we do not trust to be tidy.
    throw new DatabaseError('TENANT_INVALID', 'tenant id must be a UUID other than the nil UUID');
  }
  return value.toLowerCase();
}

const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Names `SET ROLE` treats as keywords: `none` would silently keep the login role. */
const RESERVED_ROLE_NAMES = new Set([
  'none',
  'public',
  'current_user',
  'current_role',
  'session_user',
]);

/** @throws {DatabaseError} INVALID_OPTIONS for a role name we would have to quote, or a reserved one. */
export function assertRoleName(value: string): string {
  if (!ROLE_NAME.test(value) || RESERVED_ROLE_NAMES.has(value) || value.startsWith('pg_')) {
    throw new DatabaseError(
      'INVALID_OPTIONS',
      `app role must be a lower-case SQL identifier naming a role of your own (got ${JSON.stringify(value.slice(0, 64))})`,
    );
  }
  return value;
}
