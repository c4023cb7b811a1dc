import { afterEach, describe, expect, it } from 'vitest';
import { deferred, never, settle, whenAborted, refusal } from '../test/support/deferred.js';
import { capturedLogger } from '../test/support/log-capture.js';
import { isServerError } from './errors.js';
import { EXIT_CODES, createLifecycle, type Component, type Lifecycle } from './lifecycle.js';

/** A component that writes what happens to it into `events`. */
function recorded(
  name: string,
  events: string[],
  overrides: Partial<Omit<Component, 'name'>> = {},
): Component {
  return {
    name,
    start: () => void events.push(`start ${name}`),
    drain: () => void events.push(`drain ${name}`),
    stop: () => void events.push(`stop ${name}`),
    ...overrides,
  };
}

describe('createLifecycle', () => {
  it('starts components in the order they were added', async () => {
    const events: string[] = [];
    const { logger } = capturedLogger();
    const lifecycle = createLifecycle({ logger });
    for (const name of ['postgres', 'readiness', 'http']) lifecycle.add(recorded(name, events));
    await lifecycle.start();
    expect(events).toEqual(['start postgres', 'start readiness', 'start http']);
    // Started components are not started twice.
    await lifecycle.start();
    expect(events).toHaveLength(3);
  });

  it('drains every component before it stops any, then stops them in reverse order', async () => {
    const events: string[] = [];
    const { logger } = capturedLogger();
    const lifecycle = createLifecycle({ logger });
    const added = lifecycle.add(recorded('postgres', events));
    expect(added.name).toBe('postgres');
    lifecycle.add(recorded('readiness', events));
    lifecycle.add(recorded('http', events));
    await lifecycle.start();
    events.length = 0;
    expect(lifecycle.stopping).toBe(false);
    const stopped = lifecycle.stop();
    expect(lifecycle.stopping).toBe(true);
    expect(await stopped).toBe('drained');
    const drains = events.filter((event) => event.startsWith('drain'));
    expect(new Set(drains)).toEqual(new Set(['drain postgres', 'drain readiness', 'drain http']));
    expect(events.slice(drains.length)).toEqual(['stop http', 'stop readiness', 'stop postgres']);
  });

  it('passes the same deadline signal to every stop, not aborted when all stop in time', async () => {
    const signals: AbortSignal[] = [];
    const { logger } = capturedLogger();
    const lifecycle = createLifecycle({ logger });
    for (const name of ['a', 'b']) {
      lifecycle.add({ name, stop: (signal) => void signals.push(signal) });
    }
    expect(await lifecycle.stop()).toBe('drained');
    expect(signals).toHaveLength(2);
    expect(signals[0]).toBe(signals[1]);
    expect(signals[0]?.aborted).toBe(false);
  });

  it('stops every component on stop(), also those never started: a store handed over still holds a pool', async () => {
    const events: string[] = [];
    const { logger } = capturedLogger();
    const lifecycle = createLifecycle({ logger });
    lifecycle.add(recorded('postgres', events));
    expect(await lifecycle.stop()).toBe('drained');
    expect(events).toEqual(['drain postgres', 'stop postgres']);
  });

  it('when a start fails, stops the ones already started in reverse and rethrows its error', async () => {
    const events: string[] = [];
    const capture = capturedLogger();
    const lifecycle = createLifecycle({ logger: capture.logger });
    const failure = new Error('port 8000 in use');
    lifecycle.add(recorded('postgres', events));
    lifecycle.add(recorded('redis', events));
    lifecycle.add(
      recorded('http', events, {
        start: () => Promise.reject(failure),
      }),
    );
    lifecycle.add(recorded('late', events));
    await expect(lifecycle.start()).rejects.toBe(failure);
    expect(events).toEqual(['start postgres', 'start redis', 'stop redis', 'stop postgres']);
    expect(capture.lines()).toContainEqual(
      expect.objectContaining({ level: 'error', component: 'http', msg: 'start failed' }),
    );
  });

  it('after a failed start, stop() does not stop again what the failed start already stopped', async () => {
    const events: string[] = [];
    const lifecycle = createLifecycle({ logger: capturedLogger().logger });
    lifecycle.add(recorded('postgres', events));
    lifecycle.add(recorded('http', events, { start: () => Promise.reject(new Error('in use')) }));
    await expect(lifecycle.start()).rejects.toThrow('in use');
    expect(await lifecycle.stop()).toBe('drained');
    expect(events.filter((event) => event === 'stop postgres')).toHaveLength(1);
    expect(events).toContain('stop http');
  });

  it('is idempotent: every stop() returns the first one’s promise, and each component stops once', async () => {
    const events: string[] = [];
    const gate = deferred();
    const { logger } = capturedLogger();
    const lifecycle = createLifecycle({ logger });
    lifecycle.add(recorded('postgres', events, { stop: () => gate.promise }));
    const first = lifecycle.stop();
    const second = lifecycle.stop();
    expect(second).toBe(first);
    lifecycle.drain();
    gate.resolve();
    expect(await first).toBe('drained');
    expect(lifecycle.stop()).toBe(first);
    expect(events).toEqual(['drain postgres']);
  });

  it('refuses a component added once shutdown began', async () => {
    const { logger } = capturedLogger();
    const lifecycle = createLifecycle({ logger });
    await lifecycle.stop();
    const error = refusal(() => lifecycle.add({ name: 'late' }));
    expect(isServerError(error, 'INVALID_OPTIONS')).toBe(true);
    expect((error as Error).message).toContain('cannot add late');
  });

  it('refuses bad options with INVALID_OPTIONS', () => {
    const { logger } = capturedLogger();
    const error = refusal(() => createLifecycle({ logger, shutdownTimeoutMs: 0, graceMs: -1 }));
    expect(isServerError(error, 'INVALID_OPTIONS')).toBe(true);
    expect((error as Error).message).toContain('shutdownTimeoutMs');
    expect((error as Error).message).toContain('graceMs');
  });

  it('ends with deadline when a stop is still waiting at shutdownTimeoutMs, and stops the rest with the aborted signal', async () => {
    const events: string[] = [];
    const { logger } = capturedLogger();
    const lifecycle = createLifecycle({ logger, shutdownTimeoutMs: 30, graceMs: 60_000 });
    lifecycle.add(
      recorded('postgres', events, {
        stop: (signal) => void events.push(`stop postgres, aborted: ${String(signal.aborted)}`),
      }),
    );
    lifecycle.add(
      recorded('http', events, {
        // In-flight requests that never finish: cut at the deadline.
        stop: async (signal) => {
          await whenAborted(signal);
          events.push('http cut');
        },
      }),
    );
    expect(await lifecycle.stop()).toBe('deadline');
    expect(events.slice(2)).toEqual(['http cut', 'stop postgres, aborted: true']);
  });

  it('still resolves, with deadline, graceMs after the deadline when a stop ignores its signal', async () => {
    const events: string[] = [];
    const capture = capturedLogger();
    const lifecycle = createLifecycle({
      logger: capture.logger,
      shutdownTimeoutMs: 20,
      graceMs: 20,
    });
    lifecycle.add(recorded('postgres', events));
    lifecycle.add({ name: 'stuck', stop: never });
    expect(await lifecycle.stop()).toBe('deadline');
    // The ones after the stuck one are still stopped: their pools are not left open.
    expect(events).toContain('stop postgres');
    expect(capture.lines()).toContainEqual(
      expect.objectContaining({
        level: 'error',
        graceMs: 20,
        msg: 'components still stopping after the deadline',
      }),
    );
  });

  it('ends with failed when a stop throws, and still stops the components after it', async () => {
    const events: string[] = [];
    const capture = capturedLogger();
    const lifecycle = createLifecycle({ logger: capture.logger });
    lifecycle.add(recorded('postgres', events));
    lifecycle.add(
      recorded('redis', events, {
        stop: () => Promise.reject(new Error('QUIT refused')),
      }),
    );
    lifecycle.add(recorded('http', events));
    expect(await lifecycle.stop()).toBe('failed');
    expect(events.filter((event) => event.startsWith('stop'))).toEqual([
      'stop http',
      'stop postgres',
    ]);
    expect(capture.lines()).toContainEqual(
      expect.objectContaining({ level: 'error', component: 'redis', msg: 'stop failed' }),
    );
  });

  it('drains the others when one drain throws', async () => {
    const events: string[] = [];
    const capture = capturedLogger();
    const lifecycle = createLifecycle({ logger: capture.logger });
    lifecycle.add(recorded('postgres', events));
    lifecycle.add(
      recorded('http', events, {
        drain: () => {
          throw new Error('odd');
        },
      }),
    );
    lifecycle.drain();
    expect(events).toEqual(['drain postgres']);
    expect(capture.lines()).toContainEqual(
      expect.objectContaining({ level: 'error', component: 'http', msg: 'drain failed' }),
    );
    expect(await lifecycle.stop()).toBe('drained');
  });

  it('closes a handle added with closes(), and skips a null one (not configured)', async () => {
    const { logger } = capturedLogger();
    const lifecycle = createLifecycle({ logger });
    let closed = 0;
    const handle = { close: () => Promise.resolve(void (closed += 1)) };
    expect(lifecycle.closes('postgres', handle)).toBe(handle);
    expect(lifecycle.closes('clickhouse', null)).toBeNull();
    expect(await lifecycle.stop()).toBe('drained');
    expect(closed).toBe(1);
  });
});

