// A soak of the built sample app: dist/main.js as a child process with real
// PostgreSQL, ClickHouse and Redis (scripts/services) and the Materialize wire
// double (its own process), under steady mixed load at a fixed rate for
// --duration seconds (reads, writes, widget data, SSE streams that reconnect now
// and then). Every few seconds: the app's RSS (/proc), CPU (/proc) and its own
// event-loop delay and heap from GET /metrics. Reports first- vs last-minute RSS,
// the largest event-loop delay p99 and the errors, which must be 0. See ../README.md.
//
// Usage: node app/soak.ts [--duration 300] [--rate 100] [--sample 5] [--streams 2]
//                          [--reconnect 30] [--help]
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createClient } from '@clickhouse/client';
import {
  errorParts,
  exitOf,
  freePort,
  isRecord,
  machineLoad,
  median,
  oneMinuteLoad,
  percentile,
  pidOf,
  positiveFlag,
  processCpu,
  sleep,
  tearDownOnSignals,
  writeResults,
} from '../lib/harness.ts';
import { forkWithIpc } from '../lib/ipc.ts';
import { SUPERUSER, adminQuery } from '../lib/postgres.ts';
import { startRealm } from '../lib/realm.ts';
import {
  appEnvironment,
  createSeededDatabase,
  processRss,
  requireBuiltApp,
  startApp,
  type RunningApp,
} from './common.ts';
import type { SoakDoubleCommand, SoakDoubleReply } from './soak-double.ts';

const RESULTS = fileURLToPath(new URL('./soak-results.json', import.meta.url));
const DOUBLE = fileURLToPath(new URL('./soak-double.ts', import.meta.url));

const CLICKHOUSE_URL = 'http://127.0.0.1:8123';
const CLICKHOUSE_WRITER = { username: 'flowforge', password: 'flowforge' };
const CLICKHOUSE_READER = { user: 'flowforge_reader', password: 'flowforge_reader' };
const REDIS_URL = 'redis://127.0.0.1:6379';
const TENANTS = [
  '3a7c9e51-2b4d-4f6a-8c1e-00000000a001',
  '3a7c9e51-2b4d-4f6a-8c1e-00000000a002',
  '3a7c9e51-2b4d-4f6a-8c1e-00000000a003',
];
const DASHBOARDS_PER_TENANT = 10;
const METRIC_WIDGETS_PER_DASHBOARD = 2;
const METRICS = ['orders', 'visits'];
const METRIC_DAYS = 30;
/** The double writes one row per tenant this often. */
const DOUBLE_INTERVAL_MS = 250;
const DOUBLE_INITIAL_ROWS = 20;
/** Dashboards a tenant's writers keep: above it, a write deletes the oldest. */
const WRITE_POOL = 10;
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_IN_FLIGHT = 500;

/** The operations of the mix. */
type Op =
  | 'list dashboards'
  | 'get dashboard'
  | 'list widgets'
  | 'widget data'
  | 'me'
  | 'write dashboard'
  | 'patch dashboard';

/** The mix, by weight; each op knows the status it must get. */
const MIX: readonly (readonly [Op, number])[] = [
  ['list dashboards', 40],
  ['get dashboard', 10],
  ['list widgets', 10],
  ['widget data', 20],
  ['me', 5],
  ['write dashboard', 10], // create, or delete the oldest created when the pool is full
  ['patch dashboard', 5],
];

const USAGE = `Usage: node app/soak.ts [options]

Runs apps/sample-api/dist/main.js (APP_ENV=production) against PostgreSQL,
ClickHouse and Redis of scripts/services and the Materialize wire double, under
a fixed mixed load; samples RSS, CPU and event-loop delay; fails (exit 1) when any
request, stream or readiness check failed. Creates a PostgreSQL database and a
ClickHouse database ff_bench_<random> and drops them at the end.

Options:
  --duration S    seconds of load                                   (300)
  --rate N        requests per second, fixed (open loop)            (100)
  --sample S      seconds between samples                           (5)
  --streams N     SSE streams open throughout (one per tenant, ≤ ${TENANTS.length})   (2)
  --reconnect S   mean seconds between a stream's reconnections     (30)
  --help          this text
`;

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '300' },
    rate: { type: 'string', default: '100' },
    sample: { type: 'string', default: '5' },
    streams: { type: 'string', default: '2' },
    reconnect: { type: 'string', default: '30' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const settings = {
  duration: positiveFlag(flags, 'duration'),
  rate: positiveFlag(flags, 'rate'),
  sample: positiveFlag(flags, 'sample'),
  streams: Number(flags.streams),
  reconnect: positiveFlag(flags, 'reconnect'),
};
if (
  !Number.isInteger(settings.streams) ||
  settings.streams < 0 ||
  settings.streams > TENANTS.length
) {
  throw new Error(`--streams must be a whole number from 0 to ${TENANTS.length}`);
}
requireBuiltApp();

// ------------------------------------------------------------------ clean-up

const cleanups: (() => Promise<unknown>)[] = [];
let tearingDown: Promise<void> | undefined;
function teardown(): Promise<void> {
  tearingDown ??= (async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(console.error);
  })();
  return tearingDown;
}
tearDownOnSignals('stopping the app and the double, dropping the bench databases', teardown);

