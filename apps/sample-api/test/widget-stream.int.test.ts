/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment --
   response bodies are untyped JSON; the assertions are what check their shape */
// Live widget streams end to end: PostgreSQL (widgets) and the Materialize wire
// double (the test fixture of @flowforge/materialize, DESIGN.md's stand-in for
// Materialize) over real sockets; the app's own SSE over real HTTP.
import { createServer } from 'node:net';
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createDatabase } from '@flowforge/db';
import { createMaterialize, type Materialize } from '@flowforge/materialize';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import { buildApp, type App } from '../src/app.js';
import type { AppDB } from '../src/db/schema.js';
import { requestJson } from './support/http.js';
import { createMigratedDatabase } from './support/postgres.js';
import { openSse, type SseEvent, type SseStream } from './support/sse.js';

const TENANT_A = '5c1d0e2f-3a4b-4c5d-8e6f-00000000000a';
const TENANT_B = '5c1d0e2f-3a4b-4c5d-8e6f-00000000000b';
const USER = '5c1d0e2f-3a4b-4c5d-8e6f-000000000001';
const VIEW = 'widget_events';

let testDb: Awaited<ReturnType<typeof createMigratedDatabase>>;
let double: MaterializeDouble;
let deadPort: number;
const running: App[] = [];
const streams: SseStream[] = [];

type StoreState = 'up' | 'down' | 'none';

async function appFor(
  tenant: string,
  store: StoreState = 'up',
  heartbeatMs?: number,
  liveLingerMs = 100,
  env: Record<string, string> = {},
) {
  const settings = loadSettings({
    APP_ENV: 'development',
    AUTH_DEV_TENANT_ID: tenant,
    AUTH_DEV_USER_ID: USER,
    ...env,
  });
  let materialize: Materialize | null = null;
  if (store !== 'none') {
    materialize = createMaterialize({
      url: store === 'up' ? double.url : `postgres://materialize@127.0.0.1:${deadPort}/materialize`,
      poolSize: 4,
      optional: true,
      connectTimeoutMs: 1_000,
      fetchTimeoutMs: 200,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    await materialize.start();
  }
  const app = await buildApp({
    settings,
    database: createDatabase<AppDB>({ url: testDb.appUrl, poolSize: 2 }),
    materialize,
    ...(heartbeatMs === undefined ? {} : { streamHeartbeatMs: heartbeatMs }),
    liveLingerMs,
  });
  running.push(app);
  const base = await app.server.listen({ host: '127.0.0.1', port: 0 });
  const call = (method: string, path: string, body?: unknown) =>
    requestJson(base, method, path, body);
  const widget = async (kind: string, config?: Record<string, unknown>): Promise<string> => {
    const dashboard = await call('POST', '/api/v1/dashboards', { name: 'Live' });
    expect(dashboard.status).toBe(201);
    const created = await call('POST', `/api/v1/dashboards/${dashboard.body.id}/widgets`, {
      name: 'w',
      kind,
      ...(config === undefined ? {} : { config }),
    });
    expect(created.status).toBe(201);
    return created.body.id as string;
  };
  const stream = async (id: string, lastEventId?: string): Promise<SseStream> => {
    const opened = await openSse(
      base,
      `/api/v1/widgets/${id}/stream`,
      lastEventId === undefined ? {} : { 'last-event-id': lastEventId },
    );
    streams.push(opened);
    return opened;
  };
  return { app, base, call, widget, stream, materialize };
}

const updates = (events: readonly SseEvent[]) =>
  events
    .filter((event) => event.event === 'update')
    .map((event) => {
      const data = JSON.parse(event.data);
      return { diff: data.mz_diff as number, name: data.row.name as string, value: data.row.value };
    });

/** The one event of a refused stream (`event: refused`), after which the stream ends. */
async function refusalOf(stream: SseStream): Promise<unknown> {
  const event = await stream.next();
  expect(event.event).toBe('refused');
  await stream.ended;
  return JSON.parse(event.data);
}

/** Events until the first progress at or after `frontier`. */
const untilProgress = (stream: SseStream, frontier: bigint) =>
  stream.collect((event) => event.event === 'progress' && BigInt(event.id!) >= frontier);

beforeAll(async () => {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  deadPort = (probe.address() as { port: number }).port;
  probe.close();
  testDb = await createMigratedDatabase('widget_stream');
  double = await startMaterializeDouble();
  double.defineView(
    VIEW,
    [
      { name: 'tenant_id', type: 'uuid' },
      { name: 'name', type: 'text' },
      { name: 'value', type: 'int8' },
    ],
    [
      { tenant_id: TENANT_A, name: 'a-initial', value: 1 },
      { tenant_id: TENANT_B, name: 'b-initial', value: 2 },
    ],
  );
  double.defineView('no_tenant_column', [{ name: 'name', type: 'text' }]);
});

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  // Each test's apps stop with it: a SUBSCRIBE lingering after one must not be counted by the next.
  await Promise.allSettled(running.splice(0).map((app) => app.close()));
});

