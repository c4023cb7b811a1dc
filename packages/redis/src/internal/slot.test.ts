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
    expect(keySlot('ünïcode')).toBe(keySlot('ünïcode'));
  });

  it('hashes only the hash tag when there is a non-empty one', () => {
    expect(keySlot('{user1000}.following')).toBe(keySlot('user1000'));
    expect(keySlot('{user1000}.followers')).toBe(keySlot('{user1000}.following'));
    // An empty tag is no tag; only the first { counts.
    expect(keySlot('foo{}{bar}')).toBe(keySlot('foo{}{bar}'));
    expect(keySlot('foo{}{bar}')).not.toBe(keySlot('bar'));
    expect(keySlot('foo{{bar}}zap')).toBe(keySlot('{bar'));
  });
});

describe('groupBySlot', () => {
  it('groups positions by the slot of prefix + key, in first-seen order', () => {
    const keys = ['{a}1', '{b}1', '{a}2', '{b}2', 'c'];
    expect(groupBySlot(keys, '')).toEqual([[0, 2], [1, 3], [4]]);
    // A prefix with a hash tag puts every key in one slot.
    expect(groupBySlot(keys, '{tenant}:')).toEqual([[0, 1, 2, 3, 4]]);
  });
});
