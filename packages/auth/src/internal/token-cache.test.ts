import { describe, expect, it } from 'vitest';
import type { Principal } from '../principal.js';
import { TokenCache } from './token-cache.js';

const principal = (userId: string): Principal => ({
  userId,
  tenantId: '00000000-0000-4000-8000-00000000000a',
  roles: [],
  claims: {},
  method: 'jwt',
});

describe('TokenCache', () => {
  it('never returns an entry at or past its token exp', () => {
    const cache = new TokenCache(10);
    cache.set('k', principal('u'), 1_000);
    expect(cache.get('k', 999)?.userId).toBe('u');
    expect(cache.get('k', 1_000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('evicts the least recently used beyond its bound', () => {
    const cache = new TokenCache(2);
    cache.set('a', principal('a'), 10_000);
    cache.set('b', principal('b'), 10_000);
    cache.get('a', 0); // a is now the most recently used
    cache.set('c', principal('c'), 10_000);
    expect(cache.get('b', 0)).toBeUndefined();
    expect(cache.get('a', 0)?.userId).toBe('a');
    expect(cache.get('c', 0)?.userId).toBe('c');
  });

  it('keys by SHA-256, so the token itself is never kept', () => {
    expect(TokenCache.keyOf('header.payload.signature')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(TokenCache.keyOf('a')).not.toBe(TokenCache.keyOf('b'));
  });

  it('drops an entry verified under another key set (a key was removed or added)', () => {
    const cache = new TokenCache(10);
    cache.set('k', principal('u'), 10_000, 3);
    expect(cache.get('k', 0, 4)).toBeUndefined();
    cache.set('k', principal('u'), 10_000, 4);
    expect(cache.get('k', 0, 4)?.userId).toBe('u');
  });

  it('size 0 caches nothing', () => {
    const cache = new TokenCache(0);
    cache.set('k', principal('u'), 10_000);
    expect(cache.get('k', 0)).toBeUndefined();
  });
});
