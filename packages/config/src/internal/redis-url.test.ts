import { describe, expect, it } from 'vitest';
import { parseRedisUrl } from './redis-url.js';

describe('parseRedisUrl', () => {
  it('parses standalone URLs with TLS, credentials and database', () => {
    expect(parseRedisUrl('rediss://user:p%40ss@cache.internal:6380/3')).toEqual({
      url: 'rediss://user:p%40ss@cache.internal:6380/3',
      topology: {
        mode: 'standalone',
        tls: true,
        node: { host: 'cache.internal', port: 6380 },
        db: 3,
      },
      username: 'user',
      password: 'p@ss',
    });
    expect(parseRedisUrl('redis://127.0.0.1')).toMatchObject({
      topology: { node: { host: '127.0.0.1', port: 6379 }, db: 0 },
      username: null,
      password: '',
    });
    expect(parseRedisUrl('redis://[::1]:7000')).toMatchObject({
      topology: { node: { host: '::1', port: 7000 } },
    });
  });

  it('parses sentinel URLs with several sentinels and a master name', () => {
    expect(parseRedisUrl('redis-sentinel://:pw@10.0.0.1:26379,10.0.0.2/primary/1')).toMatchObject({
      topology: {
        mode: 'sentinel',
        sentinels: [
          { host: '10.0.0.1', port: 26379 },
          { host: '10.0.0.2', port: 26379 },
        ],
        masterName: 'primary',
        db: 1,
      },
      password: 'pw',
    });
  });

  it('parses cluster URLs', () => {
    expect(parseRedisUrl('rediss-cluster://a:7000,b:7001,c')).toMatchObject({
      topology: {
        mode: 'cluster',
        tls: true,
        nodes: [
          { host: 'a', port: 7000 },
          { host: 'b', port: 7001 },
          { host: 'c', port: 6379 },
        ],
      },
    });
  });

  it.each([
    ['http://h', 'expected a redis://'],
    ['redis://', 'has an invalid host'],
    ['redis://h:0', 'has an invalid port'],
    ['redis://h:99999', 'has an invalid port'],
    ['redis://a,b', 'takes one host'],
    ['redis://h/x', 'expected a database number'],
    ['redis-sentinel://a:1', 'expected the master name'],
    ['redis-cluster://a:1/0', 'takes no path'],
    ['redis://u:%zz@h', 'badly percent-encoded'],
  ])('rejects %s', (input, message) => {
    expect(parseRedisUrl(input)).toContain(message);
  });
});