// ------------------------------------------------------------------ errors

/** A failure: when (s into the load), what, and (the first 50) the detail. */
interface SoakError {
  at: number;
  kind: string;
  detail?: string;
}

const errors: SoakError[] = [];
/** Records a failure (the first 50 in full); the soak must end with none. */
function fail(kind: string, detail: string): void {
  errors.push({
    at: Number(elapsed().toFixed(1)),
    kind,
    ...(errors.length < 50 ? { detail } : {}),
  });
  if (errors.length <= 10) console.error(`error at ${elapsed().toFixed(1)} s: ${kind}: ${detail}`);
}
let startedAt = performance.now();
const elapsed = () => (performance.now() - startedAt) / 1000;

// ------------------------------------------------------------------ set-up

async function createMetricStore() {
  const database = `ff_bench_${randomBytes(4).toString('hex')}`;
  const writer = createClient({ url: CLICKHOUSE_URL, ...CLICKHOUSE_WRITER });
  await writer.command({ query: `CREATE DATABASE ${database}` });
  const drop = async () => {
    try {
      await writer.command({ query: `DROP DATABASE IF EXISTS ${database}` });
      console.log(`dropped ClickHouse database ${database}`);
    } finally {
      await writer.close();
    }
  };
  try {
    await writer.command({
      query: `CREATE TABLE ${database}.metric_points
        (tenant_id UUID, metric String, ts DateTime, value Float64)
        ENGINE = MergeTree ORDER BY (tenant_id, metric, ts)`,
    });
    const values: { tenant_id: string; metric: string; ts: string; value: number }[] = [];
    const now = Date.now();
    for (const tenant of TENANTS) {
      for (const metric of METRICS) {
        for (let day = 0; day < METRIC_DAYS; day += 1) {
          for (let hour = 0; hour < 24; hour += 6) {
            const ts = new Date(now - day * 86_400_000 - hour * 3_600_000);
            values.push({
              tenant_id: tenant,
              metric,
              ts: ts.toISOString().slice(0, 19).replace('T', ' '),
              value: (day * 7 + hour) % 50,
            });
          }
        }
      }
    }
    await writer.insert({ table: `${database}.metric_points`, format: 'JSONEachRow', values });
    const version = await writer.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' });
    const [row] = await version.json<{ v: string }>();
    return { database, version: row?.v, rows: values.length, drop };
  } catch (error) {
    await drop().catch(() => undefined);
    throw error;
  }
}

