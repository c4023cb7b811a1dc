// SIGTERM under load, on the BUILT app run as a process (`node dist/main.js`, as
// `pnpm start` runs it; turbo builds it before the tests) against the shared
// PostgreSQL, ClickHouse and Redis: autocannon on keep-alive connections reading
// embed data with API keys (200s, and 403s for a widget out of scope), readiness
// probes on fresh connections, then SIGTERM mid-load.
//
// Accounting, as apps/sample-api/test/shutdown.int.test.ts does it: the app writes
// one access line per request it accepted (499 when the client's connection closed
// first), so its log says which requests it accepted and how each ended, and the
// load generator says what came back. Requests autocannon wrote on a connection the
// app had answered with `Connection: close`, or sent once the listener had closed,
// never reached the app: they are the client's errors, not answers.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createEmbedFixture,
  freePort,
  holdRequest,
  startKeepAliveLoad,
  startReadinessProbers,
  startServiceProcess,
  until,
  type EmbedFixture,
  type ServiceProcess,
} from '@flowforge/embed-contract';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const SHUTDOWN_TIMEOUT_MS = 10_000;
const ROUTE = '/embed/v1/widgets/:id/data';

let fixture: EmbedFixture;
let service: ServiceProcess | undefined;

beforeAll(async () => {
  fixture = await createEmbedFixture();
});

afterAll(async () => {
  service?.killIfRunning();
  await fixture?.drop();
});

interface AccessLine {
  readonly time: string;
  readonly route: string;
  readonly status_code: number;
}

describe('SIGTERM under load', () => {
  it('turns readiness 503, drains every accepted request, closes the pool and exits 0', async () => {
    const port = await freePort();
    const appName = `ff-embed-${randomBytes(3).toString('hex')}`;
    service = startServiceProcess(MAIN, {
      ...fixture.env,
      APP_NAME: appName,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      DATABASE_POOL_SIZE: '8',
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    });
    expect(await service.logged('listening', 15_000)).toBe(true);

    // Keep-alive load: data in the key's scope (200) and out of it (403).
    const { widgets, keys } = fixture;
    const headers = { 'x-api-key': keys.tenantA };
    const load = startKeepAliveLoad({
      url: `http://127.0.0.1:${port}`,
      connections: 16,
      requests: [
        { method: 'GET', path: `/embed/v1/widgets/${widgets.orders}/data`, headers },
        { method: 'GET', path: `/embed/v1/widgets/${widgets.outOfScope}/data`, headers },
      ],
    });
    const probers = startReadinessProbers(port);
    // A readiness request already on an accepted connection, its headers held back
    // until shutdown has begun: what readiness answers while the listener still serves.
    const held = await holdRequest(port, '/health/ready');

    // Steady load first, and the pool open (so the check that it closes is not vacuous).
    await until(() => load.answered() > 100, 30_000);
    expect(load.answered()).toBeGreaterThan(100);
    expect(await fixture.connectionsOf(appName)).toBeGreaterThan(0);

    const signalledAt = Date.now();
    service.kill('SIGTERM');
    await service.logged('shutting down', 5_000);
    const heldAnswer = await held.finish();
    const [code, signal] = await service.exited;
    const exitMs = Date.now() - signalledAt;
    await load.stop();
    await probers.stop();

    // The app's side: every load request it accepted, and how it ended.
    const lines = service.lines();
    const access = (
      lines.filter((line) => 'status_code' in line) as unknown as AccessLine[]
    ).filter((line) => line.route === ROUTE);
    const serverStatuses: Record<string, number> = {};
    for (const line of access) {
      serverStatuses[line.status_code] = (serverStatuses[line.status_code] ?? 0) + 1;
    }
    const finishedAfterSignal = access.filter(
      (line) => Date.parse(line.time) >= signalledAt,
    ).length;
    const probes = probers.outcomesSince(signalledAt);
    console.info(
      'embed-express shutdown under load:',
      JSON.stringify({
        exitMs,
        client: { statuses: load.statuses, errors: load.errors },
        server: serverStatuses,
        finishedAfterSignal,
        heldReadiness: heldAnswer.status,
        probesAfterSignal: probes.map((outcomes) => outcomes.slice(0, 5).join(' ')),
      }),
    );

    // Exit 0 by a drain, inside the deadline.
    expect(code).toBe(0);
    expect(signal).toBeNull();
    expect(exitMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
    expect(lines.find((line) => line.msg === 'stopped')).toMatchObject({ outcome: 'drained' });

    // Requests were in flight at the signal, and they finished.
    expect(finishedAfterSignal).toBeGreaterThan(0);
    // Only what the contract answers these requests: 200 in scope, 403 out of it;
    // no 5xx, no request cut (499).
    expect(Object.keys(serverStatuses).sort()).toEqual(['200', '403']);
    // Every accepted request's answer reached the client: both sides count the same.
    expect(load.statuses).toEqual(serverStatuses);
    // What the client saw fail never reached the app (see the header comment).
    expect(
      Object.keys(load.errors).filter((c) => !['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(c)),
    ).toEqual([]);

    // Readiness said 503 once shutdown began, on a connection the listener still served;
    // no prober saw 200 again once it had seen anything else (503, or a refused connection).
    expect(heldAnswer.status).toBe(503);
    expect(JSON.parse(heldAnswer.body)).toMatchObject({ status: 'shutting_down' });
    for (const outcomes of probes) {
      const firstNotReady = outcomes.findIndex((outcome) => outcome !== '200');
      expect(firstNotReady).toBeGreaterThanOrEqual(0);
      expect(
        outcomes
          .slice(firstNotReady)
          .every((o) => ['503', 'ECONNREFUSED', 'ECONNRESET'].includes(o)),
      ).toBe(true);
    }

    // The pool closed: PostgreSQL holds no connection of the app.
    expect(await fixture.connectionsOf(appName)).toBe(0);
  }, 60_000);
});