afterAll(async () => {
  await double?.stop();
  await testDb?.drop();
});

describe('GET /api/v1/widgets/:id/stream', () => {
  it("streams a snapshot, then live changes, of the principal's tenant only", async () => {
    const a = await appFor(TENANT_A);
    const id = await a.widget('live', { view: VIEW });
    const stream = await a.stream(id);
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(stream.headers.get('x-request-id')).toBeTruthy();

    const snapshot = await untilProgress(stream, double.upper);
    expect(updates(snapshot)).toEqual([{ diff: 1, name: 'a-initial', value: '1' }]);

    double.insert(VIEW, [
      { tenant_id: TENANT_B, name: 'b-live', value: 20 },
      { tenant_id: TENANT_A, name: 'a-live', value: 10 },
    ]);
    const live = await untilProgress(stream, double.upper);
    expect(updates(live)).toEqual([{ diff: 1, name: 'a-live', value: '10' }]);
    // Progress events carry the id a browser resumes from; updates carry none.
    expect(live.filter((event) => event.event === 'update').every((e) => e.id === undefined)).toBe(
      true,
    );
    expect(stream.lastEventId).toBe(double.upper.toString());
    double.remove(VIEW, [{ tenant_id: TENANT_A, name: 'a-live', value: 10 }]);
    expect(updates(await untilProgress(stream, double.upper))).toEqual([
      { diff: -1, name: 'a-live', value: '10' },
    ]);
  });

  it('resumes from Last-Event-ID with nothing lost and nothing repeated', async () => {
    const a = await appFor(TENANT_A);
    const id = await a.widget('live', { view: VIEW });
    const first = await a.stream(id);
    await untilProgress(first, double.upper);
    double.insert(VIEW, [{ tenant_id: TENANT_A, name: 'before-drop', value: 1 }]);
    await untilProgress(first, double.upper);
    const resumeAt = first.lastEventId!;
    first.close();

    // Committed while the browser was away.
    double.insert(VIEW, [{ tenant_id: TENANT_A, name: 'while-away-1', value: 2 }]);
    double.insert(VIEW, [{ tenant_id: TENANT_B, name: 'other-tenant', value: 3 }]);
    double.insert(VIEW, [{ tenant_id: TENANT_A, name: 'while-away-2', value: 4 }]);

    const again = await a.stream(id, resumeAt);
    expect(again.status).toBe(200);
    const caughtUp = await untilProgress(again, double.upper);
    // No snapshot (the browser has it), no repeat of before-drop, nothing missed.
    expect(updates(caughtUp).map((update) => update.name)).toEqual([
      'while-away-1',
      'while-away-2',
    ]);
  });

  it('keeps streaming across a dropped Materialize connection, without gap or repeat', async () => {
    const a = await appFor(TENANT_A);
    const id = await a.widget('live', { view: VIEW });
    const stream = await a.stream(id);
    await untilProgress(stream, double.upper);
    const names: string[] = [];
    for (let round = 0; round < 3; round += 1) {
      double.insert(VIEW, [{ tenant_id: TENANT_A, name: `r${round}-x`, value: round }]);
      double.dropConnections();
      double.insert(VIEW, [{ tenant_id: TENANT_A, name: `r${round}-y`, value: round }]);
      names.push(`r${round}-x`, `r${round}-y`);
    }
    const events = await untilProgress(stream, double.upper);
    expect(updates(events).map((update) => update.name)).toEqual(names);
  });

  it('resumes from the shared window after Materialize compacted the history, and on another instance falls back to a reset and a fresh snapshot', async () => {
    const a = await appFor(TENANT_A, 'up', undefined, 60_000);
    const id = await a.widget('live', { view: VIEW });
    const first = await a.stream(id);
    await untilProgress(first, double.upper);
    const stale = first.lastEventId!;
    first.close();
    double.insert(VIEW, [{ tenant_id: TENANT_A, name: 'after-compaction', value: 5 }]);
    // History before the latest closed timestamp is gone: Materialize cannot resume the stale point.
    double.compact(VIEW, double.upper - 1n);

    // The same instance still has it in its window (the SUBSCRIBE lingers): exact, no reset.
    const here = await a.stream(id, stale);
    expect(here.status).toBe(200);
    const resumed = await untilProgress(here, double.upper);
    expect(resumed.map((event) => event.event)).not.toContain('reset');
    expect(updates(resumed).map((update) => update.name)).toEqual(['after-compaction']);

    // Another instance has no window: a catch-up SUBSCRIBE AS OF the point finds no history.
    const b = await appFor(TENANT_A);
    const again = await b.stream(id, stale);
    expect(again.status).toBe(200);
    const events = await untilProgress(again, double.upper);
    expect(events.map((event) => event.event)).toContain('reset');
    expect(updates(events).map((update) => update.name)).toContain('after-compaction');
    expect(updates(events).map((update) => update.name)).not.toContain('b-initial');
  });

  it('serves every viewer of one widget from one SUBSCRIBE, beyond MATERIALIZE_POOL_SIZE', async () => {
    // The handle's pool has 4 connections; ten viewers, one SUBSCRIBE.
    const a = await appFor(TENANT_A, 'up', undefined, 100, { HTTP_STREAMS_PER_USER: '10' });
    const id = await a.widget('live', { view: VIEW });
    // DECLAREs of this test only: other tests' apps may still hold (lingering) SUBSCRIBEs.
    const declared: string[] = [];
    double.onStatement((statement) => {
      if (statement.startsWith('DECLARE')) declared.push(statement);
    });
    const viewers = [];
    for (let index = 0; index < 10; index += 1) viewers.push(await a.stream(id));
    for (const viewer of viewers) {
      expect(viewer.status).toBe(200);
      await untilProgress(viewer, double.upper);
    }
    double.onStatement(null);
    expect(declared).toHaveLength(1);
    double.insert(VIEW, [{ tenant_id: TENANT_A, name: 'shared', value: 7 }]);
    for (const viewer of viewers) {
      const events = await untilProgress(viewer, double.upper);
      expect(updates(events).map((update) => update.name)).toEqual(['shared']);
    }
  });

  it('ends the subscription when the browser disconnects', async () => {
    const a = await appFor(TENANT_A);
    const id = await a.widget('live', { view: VIEW });
    const before = double.sessions().filter((session) => session.cursor !== null).length;
    const stream = await a.stream(id);
    await untilProgress(stream, double.upper);
    expect(double.sessions().filter((session) => session.cursor !== null).length).toBe(before + 1);
    expect(a.app.streams.size).toBe(1);
    stream.close();
    await expect
      .poll(() => double.sessions().filter((session) => session.cursor !== null).length, {
        timeout: 5_000,
      })
      .toBe(before);
    await expect.poll(() => a.app.streams.size, { timeout: 5_000 }).toBe(0);
  });

  it('caps the streams one user holds (a refused event an EventSource retries), and frees a slot when one ends', async () => {
    const a = await appFor(TENANT_A);
    const id = await a.widget('live', { view: VIEW });
    // HTTP_STREAMS_PER_USER 4 (the default).
    const open = [await a.stream(id), await a.stream(id), await a.stream(id), await a.stream(id)];
    for (const stream of open) expect(stream.status).toBe(200);
    // A 429 would close a browser's EventSource for good: 200, `retry:` and why, then the end.
    const fifth = await a.stream(id);
    expect(fifth.status).toBe(200);
    expect(fifth.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(await refusalOf(fifth)).toEqual({
      status: 429,
      code: 'TOO_MANY_STREAMS',
      retry_after_ms: 5_000,
    });
    open[0]!.close();
    await expect.poll(() => a.app.streams.size, { timeout: 5_000 }).toBe(3);
    expect((await a.stream(id)).status).toBe(200);
  });

  it('sends heartbeats on an idle stream', async () => {
    const a = await appFor(TENANT_A, 'up', 50);
    const id = await a.widget('live', { view: VIEW });
    const stream = await a.stream(id);
    await untilProgress(stream, double.upper);
    await expect.poll(() => stream.comments, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
  });

  it('ends streams with a shutdown event when the app stops, and stops in time', async () => {
    const a = await appFor(TENANT_A);
    const id = await a.widget('live', { view: VIEW });
    const stream = await a.stream(id);
    await untilProgress(stream, double.upper);
    const outcome = await a.app.close();
    expect(outcome).toBe('drained');
    const rest = await stream.collect((event) => event.event === 'shutdown');
    expect(rest.at(-1)!.event).toBe('shutdown');
    await stream.ended;
  });

  it('answers 503 naming MATERIALIZE_URL when Materialize is not configured', async () => {
    const a = await appFor(TENANT_A, 'none');
    const id = await a.widget('live', { view: VIEW });
    const stream = await a.stream(id);
    expect(stream.status).toBe(200);
    expect(await refusalOf(stream)).toEqual({
      status: 503,
      code: 'NOT_CONFIGURED',
      // A missing variable takes a redeploy: browsers come back rarely.
      retry_after_ms: 60_000,
    });
    // A browser's ticket request is where a page reads which variable is missing.
    const ticket = await a.call('POST', '/api/v1/live/tickets', { widget_ids: [id] });
    expect(ticket.status).toBe(503);
    expect(ticket.body.detail).toContain('MATERIALIZE_URL');
    const ready = await a.call('GET', '/health/ready');
    expect(ready.body.checks.materialize).toEqual({
      status: 'not_configured',
      required: false,
      detail: 'set MATERIALIZE_URL',
    });
  });

  it('answers 503 with Retry-After when Materialize is down, and readiness is only degraded', async () => {
    const a = await appFor(TENANT_A, 'down');
    expect(a.materialize!.status).toBe('unavailable');
    const id = await a.widget('live', { view: VIEW });
    const stream = await a.stream(id);
    expect(stream.status).toBe(200);
    const refusal = await refusalOf(stream);
    expect(refusal).toEqual({ status: 503, code: 'UNAVAILABLE', retry_after_ms: 5_000 });
    expect(JSON.stringify(refusal)).not.toContain(String(deadPort));
    const ready = await a.call('GET', '/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('degraded');
    expect(ready.body.checks.materialize.status).toBe('down');
  });

  it('refuses what cannot be streamed: 404 across tenants, 409 for other widgets, 400 for a bad id', async () => {
    const a = await appFor(TENANT_A);
    const b = await appFor(TENANT_B);
    const idOfA = await a.widget('live', { view: VIEW });
    expect((await b.stream(idOfA)).status).toBe(404);

    const metric = await a.widget('metric', { metric: 'orders', days: 7 });
    expect((await a.stream(metric)).status).toBe(409);
    const noView = await a.widget('live');
    expect((await a.stream(noView)).status).toBe(409);
    const missingView = await a.widget('live', { view: 'no_such_view' });
    expect((await a.stream(missingView)).status).toBe(409);
    const noTenantColumn = await a.widget('live', { view: 'no_tenant_column' });
    expect((await a.stream(noTenantColumn)).status).toBe(409);

    expect((await a.stream(idOfA, 'not-a-number')).status).toBe(400);
    const badView = await a.call('POST', `/api/v1/dashboards/${crypto.randomUUID()}/widgets`, {
      name: 'w',
      kind: 'live',
      config: { view: 'x"; drop view y; --' },
    });
    expect(badView.status).toBe(400);
  });
});
