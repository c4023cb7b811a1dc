import { OptionChecks } from '@flowforge/kernel';
import { flushLogger, type Logger } from '@flowforge/observability';
import { ServerError } from './errors.js';

/**
 * One part of a service that starts and stops with it: a store, the auth
 * verifier, the event streams, the HTTP listener. Every method is optional.
 */
export interface Component {
  /** Its name in logs, e.g. `postgres` or `http`. */
  readonly name: string;
  /** Starts it; components start one by one, in the order they were added. */
  start?(): Promise<unknown> | void;
  /**
   * Shutdown has begun: stop taking new work now (readiness answers 503, event
   * streams end, responses close their connections). Called on every component
   * at once, before any `stop`, so the listener's drain is not held up by them.
   */
  drain?(): void;
  /**
   * Stops it; components stop one by one, in the reverse order (the listener,
   * added last, first; the stores it used after it). `signal` aborts at the
   * shutdown deadline: whatever is still in progress is then cut short.
   */
  stop?(signal: AbortSignal): Promise<unknown> | void;
}

/** How a stop ended: everything finished in time, the deadline cut something short, or a stop threw. */
export type StopOutcome = 'drained' | 'deadline' | 'failed';

/**
 * Exit codes of {@link Lifecycle.exitOnSignals} and of a failed start:
 * 0 when every component stopped in time, 1 otherwise (sysexits has no code
 * for "stopped late"; supervisors treat any non-zero alike).
 */
export const EXIT_CODES: Readonly<Record<StopOutcome | 'startFailed', number>> = Object.freeze({
  drained: 0,
  deadline: 1,
  failed: 1,
  startFailed: 1,
});

/** Options of {@link createLifecycle}. */
export interface LifecycleOptions {
  /** Gets a line per start, stop and failure; flushed before the process exits. */
  readonly logger: Logger;
  /** How long shutdown may take, from the signal to the last component stopped, in ms. @default 10_000 */
  readonly shutdownTimeoutMs?: number;
  /**
   * How long after the deadline `stop()` still waits for components that
   * ignore their aborted signal, in ms, before it reports `deadline` anyway;
   * `exitOnSignals` exits the process then. @default 5_000
   */
  readonly graceMs?: number;
  /**
   * How long to wait after the drain before stopping anything, in ms: load
   * balancers need a probe or two to see readiness turn 503, and until then they
   * still send new connections, which a closed listener would refuse. Counted
   * within `shutdownTimeoutMs`. @default 0
   */
  readonly drainDelayMs?: number;
  /** Ends the process (tests pass their own). @default process.exit */
  readonly exit?: (code: number) => void;
}

/** A handle that only needs closing: every `@flowforge/*` store handle. */
export interface Closable {
  /** Releases what it holds (its pool); resolves once it has. */
  close(): Promise<unknown>;
}

/** Where a listener (`fastifyListener`, `nodeListener`) listens: `settings.app` fits. */
export interface ListenOptions {
  /** The interface to bind, e.g. `0.0.0.0` (HOST). */
  readonly host: string;
  /** The TCP port; 0 picks a free one (PORT). */
  readonly port: number;
}

/** Ordered start and graceful stop of a service's components. */
export interface Lifecycle {
  /** Adds a component (see {@link Component} for the order); returns it. */
  add<C extends Component>(component: C): C;
  /**
   * Adds a handle that only needs closing (a store), under `name`; `null` (not
   * configured) is skipped. Returns the handle.
   */
  closes<H extends Closable | null>(name: string, handle: H): H;
  /**
   * Starts every component in order. When one fails, the ones already started
   * are stopped (in reverse) and its error is thrown. Once shutdown began (a
   * signal during start), no further component starts.
   */
  start(): Promise<void>;
  /**
   * What a `main.ts` ends with: {@link Lifecycle.exitOnSignals}, then
   * {@link Lifecycle.start}; when starting fails, the error is logged, the logger
   * flushed and the process exits with {@link EXIT_CODES} `startFailed`.
   */
  run(signals?: readonly NodeJS.Signals[]): Promise<void>;
  /** Begins shutdown: every component's `drain`. Idempotent; {@link Lifecycle.stop} calls it. */
  drain(): void;
  /**
   * Drains, then stops every component in reverse order within the shutdown
   * deadline. Idempotent: later calls return the first one's outcome.
   */
  stop(): Promise<StopOutcome>;
  /** True once shutdown began. */
  readonly stopping: boolean;
  /**
   * On the first of `signals`, stops, flushes the logger and exits with
   * {@link EXIT_CODES}; later signals are ignored (a second Ctrl-C would
   * otherwise kill the process and lose the lines still queued). A backstop
   * exits with 1 if stopping hangs past the deadline and `graceMs`.
   * @default signals ['SIGTERM', 'SIGINT']
   */
  exitOnSignals(signals?: readonly NodeJS.Signals[]): void;
}

/**
 * Creates the lifecycle of one service.
 *
 * @example
 * ```ts
 * const lifecycle = createLifecycle({ logger, shutdownTimeoutMs: settings.app.shutdownTimeoutMs });
 * lifecycle.closes('postgres', database);
 * lifecycle.add(readiness);
 * lifecycle.add(fastifyListener(app, { host: settings.app.host, port: settings.app.port }));
 * await lifecycle.start();
 * lifecycle.exitOnSignals();
 * ```
 */
