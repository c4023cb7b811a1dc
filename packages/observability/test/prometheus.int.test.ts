/**
 * Proves that the /metrics exposition is valid for real Prometheus tooling:
 * `promtool check metrics` accepts it without lint problems, the bearer token
 * guards it, and a real Prometheus server scrapes it and answers queries with
 * the counted values. Needs Debian's `prometheus` package (scripts/services).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { LogController } from 'fastify';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHttpObservability, createLogger, createMetrics } from '../src/index.js';
import { fastifyObservability, genReqId } from '../src/fastify.js';

const PROMTOOL = '/usr/bin/promtool';
const PROMETHEUS = '/usr/bin/prometheus';
const TOKEN = 's3cret-scrape';
const DASHBOARD_ID = 'd4sh-7f3a91c2';
const UNMATCHED_PATH = '/no/such/page-5be81e';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Fails (never skips) when a Prometheus binary is missing. */
function requireBinary(path: string): void {
  if (!existsSync(path)) {
    throw new Error(
      `${path} is missing: run scripts/services to install Debian's prometheus package`,
    );
  }
}

/** A loopback port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Polls `fn` every 100 ms until it returns a value other than undefined; throws
 * after `timeoutMs`. An error thrown by `fn` fails at once.
 */
async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() >= deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Runs `command` with `input` on stdin; bounded by `timeoutMs`. */
function run(
  command: string,
  args: readonly string[],
  input: string,
  timeoutMs = 10_000,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
    child.stdin.end(input);
  });
}

interface TestApp {
  readonly baseUrl: string;
  readonly port: number;
  close(): Promise<void>;
}