/** The Materialize double in its own process; resolves once it listens. */
async function startDouble() {
  const { child, reply, send } = forkWithIpc<SoakDoubleReply, SoakDoubleCommand>('double', DOUBLE, [
    String(DOUBLE_INTERVAL_MS),
    String(DOUBLE_INITIAL_ROWS),
    ...TENANTS,
  ]);
  const ready = await reply('ready');
  return {
    child,
    url: ready.url,
    view: ready.view,
    /** Stops writing; resolves to the next id of each tenant (every id below was committed). */
    pause: async () => {
      const paused = reply('paused');
      send({ op: 'pause' });
      return (await paused).next;
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = exitOf(child);
      send({ op: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A tenant's ids, as the load uses them. */
interface PreparedTenant {
  id: string;
  dashboards: string[];
  /** metric widgets */
  widgets: string[];
  /** the live widget */
  live: string;
  /** dashboards the soak created and has not deleted yet, oldest first */
  created: string[];
}

/** A tenant with its tokens (Authorization header values). */
interface Tenant extends PreparedTenant {
  viewer: string;
  editor: string;
}

/** Ids the load needs, read as the superuser: dashboards and metric widgets per tenant; adds a live widget. */
async function prepareTenants(databaseName: string, view: string): Promise<PreparedTenant[]> {
  const target = { as: SUPERUSER, database: databaseName };
  const tenants: PreparedTenant[] = [];
  for (const tenant of TENANTS) {
    const dashboards = (
      await adminQuery<{ id: string }>(
        target,
        'select id from dashboards where tenant_id = $1 order by created_at',
        [tenant],
      )
    ).rows.map((row) => row.id);
    const widgets = (
      await adminQuery<{ id: string }>(
        target,
        "select id from widgets where tenant_id = $1 and kind = 'metric'",
        [tenant],
      )
    ).rows.map((row) => row.id);
    const [live] = (
      await adminQuery<{ id: string }>(
        target,
        `insert into widgets (tenant_id, dashboard_id, name, kind, config)
         values ($1, $2, 'Live events', 'live', $3) returning id`,
        [tenant, dashboards[0], JSON.stringify({ view })],
      )
    ).rows;
    if (live === undefined) throw new Error(`no live widget was created for ${tenant}`);
    tenants.push({ id: tenant, dashboards, widgets, live: live.id, created: [] });
  }
  return tenants;
}

// ------------------------------------------------------------------ the load

const pick = <T>(list: readonly T[]): T | undefined =>
  list[Math.floor(Math.random() * list.length)];
const totalWeight = MIX.reduce((sum, [, weight]) => sum + weight, 0);
function pickOp(): Op {
  let roll = Math.random() * totalWeight;
  for (const [op, weight] of MIX) {
    roll -= weight;
    if (roll < 0) return op;
  }
  return 'list dashboards'; // the first of MIX
}

/** One request of the load and the status it must get. */
interface SoakRequest {
  /** the name it is counted under when not the op's own */
  op?: string;
  /** the Authorization header */
  auth: string;
  method?: string;
  path: string;
  body?: unknown;
  status: number;
  /** what to do with a created dashboard's answer */
  created?: (json: unknown) => void;
}

/** A write: create a dashboard, or delete the oldest created once the pool is full. */
function writeRequest(tenant: Tenant): SoakRequest {
  if (tenant.created.length >= WRITE_POOL) {
    const id = tenant.created.shift();
    return {
      op: 'delete dashboard',
      auth: tenant.editor,
      method: 'DELETE',
      path: `/api/v1/dashboards/${id}`,
      status: 204,
    };
  }
  return {
    op: 'create dashboard',
    auth: tenant.editor,
    method: 'POST',
    path: '/api/v1/dashboards',
    body: {
      name: `Soak ${randomUUID().slice(0, 8)}`,
      description: 'written by bench/app/soak',
    },
    status: 201,
    created: (json) => {
      if (isRecord(json) && typeof json.id === 'string') tenant.created.push(json.id);
    },
  };
}

/** The request of `op` for `tenant`: method, path, body, the status it must get, and what to do with the answer. */
function requestFor(op: Op, tenant: Tenant): SoakRequest {
  const read = tenant.viewer;
  switch (op) {
    case 'list dashboards':
      return { auth: read, path: '/api/v1/dashboards', status: 200 };
    case 'get dashboard':
      return { auth: read, path: `/api/v1/dashboards/${pick(tenant.dashboards)}`, status: 200 };
    case 'list widgets':
      return {
        auth: read,
        path: `/api/v1/dashboards/${pick(tenant.dashboards)}/widgets`,
        status: 200,
      };
    case 'widget data':
      return { auth: read, path: `/api/v1/widgets/${pick(tenant.widgets)}/data`, status: 200 };
    case 'me':
      return { auth: read, path: '/api/v1/me', status: 200 };
    case 'patch dashboard': {
      // The newest of the pool: never the one a delete is taking (the oldest).
      const id = tenant.created.at(-1);
      if (tenant.created.length >= 3 && id !== undefined) {
        return {
          auth: tenant.editor,
          method: 'PATCH',
          path: `/api/v1/dashboards/${id}`,
          body: { description: `patched at ${new Date().toISOString()}` },
          status: 200,
        };
      }
      return writeRequest(tenant); // nothing to patch yet
    }
    case 'write dashboard':
      return writeRequest(tenant);
  }
}

/** Latencies (ms) and counts, per sampling window and in total. */
interface Stats {
  window: number[];
  all: number[];
  byOp: Record<string, { requests: number; failed: number }>;
  inFlight: number;
  maxInFlight: number;
  backlogSkipped: number;
}

const stats: Stats = {
  window: [],
  all: [],
  byOp: {},
  inFlight: 0,
  maxInFlight: 0,
  backlogSkipped: 0,
};

async function send(base: string, tenant: Tenant): Promise<void> {
  const op = pickOp();
  const request = requestFor(op, tenant);
  const name = request.op ?? op;
  const counts = (stats.byOp[name] ??= { requests: 0, failed: 0 });
  counts.requests += 1;
  stats.inFlight += 1;
  stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
  const t0 = performance.now();
  try {
    const response = await fetch(`${base}${request.path}`, {
      method: request.method ?? 'GET',
      headers: {
        authorization: request.auth,
        ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    const ms = performance.now() - t0;
    stats.window.push(ms);
    stats.all.push(ms);
    if (response.status !== request.status) {
      counts.failed += 1;
      fail(`${name} → ${response.status}`, `${request.path}: ${text.slice(0, 300)}`);
    } else if (request.created) {
      request.created(JSON.parse(text));
    }
  } catch (error) {
    counts.failed += 1;
    const { name: errorName, message } = errorParts(error);
    fail(`${name} → ${errorName}`, `${request.path}: ${message}`);
  } finally {
    stats.inFlight -= 1;
  }
}

/** Fires requests at a fixed rate (open loop: a slow answer does not slow the sending). */
function startLoad(base: string, tenants: readonly Tenant[], rate: number): () => Promise<number> {
  const began = performance.now();
  let sent = 0;
  const pending = new Set<Promise<void>>();
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - began) / 1000) * rate) - sent;
    for (let i = 0; i < due; i += 1) {
      sent += 1;
      if (stats.inFlight >= MAX_IN_FLIGHT) {
        stats.backlogSkipped += 1;
        continue;
      }
      const tenant = tenants[sent % tenants.length];
      if (tenant === undefined) continue;
      const promise = send(base, tenant);
      pending.add(promise);
      void promise.finally(() => pending.delete(promise));
    }
  }, 10);
  return async () => {
    clearInterval(timer);
    await Promise.allSettled([...pending]);
    return sent;
  };
}

// ------------------------------------------------------------------ SSE streams

/** What a stream saw. */
interface StreamState {
  /** the last 4 characters of the tenant id */
  tenant: string;
  connections: number;
  updates: number;
  progress: number;
  heartbeats: number;
  seen: Set<number>;
  max: number;
  lastEventId: string | undefined;
  stopping: boolean;
}

/** The fields of one server-sent event being read. */
interface EventFields {
  event?: string;
  id?: string;
  data: string[];
}

/**
 * A live widget stream of one tenant, as a browser keeps it: reconnects now and
 * then with Last-Event-ID and checks that it gets every id of its tenant exactly
 * once, in the order written, and nothing of another tenant.
 */
function startStream(base: string, tenant: Tenant) {
  const state: StreamState = {
    tenant: tenant.id.slice(-4),
    connections: 0,
    updates: 0,
    progress: 0,
    heartbeats: 0,
    seen: new Set(),
    max: -1,
    lastEventId: undefined,
    stopping: false,
  };
  let controller: AbortController | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let wake = (): void => undefined;
  let running: Promise<void> | undefined;

  async function connect(): Promise<void> {
    const connection = new AbortController();
    controller = connection;
    state.connections += 1;
    const headers: Record<string, string> = {
      accept: 'text/event-stream',
      authorization: tenant.viewer,
    };
    if (state.lastEventId !== undefined) headers['last-event-id'] = state.lastEventId;
    let response;
    try {
      response = await fetch(`${base}/api/v1/widgets/${tenant.live}/stream`, {
        headers,
        signal: connection.signal,
      });
    } catch (error) {
      if (!connection.signal.aborted) fail('stream connect', errorParts(error).message);
      return;
    }
    if (
      response.status !== 200 ||
      !response.headers.get('content-type')?.startsWith('text/event-stream')
    ) {
      fail(`stream → ${response.status}`, (await response.text()).slice(0, 300));
      return;
    }
    // Updates after the last progress are sent again after a reconnection: kept
    // aside until their progress arrives.
    let pending: number[] = [];
    const decoder = new TextDecoder();
    let buffer = '';
    let fields: EventFields = { data: [] };
    const dispatch = (event: string, id: string | undefined, data: string) => {
      if (event === 'update') {
        const change: unknown = JSON.parse(data);
        if (!isRecord(change) || !isRecord(change.row)) {
          fail('stream: update without a row', data);
          return;
        }
        const row = change.row;
        if (row.tenant_id !== tenant.id) fail('stream: another tenant', JSON.stringify(row));
        if (change.mz_diff !== 1) fail('stream: unexpected diff', data);
        pending.push(Number(row.id));
        state.updates += 1;
      } else if (event === 'progress') {
        state.progress += 1;
        state.lastEventId = id;
        for (const rowId of pending) {
          if (state.seen.has(rowId)) fail('stream: duplicate', `id ${rowId} of ${state.tenant}`);
          state.seen.add(rowId);
          state.max = Math.max(state.max, rowId);
        }
        pending = [];
        if (state.seen.size !== state.max + 1) {
          fail('stream: gap', `${state.seen.size} ids up to ${state.max} of ${state.tenant}`);
          // report a gap once: count what arrived from here on
          for (let i = 0; i <= state.max; i += 1) state.seen.add(i);
        }
      } else if (!(event === 'shutdown' && state.stopping)) {
        fail(`stream: event ${event}`, data);
      }
    };
    try {
      for await (const chunk of response.body ?? []) {
        const bytes: unknown = chunk;
        if (!(bytes instanceof Uint8Array))
          throw new Error('the stream gave something other than bytes');
        buffer += decoder.decode(bytes, { stream: true });
        let newline;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, '');
          buffer = buffer.slice(newline + 1);
          if (line === '') {
            if (fields.data.length > 0 || fields.event !== undefined) {
              dispatch(fields.event ?? 'message', fields.id, fields.data.join('\n'));
            }
            fields = { data: [] };
          } else if (line.startsWith(':')) {
            state.heartbeats += 1;
          } else {
            const colon = line.indexOf(':');
            const key = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (key === 'event') fields.event = value;
            else if (key === 'data') fields.data.push(value);
            else if (key === 'id') fields.id = value;
          }
        }
      }
      if (!state.stopping) fail('stream ended', `the server ended the stream of ${state.tenant}`);
    } catch (error) {
      if (!connection.signal.aborted) fail('stream broke', errorParts(error).message);
    }
  }

  function loop(): void {
    running = (async () => {
      while (!state.stopping) {
        const connection = connect();
        // The next reconnection, at a random time around the mean.
        const wait = settings.reconnect * 1000 * (0.5 + Math.random());
        await new Promise<void>((resolve) => {
          wake = resolve;
          reconnectTimer = setTimeout(resolve, wait);
          void connection.then(() => {
            // Ended on its own (an error was recorded): reconnect after a second.
            if (controller && !controller.signal.aborted) {
              clearTimeout(reconnectTimer);
              setTimeout(resolve, 1_000);
            }
          });
        });
        controller?.abort();
        await connection;
      }
    })();
  }
  loop();

  return {
    state,
    tenantId: tenant.id,
    /** Resolves once every id below `next` has arrived (false after `timeoutMs`). */
    async caughtUp(next: number, timeoutMs: number): Promise<boolean> {
      const deadline = performance.now() + timeoutMs;
      while (state.seen.size < next) {
        if (performance.now() > deadline) return false;
        await sleep(50);
      }
      return state.seen.size === next && state.max === next - 1;
    },
    async stop(): Promise<void> {
      state.stopping = true;
      clearTimeout(reconnectTimer);
      wake();
      controller?.abort();
      await running;
    },
  };
}

// ------------------------------------------------------------------ sampling

/** `name value` lines of the Prometheus text format, unlabelled series only. */
function parseMetrics(text: string): Record<string, number> {
  const values: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [, name, value] = /^([a-z_:][a-z0-9_:]*) ([-+.eE0-9]+|NaN)$/i.exec(line) ?? [];
    if (name !== undefined) values[name] = Number(value);
  }
  return values;
}

