// A soak of the built sample app: dist/main.js as a child process with real
// PostgreSQL, ClickHouse and Redis (scripts/services) and the Materialize wire
// double (its own process), under steady mixed load at a fixed rate for
// --duration seconds (reads, writes, widget data, SSE streams that reconnect now
// and then). Every few seconds: the app's RSS (/proc), CPU (/proc) and its own
// event-loop delay and heap from GET /metrics. Reports first- vs last-minute RSS,
// the largest event-loop delay p99 and the errors, which must be 0. See ../README.md.
//
// Usage: node app/soak.mjs [--duration 300] [--rate 100] [--sample 5] [--streams 2]
//                          [--reconnect 30] [--help]
import { fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createClient } from '@clickhouse/client';
import {
  freePort,
  median,
  percentile,
  positiveFlag,
  processCpu,
  writeResults,
} from '../lib/harness.mjs';
import {
  adminQuery,
  appEnvironment,
  createSeededDatabase,
  processRss,
  requireBuiltApp,
  startApp,
  startRealm,
} from './common.mjs';

const RESULTS = fileURLToPath(new URL('./soak-results.json', import.meta.url));
const DOUBLE = fileURLToPath(new URL('./soak-double.mjs', import.meta.url));

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

/** The mix, by weight; each op knows the status it must get. */
const MIX = [
  ['list dashboards', 40],
  ['get dashboard', 10],
  ['list widgets', 10],
  ['widget data', 20],
  ['me', 5],
  ['write dashboard', 10], // create, or delete the oldest created when the pool is full
  ['patch dashboard', 5],
];

const USAGE = `Usage: node app/soak.mjs [options]

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

const cleanups = [];
let tearingDown;
function teardown() {
  tearingDown ??= (async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(console.error);
  })();
  return tearingDown;
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the app and the double, dropping the bench databases`);
    teardown().then(
      () => process.exit(130),
      () => process.exit(1),
    );
  });
}

// ------------------------------------------------------------------ errors

const errors = [];
/** Records a failure (the first 50 in full); the soak must end with none. */
function fail(kind, detail) {
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
    const values = [];
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
    const [{ v }] = await version.json();
    return { database, version: v, rows: values.length, drop };
  } catch (error) {
    await drop().catch(() => undefined);
    throw error;
  }
}