/** A real Fastify app with the plugin, a few routes and /metrics, listening on loopback. */
async function startApp(token?: string): Promise<TestApp> {
  const metrics = createMetrics();
  // A no-op destination: quiet tests, and no buffered stdout stream to flush.
  const logger = createLogger({ level: 'info', destination: { write: () => undefined } });
  const http = createHttpObservability({ logger, metrics });
  const app = Fastify({
    genReqId,
    loggerInstance: logger,
    // The plugin writes the access log line (top-level disableRequestLogging is deprecated).
    logController: new LogController({ disableRequestLogging: true }),
  });
  await app.register(fastifyObservability, {
    http,
    metricsEndpoint: token === undefined ? { metrics } : { metrics, token },
  });
  app.get<{ Params: { id: string } }>('/api/v1/dashboards/:id', (request) => ({
    id: request.params.id,
  }));
  app.get('/hello', () => ({ hello: 'world' }));
  app.get('/boom', () => {
    throw new Error('kaboom');
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { port, baseUrl: `http://127.0.0.1:${port}`, close: () => app.close() };
}

interface Fetched {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** GETs `url` and reads the whole body, so that the request has finished. */
async function get(url: string, headers: Record<string, string> = {}): Promise<Fetched> {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(5_000) });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

describe('the /metrics exposition and promtool', () => {
  let server: TestApp;
  let scrape: Fetched;
  const badRequestId = 'not a valid id <script>';

  beforeAll(async () => {
    server = await startApp();
    const { baseUrl } = server;
    for (let i = 0; i < 3; i++) {
      expect((await get(`${baseUrl}/api/v1/dashboards/${DASHBOARD_ID}`)).status).toBe(200);
    }
    expect((await get(`${baseUrl}/hello?name=${DASHBOARD_ID}`)).status).toBe(200);
    expect((await get(`${baseUrl}${UNMATCHED_PATH}`)).status).toBe(404);
    expect((await get(`${baseUrl}/boom`)).status).toBe(500);
    const bad = await get(`${baseUrl}/hello`, { 'x-request-id': badRequestId });
    expect(bad.status).toBe(200);
    expect(bad.headers.get('x-request-id')).toMatch(UUID);
    scrape = await get(`${baseUrl}/metrics`);
  });

  afterAll(async () => {
    await server?.close();
  });

  it('serves the Prometheus text format', () => {
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('passes `promtool check metrics` with no lint problems', async () => {
    requireBinary(PROMTOOL);
    // promtool accepts empty input, so first make sure there is something to check.
    expect(scrape.text).toContain('flowforge_http_requests_total');
    const { code, output } = await run(PROMTOOL, ['check', 'metrics'], scrape.text);
    // promtool 2.42 exits 1 on a parse error and 3 on lint problems, which it
    // prints one a line on stderr as `<metric> <problem>`.
    expect({ code, output: output.trim() }).toEqual({ code: 0, output: '' });
    // promtool does not reject a series printed twice: check that ourselves.
    const series = scrape.text
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => line.slice(0, line.lastIndexOf(' ')));
    expect(new Set(series).size).toBe(series.length);
  });

  it('names every metric flowforge_*', () => {
    const lines = scrape.text.split('\n').filter((line) => line !== '');
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) {
      const name = line.startsWith('#')
        ? /^# (?:HELP|TYPE) (\S+)/.exec(line)?.[1]
        : /^[^{\s]+/.exec(line)?.[0];
      expect(name, line).toMatch(/^flowforge_/);
    }
  });

  it('counts requests by route template, with UNMATCHED for a 404 and the 500 of a throwing route', () => {
    const lines = scrape.text.split('\n');
    expect(lines).toContain(
      'flowforge_http_requests_total{method="GET",route="/api/v1/dashboards/:id",status_code="200"} 3',
    );
    expect(lines).toContain(
      'flowforge_http_requests_total{method="GET",route="/hello",status_code="200"} 2',
    );
    expect(lines).toContain(
      'flowforge_http_requests_total{method="GET",route="UNMATCHED",status_code="404"} 1',
    );
    expect(lines).toContain(
      'flowforge_http_requests_total{method="GET",route="/boom",status_code="500"} 1',
    );
  });

  it('never exposes a raw URL or request id', () => {
    expect(scrape.text).not.toContain(DASHBOARD_ID);
    expect(scrape.text).not.toContain(UNMATCHED_PATH);
    expect(scrape.text).not.toContain('?name=');
    expect(scrape.text).not.toContain(badRequestId);
  });
});

describe('the /metrics bearer token', () => {
  let server: TestApp;

  beforeAll(async () => {
    server = await startApp(TOKEN);
  });

  afterAll(async () => {
    await server?.close();
  });

  it('answers 401 with WWW-Authenticate without a token, and never echoes the token', async () => {
    const response = await get(`${server.baseUrl}/metrics`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expect(response.text).not.toContain(TOKEN);
    expect(response.text).not.toContain('flowforge_');
  });

  it('answers 401 to a wrong token', async () => {
    const response = await get(`${server.baseUrl}/metrics`, {
      authorization: 'Bearer s3cret-scrapf',
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expect(response.text).not.toContain(TOKEN);
  });

  it('answers 200 with the metrics to the right token', async () => {
    const response = await get(`${server.baseUrl}/metrics`, { authorization: `Bearer ${TOKEN}` });
    // The scheme is case-insensitive (RFC 9110).
    const lowerCase = await get(`${server.baseUrl}/metrics`, { authorization: `bearer ${TOKEN}` });
    expect(lowerCase.status).toBe(200);
    expect(response.status).toBe(200);
    expect(response.text).toContain('# TYPE flowforge_http_requests_total counter');
  });
});

interface QueryResult {
  readonly metric: Record<string, string>;
  readonly value?: [number, string];
  readonly values?: [number, string][];
}

describe('a real Prometheus server scraping the app', () => {
  const HELLO = 'flowforge_http_requests_total{route="/hello"}';
  let server: TestApp;
  let dir: string | undefined;
  let prometheus: ChildProcess | undefined;
  let prometheusUrl: string;
  let prometheusLog = '';

  /** GET /api/v1/query; its result vector or matrix. */
  async function query(promql: string): Promise<QueryResult[]> {
    const url = `${prometheusUrl}/api/v1/query?query=${encodeURIComponent(promql)}`;
    const response = await get(url);
    const body = JSON.parse(response.text) as {
      status: string;
      data?: { result: QueryResult[] };
      error?: string;
    };
    if (body.status !== 'success' || body.data === undefined) {
      throw new Error(`query ${promql} failed: ${body.error ?? response.text}`);
    }
    return body.data.result;
  }

  beforeAll(async () => {
    requireBinary(PROMETHEUS);
    server = await startApp(TOKEN);
    dir = await mkdtemp(join(tmpdir(), 'flowforge-prometheus-'));
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: flowforge',
      '    metrics_path: /metrics',
      '    authorization:',
      '      type: Bearer',
      `      credentials: ${TOKEN}`,
      '    static_configs:',
      `      - targets: ['127.0.0.1:${server.port}']`,
      '',
    ].join('\n');
    await writeFile(join(dir, 'prometheus.yml'), config);

    const port = await freePort();
    prometheusUrl = `http://127.0.0.1:${port}`;
    const child = spawn(
      PROMETHEUS,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--web.enable-lifecycle',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prometheus = child;
    const log = (chunk: Buffer): void => {
      prometheusLog = (prometheusLog + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', log);
    child.stderr?.on('data', log);

    try {
      await waitFor(
        'Prometheus /-/ready',
        async () => {
          if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}`);
          const signal = AbortSignal.timeout(1_000);
          const ready = await fetch(`${prometheusUrl}/-/ready`, { signal }).then(
            (response) => response.ok,
            () => false, // not listening yet
          );
          return ready || undefined;
        },
        30_000,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- prometheus log ---\n${prometheusLog}`, {
        cause: error,
      });
    }
  });

  afterAll(async () => {
    const child = prometheus;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await server?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('scrapes the counters with the bearer token', { timeout: 60_000 }, async () => {
    const hellos = 5;
    for (let i = 0; i < hellos; i++) {
      expect((await get(`${server.baseUrl}/hello`)).status).toBe(200);
    }
    expect((await get(`${server.baseUrl}/api/v1/dashboards/${DASHBOARD_ID}`)).status).toBe(200);
    // Prometheus stamps a sample with the time its scrape started: wait for one
    // that started after the last request had finished.
    const requestsDone = Date.now() / 1000;

    await waitFor(
      `a scrape of ${HELLO} newer than the requests`,
      async () => {
        const [series] = await query(`${HELLO}[1m]`);
        const newest = series?.values?.at(-1);
        return newest !== undefined && newest[0] > requestsDone ? newest : undefined;
      },
      20_000,
    );

    const result = await query(HELLO);
    expect(result).toHaveLength(1);
    expect(result[0]?.metric).toMatchObject({
      job: 'flowforge',
      method: 'GET',
      status_code: '200',
    });
    expect(result[0]?.value?.[1]).toBe(String(hellos));

    const up = await query('up{job="flowforge"}');
    expect(up).toHaveLength(1);
    expect(up[0]?.value?.[1]).toBe('1');

    // The raw URL never reached Prometheus either.
    const ids = await query(`count({__name__=~"flowforge_.+", route=~".*${DASHBOARD_ID}.*"})`);
    expect(ids).toEqual([]);
  });
});
