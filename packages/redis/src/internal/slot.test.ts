import { describe, expect, it } from 'vitest';
import { groupBySlot, keySlot } from './slot.js';

describe('keySlot', () => {
  it('matches the CRC16 of the Redis Cluster specification', () => {
    // CRC16/XMODEM("123456789") = 0x31C3 (the spec's reference value).
    expect(keySlot('123456789')).toBe(0x31c3);
    // The examples of the CLUSTER KEYSLOT documentation.
    expect(keySlot('somekey')).toBe(11058);
    expect(keySlot('foo{hash_tag}')).toBe(2515);
    expect(keySlot('bar{hash_tag}')).toBe(2515);
    expect(keySlot('')).toBe(0);
  });

  it('hashes only the hash tag when there is a non-empty one', () => {
    expect(keySlot('{user1000}.following')).toBe(keySlot('user1000'));
    expect(keySlot('{user1000}.followers')).toBe(keySlot('{user1000}.following'));
    // Only the first { counts; the tag ends at the next }.
    expect(keySlot('foo{{bar}}zap')).toBe(keySlot('{bar'));
    // An empty tag with no } after it: the whole key, as Redis hashes it.
    expect(keySlot('{}x')).toBe(10595); // CLUSTER KEYSLOT {}x on redis-server 7.0
  });

  it('has no slot for an empty tag followed by another } (cluster-key-slot departs from Redis there)', () => {
    expect(keySlot('foo{}{bar}')).toBeUndefined();
    expect(keySlot('{}}')).toBeUndefined();
  });

  it('hashes a lone surrogate as the U+FFFD it is sent as', () => {
    // 5618: CLUSTER KEYSLOT of the bytes 61 EF BF BD 62 on redis-server 7.0.
    expect(keySlot('a\uFFFDb')).toBe(5618);
    expect(keySlot('a\uD800b')).toBe(5618);
    expect(keySlot('a\uDC00b')).toBe(5618);
    // A well-formed pair is one code point, not two replacement characters.
    expect(keySlot('a\uD83D\uDE00b')).not.toBe(keySlot('a\uFFFD\uFFFDb'));
  });
});

describe('groupBySlot', () => {
  it('groups positions by the slot of prefix + key, in first-seen order', () => {
    const keys = ['{a}1', '{b}1', '{a}2', '{b}2', 'c'];
    expect(groupBySlot(keys, '')).toEqual([[0, 2], [1, 3], [4]]);
    // A prefix with a hash tag puts every key in one slot.
    expect(groupBySlot(keys, '{tenant}:')).toEqual([[0, 1, 2, 3, 4]]);
  });

  it('gives each key without a known slot a group of its own', () => {
    expect(groupBySlot(['foo{}{bar}', 'x', 'baz{}{bar}', 'x'], '')).toEqual([[0], [1, 3], [2]]);
    // The prefix counts: '{}' in the prefix, '}' in the key.
    expect(groupBySlot(['{a}', '{a}'], 'p{}')).toEqual([[0], [1]]);
  });
});