/** The Materialize double in its own process; resolves once it listens. */
async function startDouble() {
  const child = fork(
    DOUBLE,
    [String(DOUBLE_INTERVAL_MS), String(DOUBLE_INITIAL_ROWS), ...TENANTS],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const reply = (op) =>
    new Promise((resolve, reject) => {
      const onMessage = (message) => {
        if (message.op !== op) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(message);
      };
      const onExit = (code) => reject(new Error(`the double exited (${code}) before "${op}"`));
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  const ready = await reply('ready');
  return {
    child,
    url: ready.url,
    view: ready.view,
    /** Stops writing; resolves to the next id of each tenant (every id below was committed). */
    pause: async () => {
      const paused = reply('paused');
      child.send({ op: 'pause' });
      return (await paused).next;
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.send({ op: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Ids the load needs, read as the superuser: dashboards and metric widgets per tenant; adds a live widget. */
async function prepareTenants(databaseName, view) {
  const tenants = [];
  for (const tenant of TENANTS) {
    const dashboards = (
      await adminQuery(
        'select id from dashboards where tenant_id = $1 order by created_at',
        [tenant],
        databaseName,
      )
    ).rows.map((row) => row.id);
    const widgets = (
      await adminQuery(
        "select id from widgets where tenant_id = $1 and kind = 'metric'",
        [tenant],
        databaseName,
      )
    ).rows.map((row) => row.id);
    const live = (
      await adminQuery(
        `insert into widgets (tenant_id, dashboard_id, name, kind, config)
         values ($1, $2, 'Live events', 'live', $3) returning id`,
        [tenant, dashboards[0], JSON.stringify({ view })],
        databaseName,
      )
    ).rows[0].id;
    tenants.push({ id: tenant, dashboards, widgets, live, created: [] });
  }
  return tenants;
}

// ------------------------------------------------------------------ the load

const pick = (list) => list[Math.floor(Math.random() * list.length)];
const totalWeight = MIX.reduce((sum, [, weight]) => sum + weight, 0);
function pickOp() {
  let roll = Math.random() * totalWeight;
  for (const [op, weight] of MIX) {
    roll -= weight;
    if (roll < 0) return op;
  }
  return MIX[0][0];
}

/** The request of `op` for `tenant`: method, path, body, the status it must get, and what to do with the answer. */
function requestFor(op, tenant) {
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
    }
    // falls through: nothing to patch yet
    case 'write dashboard': {
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
        created: (json) => tenant.created.push(json.id),
      };
    }
    default:
      throw new Error(`unknown op ${op}`);
  }
}

/** Latencies (ms) and counts, per sampling window and in total. */
const stats = {
  window: [],
  all: [],
  byOp: {},
  inFlight: 0,
  maxInFlight: 0,
  backlogSkipped: 0,
};

async function send(base, tenant) {
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
    fail(`${name} → ${error.name}`, `${request.path}: ${error.message}`);
  } finally {
    stats.inFlight -= 1;
  }
}

/** Fires requests at a fixed rate (open loop: a slow answer does not slow the sending). */
function startLoad(base, tenants, rate) {
  const began = performance.now();
  let sent = 0;
  const pending = new Set();
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - began) / 1000) * rate) - sent;
    for (let i = 0; i < due; i += 1) {
      sent += 1;
      if (stats.inFlight >= MAX_IN_FLIGHT) {
        stats.backlogSkipped += 1;
        continue;
      }
      const promise = send(base, tenants[sent % tenants.length]);
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

/**
 * A live widget stream of one tenant, as a browser keeps it: reconnects now and
 * then with Last-Event-ID and checks that it gets every id of its tenant exactly
 * once, in the order written, and nothing of another tenant.
 */
function startStream(base, tenant) {
  const state = {
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
  let controller;
  let reconnectTimer;
  let wake = () => undefined;
  let running;

  async function connect() {
    controller = new AbortController();
    state.connections += 1;
    const headers = { accept: 'text/event-stream', authorization: tenant.viewer };
    if (state.lastEventId !== undefined) headers['last-event-id'] = state.lastEventId;
    let response;
    try {
      response = await fetch(`${base}/api/v1/widgets/${tenant.live}/stream`, {
        headers,
        signal: controller.signal,
      });
    } catch (error) {
      if (!controller.signal.aborted) fail('stream connect', error.message);
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
    let pending = [];
    const decoder = new TextDecoder();
    let buffer = '';
    let fields = { data: [] };
    const dispatch = (event, id, data) => {
      if (event === 'update') {
        const change = JSON.parse(data);
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
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
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
      if (!controller.signal.aborted) fail('stream broke', error.message);
    }
  }

  function loop() {
    running = (async () => {
      while (!state.stopping) {
        const connection = connect();
        // The next reconnection, at a random time around the mean.
        const wait = settings.reconnect * 1000 * (0.5 + Math.random());
        await new Promise((resolve) => {
          wake = resolve;
          reconnectTimer = setTimeout(resolve, wait);
          void connection.then(() => {
            // Ended on its own (an error was recorded): reconnect after a second.
            if (!controller.signal.aborted) {
              clearTimeout(reconnectTimer);
              setTimeout(resolve, 1_000);
            }
          });
        });
        controller.abort();
        await connection;
      }
    })();
  }
  loop();

  return {
    state,
    /** Resolves once every id below `next` has arrived (false after `timeoutMs`). */
    async caughtUp(next, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      while (state.seen.size < next) {
        if (performance.now() > deadline) return false;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return state.seen.size === next && state.max === next - 1;
    },
    async stop() {
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
function parseMetrics(text) {
  const values = {};
  for (const line of text.split('\n')) {
    const match = /^([a-z_:][a-z0-9_:]*) ([-+.eE0-9]+|NaN)$/i.exec(line);
    if (match) values[match[1]] = Number(match[2]);
  }
  return values;
}

async function sample(app, metricsToken, previous) {
  const at = elapsed();
  const [rss, cpu] = await Promise.all([processRss(app.child.pid), processCpu(app.child.pid)]);
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
  const m = (name) => metrics[`flowforge_${name}`];
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

const mb = (bytes) => (bytes / 2 ** 20).toFixed(1);
const ms = (seconds) => (seconds * 1000).toFixed(1);

// ------------------------------------------------------------------ the run

const loadBefore = os.loadavg();
console.log(
  `app soak: ${settings.duration} s at ${settings.rate} req/s, ${settings.streams} SSE streams ` +
    `(reconnecting every ~${settings.reconnect} s), samples every ${settings.sample} s; ` +
    `load average ${loadBefore[0].toFixed(2)} on ${os.cpus().length} CPUs; Node ${process.version}`,
);

let exitCode = 0;
try {
  const realm = await startRealm();
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
  const tenants = await prepareTenants(database.name, double.view);
  for (const tenant of tenants) {
    const user = randomUUID();
    tenant.viewer = `Bearer ${await realm.token(tenant.id, ['viewer'], user)}`;
    tenant.editor = `Bearer ${await realm.token(tenant.id, ['editor'], user)}`;
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
  cleanups.push(async () => {
    if (app.child.exitCode === null && app.child.signalCode === null) app.child.kill('SIGKILL');
  });
  const ready = await (await fetch(`${app.base}/health/ready`)).json();
  console.log(
    `app pid ${app.child.pid} on ${app.base}: ${Object.entries(ready.checks)
      .map(([name, check]) => `${name} ${check.status}`)
      .join(', ')}\n`,
  );
  for (const [name, check] of Object.entries(ready.checks)) {
    if (check.status !== 'up') throw new Error(`${name} is ${check.status}: the soak is void`);
  }

  // ---- load
  startedAt = performance.now();
  let previous = { at: 0, cpu: await processCpu(app.child.pid) };
  const samples = [];
  const streams = tenants.slice(0, settings.streams).map((tenant) => startStream(app.base, tenant));
  const stopLoad = startLoad(app.base, tenants, settings.rate);
  console.log(
    '     s  RSS MB  heap MB  ext MB  CPU %  loop p50/p99/max ms  req/s  p50 ms  p99 ms  in flight  errors',
  );
  while (elapsed() < settings.duration) {
    const wait = Math.min(settings.sample, settings.duration - elapsed());
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
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
    const tenantId = TENANTS.find((id) => id.endsWith(stream.state.tenant));
    const complete = await stream.caughtUp(next[tenantId], 15_000);
    if (!complete) {
      fail(
        'stream incomplete',
        `${stream.state.tenant}: ${stream.state.seen.size} of ${next[tenantId]} ids`,
      );
    }
    await stream.stop();
    const { seen, ...rest } = stream.state;
    streamResults.push({ ...rest, ids: seen.size, committed: next[tenantId], complete });
  }
  const signalled = performance.now();
  app.child.kill('SIGTERM');
  const exitTimer = setTimeout(() => app.child.kill('SIGKILL'), 20_000);
  const [code, signal] = await once(app.child, 'exit');
  clearTimeout(exitTimer);
  const shutdown = { code, signal, ms: Math.round(performance.now() - signalled) };
  if (code !== 0) fail('shutdown', `the app exited with code ${code}, signal ${signal}`);

  // ---- the app's own log: warnings and errors
  const logLines = (await readFile(logPath, 'utf8')).split('\n').filter(Boolean);
  const levels = {};
  const problems = [];
  let streamsClosedByClient = 0;
  for (const line of logLines) {
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      levels.unparsed = (levels.unparsed ?? 0) + 1;
      continue;
    }
    levels[entry.level] = (levels[entry.level] ?? 0) + 1;
    if (!['warn', 'error', 'fatal'].includes(entry.level)) continue;
    // A stream the client closed is logged as a 499 warning: that is how every SSE
    // stream ends (a browser tab closes, the soak reconnects). Counted, not an error.
    if (entry.status_code === 499 && entry.route === '/api/v1/widgets/:id/stream') {
      streamsClosedByClient += 1;
    } else {
      problems.push(line.slice(0, 400));
    }
  }
  for (const line of problems) fail('app log', line);

  // ---- summary
  const windowSeconds = Math.max(settings.sample, Math.min(60, settings.duration / 5));
  const first = samples.filter((point) => point.at <= windowSeconds + 0.5);
  const last = samples.filter((point) => point.at > loadSeconds - windowSeconds + 0.5);
  const spanOf = (values) => ({
    min: Math.min(...values),
    median: median(values),
    max: Math.max(...values),
  });
  const window = (points) => ({
    from: points[0].at - settings.sample,
    to: points.at(-1).at,
    samples: points.length,
    rss: spanOf(points.map((p) => p.rss)),
    // The minimum is the nearest sample to "after a major GC": what a leak would raise.
    heapUsed: spanOf(points.map((p) => p.heapUsed)),
    eventLoopP99Max: Math.max(...points.map((p) => p.eventLoop.p99)),
    requestsPerSecond: median(points.map((p) => p.requestsPerSecond)),
    p99: Math.max(...points.map((p) => p.p99 ?? 0)),
    cpuPercent: median(points.map((p) => p.cpuPercent)),
  });
  // Consecutive windows of windowSeconds (a minute at full length).
  const windows = [];
  for (let start = 0; start < loadSeconds - 0.5; start += windowSeconds) {
    const points = samples.filter((p) => p.at > start + 0.5 && p.at <= start + windowSeconds + 0.5);
    if (points.length > 0) windows.push(window(points));
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
      max: all.at(-1),
    },
    byOp: stats.byOp,
    windowSeconds,
    firstWindow: window(first),
    lastWindow: window(last),
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
    `load average ${loadBefore[0].toFixed(2)} before, ${loadAfter[0].toFixed(2)} after (1 min)`,
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
