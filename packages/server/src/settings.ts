import { ConfigError, settings as environmentSettings, type Settings } from '@flowforge/config';
import { createLogger, createMetrics, type Logger, type Metrics } from '@flowforge/observability';

/** The exit code of a service whose settings are invalid: EX_CONFIG from sysexits.h. */
export const EXIT_CONFIG = 78;

/** Options of {@link settingsOrExit}. */
export interface SettingsOrExitOptions {
  /** The settings to read. @default `settings` of @flowforge/config (the process's environment) */
  readonly settings?: Settings;
  /** Where the list of invalid variables goes. @default process.stderr */
  readonly stderr?: {
    /** Writes `text` as it is. */
    write(text: string): unknown;
  };
  /** Ends the process (tests pass their own). @default process.exit */
  readonly exit?: (code: number) => never;
}

/**
 * The service's settings, or, when the environment is invalid, every problem
 * written to stderr (no secret's value) and exit code 78 (EX_CONFIG), so a
 * supervisor tells a bad deploy from a crash. Call it first in `main.ts`.
 *
 * @example
 * ```ts
 * const settings = settingsOrExit();
 * ```
 */
export function settingsOrExit(options: SettingsOrExitOptions = {}): Settings {
  const settings = options.settings ?? environmentSettings;
  try {
    // The first field read parses the environment, and throws while it is invalid.
    void settings.app;
    return settings;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    (options.stderr ?? process.stderr).write(`${error.message}\n`);
    return (options.exit ?? ((code: number) => process.exit(code)))(EXIT_CONFIG);
  }
}

/** What every service starts from: its settings, its process logger and its metrics registry. */
export interface ServiceContext {
  /** The validated settings of the process's environment (`settings` of @flowforge/config). */
  readonly settings: Settings;
  /** JSON lines (or pretty in development) at LOG_LEVEL, `service` from APP_NAME. */
  readonly logger: Logger;
  /** A fresh `flowforge_` registry, for every package's metrics and GET /metrics. */
  readonly metrics: Metrics;
}

/**
 * {@link settingsOrExit}, then the logger and metrics registry the settings
 * describe: the first line of a service's `main.ts`.
 *
 * @example
 * ```ts
 * const { settings, logger, metrics } = createServiceContext();
 * ```
 */
export function createServiceContext(options: SettingsOrExitOptions = {}): ServiceContext {
  const settings = settingsOrExit(options);
  const logger = createLogger({
    level: settings.app.logLevel,
    format: settings.app.logFormat,
    service: settings.app.name,
  });
  return { settings, logger, metrics: createMetrics() };
}
