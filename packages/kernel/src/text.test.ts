import { describe, expect, it } from 'vitest';
import { REDACTED, isExactOrigin, isUuid, redactSecrets } from './text.js';

describe('isUuid', () => {
  it('accepts canonical UUIDs of any version and case, and nothing else', () => {
    expect(isUuid('00000000-0000-0000-0000-000000000000')).toBe(true);
    expect(isUuid('0195C2B6-7A5E-7C3A-9F00-0123456789AB')).toBe(true);
    expect(isUuid('0195c2b6-7a5e-7c3a-9f00-0123456789ab\n')).toBe(false);
    expect(isUuid('{0195c2b6-7a5e-7c3a-9f00-0123456789ab}')).toBe(false);
    expect(isUuid('0195c2b67a5e7c3a9f000123456789ab')).toBe(false);
    expect(isUuid(42)).toBe(false);
  });
});

describe('redactSecrets', () => {
  it('replaces each secret and its URL-encoded form; empty secrets are ignored', () => {
    expect(REDACTED).toBe('[redacted]');
    expect(redactSecrets('postgres://app:p%40ss@h and p@ss', ['p@ss', ''])).toBe(
      'postgres://app:[redacted]@h and [redacted]',
    );
    expect(redactSecrets('nothing here', ['secret'])).toBe('nothing here');
  });

  it('finds a password as a URL holds it, where + and , stay as they are', () => {
    const url = new URL('postgres://app@db.example.com/app');
    url.password = 'a+b@c,d';
    expect(url.href).toContain('a+b%40c,d');
    expect(redactSecrets(`connect ${url.href} failed`, ['a+b@c,d'])).toBe(
      'connect postgres://app:[redacted]@db.example.com/app failed',
    );
    expect(redactSecrets('a%2Bb%40c%2Cd', ['a+b@c,d'])).toBe('[redacted]');
  });
});

describe('isExactOrigin', () => {
  it('takes origins as browsers send them and nothing else', () => {
    for (const origin of [
      'https://app.example.com',
      'http://localhost:5173',
      'http://[::1]:8080',
    ]) {
      expect(isExactOrigin(origin)).toBe(true);
    }
    for (const value of [
      '*',
      'https://*.example.com',
      'https://app.example.com/',
      'https://app.example.com:443',
      'https://app.example.com/path',
      'ftp://files.example.com',
      'app.example.com',
      'null',
      '',
    ]) {
      expect(isExactOrigin(value)).toBe(false);
    }
  });
});