/** One sample of the app and of the load. */
interface Sample {
  /** s into the load */
  at: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  cpuPercent: number;
  /** the app's CPU time so far, µs */
  cpu: number;
  /** seconds */
  eventLoop: { p50: number; p99: number; max: number };
  handles: number;
  requests: number;
  requestsPerSecond: number;
  /** ms; null when no request was answered in the window */
  p50: number | null;
  p99: number | null;
  inFlight: number;
  errors: number;
}

async function sample(
  app: RunningApp,
  metricsToken: string,
  previous: { at: number; cpu: number },
): Promise<Sample> {
  const at = elapsed();
  const pid = pidOf(app.child);
  const [rss, cpu] = await Promise.all([processRss(pid), processCpu(pid)]);
  const scrape = await fetch(`${app.base}/metrics`, {
    headers: { authorization: `Bearer ${metricsToken}` },
  });
  const scraped = await scrape.text();
  if (scrape.status !== 200) fail(`metrics → ${scrape.status}`, scraped.slice(0, 300));
  const metrics = parseMetrics(scraped);
  const ready = await fetch(`${app.base}/health/ready`);
  const readyBody = await ready.text();
  if (ready.status !== 200) fail(`ready → ${ready.status}`, readyBody.slice(0, 500));
  const latencies = stats.window.splice(0).sort((a, b) => a - b);
  const seconds = at - previous.at;
  // NaN for a series the scrape did not have.
  const m = (name: string): number => metrics[`flowforge_${name}`] ?? Number.NaN;
  return {
    at: Number(at.toFixed(1)),
    rss,
    heapUsed: m('nodejs_heap_size_used_bytes'),
    heapTotal: m('nodejs_heap_size_total_bytes'),
    external: m('nodejs_external_memory_bytes'),
    cpuPercent: ((cpu - previous.cpu) / 1e6 / seconds) * 100,
    cpu,
    // prom-client's monitorEventLoopDelay histogram (10 ms resolution), reset at each scrape:
    // the delays of this sampling window.
    eventLoop: {
      p50: m('nodejs_eventloop_lag_p50_seconds'),
      p99: m('nodejs_eventloop_lag_p99_seconds'),
      max: m('nodejs_eventloop_lag_max_seconds'),
    },
    handles: m('nodejs_active_handles'),
    requests: latencies.length,
    requestsPerSecond: latencies.length / seconds,
    p50: latencies.length > 0 ? percentile(latencies, 0.5) : null,
    p99: latencies.length > 0 ? percentile(latencies, 0.99) : null,
    inFlight: stats.inFlight,
    errors: errors.length,
  };
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const ms = (seconds: number) => (seconds * 1000).toFixed(1);

/** The app's log: lines, count per level, the warnings and errors that are failures. */
function readAppLog(text: string) {
  const lines = text.split('\n').filter(Boolean);
  const levels: Record<string, number> = {};
  const problems: string[] = [];
  let streamsClosedByClient = 0;
  for (const line of lines) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      levels.unparsed = (levels.unparsed ?? 0) + 1;
      continue;
    }
    const entry = isRecord(parsed) ? parsed : {};
    const level = String(entry.level);
    levels[level] = (levels[level] ?? 0) + 1;
    if (!['warn', 'error', 'fatal'].includes(level)) continue;
    // A stream the client closed is logged as a 499 warning: that is how every SSE
    // stream ends (a browser tab closes, the soak reconnects). Counted, not an error.
    if (entry.status_code === 499 && entry.route === '/api/v1/widgets/:id/stream') {
      streamsClosedByClient += 1;
    } else {
      problems.push(line.slice(0, 400));
    }
  }
  return { lines, levels, problems, streamsClosedByClient };
}

