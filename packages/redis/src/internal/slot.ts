import calculateSlot from 'cluster-key-slot';

/**
 * False for the one shape of key cluster-key-slot hashes unlike Redis: an
 * empty hash tag (`{}`) with another `}` after it. Redis then hashes the whole
 * key (an empty tag is no tag), cluster-key-slot what lies between the `{}` and
 * that `}` (`foo{}{bar}`: Redis 8363, cluster-key-slot 4015).
 */
function hashedAsRedisDoes(key: string): boolean {
  const open = key.indexOf('{');
  return open === -1 || key[open + 1] !== '}' || key.indexOf('}', open + 2) === -1;
}

/**
 * The Cluster slot of `key` (0…16383), as the server computes it: of the key,
 * or of its hash tag (the part between the first `{` and the next `}`, when
 * that is not empty). A lone surrogate goes out as U+FFFD (Node's UTF-8
 * encoding of a string), so it is hashed as one. `undefined` for a key
 * cluster-key-slot would get wrong (see hashedAsRedisDoes).
 */
export function keySlot(key: string): number | undefined {
  if (!hashedAsRedisDoes(key)) return undefined;
  return calculateSlot(key.isWellFormed() ? key : key.toWellFormed());
}

/**
 * Groups the positions of `keys` by slot, in first-seen order: one MGET or DEL
 * per group, since Redis Cluster refuses a multi-key command across slots. A
 * key without a known slot gets a group of its own: one more command, never a
 * CROSSSLOT.
 */
export function groupBySlot(keys: readonly string[], prefix: string): number[][] {
  const groups = new Map<number, number[]>();
  keys.forEach((key, index) => {
    // A key alone is grouped under a negative id, which no slot has.
    const slot = keySlot(prefix + key) ?? -1 - index;
    const group = groups.get(slot);
    if (group) group.push(index);
    else groups.set(slot, [index]);
  });
  return [...groups.values()];
}
