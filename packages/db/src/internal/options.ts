import { DatabaseError } from '../errors.js';

/** The accepted range of one numeric option of `createDatabase`. */
interface WholeNumberRange {
  readonly min: number;
  readonly max: number;
}

/** The numeric options of `createDatabase`. */
type NumericOption = 'poolSize' | 'connectTimeoutMs' | 'statementTimeoutMs' | 'idleTimeoutMs';

/**
 * What each numeric option accepts. The ranges of the options that
 * `settings.database` carries are those of their variables in @flowforge/config
 * (packages/config/src/schema.ts), so a value the environment may hold is never
 * refused here.
 */
const NUMERIC_OPTIONS: Readonly<Record<NumericOption, WholeNumberRange>> = {
  poolSize: { min: 1, max: 1000 }, // DATABASE_POOL_SIZE
  connectTimeoutMs: { min: 1, max: 600_000 }, // DATABASE_CONNECT_TIMEOUT_MS; 0 would wait forever
  statementTimeoutMs: { min: 0, max: 3_600_000 }, // DATABASE_STATEMENT_TIMEOUT_MS; 0 = none
  idleTimeoutMs: { min: 0, max: 3_600_000 }, // no variable; 0 = kept until close()
};

/**
 * What a whole-number option accepts, in @flowforge/config's words for the same
 * ranges ("expected a positive whole number from 1 to 1000"), so an option and
 * the variable behind it fail alike.
 */
function expectation({ min, max }: WholeNumberRange): string {
  return `expected a ${min >= 1 ? 'positive ' : ''}whole number from ${min} to ${max}`;
}

/** The value as a reader needs it: numbers as written, other types by their type only. */
function described(value: unknown): string {
  if (typeof value === 'number' || value === null) return String(value);
  return `a ${typeof value}`;
}

/**
 * Checks every numeric option that is set (undefined keeps the default),
 * before anything connects: a pool of -1 connections would otherwise surface
 * only after `connectTimeoutMs`, as a misleading UNAVAILABLE.
 *
 * @throws {DatabaseError} INVALID_OPTIONS naming every option out of range, e.g.
 *   `poolSize: expected a positive whole number from 1 to 1000 (got -1)`.
 */
export function assertNumericOptions(
  options: Readonly<Partial<Record<NumericOption, unknown>>>,
): void {
  const problems: string[] = [];
  for (const [name, range] of Object.entries(NUMERIC_OPTIONS)) {
    const value = options[name as NumericOption];
    if (value === undefined) continue;
    if (
      typeof value !== 'number' ||
      !Number.isInteger(value) ||
      value < range.min ||
      value > range.max
    ) {
      problems.push(`${name}: ${expectation(range)} (got ${described(value)})`);
    }
  }
  if (problems.length > 0) throw new DatabaseError('INVALID_OPTIONS', problems.join('; '));
}
