import { OptionChecks } from '@flowforge/kernel';
import type { Logger } from '@flowforge/observability';
import { ServerError } from './errors.js';

/** One dependency that readiness reports on. */
export interface ReadinessCheck {
  /** Its name in the report, e.g. `postgres`; unique in one {@link Readiness}. */
  readonly name: string;
  /** A required dependency that is down makes the service not ready (503); an optional one only degrades it. @default true */
  readonly required?: boolean;
  /** Resolves when the dependency answers; rejects (or runs out of time) when it does not. */
  check(signal: AbortSignal): Promise<unknown>;
  /** This check's own time limit, in ms. @default the readiness's `timeoutMs` */
  readonly timeoutMs?: number;
}

/** Anything with a `health()` that rejects while it is down: every `@flowforge/*` store handle. */
export interface HealthChecked {
  /** Resolves when the store answers; rejects while it is down. */
  health(): Promise<unknown>;
}

/** One dependency's line of the report. */
export interface CheckResult {
  /** `up`: it answered in time; `down`: it failed or ran out of time; `not_configured`: left out by the deployment. */
  readonly status: 'up' | 'down' | 'not_configured';
  /** Whether the service can serve without it. */
  readonly required: boolean;
  /** How long the check took, in ms (one decimal). */
  readonly latency_ms?: number;
  /** For `down`: why, as the handle's error said it. */
  readonly error?: string;
  /** For `not_configured`: what to set. */
  readonly detail?: string;
}

/**
 * The JSON of GET /health/ready: `not_ready` (503) when a required dependency is
 * down, `degraded` (200) when only optional ones are, `shutting_down` (503) once
 * the service is stopping.
 */
export interface ReadinessReport {
  /** The sum of the checks (see above). */
  readonly status: 'ready' | 'degraded' | 'not_ready' | 'shutting_down';
  /** Each dependency's result, by name; empty once shutting down. */
  readonly checks: Readonly<Record<string, CheckResult>>;
}

/** Options of {@link createReadiness}. */
export interface ReadinessOptions {
  /** How long one check may take before it counts as down, in ms. @default 2_000 */
  readonly timeoutMs?: number;
  /**
   * How long a report is reused, in ms, so that a storm of probes checks each
   * dependency at most once per this period; probes that arrive while a run is
   * in progress share it. 0 runs the checks for every probe (still shared). @default 1_000
   */
  readonly cacheMs?: number;
  /** The clock, in ms. @default performance.now */
  readonly now?: () => number;
  /**
   * Told when a check goes down (warn, with the error: the details a public
   * probe does not see) and when it comes back (info). Once per change, not per probe.
   */
  readonly logger?: Logger;
}

/**
 * The registry of a service's dependency checks. It is a lifecycle component:
 * when shutdown begins ({@link Readiness.drain}) the report turns `shutting_down`
 * before anything else stops, so load balancers stop sending new requests.
 */
export interface Readiness {
  /** Its name as a lifecycle component. */
  readonly name: 'readiness';
  /** Adds a check. @throws {ServerError} INVALID_OPTIONS for a name already taken or a bad timeout */
  add(check: ReadinessCheck): void;
  /**
   * Adds a store handle: checked through its `health()` when given, reported as
   * `not_configured` (naming `variable`) when `null`, so the report shows what
   * the deployment left out (a required one left out makes it `not_ready`). Optional by default: a store whose routes answer
   * 503 degrades the service rather than taking it out of the load balancer.
   */
  addStore(
    name: string,
    store: HealthChecked | null,
    options: { readonly variable: string; readonly required?: boolean },
  ): void;
  /** True when a check named `name` was added. */
  has(name: string): boolean;
  /** The current report (see `cacheMs`). */
  report(): Promise<ReadinessReport>;
  /** True once shutdown began. */
  readonly shuttingDown: boolean;
  /** Turns the report to `shutting_down` for good. */
  drain(): void;
}

const LIMIT = { min: 1, max: 600_000 } as const;
const invalidOptions = (message: string): ServerError =>
  new ServerError('INVALID_OPTIONS', message);

type Entry =
  | {
      readonly name: string;
      readonly required: boolean;
      readonly run: ReadinessCheck['check'];
      readonly timeoutMs: number;
    }
  | { readonly name: string; readonly notConfigured: string; readonly required: boolean };

/**
 * What anyone may see of a report: the status, and each dependency's status
 * and whether it is required, without the error, latency or detail (a driver's
 * message names hosts, ports and users). The bindings serve it to a probe that
 * does not send the metrics token.
 */
export function publicReadinessReport(report: ReadinessReport): ReadinessReport {
  const checks: Record<string, CheckResult> = {};
  for (const [name, { status, required }] of Object.entries(report.checks)) {
    checks[name] = { status, required };
  }
  return { status: report.status, checks };
}

/** The HTTP status of a report: 503 when not ready or shutting down, else 200. */
export function readinessStatusCode(report: ReadinessReport): 200 | 503 {
  return report.status === 'not_ready' || report.status === 'shutting_down' ? 503 : 200;
}

