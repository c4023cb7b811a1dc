import { describe, expect, it } from 'vitest';
import { bearerTokenCheck } from './metrics-endpoint.js';

describe('bearerTokenCheck', () => {
  it('lets through the token in any case of the scheme, and nothing else', () => {
    const entitled = bearerTokenCheck('scrape-token');
    expect(entitled('Bearer scrape-token')).toBe(true);
    expect(entitled('bearer   scrape-token ')).toBe(true);
    for (const refused of [
      undefined,
      '',
      'Bearer',
      'Bearer wrong',
      'Basic scrape-token',
      'scrape-token',
    ]) {
      expect(entitled(refused), String(refused)).toBe(false);
    }
  });

  it('with an empty token lets every request through: the protection is off', () => {
    const open = bearerTokenCheck('');
    expect(open(undefined)).toBe(true);
    expect(open('Bearer anything')).toBe(true);
  });
});
