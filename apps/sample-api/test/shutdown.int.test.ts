// SIGTERM while serving load, on the BUILT app run as a process (as `pnpm start`
// runs it) against the shared PostgreSQL and the Materialize wire double:
// autocannon on 24 keep-alive connections (reads and writes), an open SSE stream
// and readiness probes, then SIGTERM mid-load.
//
// Accounting. The app writes one access line per request it accepted (status
// 499 when the connection closed before the response was finished), so the
// server's own log says which requests were accepted and how each ended; the
// load generator says what came back. Zero failed in-flight requests means: no
// accepted request ended in a 499 or a 5xx, and every accepted request's response
// reached the client (the counts per route and status agree on both sides).
// Requests the client sent that the server never accepted are counted
// separately: connections refused once the listener closed, and requests
// autocannon wrote on a connection the server had already answered with
// `Connection: close` (autocannon does not honour that header; browsers and
// node:http do).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdRequest, probeReadiness } from '@flowforge/embed-contract';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import { freePort } from '../../../packages/redis/test/support/redis-servers.js';
import { createMigratedDatabase } from './support/postgres.js';
import { openSse, type SseEvent } from './support/sse.js';
import pg from 'pg';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const TENANT = '2d6e1f30-7a8b-4c9d-8e0f-00000000000a';
const USER = '2d6e1f30-7a8b-4c9d-8e0f-000000000001';
const VIEW = 'shutdown_events';
const SHUTDOWN_TIMEOUT_MS = 10_000;
const CONNECTIONS = 24;

let testDb: Awaited<ReturnType<typeof createMigratedDatabase>>;
let double: MaterializeDouble;
let child: ChildProcess | undefined;

beforeAll(async () => {
  testDb = await createMigratedDatabase('shutdown');
  double = await startMaterializeDouble();
  double.defineView(
    VIEW,
    [
      { name: 'tenant_id', type: 'uuid' },
      { name: 'seq', type: 'int8' },
    ],
    [{ tenant_id: TENANT, seq: 0 }],
  );
});

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await double?.stop();
  await testDb?.drop();
});

