import { bindRequestContext, getRequestValue, setRequestValue } from '@flowforge/observability';
import { AuthError } from './errors.js';

/** How a principal proved who it is. */
export type AuthMethod = 'dev' | 'jwt' | 'api_key';

/** Who is calling. The tenant id here is the only one any query may use. */
export interface Principal {
  /** The user (`sub` of the token; the creator of an API key; the dev user). */
  readonly userId: string;
  /** The tenant, a UUID: from the verified token's `tenant_id`, the API key's row, or the dev settings. */
  readonly tenantId: string;
  /** Realm roles plus this client's roles (JWT); the fixed dev roles; none for an API key. */
  readonly roles: readonly string[];
  /** The verified token's claims (empty for dev and API keys). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** How the principal authenticated: `dev`, `jwt` or `api_key`. */
  readonly method: AuthMethod;
  /** API keys only: the widgets the key may read. */
  readonly widgetIds?: readonly string[];
  /** API keys only: the key's id. */
  readonly apiKeyId?: string;
  /** API keys only: when the key stops working (its `expires_at`); `null`: never. */
  readonly expiresAt?: Date | null;
}

const PRINCIPAL = Symbol('flowforge.auth.principal');

/**
 * Makes `principal` the current request's: later log lines carry its
 * tenant_id and user_id, and the `getCurrent…()` functions return it.
 * Returns false outside a request context (see @flowforge/observability).
 */
export function bindPrincipal(principal: Principal): boolean {
  bindRequestContext({ tenant_id: principal.tenantId, user_id: principal.userId });
  return setRequestValue(PRINCIPAL, principal);
}

/** The current request's principal. @throws {AuthError} NO_PRINCIPAL */
export function getCurrentPrincipal(): Principal {
  const principal = getRequestValue(PRINCIPAL) as Principal | undefined;
  if (!principal) {
    throw new AuthError('NO_PRINCIPAL', 'no authenticated principal in this request');
  }
  return principal;
}

/** The current user id (created_by, audit). @throws {AuthError} NO_PRINCIPAL */
export function getCurrentUserId(): string {
  return getCurrentPrincipal().userId;
}

/** The current tenant id: the key of ALL data filtering. @throws {AuthError} NO_PRINCIPAL */
export function getCurrentTenantId(): string {
  return getCurrentPrincipal().tenantId;
}

/**
 * Throws 403 `insufficient_scope` unless the principal may read `widgetId`:
 * an API key only its scoped widgets; users and the dev principal any widget
 * of their tenant (which row-level security enforces on its own).
 */
export function assertWidgetScope(principal: Principal, widgetId: string): void {
  if (principal.method === 'api_key' && !principal.widgetIds?.includes(widgetId.toLowerCase())) {
    throw new AuthError('INSUFFICIENT_SCOPE', 'this API key does not cover that widget');
  }
}

/**
 * When the credential behind `principal` stops working, so that whatever it opened (a stream)
 * ends then: a token's `exp`, an API key's `expiresAt`; `null` for the dev principal and for a
 * key that never expires.
 * @example
 * const ends = credentialExpiresAt(principal); // Date | null
 * if (ends !== null) setTimeout(endStream, ends.getTime() - Date.now());
 */
export function credentialExpiresAt(principal: Principal): Date | null {
  switch (principal.method) {
    case 'jwt': {
      // The verifier requires a numeric exp; anything else here is no expiry we know of.
      const { exp } = principal.claims;
      return typeof exp === 'number' && Number.isFinite(exp) ? new Date(exp * 1000) : null;
    }
    case 'api_key':
      return principal.expiresAt ? new Date(principal.expiresAt.getTime()) : null;
    default:
      return null;
  }
}
