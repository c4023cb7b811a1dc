/** One dependency that /health/ready reports on. */
export interface ReadinessCheck {
  /** Name in the report, e.g. `postgres`. */
  readonly name: string;
  /** A required dependency that is down makes the app not ready (503); an optional one only degrades it. */
  readonly required: boolean;
  /** Resolves when the dependency answers; rejects (or times out) when it does not. */
  check(signal: AbortSignal): Promise<void>;
}

/**
 * A dependency the deployment has not configured: reported (with the variable
 * that would configure it) but never checked, and it changes no status.
 */
export interface UnconfiguredDependency {
  readonly name: string;
  readonly notConfigured: string;
}

interface CheckResult {
  readonly status: 'up' | 'down' | 'not_configured';
  readonly required: boolean;
  readonly latency_ms?: number;
  readonly error?: string;
  /** For `not_configured`: what to set. */
  readonly detail?: string;
}

export interface ReadinessReport {
  readonly status: 'ready' | 'degraded' | 'not_ready' | 'shutting_down';
  readonly checks: Readonly<Record<string, CheckResult>>;
}

/**
 * Runs every check concurrently, each bounded by `timeoutMs`, and sums them up:
 * `not_ready` when a required one is down, `degraded` when only optional ones are.
 */
export async function checkReadiness(
  checks: readonly (ReadinessCheck | UnconfiguredDependency)[],
  timeoutMs: number,
): Promise<ReadinessReport> {
  const results = await Promise.all(
    checks.map(async (dependency): Promise<[string, CheckResult]> => {
      if ('notConfigured' in dependency) {
        return [
          dependency.name,
          { status: 'not_configured', required: false, detail: `set ${dependency.notConfigured}` },
        ];
      }
      const started = performance.now();
      const signal = AbortSignal.timeout(timeoutMs);
      const latency = (): number => Math.round((performance.now() - started) * 10) / 10;
      try {
        await Promise.race([
          dependency.check(signal),
          new Promise<never>((_, reject) => {
            signal.addEventListener(
              'abort',
              () => reject(new Error(`no answer within ${timeoutMs} ms`)),
              {
                once: true,
              },
            );
          }),
        ]);
        return [
          dependency.name,
          { status: 'up', required: dependency.required, latency_ms: latency() },
        ];
      } catch (error) {
        // The message of a driver error, never its stack or connection string.
        const message = error instanceof Error ? error.message : 'check failed';
        return [
          dependency.name,
          { status: 'down', required: dependency.required, latency_ms: latency(), error: message },
        ];
      }
    }),
  );
  const down = results.filter(([, result]) => result.status === 'down');
  const status = down.some(([, result]) => result.required)
    ? 'not_ready'
    : down.length > 0
      ? 'degraded'
      : 'ready';
  return { status, checks: Object.fromEntries(results) };
}
