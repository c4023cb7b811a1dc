/** The accepted range of a numeric option, both ends included; `max` may be `Infinity`. */
export interface WholeNumberRange {
  /** The smallest accepted value. */
  readonly min: number;
  /** The largest accepted value. */
  readonly max: number;
}

/**
 * What a whole-number option accepts, in the words @flowforge/config uses for
 * the variable behind it (`expected a positive whole number from 1 to 1000`),
 * so an option and its environment variable fail alike.
 */
export function wholeNumberExpectation({ min, max }: WholeNumberRange): string {
  const kind = `${min >= 1 ? 'positive ' : ''}whole number`;
  return max === Infinity
    ? `expected a ${kind} of at least ${min}, or Infinity`
    : `expected a ${kind} from ${min} to ${max}`;
}

/** What a number option accepts: a finite number within the range (fractions too). */
function numberExpectation({ min, max }: WholeNumberRange): string {
  return max === Infinity
    ? `expected a finite number of at least ${min}`
    : `expected a number from ${min} to ${max}`;
}

/** What a handle `name` may be: it labels metrics and logs. */
const HANDLE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * A refused option value as a message shows it: numbers and booleans as
 * written, strings quoted and cut to 64 characters, anything else by its type
 * only (`an object`). For a package's own checks, in the same words as
 * {@link OptionChecks}'; never pass it a secret.
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) {
    return String(value);
  }
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 64));
  return typeof value === 'object' || typeof value === 'undefined'
    ? `an ${typeof value}`
    : `a ${typeof value}`;
}

/**
 * Checks a factory's options and collects every problem, so one error names
 * them all (`poolSize: expected a positive whole number from 1 to 1000 (got
 * -1); name: expected 1 to 64 letters, digits, _ . : or - (got "a b")`).
 * Each check returns the value, or the fallback when it is unset or wrong;
 * call {@link OptionChecks.throwIfAny} before using any of them.
 *
 * Never pass a secret to a check: a refused value is quoted in the message.
 *
 * @example
 * ```ts
 * import { OptionChecks } from '@flowforge/kernel';
 *
 * const checks = new OptionChecks();
 * const poolSize = checks.wholeNumber('poolSize', 5, { min: 1, max: 1000 }, 10);
 * const name = checks.handleName('name', undefined, 'default');
 * checks.throwIfAny((message) => new RangeError(message));
 * console.log(poolSize, name); // 5 default
 * ```
 */
export class OptionChecks {
  readonly #problems: string[] = [];

  /** Every problem found so far, in the order the checks ran. */
  get problems(): readonly string[] {
    return [...this.#problems];
  }

  /** Records a problem a check of the package's own found (`<option>: <what it expects>`). */
  problem(message: string): void {
    this.#problems.push(message);
  }

  /**
   * A whole number within `range`, or `fallback` when unset (`undefined`).
   * With `max: Infinity`, `Infinity` itself is accepted ("no limit").
   */
  wholeNumber(name: string, value: unknown, range: WholeNumberRange, fallback: number): number {
    if (value === undefined) return fallback;
    const unlimited = range.max === Infinity && value === Infinity;
    if (
      typeof value !== 'number' ||
      !(unlimited || Number.isInteger(value)) ||
      value < range.min ||
      value > range.max
    ) {
      this.#problems.push(
        `${name}: ${wholeNumberExpectation(range)} (got ${describeValue(value)})`,
      );
      return fallback;
    }
    return value;
  }

  /**
   * A finite number within `range` (fractions accepted), or `fallback` when
   * unset. With `max: Infinity` any finite number from `min` up.
   */
  number(name: string, value: unknown, range: WholeNumberRange, fallback: number): number {
    if (value === undefined) return fallback;
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      value < range.min ||
      value > range.max
    ) {
      this.#problems.push(`${name}: ${numberExpectation(range)} (got ${describeValue(value)})`);
      return fallback;
    }
    return value;
  }

  /** A boolean, or `fallback` when unset. */
  boolean(name: string, value: unknown, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') {
      this.#problems.push(`${name}: expected true or false (got ${describeValue(value)})`);
      return fallback;
    }
    return value;
  }

  /** One of `allowed`, or `fallback` when unset. */
  oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[], fallback: T): T {
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.#problems.push(
        `${name}: expected one of ${allowed.join(', ')} (got ${describeValue(value)})`,
      );
      return fallback;
    }
    return value as T;
  }

  /**
   * A handle name (it labels metrics and logs): 1 to 64 letters, digits,
   * `_ . : -`; `fallback` when unset.
   */
  handleName(name: string, value: unknown, fallback: string): string {
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || !HANDLE_NAME.test(value)) {
      this.#problems.push(
        `${name}: expected 1 to 64 letters, digits, _ . : or - (got ${describeValue(value)})`,
      );
      return fallback;
    }
    return value;
  }

  /**
   * Throws `toError(message)` when any check failed, the message listing
   * every problem joined by `; `.
   */
  throwIfAny(toError: (message: string) => Error): void {
    if (this.#problems.length > 0) throw toError(this.#problems.join('; '));
  }
}
