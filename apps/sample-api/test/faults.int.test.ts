/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment --
   response bodies are untyped JSON; the assertions are what check their shape */
// Faults under load. Each test builds the app in-process against a PRIVATE
// instance of one store that it then breaks while a bounded pool of fetch callers
// keeps hitting the app over real sockets: PostgreSQL stopped (immediate mode, a
// crash as clients see it) and started again, Redis killed and restarted,
// ClickHouse killed while it runs the app's query, the Materialize wire double
// dropping every connection while SSE streams are open, the IdP down.
//
// The contract checked every time: the process survives (an unhandled driver
// error would kill this vitest worker and fail the file), every request gets an
// expected status within a generous bound (no 500, no hang), 503s carry
// Retry-After and a problem+json body, and the app recovers by itself once the
// store is back.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@clickhouse/client';
import { loadSettings } from '@flowforge/config';
import { createClickHouse } from '@flowforge/clickhouse';
import { createDatabase } from '@flowforge/db';
import { createMaterialize } from '@flowforge/materialize';
import { createRedis } from '@flowforge/redis';
import { buildApp, type App } from '../src/app.js';
import type { AppDB } from '../src/db/schema.js';
import { ClickHouseServer } from '../../../packages/clickhouse/test/support/clickhouse-server.js';
import { RedisServers } from '../../../packages/redis/test/support/redis-servers.js';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import {
  startKeycloak,
  type KeycloakFixture,
} from '../../../packages/auth/test/support/keycloak.js';
import { CLICKHOUSE_URL, createMetricStore, dayBefore, READER } from './support/clickhouse.js';
import {
  contractViolations,
  describeOutcome,
  startLoad,
  statusCounts,
  timed,
  type Outcome,
} from './support/load.js';
import { createMigratedDatabase } from './support/postgres.js';
import { PrivatePostgres } from './support/private-postgres.js';
import { openSse, type SseStream } from './support/sse.js';

const TENANT_A = '8f3b2a10-6c4d-4e5f-9a0b-00000000000a';
const TENANT_B = '8f3b2a10-6c4d-4e5f-9a0b-00000000000b';
const USER = '8f3b2a10-6c4d-4e5f-9a0b-000000000001';
const CLIENT = 'flowforge-api';
/** Concurrent callers per fault: steady load that two shared cores sustain. */
const CALLERS = 8;

let sharedDb: Awaited<ReturnType<typeof createMigratedDatabase>>;
const cleanups: (() => Promise<unknown>)[] = [];

/** Settings of a development app (the dev principal: TENANT_A, every role). */
const devSettings = (env: Record<string, string> = {}) =>
  loadSettings({
    APP_ENV: 'development',
    AUTH_DEV_TENANT_ID: TENANT_A,
    AUTH_DEV_USER_ID: USER,
    ...env,
  });

async function listen(app: App): Promise<string> {
  cleanups.push(() => app.close());
  return app.server.listen({ host: '127.0.0.1', port: 0 });
}

async function postJson(base: string, path: string, body: unknown): Promise<{ id: string }> {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(201);
  return (await response.json()) as { id: string };
}

/** A dashboard with one widget of `kind`; resolves to the widget id. */
async function widget(base: string, kind: string, config: Record<string, unknown>) {
  const dashboard = await postJson(base, '/api/v1/dashboards', { name: 'Faults' });
  const created = await postJson(base, `/api/v1/dashboards/${dashboard.id}/widgets`, {
    name: 'w',
    kind,
    config,
  });
  return { dashboardId: dashboard.id, widgetId: created.id };
}

const isOk = (outcome: Outcome) => outcome.status >= 200 && outcome.status < 300;
const count = (outcomes: readonly Outcome[], predicate: (outcome: Outcome) => boolean) =>
  outcomes.filter(predicate).length;

beforeAll(async () => {
  sharedDb = await createMigratedDatabase('faults');
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await sharedDb?.drop();
});