const SHUTTING_DOWN: ReadinessReport = Object.freeze({
  status: 'shutting_down',
  checks: Object.freeze({}),
});

/**
 * Creates the readiness registry.
 *
 * @example
 * ```ts
 * const readiness = createReadiness();
 * readiness.add({ name: 'postgres', check: () => database.health() });
 * readiness.addStore('redis', redis, { variable: 'REDIS_URL' });
 * const report = await readiness.report(); // { status: 'ready', checks: { postgres: { status: 'up', … } } }
 * ```
 */
export function createReadiness(options: ReadinessOptions = {}): Readiness {
  const checks = new OptionChecks();
  const timeoutMs = checks.wholeNumber('timeoutMs', options.timeoutMs, LIMIT, 2_000);
  const cacheMs = checks.wholeNumber('cacheMs', options.cacheMs, { min: 0, max: LIMIT.max }, 1_000);
  checks.throwIfAny(invalidOptions);
  const now = options.now ?? (() => performance.now());
  const { logger } = options;
  const entries: Entry[] = [];
  // The last status of each check, so a change is logged once.
  const lastStatus = new Map<string, CheckResult['status']>();
  let shuttingDown = false;
  // The last run: shared while in progress, reused for cacheMs once finished.
  let last:
    { readonly report: Promise<ReadinessReport>; finishedAt: number | undefined } | undefined;

  function claim(name: string): void {
    if (entries.some((entry) => entry.name === name)) {
      throw new ServerError(
        'INVALID_OPTIONS',
        `readiness already has a check named ${JSON.stringify(name)}`,
      );
    }
  }

  async function run(entry: Entry): Promise<[string, CheckResult]> {
    if ('notConfigured' in entry) {
      return [
        entry.name,
        {
          status: 'not_configured',
          required: entry.required,
          detail: `set ${entry.notConfigured}`,
        },
      ];
    }
    const started = now();
    const latency = (): number => Math.round((now() - started) * 10) / 10;
    const signal = AbortSignal.timeout(entry.timeoutMs);
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        entry.run(signal),
        new Promise<never>((_, reject) => {
          onAbort = () => reject(new Error(`no answer within ${entry.timeoutMs} ms`));
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      return [entry.name, { status: 'up', required: entry.required, latency_ms: latency() }];
    } catch (error) {
      // The message only, never the stack; @flowforge/* messages never quote a secret.
      const message = error instanceof Error ? error.message : 'check failed';
      return [
        entry.name,
        { status: 'down', required: entry.required, latency_ms: latency(), error: message },
      ];
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  async function runAll(): Promise<ReadinessReport> {
    const results = await Promise.all(entries.map(run));
    for (const [name, result] of results) noteChange(name, result);
    const down = results.filter(([, result]) => result.status === 'down');
    // A required store the deployment left out cannot serve either.
    const missing = results.some(([, r]) => r.status === 'not_configured' && r.required);
    const status =
      missing || down.some(([, result]) => result.required)
        ? 'not_ready'
        : down.length > 0
          ? 'degraded'
          : 'ready';
    return { status, checks: Object.fromEntries(results) };
  }

  function noteChange(name: string, result: CheckResult): void {
    const before = lastStatus.get(name);
    if (before === result.status) return;
    lastStatus.set(name, result.status);
    const fields = { check: name, required: result.required };
    if (result.status === 'down') {
      logger?.warn({ ...fields, error: result.error }, 'readiness check down');
    } else if (result.status === 'up' && before !== undefined) {
      logger?.info(fields, 'readiness check up again');
    }
  }

  const readiness: Readiness = {
    name: 'readiness',
    add(check) {
      claim(check.name);
      const own = new OptionChecks();
      const limit = own.wholeNumber(`${check.name}.timeoutMs`, check.timeoutMs, LIMIT, timeoutMs);
      own.throwIfAny(invalidOptions);
      entries.push({
        name: check.name,
        required: check.required ?? true,
        run: check.check.bind(check),
        timeoutMs: limit,
      });
      last = undefined;
    },
    addStore(name, store, { variable, required = false }) {
      if (store === null) {
        claim(name);
        entries.push({ name, notConfigured: variable, required });
        last = undefined;
      } else {
        readiness.add({ name, required, check: () => store.health() });
      }
    },
    has: (name) => entries.some((entry) => entry.name === name),
    report() {
      if (shuttingDown) return Promise.resolve(SHUTTING_DOWN);
      if (
        last === undefined ||
        (last.finishedAt !== undefined && now() - last.finishedAt >= cacheMs)
      ) {
        const run: NonNullable<typeof last> = { report: runAll(), finishedAt: undefined };
        last = run;
        // A report's age counts from when it finished, so a slow check is not rerun at once.
        void run.report.then(() => (run.finishedAt = now()));
      }
      // A probe that waited on a run while shutdown began is told so, not `ready`.
      return last.report.then((report) => (shuttingDown ? SHUTTING_DOWN : report));
    },
    get shuttingDown() {
      return shuttingDown;
    },
    drain() {
      shuttingDown = true;
    },
  };
  return readiness;
}