/** What a stretch of samples saw. */
function windowOf(points: readonly Sample[]) {
  const spanOf = (values: readonly number[]) => ({
    min: Math.min(...values),
    median: median(values),
    max: Math.max(...values),
  });
  return {
    from: (points[0]?.at ?? Number.NaN) - settings.sample,
    to: points.at(-1)?.at ?? Number.NaN,
    samples: points.length,
    rss: spanOf(points.map((p) => p.rss)),
    // The minimum is the nearest sample to "after a major GC": what a leak would raise.
    heapUsed: spanOf(points.map((p) => p.heapUsed)),
    eventLoopP99Max: Math.max(...points.map((p) => p.eventLoop.p99)),
    requestsPerSecond: median(points.map((p) => p.requestsPerSecond)),
    p99: Math.max(...points.map((p) => p.p99 ?? 0)),
    cpuPercent: median(points.map((p) => p.cpuPercent)),
  };
}

// ------------------------------------------------------------------ the run

/** The readiness answer's checks, by name, each with its status. */
function readinessChecks(body: unknown): [name: string, status: unknown][] {
  if (!isRecord(body) || !isRecord(body.checks)) return [];
  return Object.entries(body.checks).map(([name, check]) => [
    name,
    isRecord(check) ? check.status : undefined,
  ]);
}

