// One shape check for every factory that takes a store.
/**
 * True when `store` has a string `prefix` and every one of `methods` (checked by the factories
 * that take a store, so a wrong object fails at start-up, not on the first request).
 */
export function hasStoreShape(store: unknown, methods: readonly string[]): boolean {
  if (typeof store !== 'object' || store === null) return false;
  const candidate = store as Record<string, unknown>;
  return (
    typeof candidate.prefix === 'string' &&
    methods.every((method) => typeof candidate[method] === 'function')
  );
}
