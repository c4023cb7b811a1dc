/**
 * Freezes `value` and everything reachable from it, in place: a principal's claims are shared
 * by every request that holds the principal (the token cache, a redeemed ticket), so none may
 * change them for the others.
 */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