const loadBefore = os.loadavg();
console.log(
  `app soak: ${settings.duration} s at ${settings.rate} req/s, ${settings.streams} SSE streams ` +
    `(reconnecting every ~${settings.reconnect} s), samples every ${settings.sample} s; ` +
    `${machineLoad(loadBefore)}; Node ${process.version}`,
);

let exitCode = 0;
try {
  const realm = await startRealm(['RS256']);
  cleanups.push(() => realm.close());
  const database = await createSeededDatabase({
    tenants: TENANTS,
    dashboardsPerTenant: DASHBOARDS_PER_TENANT,
    widgetsPerDashboard: METRIC_WIDGETS_PER_DASHBOARD,
  });
  cleanups.push(() => database.drop());
  const clickhouse = await createMetricStore();
  cleanups.push(() => clickhouse.drop());
  const double = await startDouble();
  cleanups.push(() => double.stop());
  const tenants: Tenant[] = [];
  for (const prepared of await prepareTenants(database.name, double.view)) {
    const userId = randomUUID();
    const token = (role: string) => realm.token({ tenantId: prepared.id, roles: [role], userId });
    const viewer = `Bearer ${await token('viewer')}`;
    const editor = `Bearer ${await token('editor')}`;
    tenants.push({ ...prepared, viewer, editor });
  }
  console.log(
    `PostgreSQL ${database.serverVersion} (${database.name}), ClickHouse ${clickhouse.version} ` +
      `(${clickhouse.database}, ${clickhouse.rows} points), Redis ${REDIS_URL}, Materialize double ` +
      `${double.url}`,
  );

  const logDir = await mkdtemp(path.join(os.tmpdir(), 'ff-soak-'));
  cleanups.push(() => rm(logDir, { recursive: true, force: true }));
  const logPath = path.join(logDir, 'app.log');
  const logFd = openSync(logPath, 'w');
  const metricsToken = randomBytes(24).toString('hex');
  const port = await freePort();
  const app = await startApp(
    appEnvironment({
      port,
      databaseUrl: database.appUrl,
      keycloakUrl: realm.url,
      extra: {
        CLICKHOUSE_URL,
        CLICKHOUSE_USER: CLICKHOUSE_READER.user,
        CLICKHOUSE_PASSWORD: CLICKHOUSE_READER.password,
        CLICKHOUSE_DATABASE: clickhouse.database,
        REDIS_URL,
        MATERIALIZE_URL: double.url,
        METRICS_TOKEN: metricsToken,
      },
    }),
    { stdout: logFd },
  );
  closeSync(logFd);
  cleanups.push(() => {
    if (app.child.exitCode === null && app.child.signalCode === null) app.child.kill('SIGKILL');
    return Promise.resolve();
  });
  const checks = readinessChecks(await (await fetch(`${app.base}/health/ready`)).json());
  console.log(
    `app pid ${app.child.pid} on ${app.base}: ${checks
      .map(([name, status]) => `${name} ${String(status)}`)
      .join(', ')}\n`,
  );
  for (const [name, status] of checks) {
    if (status !== 'up') throw new Error(`${name} is ${String(status)}: the soak is void`);
  }

  // ---- load
  startedAt = performance.now();
  let previous = { at: 0, cpu: await processCpu(pidOf(app.child)) };
  const samples: Sample[] = [];
  const streams = tenants.slice(0, settings.streams).map((tenant) => startStream(app.base, tenant));
  const stopLoad = startLoad(app.base, tenants, settings.rate);
  console.log(
    '     s  RSS MB  heap MB  ext MB  CPU %  loop p50/p99/max ms  req/s  p50 ms  p99 ms  in flight  errors',
  );
  while (elapsed() < settings.duration) {
    const wait = Math.min(settings.sample, settings.duration - elapsed());
    await sleep(wait * 1000);
    const point = await sample(app, metricsToken, previous);
    previous = point;
    samples.push(point);
    console.log(
      `${point.at.toFixed(0).padStart(6)}  ${mb(point.rss).padStart(6)}  ${mb(point.heapUsed).padStart(7)}  ${mb(point.external).padStart(6)}  ` +
        `${point.cpuPercent.toFixed(0).padStart(5)}  ` +
        `${`${ms(point.eventLoop.p50)}/${ms(point.eventLoop.p99)}/${ms(point.eventLoop.max)}`.padStart(19)}  ` +
        `${point.requestsPerSecond.toFixed(0).padStart(5)}  ${(point.p50 ?? 0).toFixed(1).padStart(6)}  ` +
        `${(point.p99 ?? 0).toFixed(1).padStart(6)}  ${String(point.inFlight).padStart(9)}  ${String(point.errors).padStart(6)}`,
    );
  }
  const sent = await stopLoad();
  const loadSeconds = elapsed();

  // ---- the end: every committed row must reach its stream, then a clean shutdown
  const next = await double.pause();
  const streamResults = [];
  for (const stream of streams) {
    const committed = next[stream.tenantId] ?? 0;
    const complete = await stream.caughtUp(committed, 15_000);
    if (!complete) {
      fail(
        'stream incomplete',
        `${stream.state.tenant}: ${stream.state.seen.size} of ${committed} ids`,
      );
    }
    await stream.stop();
    const { seen, ...rest } = stream.state;
    streamResults.push({ ...rest, ids: seen.size, committed, complete });
  }
  const signalled = performance.now();
  const exited = exitOf(app.child);
  app.child.kill('SIGTERM');
  const exitTimer = setTimeout(() => app.child.kill('SIGKILL'), 20_000);
  const { code, signal } = await exited;
  clearTimeout(exitTimer);
  const shutdown = { code, signal, ms: Math.round(performance.now() - signalled) };
  if (code !== 0) fail('shutdown', `the app exited with code ${code}, signal ${signal}`);

  // ---- the app's own log: warnings and errors
  const appLog = readAppLog(await readFile(logPath, 'utf8'));
  const { levels, streamsClosedByClient } = appLog;
  const logLines = appLog.lines;
  for (const line of appLog.problems) fail('app log', line);

  // ---- summary
  const windowSeconds = Math.max(settings.sample, Math.min(60, settings.duration / 5));
  const first = samples.filter((point) => point.at <= windowSeconds + 0.5);
  const last = samples.filter((point) => point.at > loadSeconds - windowSeconds + 0.5);
  // Consecutive windows of windowSeconds (a minute at full length).
  const windows = [];
  for (let start = 0; start < loadSeconds - 0.5; start += windowSeconds) {
    const points = samples.filter((p) => p.at > start + 0.5 && p.at <= start + windowSeconds + 0.5);
    if (points.length > 0) windows.push(windowOf(points));
  }
  const all = stats.all.sort((a, b) => a - b);
  const summary = {
    loadSeconds: Number(loadSeconds.toFixed(1)),
    requestsSent: sent,
    requestsAnswered: all.length,
    backlogSkipped: stats.backlogSkipped,
    maxInFlight: stats.maxInFlight,
    latencyMs: {
      p50: percentile(all, 0.5),
      p99: percentile(all, 0.99),
      p999: percentile(all, 0.999),
      max: all.at(-1) ?? Number.NaN,
    },
    byOp: stats.byOp,
    windowSeconds,
    firstWindow: windowOf(first),
    lastWindow: windowOf(last),
    windows,
    rssGrowth: median(last.map((p) => p.rss)) / median(first.map((p) => p.rss)),
    rssMax: Math.max(...samples.map((p) => p.rss)),
    eventLoop: {
      p99Max: Math.max(...samples.map((p) => p.eventLoop.p99)),
      p99Median: median(samples.map((p) => p.eventLoop.p99)),
      p50Median: median(samples.map((p) => p.eventLoop.p50)),
      max: Math.max(...samples.map((p) => p.eventLoop.max)),
    },
    streams: streamResults,
    shutdown,
    appLog: { lines: logLines.length, levels, streamsClosedByClient },
    errors: errors.length,
  };

  console.log(
    `\n${sent} requests in ${loadSeconds.toFixed(0)} s (${(all.length / loadSeconds).toFixed(0)} req/s answered), ` +
      `latency p50 ${summary.latencyMs.p50.toFixed(1)} ms, p99 ${summary.latencyMs.p99.toFixed(1)} ms, ` +
      `p99.9 ${summary.latencyMs.p999.toFixed(1)} ms, max ${summary.latencyMs.max.toFixed(0)} ms; ` +
      `at most ${stats.maxInFlight} in flight`,
  );
  console.log(
    `by operation: ${Object.entries(stats.byOp)
      .map(
        ([op, { requests, failed }]) => `${op} ${requests}${failed ? ` (${failed} failed)` : ''}`,
      )
      .join(', ')}`,
  );
  for (const stream of streamResults) {
    console.log(
      `stream of tenant …${stream.tenant}: ${stream.connections} connections, ${stream.updates} updates, ` +
        `${stream.progress} progress events, ${stream.heartbeats} heartbeats; ${stream.ids} of ` +
        `${stream.committed} ids, each once${stream.complete ? '' : ' — INCOMPLETE'}`,
    );
  }
  console.log(
    `\nper ${windowSeconds} s: RSS MB min/median/max, heap used MB min/max, event-loop p99 max ms, ` +
      `request p99 max ms (of the ${settings.sample} s windows), CPU % median`,
  );
  for (const w of windows) {
    console.log(
      `  ${w.from.toFixed(0).padStart(4)}–${w.to.toFixed(0).padEnd(4)} s  RSS ` +
        `${mb(w.rss.min)}/${mb(w.rss.median)}/${mb(w.rss.max)}  heap ${mb(w.heapUsed.min)}/` +
        `${mb(w.heapUsed.max)}  loop p99 ${ms(w.eventLoopP99Max)}  request p99 ${w.p99.toFixed(1)}  ` +
        `CPU ${w.cpuPercent.toFixed(0)} %`,
    );
  }
  const f = summary.firstWindow;
  const l = summary.lastWindow;
  console.log(
    `RSS: first ${windowSeconds} s median ${mb(f.rss.median)} MB (max ${mb(f.rss.max)}), last ` +
      `${windowSeconds} s median ${mb(l.rss.median)} MB (max ${mb(l.rss.max)}): ` +
      `${summary.rssGrowth.toFixed(2)}×; largest ${mb(summary.rssMax)} MB`,
  );
  console.log(
    `heap used: first ${mb(f.heapUsed.median)} MB, last ${mb(l.heapUsed.median)} MB (medians); ` +
      `lowest ${mb(f.heapUsed.min)} and ${mb(l.heapUsed.min)} MB`,
  );
  console.log(
    `event-loop delay (per ${settings.sample} s window, 10 ms resolution): p99 max ` +
      `${ms(summary.eventLoop.p99Max)} ms, p99 median ${ms(summary.eventLoop.p99Median)} ms, ` +
      `p50 median ${ms(summary.eventLoop.p50Median)} ms, max ${ms(summary.eventLoop.max)} ms`,
  );
  console.log(
    `shutdown: exit ${code} in ${shutdown.ms} ms; app log ${logLines.length} lines ` +
      `${JSON.stringify(levels)} (${streamsClosedByClient} warnings: 499 of a stream the client closed)`,
  );
  const loadAfter = os.loadavg();
  console.log(
    `load average ${oneMinuteLoad(loadBefore)} before, ${oneMinuteLoad(loadAfter)} after (1 min)`,
  );
  console.log(errors.length === 0 ? 'errors: 0' : `ERRORS: ${errors.length}`);
  if (errors.length > 0) exitCode = 1;

  await writeResults(
    RESULTS,
    {
      loadBefore,
      servers: { postgres: database.serverVersion, clickhouse: clickhouse.version },
    },
    {
      settings: {
        ...settings,
        tenants: TENANTS.length,
        dashboardsPerTenant: DASHBOARDS_PER_TENANT,
        metricWidgetsPerDashboard: METRIC_WIDGETS_PER_DASHBOARD,
        mix: Object.fromEntries(MIX),
        doubleIntervalMs: DOUBLE_INTERVAL_MS,
      },
      summary,
      errors,
      samples,
    },
  );
  console.log(`results written to ${RESULTS}`);
} catch (error) {
  console.error(error);
  exitCode = 1;
} finally {
  await teardown();
}
process.exit(exitCode);
