import { isFlowForgeError } from '@flowforge/kernel';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';

describe('ConfigError', () => {
  const issues = [
    { variable: 'PORT', kind: 'invalid', message: 'expected a whole number from 0 to 65535' },
    { variable: 'SECRET_KEY', kind: 'insecure', message: 'must be set' },
  ] as const;

  it('is CONFIG_INVALID: status 500, not retryable, a FlowForgeError of @flowforge/config', () => {
    const error = new ConfigError(issues);
    expect(error.code).toBe('CONFIG_INVALID');
    expect(ConfigError.code).toBe('CONFIG_INVALID');
    expect(error.status).toBe(500);
    expect(error.retryable).toBe(false);
    expect(error.source).toBe('@flowforge/config');
    expect(error.name).toBe('ConfigError');
    expect(isFlowForgeError(error, 'CONFIG_INVALID')).toBe(true);
  });

  it('lists every issue under the prefix, has no cause, and freezes the issues', () => {
    const error = new ConfigError(issues);
    expect(error.message).toBe(
      '@flowforge/config: 2 invalid environment variables:\n' +
        '  - PORT: expected a whole number from 0 to 65535\n' +
        '  - SECRET_KEY: must be set',
    );
    expect(error.reason).toBe(error.message.slice('@flowforge/config: '.length));
    expect(error.cause).toBeUndefined();
    expect(error.issues).toEqual(issues);
    expect(Object.isFrozen(error.issues)).toBe(true);
    expect(Object.isFrozen(error.issues[0])).toBe(true);
    expect(new ConfigError([issues[0]]).message).toMatch(
      /^@flowforge\/config: 1 invalid environment variable:\n/,
    );
  });
});