describe('a signal during start, and drainDelayMs', () => {
  it('starts no further component once shutdown began', async () => {
    const events: string[] = [];
    const lifecycle = createLifecycle({ logger: capturedLogger().logger });
    lifecycle.add(recorded('postgres', events, { start: () => void lifecycle.stop() }));
    lifecycle.add(recorded('http', events));
    await lifecycle.start();
    expect(await lifecycle.stop()).toBe('drained');
    expect(events).not.toContain('start http');
    expect(events).toContain('stop http');
  });

  it('waits drainDelayMs after the drain before it stops anything', async () => {
    const events: string[] = [];
    const lifecycle = createLifecycle({ logger: capturedLogger().logger, drainDelayMs: 50 });
    lifecycle.add(recorded('http', events));
    const stopping = lifecycle.stop();
    await settle(10);
    expect(events).toEqual(['drain http']);
    expect(await stopping).toBe('drained');
    expect(events).toEqual(['drain http', 'stop http']);
  });
});

describe('exitOnSignals', () => {
  const added: { signal: NodeJS.Signals; listener: (...args: unknown[]) => void }[] = [];

  /** exitOnSignals, remembering the listeners it added so that they are removed afterwards. */
  function listen(lifecycle: Lifecycle, signals: readonly NodeJS.Signals[]): void {
    const before = new Map(signals.map((signal) => [signal, new Set(process.listeners(signal))]));
    lifecycle.exitOnSignals(signals);
    for (const signal of signals) {
      for (const listener of process.listeners(signal)) {
        if (!before.get(signal)?.has(listener)) {
          added.push({ signal, listener: listener as (...args: unknown[]) => void });
        }
      }
    }
  }

  afterEach(() => {
    for (const { signal, listener } of added.splice(0)) process.removeListener(signal, listener);
  });

  /** An `exit` that records its codes, and a promise of the first. */
  function recordedExit(): {
    exit: (code: number) => void;
    codes: number[];
    first: Promise<number>;
  } {
    const codes: number[] = [];
    const first = deferred<number>();
    return {
      codes,
      first: first.promise,
      exit: (code) => {
        codes.push(code);
        first.resolve(code);
      },
    };
  }

  it('run(): a start that fails is logged, the logger flushed, and the process exits 1', async () => {
    const capture = capturedLogger();
    const exit = recordedExit();
    const lifecycle = createLifecycle({ logger: capture.logger, exit: exit.exit });
    lifecycle.add({ name: 'http', start: () => Promise.reject(new Error('port in use')) });
    const before = new Set(process.listeners('SIGTERM'));
    await lifecycle.run(['SIGTERM']);
    for (const listener of process.listeners('SIGTERM')) {
      if (!before.has(listener)) added.push({ signal: 'SIGTERM', listener: listener as never });
    }
    expect(await exit.first).toBe(EXIT_CODES.startFailed);
    expect(capture.lines()).toContainEqual(
      expect.objectContaining({ level: 'fatal', msg: 'could not start' }),
    );
    expect(capture.flushes()).toBeGreaterThan(0);
  });

  it('on SIGTERM stops, flushes the logger and exits 0; a second signal is ignored', async () => {
    const events: string[] = [];
    const capture = capturedLogger();
    const exit = recordedExit();
    const gate = deferred();
    const lifecycle = createLifecycle({ logger: capture.logger, exit: exit.exit });
    lifecycle.add(recorded('postgres', events, { stop: () => gate.promise }));
    listen(lifecycle, ['SIGTERM', 'SIGINT']);
    expect(added).toHaveLength(2);

    process.emit('SIGTERM', 'SIGTERM');
    // A second Ctrl-C while stopping does not start another stop or exit.
    process.emit('SIGINT', 'SIGINT');
    await settle();
    expect(exit.codes).toEqual([]);
    expect(events).toEqual(['drain postgres']);
    gate.resolve();
    expect(await exit.first).toBe(EXIT_CODES.drained);
    expect(capture.flushes()).toBeGreaterThanOrEqual(1);
    const messages = capture.lines().map((line) => [line.msg, line.signal ?? line.outcome]);
    expect(messages).toContainEqual(['shutting down', 'SIGTERM']);
    expect(messages).toContainEqual(['stopped', 'drained']);

    process.emit('SIGTERM', 'SIGTERM');
    await settle();
    expect(exit.codes).toEqual([0]);
  });

  it('exits 1 when the deadline cut the stop short', async () => {
    const { logger } = capturedLogger();
    const exit = recordedExit();
    const lifecycle = createLifecycle({ logger, exit: exit.exit, shutdownTimeoutMs: 20 });
    lifecycle.add({ name: 'http', stop: whenAborted });
    listen(lifecycle, ['SIGTERM']);
    process.emit('SIGTERM', 'SIGTERM');
    expect(await exit.first).toBe(EXIT_CODES.deadline);
    expect(EXIT_CODES.deadline).toBe(1);
  });

  it('exits once: the backstop does not exit again after a stop that finished', async () => {
    const { logger } = capturedLogger();
    const exit = recordedExit();
    // The backstop is due shutdownTimeoutMs + graceMs + 1 s after the signal.
    const lifecycle = createLifecycle({
      logger,
      exit: exit.exit,
      shutdownTimeoutMs: 1,
      graceMs: 0,
    });
    listen(lifecycle, ['SIGTERM']);
    process.emit('SIGTERM', 'SIGTERM');
    expect(await exit.first).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(exit.codes).toEqual([0]);
  });
});
