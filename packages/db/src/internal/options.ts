import { OptionChecks, type WholeNumberRange } from '@flowforge/kernel';
import { DatabaseError } from '../errors.js';

/** The numeric options of `createDatabase`. */
type NumericOption =
  'poolSize' | 'connectTimeoutMs' | 'statementTimeoutMs' | 'queryTimeoutMs' | 'idleTimeoutMs';

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
  queryTimeoutMs: { min: 1, max: 3_600_000 }, // DATABASE_QUERY_TIMEOUT_MS; no "none": a frozen server would hang us
  idleTimeoutMs: { min: 0, max: 3_600_000 }, // no variable; 0 = kept until close()
};

/**
 * Checks every numeric option that is set (undefined keeps the default),
 * before anything connects: a pool of -1 connections would otherwise surface
 * only after `connectTimeoutMs`, as a misleading UNAVAILABLE.
 *
 * @throws {DatabaseError} INVALID_OPTIONS naming every option out of range, in
 *   @flowforge/config's words, e.g.
 *   `poolSize: expected a positive whole number from 1 to 1000 (got -1)`.
 */
export function assertNumericOptions(
  options: Readonly<Partial<Record<NumericOption, unknown>>>,
): void {
  const checks = new OptionChecks();
  for (const [name, range] of Object.entries(NUMERIC_OPTIONS)) {
    // The fallback is never used: createDatabase applies its own defaults.
    checks.wholeNumber(name, options[name as NumericOption], range, range.min);
  }
  checks.throwIfAny((message) => new DatabaseError('INVALID_OPTIONS', message));
}
