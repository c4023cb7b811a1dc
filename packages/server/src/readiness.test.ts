import { describe, expect, it } from 'vitest';
import { DatabaseError } from '@flowforge/db';
import { deferred, never } from '../test/support/deferred.js';
import { isServerError } from './errors.js';
import {
  createReadiness,
  publicReadinessReport,
  readinessStatusCode,
  type ReadinessReport,
} from './readiness.js';
import { capturedLogger } from '../test/support/log-capture.js';

/** A check that counts its runs. */
function counted(outcome: () => Promise<unknown> = () => Promise.resolve()): {
  runs: () => number;
  check: () => Promise<unknown>;
} {
  let runs = 0;
  return {
    runs: () => runs,
    check: () => {
      runs += 1;
      return outcome();
    },
  };
}

describe('createReadiness', () => {
  it('is ready when every check answers, with each check’s status, requiredness and latency', async () => {
    let clock = 1_000;
    const readiness = createReadiness({ now: () => clock });
    readiness.add({
      name: 'postgres',
      check: () => {
        clock += 12.34;
        return Promise.resolve();
      },
    });
    readiness.add({ name: 'redis', required: false, check: () => Promise.resolve('PONG') });
    const report = await readiness.report();
    expect(report).toEqual({
      status: 'ready',
      checks: {
        postgres: { status: 'up', required: true, latency_ms: 12.3 },
        redis: { status: 'up', required: false, latency_ms: 0 },
      },
    });
    expect(readinessStatusCode(report)).toBe(200);
    expect(readiness.has('postgres')).toBe(true);
    expect(readiness.has('clickhouse')).toBe(false);
  });

  it('is not_ready (503) when a required check is down, naming the error', async () => {
    const readiness = createReadiness();
    readiness.add({
      name: 'postgres',
      check: () => Promise.reject(new DatabaseError('UNAVAILABLE', 'connection refused')),
    });
    readiness.add({ name: 'redis', required: false, check: () => Promise.resolve() });
    const report = await readiness.report();
    expect(report.status).toBe('not_ready');
    expect(report.checks.postgres).toMatchObject({
      status: 'down',
      required: true,
      error: '@flowforge/db: connection refused',
    });
    expect(report.checks.redis?.status).toBe('up');
    expect(readinessStatusCode(report)).toBe(503);
  });

  it('is degraded (200) when only optional checks are down', async () => {
    const readiness = createReadiness();
    readiness.add({ name: 'postgres', check: () => Promise.resolve() });
    readiness.add({
      name: 'clickhouse',
      required: false,
      check: () => Promise.reject(new Error('ECONNREFUSED')),
    });
    const report = await readiness.report();
    expect(report.status).toBe('degraded');
    expect(report.checks.clickhouse).toMatchObject({
      status: 'down',
      required: false,
      error: 'ECONNREFUSED',
    });
    expect(readinessStatusCode(report)).toBe(200);
  });

  it('logs a check going down once (warn, with the error) and coming back once (info), not per probe', async () => {
    const { logger, lines } = capturedLogger();
    let up = false;
    const readiness = createReadiness({ logger, cacheMs: 0 });
    readiness.add({
      name: 'keycloak',
      required: false,
      check: () => (up ? Promise.resolve() : Promise.reject(new Error('connect ECONNREFUSED'))),
    });
    await readiness.report();
    await readiness.report();
    up = true;
    await readiness.report();
    await readiness.report();
    expect(lines().map((line) => [line.level, line.msg, line.check, line.error])).toEqual([
      ['warn', 'readiness check down', 'keycloak', 'connect ECONNREFUSED'],
      ['info', 'readiness check up again', 'keycloak', undefined],
    ]);
  });

  it('shows anyone each dependency’s status, and nothing of its error, latency or detail', async () => {
    const readiness = createReadiness();
    readiness.add({
      name: 'postgres',
      check: () => Promise.reject(new Error('password authentication failed for user "app"')),
    });
    readiness.addStore('redis', null, { variable: 'REDIS_URL' });
    const shown = publicReadinessReport(await readiness.report());
    expect(shown).toEqual({
      status: 'not_ready',
      checks: {
        postgres: { status: 'down', required: true },
        redis: { status: 'not_configured', required: false },
      },
    });
  });

  it('counts a check that throws at once, or rejects with a non-error, as down', async () => {
    const readiness = createReadiness();
    readiness.add({
      name: 'sync',
      check: () => {
        throw new Error('not connected');
      },
    });
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    readiness.add({ name: 'odd', check: () => Promise.reject('nope') });
    const report = await readiness.report();
    expect(report.status).toBe('not_ready');
    expect(report.checks.sync).toMatchObject({ status: 'down', error: 'not connected' });
    expect(report.checks.odd).toMatchObject({ status: 'down', error: 'check failed' });
  });

  it('reports a store handle by its health(), and a store left out as not_configured naming its variable', async () => {
    const readiness = createReadiness();
    readiness.addStore(
      'postgres',
      { health: () => Promise.resolve() },
      {
        variable: 'DATABASE_URL',
        required: true,
      },
    );
    readiness.addStore('clickhouse', null, { variable: 'CLICKHOUSE_URL' });
    readiness.addStore(
      'redis',
      { health: () => Promise.reject(new Error('NOAUTH')) },
      { variable: 'REDIS_URL' },
    );
    const report = await readiness.report();
    expect(report).toEqual({
      status: 'degraded',
      checks: {
        postgres: { status: 'up', required: true, latency_ms: expect.any(Number) as number },
        clickhouse: { status: 'not_configured', required: false, detail: 'set CLICKHOUSE_URL' },
        redis: {
          status: 'down',
          required: false,
          latency_ms: expect.any(Number) as number,
          error: 'NOAUTH',
        },
      },
    });
    expect(readiness.has('clickhouse')).toBe(true);
  });

  it('is not_ready when a required store was left out: it cannot serve without it', async () => {
    const readiness = createReadiness();
    readiness.addStore('postgres', null, { variable: 'DATABASE_URL', required: true });
    const report = await readiness.report();
    expect(report).toEqual({
      status: 'not_ready',
      checks: {
        postgres: { status: 'not_configured', required: true, detail: 'set DATABASE_URL' },
      },
    });
    expect(readinessStatusCode(report)).toBe(503);
  });

  it('is ready with only stores left out: not_configured is not down', async () => {
    const readiness = createReadiness();
    readiness.addStore('clickhouse', null, { variable: 'CLICKHOUSE_URL' });
    expect((await readiness.report()).status).toBe('ready');
  });

  it('counts a check that never settles as down after timeoutMs, and aborts its signal', async () => {
    const readiness = createReadiness({ timeoutMs: 20 });
    let seen: AbortSignal | undefined;
    readiness.add({
      name: 'materialize',
      check: (signal) => {
        seen = signal;
        return never();
      },
    });
    const report = await readiness.report();
    expect(report.status).toBe('not_ready');
    expect(report.checks.materialize).toMatchObject({
      status: 'down',
      error: 'no answer within 20 ms',
    });
    expect(seen?.aborted).toBe(true);
  });

  it('gives a check its own timeoutMs', async () => {
    const readiness = createReadiness({ timeoutMs: 600_000 });
    readiness.add({ name: 'slowpoke', timeoutMs: 15, required: false, check: never });
    readiness.add({ name: 'fast', check: () => Promise.resolve() });
    const report = await readiness.report();
    expect(report.status).toBe('degraded');
    expect(report.checks.slowpoke).toMatchObject({
      status: 'down',
      error: 'no answer within 15 ms',
    });
  });

  it('refuses a second check under a name already taken, with INVALID_OPTIONS', () => {
    const readiness = createReadiness();
    readiness.add({ name: 'postgres', check: () => Promise.resolve() });
    const refusals = [
      () => readiness.add({ name: 'postgres', check: () => Promise.resolve() }),
      () => readiness.addStore('postgres', null, { variable: 'DATABASE_URL' }),
      () =>
        readiness.addStore(
          'postgres',
          { health: () => Promise.resolve() },
          {
            variable: 'DATABASE_URL',
          },
        ),
    ];
    for (const refuse of refusals) {
      let caught: unknown;
      try {
        refuse();
      } catch (error) {
        caught = error;
      }
      expect(isServerError(caught, 'INVALID_OPTIONS')).toBe(true);
      expect((caught as Error).message).toBe(
        '@flowforge/server: readiness already has a check named "postgres"',
      );
    }
  });

  it('refuses bad options, naming each one', () => {
    const refusal = (run: () => unknown): unknown => {
      try {
        run();
      } catch (error) {
        return error;
      }
      return undefined;
    };
    const both = refusal(() => createReadiness({ timeoutMs: 0, cacheMs: -1 }));
    expect(isServerError(both, 'INVALID_OPTIONS')).toBe(true);
    expect((both as Error).message).toContain('timeoutMs: expected a positive whole number');
    expect((both as Error).message).toContain('cacheMs: expected a whole number from 0');
    for (const timeoutMs of [1.5, Number.NaN, 600_001, '20' as unknown as number]) {
      expect(
        isServerError(
          refusal(() => createReadiness({ timeoutMs })),
          'INVALID_OPTIONS',
        ),
      ).toBe(true);
    }
    const readiness = createReadiness();
    const own = refusal(() =>
      readiness.add({ name: 'postgres', timeoutMs: -5, check: () => Promise.resolve() }),
    );
    expect(isServerError(own, 'INVALID_OPTIONS')).toBe(true);
    expect((own as Error).message).toContain('postgres.timeoutMs');
    // The refused check was not added.
    expect(readiness.has('postgres')).toBe(false);
  });

  describe('cache', () => {
    it('runs each check once for concurrent probes', async () => {
      const postgres = counted();
      const redis = counted();
      const readiness = createReadiness();
      readiness.add({ name: 'postgres', check: postgres.check });
      readiness.add({ name: 'redis', check: redis.check });
      const reports = await Promise.all(Array.from({ length: 50 }, () => readiness.report()));
      expect(postgres.runs()).toBe(1);
      expect(redis.runs()).toBe(1);
      expect(new Set(reports).size).toBe(1);
    });

    it('reuses a report for cacheMs after it finished, and runs the checks again after', async () => {
      let clock = 0;
      const postgres = counted();
      const readiness = createReadiness({ cacheMs: 1_000, now: () => clock });
      readiness.add({ name: 'postgres', check: postgres.check });
      const first = await readiness.report();
      clock = 999;
      expect(await readiness.report()).toBe(first);
      expect(postgres.runs()).toBe(1);
      clock = 1_000;
      const second = await readiness.report();
      expect(second).not.toBe(first);
      expect(postgres.runs()).toBe(2);
    });

    it('shares a slow run instead of starting another, and counts its age from when it finished', async () => {
      let clock = 0;
      const gate = deferred();
      const postgres = counted(() => gate.promise);
      const readiness = createReadiness({ cacheMs: 1_000, now: () => clock });
      readiness.add({ name: 'postgres', check: postgres.check });
      const early = readiness.report();
      clock = 5_000; // long past cacheMs, but the run has not finished
      const late = readiness.report();
      gate.resolve();
      const report = await late;
      // One run for both: the same report, the check run once.
      expect(await early).toBe(report);
      expect(postgres.runs()).toBe(1);
      expect(report.status).toBe('ready');
      expect(report.checks.postgres?.latency_ms).toBe(5_000);
      clock = 5_999;
      expect(await readiness.report()).toBe(report);
      expect(postgres.runs()).toBe(1);
    });

    it('with cacheMs 0 runs the checks for every probe, still shared while in progress', async () => {
      const postgres = counted();
      const readiness = createReadiness({ cacheMs: 0 });
      readiness.add({ name: 'postgres', check: postgres.check });
      await Promise.all([readiness.report(), readiness.report()]);
      expect(postgres.runs()).toBe(1);
      await readiness.report();
      expect(postgres.runs()).toBe(2);
    });

    it('drops the cached report when a check is added', async () => {
      const readiness = createReadiness({ cacheMs: 600_000 });
      readiness.add({ name: 'postgres', check: () => Promise.resolve() });
      expect(Object.keys((await readiness.report()).checks)).toEqual(['postgres']);
      readiness.addStore('redis', null, { variable: 'REDIS_URL' });
      expect(Object.keys((await readiness.report()).checks)).toEqual(['postgres', 'redis']);
    });

    it('reports what a check says at the time: a dependency that comes back is up on the next run', async () => {
      let clock = 0;
      let up = false;
      const readiness = createReadiness({ cacheMs: 10, now: () => clock });
      readiness.add({
        name: 'postgres',
        check: () => (up ? Promise.resolve() : Promise.reject(new Error('refused'))),
      });
      expect((await readiness.report()).status).toBe('not_ready');
      up = true;
      clock = 10;
      expect((await readiness.report()).status).toBe('ready');
    });
  });

  describe('drain', () => {
    it('answers shutting_down to probes that were waiting on a run when the drain began', async () => {
      const gate = deferred();
      const readiness = createReadiness({ cacheMs: 0 });
      readiness.add({ name: 'postgres', check: () => gate.promise });
      const waiting = readiness.report();
      readiness.drain();
      gate.resolve();
      expect(await waiting).toEqual({ status: 'shutting_down', checks: {} });
    });

    it('turns the report to shutting_down (503) for good, without running the checks', async () => {
      const postgres = counted();
      const readiness = createReadiness({ cacheMs: 0 });
      readiness.add({ name: 'postgres', check: postgres.check });
      expect(readiness.name).toBe('readiness');
      expect(readiness.shuttingDown).toBe(false);
      await readiness.report();
      readiness.drain();
      expect(readiness.shuttingDown).toBe(true);
      const report: ReadinessReport = await readiness.report();
      expect(report).toEqual({ status: 'shutting_down', checks: {} });
      expect(readinessStatusCode(report)).toBe(503);
      expect(postgres.runs()).toBe(1);
      readiness.drain();
      expect((await readiness.report()).status).toBe('shutting_down');
    });
  });
});

describe('readinessStatusCode', () => {
  it('is 503 for not_ready and shutting_down, 200 for ready and degraded', () => {
    const of = (status: ReadinessReport['status']): number =>
      readinessStatusCode({ status, checks: {} });
    expect([of('ready'), of('degraded'), of('not_ready'), of('shutting_down')]).toEqual([
      200, 200, 503, 503,
    ]);
  });
});
