import { FlowForgeError, defineErrors, type ErrorCatalog } from '@flowforge/kernel';

/**
 * Stable codes of {@link ConfigError}; switch on these, never on messages.
 * `status` is what an HTTP server answers when the error reaches its error
 * handler unhandled (a process that cannot load its settings is a bug of the
 * deployment, never of the client).
 *
 * | code | status | when | retry? |
 * |---|---|---|---|
 * | `CONFIG_INVALID` | 500 | a variable fails to parse, or production hardening refuses a setting | no |
 */
export type ConfigErrorCode = 'CONFIG_INVALID';

/** The table of {@link ConfigErrorCode}s: the HTTP status and retryability of each. */
const CONFIG_ERRORS: ErrorCatalog<ConfigErrorCode> = defineErrors({
  source: '@flowforge/config',
  name: 'ConfigError',
  codes: {
    CONFIG_INVALID: { status: 500, retryable: false },
  },
});

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
 * Thrown by {@link loadSettings} with every problem found at once. `code`,
 * `status` (500), `retryable` (false) and `reason` come from the kernel's
 * base, `FlowForgeError`.
 *
 * The message, `issues`, `util.inspect` and `JSON.stringify` of this error name
 * variables and reasons only: no value is ever copied into it, so a secret
 * cannot leak through a logged error. There is deliberately no `cause` (a zod
 * error may hold the input).
 */
export class ConfigError extends FlowForgeError<ConfigErrorCode> {
  /** The code every ConfigError carries. */
  static readonly code: ConfigErrorCode = 'CONFIG_INVALID';
  /** Every problem found, one per variable and reason, frozen. */
  readonly issues: readonly ConfigIssue[];

  /** @param issues - the problems found; the message lists each one. */
  constructor(issues: readonly ConfigIssue[]) {
    const lines = issues.map((issue) => `  - ${issue.variable}: ${issue.message}`);
    // No options: a cause could carry the value that was refused.
    super(
      CONFIG_ERRORS,
      'CONFIG_INVALID',
      `${issues.length} invalid environment variable${issues.length === 1 ? '' : 's'}:\n${lines.join('\n')}`,
    );
    this.issues = Object.freeze(issues.map((issue) => Object.freeze({ ...issue })));
  }
}