export function createLifecycle(options: LifecycleOptions): Lifecycle {
  const checks = new OptionChecks();
  const shutdownTimeoutMs = checks.wholeNumber(
    'shutdownTimeoutMs',
    options.shutdownTimeoutMs,
    { min: 1, max: 3_600_000 },
    10_000,
  );
  const graceMs = checks.wholeNumber('graceMs', options.graceMs, { min: 0, max: 600_000 }, 5_000);
  const drainDelayMs = checks.wholeNumber(
    'drainDelayMs',
    options.drainDelayMs,
    { min: 0, max: 600_000 },
    0,
  );
  checks.throwIfAny((message) => new ServerError('INVALID_OPTIONS', message));
  const { logger } = options;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const components: Component[] = [];
  const started: Component[] = [];
  let draining = false;
  let stopping: Promise<StopOutcome> | undefined;

  /** Components whose stop was called: none is stopped twice (a pool closed twice throws). */
  const stopped = new Set<Component>();

  /**
   * Stops `list` in reverse order within the deadline. Every stop is called,
   * even after one hangs: past the deadline and `graceMs`, each remaining stop is
   * called with the aborted signal and not waited for.
   */
  async function stopInReverse(
    list: readonly Component[],
    budgetMs = shutdownTimeoutMs,
  ): Promise<StopOutcome> {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error('shutdown deadline')), budgetMs);
    let graceTimer: NodeJS.Timeout | undefined;
    let hung = false;
    const graceOver = new Promise<void>((resolve) => {
      deadline.signal.addEventListener('abort', () => {
        graceTimer = setTimeout(resolve, graceMs);
      });
    });
    void graceOver.then(() => (hung = true));
    let failed = false;
    try {
      for (const component of [...list].reverse()) {
        if (stopped.has(component)) continue;
        stopped.add(component);
        const began = performance.now();
        let done = false;
        const stopping = (async () => component.stop?.(deadline.signal))().then(
          () =>
            void logger.debug(
              { component: component.name, ms: Math.round(performance.now() - began) },
              'stopped',
            ),
          (error: unknown) => {
            failed = true;
            logger.error({ err: error, component: component.name }, 'stop failed');
          },
        );
        await Promise.race([stopping.finally(() => (done = true)), graceOver]);
        if (hung && !done) {
          logger.error(
            { component: component.name, graceMs },
            'components still stopping after the deadline',
          );
        }
      }
    } finally {
      clearTimeout(timer);
      clearTimeout(graceTimer);
    }
    return deadline.signal.aborted ? 'deadline' : failed ? 'failed' : 'drained';
  }

  const lifecycle: Lifecycle = {
    add(component) {
      if (stopping)
        throw new ServerError('INVALID_OPTIONS', `cannot add ${component.name}: shutdown began`);
      components.push(component);
      return component;
    },
    closes(name, handle) {
      if (handle !== null) lifecycle.add({ name, stop: () => handle.close() });
      return handle;
    },
    async start() {
      for (const component of components) {
        if (draining) return; // a signal arrived: stop() takes it from here
        if (started.includes(component)) continue;
        try {
          await component.start?.();
        } catch (error) {
          logger.error({ err: error, component: component.name }, 'start failed');
          await stopInReverse(started);
          started.length = 0;
          throw error;
        }
        started.push(component);
      }
    },
    drain() {
      if (draining) return;
      draining = true;
      for (const component of [...components].reverse()) {
        try {
          component.drain?.();
        } catch (error) {
          logger.error({ err: error, component: component.name }, 'drain failed');
        }
      }
    },
    stop() {
      stopping ??= (async () => {
        lifecycle.drain();
        if (drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, drainDelayMs));
        // Every component, started or not: a store handed over but never started still holds a pool.
        return stopInReverse(components, Math.max(1, shutdownTimeoutMs - drainDelayMs));
      })();
      return stopping;
    },
    get stopping() {
      return draining;
    },
    async run(signals) {
      lifecycle.exitOnSignals(signals);
      try {
        await lifecycle.start();
      } catch (error) {
        // start() logged it and stopped what had started.
        logger.fatal({ err: error }, 'could not start');
        await flushLogger(logger).catch(() => undefined);
        exit(EXIT_CODES.startFailed);
      }
    },
    exitOnSignals(signals = ['SIGTERM', 'SIGINT']) {
      let handled = false;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (handled) return;
        handled = true;
        // The backstop, if stopping itself hangs past every bound.
        const backstop = setTimeout(() => exit(1), shutdownTimeoutMs + graceMs + 1_000).unref();
        logger.info({ signal }, 'shutting down');
        void lifecycle
          .stop()
          .then((outcome) => {
            logger.info({ outcome }, 'stopped');
            return EXIT_CODES[outcome];
          })
          .catch((error: unknown) => {
            logger.error({ err: error }, 'shutdown failed');
            return 1;
          })
          .then(async (code) => {
            await flushLogger(logger).catch(() => undefined);
            // An injected exit returns: the backstop must not exit a second time.
            clearTimeout(backstop);
            exit(code);
          });
      };
      for (const signal of signals) process.on(signal, onSignal);
    },
  };
  return lifecycle;
}