describe('faults under load', () => {
  it('PostgreSQL restarted: quick 503s during the outage, recovery without restarting the app, no acknowledged write lost', async () => {
    const postgres = await PrivatePostgres.start();
    cleanups.push(() => postgres.destroy());
    const CONNECT_TIMEOUT_MS = 1_000;
    const app = await buildApp({
      settings: devSettings(),
      database: createDatabase<AppDB>({
        url: postgres.url('flowforge'),
        poolSize: 4,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
      }),
    });
    const base = await listen(app);

    // Every other request writes: 201 with an id is an acknowledged write.
    const load = startLoad(CALLERS, (worker, n) =>
      n % 2 === 0
        ? timed('create', `${base}/api/v1/dashboards`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ name: `w${worker}-${n}` }),
          })
        : timed('list', `${base}/api/v1/dashboards?limit=5`),
    );
    try {
      await load.until('40 successes before the fault', (all) => count(all, isOk) >= 40);

      await postgres.stop('immediate');
      const downAt = performance.now();
      await load.until(
        '30 answers to requests sent during the outage',
        () => load.since(downAt).length >= 30,
      );
      const ready = await timed('ready', `${base}/health/ready`);
      expect(ready.status).toBe(503);
      expect(ready.body.checks.postgres).toMatchObject({ status: 'down', required: true });

      await postgres.restart();
      const upAt = performance.now();
      await load.until(
        '40 successes after the restart',
        () => count(load.since(upAt), isOk) >= 40,
        30_000,
      );
      // Readiness reports are reused for a second (the kit's cacheMs): it catches up within it.
      await expect
        .poll(async () => (await timed('ready', `${base}/health/ready`)).status, { timeout: 5_000 })
        .toBe(200);
    } finally {
      await load.stop();
    }

    const outcomes = load.outcomes;
    expect(contractViolations(outcomes, [200, 201, 503])).toEqual([]);
    // While the server was down the answers were 503s, and quick ones: bounded by
    // the connect timeout (here 1 s), not by a 30 s statement or socket timeout.
    const unavailable = outcomes.filter((outcome) => outcome.status === 503);
    expect(unavailable.length).toBeGreaterThan(0);
    const slowest = Math.max(...unavailable.map((o) => o.endedAt - o.startedAt));
    expect(slowest).toBeLessThan(CONNECT_TIMEOUT_MS + 2_000);
    // Recovered: the last requests of every caller succeed.
    const tail = [...outcomes].sort((a, b) => a.startedAt - b.startedAt).slice(-CALLERS * 2);
    expect(tail.filter((outcome) => !isOk(outcome)).map(describeOutcome)).toEqual([]);

    // Every acknowledged write is there, read back straight from the server.
    const acknowledged = outcomes
      .filter((outcome) => outcome.label === 'create' && outcome.status === 201)
      .map((outcome) => outcome.body.id as string);
    expect(acknowledged.length).toBeGreaterThan(40);
    const stored = await postgres.superuser<{ id: string }>(
      'select id from dashboards where id = any($1::uuid[])',
      [acknowledged],
    );
    expect(new Set(stored.map((row) => row.id))).toEqual(new Set(acknowledged));
    console.info('postgres restart:', statusCounts(outcomes), {
      acknowledged: acknowledged.length,
      slowest503Ms: Math.round(slowest),
    });
  });

  it('Redis killed and restarted: data reads stay 200 (cache bypassed), then the cache serves again', async () => {
    const servers = new RedisServers();
    cleanups.push(() => servers.stopAll());
    const redisServer = await servers.standalone();
    const store = await createMetricStore('faults');
    cleanups.push(() => store.drop());
    await store.insert([
      { tenant_id: TENANT_A, metric: 'orders', daysAgo: 0, value: 2 },
      { tenant_id: TENANT_A, metric: 'orders', daysAgo: 1, value: 3 },
      { tenant_id: TENANT_B, metric: 'orders', daysAgo: 0, value: 99 },
    ]);
    const app = await buildApp({
      settings: devSettings(),
      database: createDatabase<AppDB>({ url: sharedDb.appUrl, poolSize: 4 }),
      clickhouse: createClickHouse({
        url: CLICKHOUSE_URL,
        ...READER,
        database: store.database,
        requestTimeoutMs: 5_000,
      }),
      redis: createRedis({
        ...loadSettings({ APP_ENV: 'test', REDIS_URL: `redis://127.0.0.1:${redisServer.port}` })
          .redis,
        commandTimeoutMs: 300,
      }),
      widgetCacheTtlMs: 60_000,
    });
    const base = await listen(app);
    const ids = await Promise.all(
      [1, 2, 3, 7].map(
        async (days) => (await widget(base, 'metric', { metric: 'orders', days })).widgetId,
      ),
    );

    const load = startLoad(CALLERS, (worker, n) =>
      timed('data', `${base}/api/v1/widgets/${ids[(worker + n) % ids.length]!}/data`),
    );
    const cachedSince = (since: number) =>
      count(load.since(since), (outcome) => outcome.body?.cached === true);
    let downAt = 0;
    let restartAt = 0;
    let upAt = 0;
    try {
      await load.until('20 cached answers', () => cachedSince(0) >= 20);
      await redisServer.kill();
      downAt = performance.now();
      await load.until('40 answers during the outage', () => load.since(downAt).length >= 40);
      const ready = await timed('ready', `${base}/health/ready`);
      // Redis is optional: down means degraded, still ready.
      expect(ready.status).toBe(200);
      expect(ready.body).toMatchObject({
        status: 'degraded',
        checks: { redis: { status: 'down', required: false } },
      });
      restartAt = performance.now();
      await redisServer.restart();
      upAt = performance.now();
      await load.until('20 cached answers after the restart', () => cachedSince(upAt) >= 20);
    } finally {
      await load.stop();
    }

    const outcomes = load.outcomes;
    expect(contractViolations(outcomes, [200])).toEqual([]);
    const duringOutage = outcomes.filter((o) => o.startedAt >= downAt && o.endedAt < restartAt);
    // With Redis gone every answer came from ClickHouse, and was still right.
    expect(duringOutage.length).toBeGreaterThan(0);
    expect(duringOutage.every((outcome) => outcome.body.cached === false)).toBe(true);
    // And right: the tenant's own points for the widget's days, cached or not.
    const expected = (days: number) =>
      days === 1
        ? [{ day: store.today, value: 2 }]
        : [
            { day: dayBefore(store.today, 1), value: 3 },
            { day: store.today, value: 2 },
          ];
    expect(
      outcomes.filter(
        (o) => JSON.stringify(o.body.points) !== JSON.stringify(expected(o.body.days as number)),
      ),
    ).toEqual([]);
    console.info('redis kill:', statusCounts(outcomes), {
      duringOutage: duringOutage.length,
      cachedAfterRestart: cachedSince(upAt),
    });
  });

  it('ClickHouse killed mid-query: 503, then 200 after its restart', async () => {
    const server = await ClickHouseServer.start([
      { name: 'ff_writer', password: 'ff_writer' },
      { name: 'ff_reader', password: 'ff_reader', readonly: 1 },
    ]);
    cleanups.push(() => server.stop());
    const writer = createClient({ url: server.url, username: 'ff_writer', password: 'ff_writer' });
    cleanups.push(() => writer.close());
    await writer.command({ query: 'CREATE DATABASE faults' });
    await writer.command({
      query: `CREATE TABLE faults.metric_points
        (tenant_id UUID, metric String, ts DateTime, value Float64)
        ENGINE = MergeTree ORDER BY (tenant_id, metric, ts)`,
    });
    // Enough rows that each read takes a while: the kill lands while queries run. They span
    // just under 6 days back from now, so always 7 calendar days whatever the time of day
    // (500000 s spanned 6 or 7 days depending on the hour the test ran).
    await writer.command({
      query: `INSERT INTO faults.metric_points
        SELECT toUUID('${TENANT_A}'), 'orders', now() - number % 518399, 1 FROM numbers(1500000)`,
    });
    const app = await buildApp({
      settings: devSettings(),
      database: createDatabase<AppDB>({ url: sharedDb.appUrl, poolSize: 4 }),
      clickhouse: createClickHouse({
        url: server.url,
        user: 'ff_reader',
        password: 'ff_reader',
        database: 'faults',
        requestTimeoutMs: 5_000,
      }),
    });
    const base = await listen(app);
    const { widgetId } = await widget(base, 'metric', { metric: 'orders', days: 7 });

    const load = startLoad(CALLERS, () => timed('data', `${base}/api/v1/widgets/${widgetId}/data`));
    let killAt = 0;
    try {
      await load.until('20 successes before the kill', (all) => count(all, isOk) >= 20);
      // Kill while the server is running one of the app's queries.
      for (let polls = 0; ; polls += 1) {
        const result = await writer.query({
          query: "SELECT count() AS n FROM system.processes WHERE user = 'ff_reader'",
          format: 'JSONEachRow',
        });
        const [{ n } = { n: '0' }] = await result.json<{ n: string }>();
        if (Number(n) > 0 || polls > 200) break;
      }
      killAt = performance.now();
      await server.kill();
      const deadAt = performance.now();
      await load.until('30 answers after the kill', () => load.since(deadAt).length >= 30);
      await server.restart();
      const upAt = performance.now();
      await load.until('20 successes after the restart', () => count(load.since(upAt), isOk) >= 20);
    } finally {
      await load.stop();
    }

    const outcomes = load.outcomes;
    expect(contractViolations(outcomes, [200, 503])).toEqual([]);
    // The requests whose query the kill cut: answered 503, not 500, not a hang.
    const cut = outcomes.filter(
      (o) => o.startedAt < killAt && o.endedAt > killAt && o.status === 503,
    );
    expect(cut.length).toBeGreaterThan(0);
    const tail = [...outcomes].sort((a, b) => a.startedAt - b.startedAt).slice(-CALLERS * 2);
    expect(tail.filter((outcome) => !isOk(outcome)).map(describeOutcome)).toEqual([]);
    expect(tail[0]?.body.points).toHaveLength(7);
    console.info('clickhouse kill:', statusCounts(outcomes), { cutMidQuery: cut.length });
  });

  it('Materialize dropping connections mid-stream under load: SSE resumes with no gap and no duplicate', async () => {
    const double: MaterializeDouble = await startMaterializeDouble();
    cleanups.push(() => double.stop());
    const VIEW = 'fault_events';
    double.defineView(VIEW, [
      { name: 'tenant_id', type: 'uuid' },
      { name: 'seq', type: 'int8' },
    ]);
    const materialize = createMaterialize({
      url: double.url,
      poolSize: 10,
      optional: true,
      connectTimeoutMs: 1_000,
      fetchTimeoutMs: 200,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    await materialize.start();
    const app = await buildApp({
      settings: devSettings({ MATERIALIZE_POOL_SIZE: '10' }),
      database: createDatabase<AppDB>({ url: sharedDb.appUrl, poolSize: 4 }),
      materialize,
    });
    const base = await listen(app);
    const { dashboardId, widgetId } = await widget(base, 'live', { view: VIEW });
    const streamPath = `/api/v1/widgets/${widgetId}/stream`;

    /**
     * A browser's EventSource, reduced to what matters: the seq of every update
     * received, across reconnects with Last-Event-ID when the server ends the stream.
     */
    const follow = async () => {
      const seqs: number[] = [];
      let reconnects = 0;
      let frontier = 0n;
      let stream: SseStream = await openSse(base, streamPath);
      let lastEventId: string | undefined;
      const readUntil = async (upper: bigint): Promise<void> => {
        while (frontier < upper) {
          let event;
          try {
            event = await stream.next(10_000);
          } catch (error) {
            // The stream ended (an `error` event first, say): reconnect as a browser does.
            if (!String(error).includes('ended')) throw error;
            reconnects += 1;
            stream.close();
            stream = await openSse(
              base,
              streamPath,
              lastEventId === undefined ? {} : { 'last-event-id': lastEventId },
            );
            if (stream.status !== 200) {
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
            continue;
          }
          if (event.event === 'update') {
            const data = JSON.parse(event.data);
            expect(data.row.tenant_id).toBe(TENANT_A);
            expect(data.mz_diff).toBe(1);
            seqs.push(Number(data.row.seq));
          } else if (event.event === 'progress') {
            frontier = BigInt(event.id!);
            lastEventId = event.id;
          } else if (event.event === 'reset') {
            throw new Error('the stream was reset: its resume point was lost');
          }
        }
      };
      return {
        seqs,
        readUntil,
        get reconnects() {
          return reconnects;
        },
        close: () => stream.close(),
      };
    };
    const followers = await Promise.all([follow(), follow(), follow()]);
    cleanups.push(() => {
      for (const follower of followers) follower.close();
      return Promise.resolve();
    });

    // Load beside the streams: tenant data reads, and streams opened and left at once.
    const load = startLoad(CALLERS, (worker, n) => {
      if (worker < 2) {
        return (async (): Promise<Outcome> => {
          const startedAt = performance.now();
          const stream = await openSse(base, streamPath);
          try {
            if (stream.status === 200) {
              // A refusal (the per-user cap) is a 200 stream whose one event says so.
              await stream.collect(
                (event) => event.event === 'progress' || event.event === 'refused',
                10_000,
              );
            }
          } finally {
            stream.close();
          }
          return {
            label: 'stream',
            status: stream.status,
            startedAt,
            endedAt: performance.now(),
            contentType: stream.headers.get('content-type'),
            retryAfter: stream.headers.get('retry-after'),
            body: stream.problem,
          };
        })();
      }
      return n % 2 === 0
        ? timed('widgets', `${base}/api/v1/dashboards/${dashboardId}/widgets`)
        : timed('list', `${base}/api/v1/dashboards?limit=5`);
    });

    const COMMITS = 150;
    let drops = 0;
    try {
      for (let seq = 1; seq <= COMMITS; seq += 1) {
        double.insert(VIEW, [
          { tenant_id: TENANT_A, seq },
          { tenant_id: TENANT_B, seq: -seq },
        ]);
        if (seq % 15 === 0) {
          double.dropConnections();
          drops += 1;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await Promise.all(followers.map((follower) => follower.readUntil(double.upper)));
    } finally {
      await load.stop();
    }

    const expected = Array.from({ length: COMMITS }, (_, index) => index + 1);
    for (const follower of followers) expect(follower.seqs).toEqual(expected);
    // A churning client's streams outnumber the per-user cap for a moment (a closed stream is
    // untracked once its subscription has let go): those are 200 streams of one `refused` event.
    expect(contractViolations(load.outcomes, [200, 429, 503])).toEqual([]);
    console.info('materialize drops:', statusCounts(load.outcomes), {
      drops,
      commits: COMMITS,
      clientReconnects: followers.map((follower) => follower.reconnects),
    });
  });

  it('IdP down: tokens whose key is cached keep working; an unknown kid is 503, not 401', async () => {
    const keycloak: KeycloakFixture = await startKeycloak({ clientId: CLIENT });
    cleanups.push(() => keycloak.close());
    const COOLDOWN_MS = 200;
    const app = await buildApp({
      settings: loadSettings({
        APP_ENV: 'production',
        SECRET_KEY: 'f'.repeat(64),
        METRICS_TOKEN: 'm'.repeat(32),
        DATABASE_URL: sharedDb.appUrl,
        KEYCLOAK_URL: keycloak.url,
        KEYCLOAK_REALM: keycloak.realm,
        KEYCLOAK_CLIENT_ID: CLIENT,
        AUTH_JWKS_COOLDOWN_MS: String(COOLDOWN_MS),
      }),
      database: createDatabase<AppDB>({ url: sharedDb.appUrl, poolSize: 4 }),
    });
    const base = await listen(app);
    const claims = () => ({
      sub: randomUUID(),
      tenant_id: TENANT_A,
      typ: 'Bearer',
      azp: CLIENT,
      aud: CLIENT,
      realm_access: { roles: ['viewer'] },
    });
    const get = (label: string, path: string, token: string) =>
      timed(label, `${base}${path}`, { headers: { authorization: `Bearer ${token}` } });

    // The app fetches the realm's keys on its first token.
    const warm = await get(
      'me',
      '/api/v1/me',
      await keycloak.issueToken({ tenantId: TENANT_A, realmRoles: ['viewer'] }),
    );
    expect(warm.status).toBe(200);

    const knownKids = keycloak.kids();
    await keycloak.stop();
    // A key the IdP added that the app has never seen (a rotation it missed).
    const newKid = await keycloak.rotate();
    // Fresh tokens (never verified before, so no cached verdict) signed with the known keys.
    const known = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        keycloak.sign(claims(), { kid: knownKids[i % knownKids.length]! }),
      ),
    );
    expect(knownKids).not.toContain(newKid);
    let next = 0;
    const load = startLoad(CALLERS, (_worker, n) => {
      const token = known[next++ % known.length]!;
      return n % 2 === 0
        ? get('me', '/api/v1/me', token)
        : get('dashboards', '/api/v1/dashboards?limit=5', token);
    });
    const unknownKid: Outcome[] = [];
    try {
      await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS * 2));
      for (let i = 0; i < 20; i += 1) {
        unknownKid.push(
          await get('unknown kid', '/api/v1/me', await keycloak.sign(claims(), { kid: newKid })),
        );
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      await load.until('100 answers with the IdP down', (all) => all.length >= 100);
    } finally {
      await load.stop();
    }
    expect(contractViolations(load.outcomes, [200])).toEqual([]);
    expect(unknownKid.map((outcome) => outcome.status)).toEqual(unknownKid.map(() => 503));
    expect(contractViolations(unknownKid, [503])).toEqual([]);

    // The IdP is back: the new key is fetched and its tokens are accepted.
    await keycloak.start();
    const token = await keycloak.sign(claims(), { kid: newKid });
    let recovered: Outcome | undefined;
    for (let attempt = 0; attempt < 50 && recovered?.status !== 200; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS / 2));
      recovered = await get('unknown kid', '/api/v1/me', token);
    }
    expect(recovered?.status).toBe(200);
    console.info('idp down:', statusCounts(load.outcomes), {
      unknownKid: statusCounts(unknownKid),
    });
  });
});
