/** Stable codes of {@link ConfigError}; switch on these, never on messages. */
export type ConfigErrorCode = 'CONFIG_INVALID';

/** One problem with one environment variable. Never carries the variable's value. */
export interface ConfigIssue {
  /** The environment variable, e.g. `DATABASE_URL`. */
  readonly variable: string;
  /**
   * `invalid`: the value does not parse (or, for APP_ENV, it is unset and so
   * production's checks refused the environment); `insecure`: refused for a
   * production-like APP_ENV.
   */
  readonly kind: 'invalid' | 'insecure';
  /** Why, in words that never include the value. */
  readonly message: string;
}

/**
 * Thrown by {@link loadSettings} with every problem found at once.
 *
 * The message, `issues`, `util.inspect` and `JSON.stringify` of this error name
 * variables and reasons only: no value is ever copied into it, so a secret
 * cannot leak through a logged error. There is deliberately no `cause` (a zod
 * error may hold the input).
 */
export class ConfigError extends Error {
  /** The code every ConfigError carries. */
  static readonly code: ConfigErrorCode = 'CONFIG_INVALID';
  /** Always `CONFIG_INVALID`; switch on this, never on the message. */
  readonly code: ConfigErrorCode = 'CONFIG_INVALID';
  /** Every problem found, one per variable and reason, frozen. */
  readonly issues: readonly ConfigIssue[];

  /** @param issues - the problems found; the message lists each one. */
  constructor(issues: readonly ConfigIssue[]) {
    const lines = issues.map((issue) => `  - ${issue.variable}: ${issue.message}`);
    super(
      `@flowforge/config: ${issues.length} invalid environment variable${issues.length === 1 ? '' : 's'}:\n${lines.join('\n')}`,
    );
    this.name = 'ConfigError';
    this.issues = Object.freeze(issues.map((issue) => Object.freeze({ ...issue })));
  }
}