/** Connections of `applicationName` to the test database, as PostgreSQL sees them. */
async function connectionsOf(applicationName: string): Promise<number> {
  const client = new pg.Client({ connectionString: testDb.ownerUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(
      'select count(*) as n from pg_stat_activity where application_name = $1',
      [applicationName],
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

interface AccessLine {
  readonly time: string;
  readonly request_id: string;
  readonly method: string;
  readonly route: string;
  readonly status_code: number;
}

describe('SIGTERM under load', () => {
  it('drains every accepted request, ends the SSE stream with `shutdown`, closes the pools and exits 0 in time', async () => {
    const port = await freePort();
    const appName = `ff-shutdown-${randomBytes(3).toString('hex')}`;
    let output = '';
    child = spawn(process.execPath, [MAIN], {
      env: {
        APP_ENV: 'development',
        APP_NAME: appName,
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_FORMAT: 'json',
        LOG_LEVEL: 'info',
        DATABASE_URL: testDb.appUrl,
        DATABASE_POOL_SIZE: '8',
        MATERIALIZE_URL: double.url,
        AUTH_DEV_TENANT_ID: TENANT,
        AUTH_DEV_USER_ID: USER,
        SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    for (let i = 0; i < 300 && !output.includes('"msg":"listening"'); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(output).toContain('"msg":"listening"');
    const base = `http://127.0.0.1:${port}`;

    const setupRequestIds = new Set<string>();
    const post = async (path: string, body: unknown) => {
      const response = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(201);
      setupRequestIds.add(response.headers.get('x-request-id')!);
      return (await response.json()) as { id: string };
    };
    const dashboard = await post('/api/v1/dashboards', { name: 'Shutdown' });
    const live = await post(`/api/v1/dashboards/${dashboard.id}/widgets`, {
      name: 'live',
      kind: 'live',
      config: { view: VIEW },
    });
    const stream = await openSse(base, `/api/v1/widgets/${live.id}/stream`);
    expect(stream.status).toBe(200);
    const streamEvents: SseEvent[] = await stream.collect((event) => event.event === 'progress');

    // Keep-alive load: reads and writes across every connection.
    const statuses: Record<string, number> = {};
    const errors: Record<string, number> = {};
    const requests = [
      { method: 'GET' as const, path: '/api/v1/dashboards?limit=5' },
      {
        method: 'POST' as const,
        path: '/api/v1/dashboards',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'load' }),
      },
      { method: 'GET' as const, path: `/api/v1/dashboards/${dashboard.id}/widgets` },
    ];
    let cannonResult: autocannon.Result | undefined;
    const cannon = autocannon(
      { url: base, connections: CONNECTIONS, duration: 60, timeout: 30, requests },
      (error, result) => {
        if (!error) cannonResult = result;
      },
    );
    const cannonDone = once(cannon, 'done');
    cannon.on('response', (_client, statusCode) => {
      statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
    });
    cannon.on('reqError', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? error.message;
      errors[code] = (errors[code] ?? 0) + 1;
    });

    // Readiness probes, as a kubelet sends them (a fresh connection each), until the process is gone.
    const probes: { at: number; outcome: string }[][] = [[], [], []];
    let probing = true;
    const probers = probes.map(async (seen) => {
      while (probing) {
        seen.push(await probeReadiness(port));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    });
    // A readiness request already on an accepted connection, its headers held back
    // until the process has begun shutting down: what readiness answers from then on.
    const held = await holdRequest(port, '/health/ready');

    // Steady load first; the pool is open (the check below is not vacuous). Waited for by
    // count, not by time: a loaded CI machine answered 95 in the 1.5 s this used to sleep.
    const answered = (): number => Object.values(statuses).reduce((sum, n) => sum + n, 0);
    for (let waited = 0; answered() <= 100 && waited < 30_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(answered()).toBeGreaterThan(100);
    expect(await connectionsOf(appName)).toBeGreaterThan(0);
    double.insert(VIEW, [{ tenant_id: TENANT, seq: 1 }]);

    const signalledAt = Date.now();
    child.kill('SIGTERM');
    for (let i = 0; i < 200 && !output.includes('"msg":"shutting down"'); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const heldAnswer = await held.finish();
    const [code, signal] = await exited;
    const exitMs = Date.now() - signalledAt;
    cannon.stop();
    await cannonDone;
    probing = false;
    await Promise.all(probers);
    streamEvents.push(...(await stream.collect((event) => event.event === 'shutdown', 5_000)));
    await stream.ended;

    // The server's side: every request it accepted, and how it ended.
    const lines = output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const access = lines.filter((line) => 'status_code' in line) as unknown as AccessLine[];
    const loadAccess = access.filter(
      (line) =>
        line.route.startsWith('/api/v1/dashboards') && !setupRequestIds.has(line.request_id),
    );
    const serverStatuses: Record<string, number> = {};
    for (const line of loadAccess) {
      serverStatuses[line.status_code] = (serverStatuses[line.status_code] ?? 0) + 1;
    }
    const finishedAfterSignal = loadAccess.filter(
      (line) => Date.parse(line.time) >= signalledAt,
    ).length;
    const stored = await countLoadDashboards();
    const report = {
      exitMs,
      client: { statuses, errors, sent: cannonResult?.requests.sent },
      server: serverStatuses,
      finishedAfterSignal,
      storedLoadDashboards: stored,
      heldReadiness: heldAnswer.status,
      probes: probes.map((seen) => summarize(seen.filter((probe) => probe.at >= signalledAt))),
    };
    console.info('shutdown under load:', JSON.stringify(report));

    // Exit 0, inside the grace period, by a drain (not the deadline).
    expect(code).toBe(0);
    expect(signal).toBeNull();
    expect(exitMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
    expect(lines.find((line) => line.msg === 'stopped')).toMatchObject({ outcome: 'drained' });

    // Requests were in flight when the signal came, and they finished.
    expect(finishedAfterSignal).toBeGreaterThan(0);
    // No accepted request failed: no 499 (cut), no 5xx.
    expect(loadAccess.filter((line) => line.status_code >= 499).map((l) => l.status_code)).toEqual(
      [],
    );
    // Every accepted request's answer reached the client: the two sides agree.
    expect(statuses).toEqual(serverStatuses);
    // Every acknowledged write is stored (and nothing unacknowledged slipped in).
    expect(stored).toBe(serverStatuses[201] ?? 0);
    // What the client saw fail never reached the app: connections refused after
    // the listener closed (ECONNREFUSED), or requests written after `Connection: close`.
    expect(
      Object.keys(errors).filter((code) => !['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(code)),
    ).toEqual([]);

    // The SSE stream got its `shutdown` event, then the server ended it.
    expect(streamEvents.map((event) => event.event)).toContain('shutdown');

    // Readiness turned 503 as soon as shutdown began, on a connection still open,
    // while the listener then refused new connections; no prober saw 200 again once it
    // had seen anything else (503, or a refused connection).
    expect(heldAnswer.status).toBe(503);
    expect(JSON.parse(heldAnswer.body)).toMatchObject({ status: 'shutting_down' });
    for (const seen of probes) {
      const outcomes = seen.filter((probe) => probe.at >= signalledAt).map((p) => p.outcome);
      const firstNotReady = outcomes.findIndex((outcome) => outcome !== '200');
      expect(firstNotReady).toBeGreaterThanOrEqual(0);
      expect(outcomes.slice(firstNotReady).filter((outcome) => outcome === '200')).toEqual([]);
      expect(
        outcomes
          .slice(firstNotReady)
          .every((o) => ['503', 'ECONNREFUSED', 'ECONNRESET'].includes(o)),
      ).toBe(true);
    }

    // Pools closed: PostgreSQL shows no connection of the app; nor does Materialize.
    expect(await connectionsOf(appName)).toBe(0);
    expect(double.stats.connectionsOpen).toBe(0);
  }, 60_000);
});

async function countLoadDashboards(): Promise<number> {
  const client = new pg.Client({
    connectionString: testDb.ownerUrl.replace(
      'flowforge_owner:flowforge_owner',
      'postgres:postgres',
    ),
  });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(
      "select count(*) as n from dashboards where name = 'load'",
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

/** Consecutive runs of the same outcome, e.g. `200×3 503×2 ECONNREFUSED×40`. */
function summarize(probes: readonly { outcome: string }[]): string {
  const runs: string[] = [];
  let previous: string | undefined;
  let n = 0;
  for (const { outcome } of probes) {
    if (outcome === previous) n += 1;
    else {
      if (previous !== undefined) runs.push(`${previous}×${n}`);
      previous = outcome;
      n = 1;
    }
  }
  if (previous !== undefined) runs.push(`${previous}×${n}`);
  return runs.join(' ');
}
