import { describe, expect, it } from 'vitest';
import { OptionChecks, describeValue, wholeNumberExpectation } from './options.js';

const toError = (message: string): Error => new RangeError(message);

describe('OptionChecks', () => {
  it('returns values and fallbacks, and throws nothing when all are valid', () => {
    const checks = new OptionChecks();
    expect(checks.wholeNumber('poolSize', 7, { min: 1, max: 10 }, 5)).toBe(7);
    expect(checks.wholeNumber('poolSize', undefined, { min: 1, max: 10 }, 5)).toBe(5);
    expect(checks.wholeNumber('timeoutMs', 0, { min: 0, max: 10 }, 5)).toBe(0);
    expect(checks.boolean('tls', false, true)).toBe(false);
    expect(checks.boolean('tls', undefined, true)).toBe(true);
    expect(checks.oneOf('mode', 'b', ['a', 'b'] as const, 'a')).toBe('b');
    expect(checks.handleName('name', 'api:primary-1.x_y', 'default')).toBe('api:primary-1.x_y');
    expect(checks.handleName('name', undefined, 'default')).toBe('default');
    expect(checks.problems).toEqual([]);
    expect(() => checks.throwIfAny(toError)).not.toThrow();
  });

  it('collects every problem into one error, in config’s words, values described not dumped', () => {
    const checks = new OptionChecks();
    checks.wholeNumber('poolSize', -1, { min: 1, max: 1000 }, 5);
    checks.wholeNumber('timeoutMs', 1.5, { min: 0, max: 10 }, 5);
    checks.wholeNumber('retries', '3', { min: 0, max: 10 }, 5);
    checks.wholeNumber('limit', Number.NaN, { min: 0, max: 10 }, 5);
    checks.boolean('tls', 'yes', true);
    checks.oneOf('mode', 'c', ['a', 'b'], 'a');
    checks.handleName('name', 'a b', 'default');
    checks.handleName('name', 'x'.repeat(65), 'default');
    checks.handleName('name', { toString: () => 'x' }, 'default');
    checks.problem('url: expected redis: or rediss:');
    expect(checks.problems).toEqual([
      'poolSize: expected a positive whole number from 1 to 1000 (got -1)',
      'timeoutMs: expected a whole number from 0 to 10 (got 1.5)',
      'retries: expected a whole number from 0 to 10 (got "3")',
      'limit: expected a whole number from 0 to 10 (got NaN)',
      'tls: expected true or false (got "yes")',
      'mode: expected one of a, b (got "c")',
      'name: expected 1 to 64 letters, digits, _ . : or - (got "a b")',
      `name: expected 1 to 64 letters, digits, _ . : or - (got "${'x'.repeat(64)}")`,
      'name: expected 1 to 64 letters, digits, _ . : or - (got an object)',
      'url: expected redis: or rediss:',
    ]);
    expect(() => checks.throwIfAny(toError)).toThrow(RangeError);
    expect(() => checks.throwIfAny(toError)).toThrow(
      /^poolSize: .*; url: expected redis: or rediss:$/,
    );
  });

  it('takes Infinity as a whole number only when the range is unlimited', () => {
    const checks = new OptionChecks();
    expect(checks.wholeNumber('maxAttempts', Infinity, { min: 1, max: Infinity }, 3)).toBe(
      Infinity,
    );
    expect(checks.wholeNumber('maxAttempts', 7, { min: 1, max: Infinity }, 3)).toBe(7);
    expect(checks.problems).toEqual([]);
    checks.wholeNumber('maxAttempts', 0.5, { min: 1, max: Infinity }, 3);
    checks.wholeNumber('poolSize', Infinity, { min: 1, max: 10 }, 3);
    expect(checks.problems).toEqual([
      'maxAttempts: expected a positive whole number of at least 1, or Infinity (got 0.5)',
      'poolSize: expected a positive whole number from 1 to 10 (got Infinity)',
    ]);
  });

  it('checks finite numbers, fractions included', () => {
    const checks = new OptionChecks();
    expect(checks.number('jitter', 0.25, { min: 0, max: 1 }, 0.5)).toBe(0.25);
    expect(checks.number('factor', 1.5, { min: 1, max: Infinity }, 2)).toBe(1.5);
    expect(checks.number('factor', undefined, { min: 1, max: Infinity }, 2)).toBe(2);
    expect(checks.problems).toEqual([]);
    expect(checks.number('jitter', 1.5, { min: 0, max: 1 }, 0.5)).toBe(0.5);
    checks.number('factor', Infinity, { min: 1, max: Infinity }, 2);
    checks.number('factor', Number.NaN, { min: 1, max: Infinity }, 2);
    checks.number('factor', '2', { min: 1, max: Infinity }, 2);
    expect(checks.problems).toEqual([
      'jitter: expected a number from 0 to 1 (got 1.5)',
      'factor: expected a finite number of at least 1 (got Infinity)',
      'factor: expected a finite number of at least 1 (got NaN)',
      'factor: expected a finite number of at least 1 (got "2")',
    ]);
  });

  it('returns the fallback for a refused value', () => {
    const checks = new OptionChecks();
    expect(checks.wholeNumber('poolSize', 0, { min: 1, max: 2 }, 1)).toBe(1);
    expect(checks.oneOf('mode', 'z', ['a'], 'a')).toBe('a');
  });

  it('does not let a caller change the recorded problems', () => {
    const checks = new OptionChecks();
    checks.problem('a: b');
    (checks.problems as string[]).length = 0;
    expect(checks.problems).toEqual(['a: b']);
  });
});

describe('wholeNumberExpectation', () => {
  it('says positive only for ranges that start at 1 or above', () => {
    expect(wholeNumberExpectation({ min: 1, max: 5 })).toBe(
      'expected a positive whole number from 1 to 5',
    );
    expect(wholeNumberExpectation({ min: 0, max: 5 })).toBe('expected a whole number from 0 to 5');
  });
});

describe('describeValue', () => {
  it('shows numbers and booleans as written, strings quoted and cut, the rest by type', () => {
    expect(describeValue(-1)).toBe('-1');
    expect(describeValue(false)).toBe('false');
    expect(describeValue(null)).toBe('null');
    expect(describeValue('x'.repeat(70))).toBe(JSON.stringify('x'.repeat(64)));
    expect(describeValue({ secret: 'no' })).toBe('an object');
    expect(describeValue(undefined)).toBe('an undefined');
    expect(describeValue(() => 1)).toBe('a function');
  });
});
