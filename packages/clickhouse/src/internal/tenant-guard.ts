import { isUuid } from '@flowforge/kernel';
import { ClickHouseError } from '../errors.js';
import type { Placeholder, QueryParams } from './binder.js';

/** The one placeholder a tenant query binds its tenant to, in this letter case. */
const TENANT = 'tenant_id';

function refuse(message: string): ClickHouseError {
  return new ClickHouseError('INVALID_ARGUMENT', message);
}

/**
 * The params of a tenant query: the caller's, with `tenant_id` bound to
 * `tenantId`. The tenant can never be overridden: a `tenant_id` param (in any
 * letter case) and a lookalike placeholder (`{Tenant_Id:UUID}`) are refused.
 * What the SQL does with the placeholder (`IN (…)`, `OR`) is the caller's: this
 * guarantees the binding, not the filter.
 * @param placeholders - the placeholders of the SQL's code (not in strings or comments)
 * @throws {ClickHouseError} INVALID_ARGUMENT
 */
export function tenantParams(
  tenantId: string,
  placeholders: readonly Placeholder[],
  params: QueryParams | undefined,
): QueryParams {
  if (!isUuid(tenantId)) throw refuse('the tenant id must be a UUID');
  if (
    params !== undefined &&
    // hasOwn also sees a non-enumerable tenant_id, which Object.keys skips.
    (Object.hasOwn(params, TENANT) ||
      Object.keys(params).some((key) => key.toLowerCase() === TENANT))
  ) {
    throw refuse(
      'params.tenant_id (in any letter case) is refused: the tenant is the tenantId argument and cannot be overridden',
    );
  }
  // {Tenant_Id:UUID} next to {tenant_id:UUID} reads like the tenant and binds
  // a caller's value: one spelling only.
  if (placeholders.some((p) => p.name !== TENANT && p.name.toLowerCase() === TENANT)) {
    throw refuse(
      'a tenant query may name its tenant placeholder only {tenant_id:UUID}, in that letter case',
    );
  }
  const own = placeholders.filter((p) => p.name === TENANT);
  if (own.length === 0 || own.some((p) => p.type !== 'UUID')) {
    throw refuse(
      'a tenant query must filter on the {tenant_id:UUID} placeholder (and use no other type for it)',
    );
  }
  return { ...params, [TENANT]: tenantId };
}
