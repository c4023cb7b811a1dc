/**
 * True when `value` (parsed JSON) nests objects or arrays deeper than
 * `maxDepth` (`{}` and `[]` are depth 1). Iterative, so it cannot itself
 * overflow the stack, and it stops at the first level too deep: a 20 KB body
 * nested 10,000 arrays deep overflowed recursive code (a validator, a
 * serialiser), so check depth before handing parsed input to any of it.
 *
 * @example
 * ```ts
 * if (jsonDepthExceeds(body, 32)) throw new MyError('BODY_TOO_DEEP', '…');
 * ```
 */
export function jsonDepthExceeds(value: unknown, maxDepth: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  const pending: [object, number][] = [[value, 1]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [node, depth] = next;
    if (depth > maxDepth) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') pending.push([child as object, depth + 1]);
    }
  }
  return false;
}
