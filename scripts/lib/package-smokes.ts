// What each published package must do once a user installs it from a registry (the registry
// check, scripts/registry-check.ts, runs these in fresh npm projects): a smoke check of real
// exports, run through ESM `import` and through `require()`, and a consumer file of its public
// types, type-checked strictly. A package without an entry gets the generic ones.
import type assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** node:assert/strict, as the smoke scripts hand it to a check. */
type Assert = typeof assert;

/**
 * A smoke check as it is stored: only its source text travels (see {@link writeSmokes}), so
 * the package type it was written against does not matter any more. Each check annotates its
 * parameters with what it expects of the package (the interfaces below describe just that
 * much of each public API): Node strips the types, and `Function.prototype.toString` gives
 * the stripped source, plain JavaScript.
 */
export type SmokeCheck = (pkg: never, assert: Assert) => unknown;

/** An error class of a package, as the smokes construct and check it. */
type ErrorClass<Extra = object> = new (
  code: string,
  message: string,
) => Error & { code: string; status: number; retryable: boolean } & Extra;
/** A package's `is…Error(error, ...codes)`. */
type ErrorGuardFunction = (error: unknown, ...codes: string[]) => boolean;

interface KernelCatalog {
  readonly source: string;
  readonly name: string;
  readonly codes: Readonly<Record<string, { status: number; retryable: boolean }>>;
}
interface KernelModule {
  defineErrors(catalog: KernelCatalog): KernelCatalog;
  FlowForgeError: new (
    catalog: KernelCatalog,
    code: string,
    reason: string,
    options?: ErrorOptions,
  ) => Error & { code: string; source: string; status: number; retryable: boolean; reason: string };
  errorGuard(type: new (...args: never[]) => Error): ErrorGuardFunction;
  isFlowForgeError: ErrorGuardFunction;
  REDACTED: string;
}
interface ConfigModule {
  loadSettings(env: Record<string, string>): {
    app: { env: string; port: number };
    database: { url: string | null };
  };
  ConfigError: ErrorClass<{ issues: { variable: string }[] }>;
}
interface ObservabilityModule {
  createMetrics(options: { defaultMetrics: boolean }): {
    counter(options: { name: string; help: string }): { inc(): void };
    gauge(options: { name: string; help: string }): unknown;
    render(): Promise<string>;
  };
  ObservabilityError: ErrorClass;
}
interface DbModule {
  isTenantId(value: string): boolean;
  assertTenantId(value: string): string;
  isDatabaseError: ErrorGuardFunction;
  coreMigrations(): { migrations: Record<string, unknown> };
}
interface AuthModule {
  generateApiKey(tenantId: string): { key: string; hash: string };
  parseApiKey(key: string): { tenantId: string; hash: string } | null;
  AuthError: ErrorClass;
  isAuthError: ErrorGuardFunction;
}
interface RedisModule {
  createRedis(options: { topology: null }): unknown;
  isRedisError: ErrorGuardFunction;
  RedisError: ErrorClass;
}
interface ClickHouseModule {
  createClickHouse(options: { url: null }): unknown;
  isClickHouseError: ErrorGuardFunction;
  ClickHouseError: ErrorClass;
}
/** A logger as the kit's lifecycle calls it; the smokes pass a silent one. */
interface SmokeLogger {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}
interface ServerModule {
  createProblems(): {
    answer(error: unknown): {
      problem: { status: number; detail?: string };
      headers: Record<string, string>;
    };
  };
  storeNotConfigured(store: string, variable: string): Error;
  createReadiness(): {
    add(check: { name: string; check: () => Promise<unknown> }): void;
    addStore(name: string, store: null, options: { variable: string }): void;
    report(): Promise<{ status: string; checks: Record<string, { status: string }> }>;
    drain(): void;
  };
  createLifecycle(options: { logger: SmokeLogger }): {
    add(component: { name: string; stop?: () => void }): unknown;
    stop(): Promise<string>;
  };
  formatServerSentEvent(event: { event?: string; id?: string; data: string }): string;
  isServerError: ErrorGuardFunction;
}
interface WidgetsModule {
  metricSelectionOf(
    kind: string,
    config: Record<string, unknown>,
  ): { metric: string; days: number };
  liveViewOf(kind: string, config: Record<string, unknown>): string;
  createWidgetDataReader(options: { clickhouse: null; cache: null; logger: SmokeLogger }): {
    read(
      tenantId: string,
      widget: { id: string; kind: string; config: Record<string, unknown> },
    ): Promise<unknown>;
  };
  isWidgetError: ErrorGuardFunction;
  widgetMigrations: { name: string };
}
interface MaterializeModule {
  createMaterialize(options: { url: string | null }): {
    status: string;
    subscribe(view: string): unknown;
    close(): Promise<void>;
  };
  isMaterializeError: ErrorGuardFunction;
  MaterializeError: ErrorClass;
}

/** The server kit: problems, readiness and the lifecycle work with no service at all. */
const serverSmoke = async (pkg: ServerModule, assert: Assert): Promise<void> => {
  const answer = pkg
    .createProblems()
    .answer(pkg.storeNotConfigured('ClickHouse', 'CLICKHOUSE_URL'));
  assert.equal(answer.problem.status, 503);
  assert.equal(answer.headers['retry-after'], '60');
  assert.match(answer.problem.detail ?? '', /CLICKHOUSE_URL/);
  assert.equal(pkg.createProblems().answer(new Error('bug')).problem.status, 500);
  const readiness = pkg.createReadiness();
  readiness.add({ name: 'postgres', check: () => Promise.resolve() });
  readiness.addStore('redis', null, { variable: 'REDIS_URL' });
  const report = await readiness.report();
  assert.equal(report.status, 'ready');
  assert.equal(report.checks.redis?.status, 'not_configured');
  readiness.drain();
  assert.equal((await readiness.report()).status, 'shutting_down');
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const stopped: string[] = [];
  const lifecycle = pkg.createLifecycle({ logger: quiet });
  lifecycle.add({ name: 'a', stop: () => void stopped.push('a') });
  lifecycle.add({ name: 'b', stop: () => void stopped.push('b') });
  assert.equal(await lifecycle.stop(), 'drained');
  assert.deepEqual(stopped, ['b', 'a']);
  assert.equal(
    pkg.formatServerSentEvent({ event: 'tick', data: 'a\nb' }),
    'event: tick\ndata: a\ndata: b\n\n',
  );
};

/** The data model: config rules and errors, with no database. */
const widgetsSmoke = async (pkg: WidgetsModule, assert: Assert): Promise<void> => {
  assert.deepEqual(pkg.metricSelectionOf('metric', { metric: 'orders', days: 3 }), {
    metric: 'orders',
    days: 3,
  });
  assert.throws(
    () => pkg.liveViewOf('metric', {}),
    (error) => pkg.isWidgetError(error, 'WIDGET_NOT_QUERYABLE'),
  );
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const reader = pkg.createWidgetDataReader({ clickhouse: null, cache: null, logger: quiet });
  await assert.rejects(
    reader.read('0f8fad5b-d9cb-469f-a165-70867728950e', {
      id: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
      kind: 'metric',
      config: { metric: 'orders' },
    }),
    (error) => pkg.isWidgetError(error, 'NOT_CONFIGURED'),
  );
  assert.equal(typeof pkg.widgetMigrations.name, 'string');
};

/**
 * One real export per package, run once through `import` and once through `require()`.
 * Each is serialized into the consumer project, so it may use only its arguments.
 */
export const SMOKES: Readonly<Record<string, SmokeCheck>> = {
  '@flowforge/kernel': (pkg: KernelModule, assert: Assert) => {
    const catalog = pkg.defineErrors({
      source: '@acme/cache',
      name: 'CacheError',
      codes: {
        INVALID_OPTIONS: { status: 500, retryable: false },
        UNAVAILABLE: { status: 503, retryable: true },
      },
    });
    assert.ok(Object.isFrozen(catalog.codes));
    class CacheError extends pkg.FlowForgeError {
      constructor(code: string, reason: string) {
        super(catalog, code, reason);
      }
    }
    const isCacheError = pkg.errorGuard(CacheError);
    const error = new CacheError('UNAVAILABLE', 'no connection');
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'CacheError');
    assert.equal(error.message, '@acme/cache: no connection');
    assert.equal(error.reason, 'no connection');
    assert.deepEqual([error.code, error.status, error.retryable], ['UNAVAILABLE', 503, true]);
    assert.ok(isCacheError(error, 'UNAVAILABLE'));
    assert.equal(isCacheError(error, 'INVALID_OPTIONS'), false);
    assert.ok(pkg.isFlowForgeError(error, 'UNAVAILABLE'));
    assert.equal(pkg.isFlowForgeError(new Error('plain')), false);
    assert.throws(
      () =>
        pkg.defineErrors({
          source: '@acme/cache',
          name: 'CacheError',
          codes: { GONE: { status: 200, retryable: false } },
        }),
      TypeError,
    );
    assert.equal(pkg.REDACTED, '[redacted]');
  },
  '@flowforge/config': (pkg: ConfigModule, assert: Assert) => {
    const settings = pkg.loadSettings({
      APP_ENV: 'test',
      PORT: '8123',
      DATABASE_URL: 'postgres://127.0.0.1/flowforge_test',
    });
    assert.equal(settings.app.env, 'test');
    assert.equal(settings.app.port, 8123);
    assert.equal(settings.database.url, 'postgres://127.0.0.1/flowforge_test');
    assert.ok(Object.isFrozen(settings.database));
    assert.throws(
      () => pkg.loadSettings({ APP_ENV: 'test', PORT: 'eighty' }),
      (error) =>
        error instanceof pkg.ConfigError &&
        error.code === 'CONFIG_INVALID' &&
        error.issues.some((issue) => issue.variable === 'PORT'),
    );
  },
  '@flowforge/observability': async (pkg: ObservabilityModule, assert: Assert) => {
    const metrics = pkg.createMetrics({ defaultMetrics: false });
    metrics.counter({ name: 'smoke_total', help: 'Smoke test counter.' }).inc();
    assert.match(await metrics.render(), /^flowforge_smoke_total 1$/m);
    assert.throws(
      () => metrics.gauge({ name: 'smoke_total', help: 'Smoke test counter.' }),
      (error) => error instanceof pkg.ObservabilityError && error.code === 'METRIC_CONFLICT',
    );
  },
  '@flowforge/db': (pkg: DbModule, assert: Assert) => {
    const tenant = '0f8fad5b-d9cb-469f-a165-70867728950e';
    assert.equal(pkg.isTenantId(tenant), true);
    assert.equal(pkg.assertTenantId(tenant.toUpperCase()), tenant);
    assert.throws(
      () => pkg.assertTenantId('not-a-tenant'),
      (error) => pkg.isDatabaseError(error, 'TENANT_INVALID'),
    );
    assert.ok(Object.keys(pkg.coreMigrations().migrations).length > 0);
  },
  '@flowforge/auth': (pkg: AuthModule, assert: Assert) => {
    const tenant = '0f8fad5b-d9cb-469f-a165-70867728950e';
    const { key, hash } = pkg.generateApiKey(tenant);
    assert.deepEqual(pkg.parseApiKey(key), { tenantId: tenant, hash });
    assert.equal(pkg.parseApiKey(`${key}x`), null);
    const error = new pkg.AuthError('TOKEN_EXPIRED', 'expired');
    assert.equal(error.code, 'TOKEN_EXPIRED');
    assert.equal(error.status, 401);
    assert.ok(pkg.isAuthError(error));
  },
  '@flowforge/redis': (pkg: RedisModule, assert: Assert) => {
    assert.throws(
      () => pkg.createRedis({ topology: null }),
      (error) => pkg.isRedisError(error, 'NOT_CONFIGURED'),
    );
    assert.equal(new pkg.RedisError('UNAVAILABLE', 'down').retryable, true);
  },
  '@flowforge/clickhouse': (pkg: ClickHouseModule, assert: Assert) => {
    assert.throws(
      () => pkg.createClickHouse({ url: null }),
      (error) => pkg.isClickHouseError(error, 'NOT_CONFIGURED'),
    );
    assert.equal(new pkg.ClickHouseError('TIMEOUT', 'slow').retryable, true);
  },
  '@flowforge/materialize': (pkg: MaterializeModule, assert: Assert) => {
    assert.throws(
      () => pkg.createMaterialize({ url: null }),
      (error) => pkg.isMaterializeError(error, 'NOT_CONFIGURED'),
    );
    const mz = pkg.createMaterialize({ url: 'postgres://materialize@127.0.0.1:1/materialize' });
    assert.equal(mz.status, 'idle');
    assert.throws(
      () => mz.subscribe('view"; drop view x; --'),
      (error) => pkg.isMaterializeError(error, 'INVALID_ARGUMENT'),
    );
    assert.equal(new pkg.MaterializeError('UNAVAILABLE', 'down').retryable, true);
    return mz.close();
  },
  '@flowforge/server': serverSmoke,
  '@flowforge/widgets': widgetsSmoke,
};

/** For a package without an entry in SMOKES: the entry loads and exports something. */
const genericSmoke = (pkg: object, assert: Assert): void => {
  assert.ok(Object.keys(pkg).length > 0, 'the public entry exports nothing');
};

/**
 * Consumer files: the public types used the way the README examples use them. They are
 * type-checked only (never run), so they may name services that do not exist here.
 */
export const CONSUMERS: Readonly<Record<string, string>> = {
  '@flowforge/kernel': `
import {
  FlowForgeError,
  OptionChecks,
  backoffDelay,
  defineErrors,
  errorGuard,
  isFlowForgeError,
  networkFailureOf,
  type ErrorCatalog,
  type ErrorGuard,
  type NetworkFailure,
} from '@flowforge/kernel';

export type CacheErrorCode = 'INVALID_OPTIONS' | 'UNAVAILABLE';
const CACHE_ERRORS: ErrorCatalog<CacheErrorCode> = defineErrors({
  source: '@acme/cache',
  name: 'CacheError',
  codes: {
    INVALID_OPTIONS: { status: 500, retryable: false },
    UNAVAILABLE: { status: 503, retryable: true },
  },
});
export class CacheError extends FlowForgeError<CacheErrorCode> {
  constructor(code: CacheErrorCode, message: string, options?: ErrorOptions) {
    super(CACHE_ERRORS, code, message, options);
  }
}
export const isCacheError: ErrorGuard<CacheError> = errorGuard(CacheError);
export function poolSize(options: { poolSize?: number }): number {
  const checks = new OptionChecks();
  const size = checks.wholeNumber('poolSize', options.poolSize, { min: 1, max: 100 }, 4);
  checks.throwIfAny((message) => new CacheError('INVALID_OPTIONS', message));
  return size;
}
export function answer(error: unknown): { status: number; retryable: boolean } {
  return isFlowForgeError(error)
    ? { status: error.status, retryable: error.retryable }
    : { status: 500, retryable: false };
}
export const failure: NetworkFailure | undefined = networkFailureOf(new Error('x'));
export const delayMs: number = backoffDelay(3, { initialDelayMs: 100, maxDelayMs: 5_000 });
`,
  '@flowforge/config': `
import { loadSettings, ConfigError, type Settings, type ConfigErrorCode } from '@flowforge/config';

export const settings: Settings = loadSettings({ APP_ENV: 'test' });
export const port: number = settings.app.port;
export const databaseUrl: string | null = settings.database.url;
export const issuer: string = settings.auth.keycloak.issuer;
export function describe(error: unknown): string {
  if (error instanceof ConfigError) {
    const code: ConfigErrorCode = error.code;
    return \`\${code}: \${error.issues.map((issue) => issue.variable).join(', ')}\`;
  }
  return 'ok';
}
`,
  '@flowforge/observability': `
import { createLogger, createMetrics, ObservabilityError, type Logger, type Metrics } from '@flowforge/observability';
import { fastifyObservability, genReqId, type FastifyObservabilityOptions } from '@flowforge/observability/fastify';

export const logger: Logger = createLogger({ level: 'info', format: 'json', service: 'consumer' });
export const metrics: Metrics = createMetrics();
const requests = metrics.counter({ name: 'consumer_requests_total', help: 'Requests.', labelNames: ['route'] });
requests.labels('/').inc();
export const text: Promise<string> = metrics.render();
export const code: ObservabilityError['code'] = 'METRIC_CONFLICT';
export const plugin: typeof fastifyObservability = fastifyObservability;
export const requestIds: typeof genReqId = genReqId;
export type PluginOptions = FastifyObservabilityOptions;
`,
  '@flowforge/db': `
import type { Generated } from 'kysely';
import { loadSettings } from '@flowforge/config';
import { createDatabase, isDatabaseError, type Database, type TenantScoped } from '@flowforge/db';

interface DB {
  dashboards: TenantScoped<{ id: Generated<string>; name: string }>;
}
export function open(): Database<DB> {
  return createDatabase<DB>({ ...loadSettings({ APP_ENV: 'test' }).database });
}
export async function names(database: Database<DB>, tenantId: string): Promise<string[]> {
  const rows = await database.withTenant(tenantId, (trx) => trx.selectFrom('dashboards').select('name').execute());
  return rows.map((row) => row.name);
}
export function conflict(error: unknown): boolean {
  return isDatabaseError(error, 'UNIQUE_VIOLATION');
}
`,
  '@flowforge/auth': `
import { AuthError, generateApiKey, parseApiKey, type AuthErrorCode, type Principal } from '@flowforge/auth';
import { bearer, requireRole, type AuthHook } from '@flowforge/auth/fastify';

export const generated = generateApiKey('0f8fad5b-d9cb-469f-a165-70867728950e');
export const tenantId: string | undefined = parseApiKey(generated.key)?.tenantId;
export function tenantOf(principal: Principal): string {
  return principal.tenantId;
}
export const viewerOnly = requireRole('viewer');
export const makeBearer: (...args: Parameters<typeof bearer>) => AuthHook = bearer;
export function challenge(error: AuthError): string | undefined {
  const code: AuthErrorCode = error.code;
  return code === 'TOKEN_EXPIRED' ? error.challenge('flowforge') : undefined;
}
`,
  '@flowforge/redis': `
import { loadSettings } from '@flowforge/config';
import { createRedis, isRedisError, type Redis, type RedisErrorCode } from '@flowforge/redis';

export function open(): Redis {
  return createRedis({ ...loadSettings({ APP_ENV: 'test' }).redis });
}
export async function profile(redis: Redis, userId: string): Promise<Record<string, string>> {
  return redis.data.hgetall(\`user:\${userId}\`);
}
export function retryable(error: unknown): boolean {
  return isRedisError(error) && error.retryable;
}
export const code: RedisErrorCode = 'NOT_CONFIGURED';
`,
  '@flowforge/clickhouse': `
import { loadSettings } from '@flowforge/config';
import { createClickHouse, isClickHouseError, type ClickHouse } from '@flowforge/clickhouse';

export function open(): ClickHouse {
  return createClickHouse({ ...loadSettings({ APP_ENV: 'test' }).clickhouse });
}
export async function days(clickhouse: ClickHouse, tenantId: string): Promise<{ day: string; views: string }[]> {
  return clickhouse.queryForTenant<{ day: string; views: string }>(
    tenantId,
    'SELECT toDate(ts) AS day, count() AS views FROM events WHERE tenant_id = {tenant_id:UUID} GROUP BY day',
  );
}
export function unavailable(error: unknown): boolean {
  return isClickHouseError(error, 'UNAVAILABLE');
}
`,
  '@flowforge/materialize': `
import { loadSettings } from '@flowforge/config';
import {
  createMaterialize,
  isMaterializeError,
  type Materialize,
  type MaterializeErrorCode,
  type SubscribeUpdate,
} from '@flowforge/materialize';

export function open(): Materialize {
  return createMaterialize({ ...loadSettings({ APP_ENV: 'test' }).materialize, optional: true });
}
export async function totals(mz: Materialize, tenantId: string, signal: AbortSignal): Promise<number> {
  let sum = 0;
  for await (const change of mz.subscribe<{ total: string }>('widget_totals', {
    filter: { tenant_id: tenantId },
    signal,
  })) {
    const update: SubscribeUpdate<{ total: string }> = change;
    const at: bigint = update.mzTimestamp;
    sum += Number(update.row.total) * update.mzDiff + Number(at > 0n);
  }
  return sum;
}
export async function resume(mz: Materialize, from: bigint): Promise<bigint | null> {
  for await (const item of mz.subscribe('widget_totals', { progress: true, resumeFrom: from })) {
    if (item.kind === 'progress') return item.mzTimestamp;
  }
  return null;
}
export function retryable(error: unknown): boolean {
  return isMaterializeError(error) && error.retryable;
}
export const code: MaterializeErrorCode = 'HISTORY_UNAVAILABLE';
`,
  '@flowforge/server': `
import { createServer } from 'node:http';
import type { Logger, Metrics } from '@flowforge/observability';
import {
  createEventStreams,
  createLifecycle,
  createProblems,
  createReadiness,
  storeNotConfigured,
  type ErrorAnswer,
  type ReadinessReport,
  type ServerSentEvent,
  type StopOutcome,
} from '@flowforge/server';
import { healthHandlers, metricsHandler, nodeListener, problemHandler } from '@flowforge/server/node';

export async function serve(logger: Logger, metrics: Metrics): Promise<StopOutcome> {
  const lifecycle = createLifecycle({ logger, shutdownTimeoutMs: 5_000 });
  const readiness = lifecycle.add(createReadiness({ cacheMs: 500 }));
  readiness.addStore('redis', null, { variable: 'REDIS_URL' });
  const streams = lifecycle.add(createEventStreams({ logger, maxStreams: 10 }));
  const health = healthHandlers(readiness);
  const scrape = metricsHandler(metrics, { token: '' });
  const answerProblem = problemHandler({ problems: createProblems(), logger });
  const server = createServer((request, response) => {
    if (request.url === '/health/ready') health.ready(request, response);
    else if (request.url === '/metrics') scrape(request, response);
    else answerProblem(storeNotConfigured('Redis', 'REDIS_URL'), request, response, () => undefined);
  });
  lifecycle.add(nodeListener(server, { host: '127.0.0.1', port: 0 }));
  await lifecycle.start();
  const open: number = streams.size;
  const report: ReadinessReport = await readiness.report();
  return open + report.status.length > 0 ? lifecycle.stop() : 'drained';
}
export const tick: ServerSentEvent = { event: 'tick', id: '1', data: '{}' };
export function retryAfter(error: unknown): string | undefined {
  const answer: ErrorAnswer = createProblems({ realm: 'acme' }).answer(error, { scheme: 'ApiKey' });
  return answer.headers['retry-after'];
}
`,
  '@flowforge/widgets': `
import type { Principal } from '@flowforge/auth';
import type { ClickHouse } from '@flowforge/clickhouse';
import type { Database } from '@flowforge/db';
import type { Logger } from '@flowforge/observability';
import {
  createWidgetDataReader,
  liveViewOf,
  readWidgetData,
  widgetConfigSchemas,
  widgetMigrations,
  type WidgetDataBody,
  type WidgetsDB,
} from '@flowforge/widgets';

export async function read(
  database: Database<WidgetsDB>,
  clickhouse: ClickHouse,
  logger: Logger,
  principal: Principal,
  id: string,
): Promise<WidgetDataBody> {
  const reader = createWidgetDataReader({ clickhouse, cache: null, logger });
  return readWidgetData(database, reader, principal, id);
}
export const view: string = liveViewOf('live', { view: 'widget_totals' });
export const source: string = widgetMigrations.name;
export const schemas: object = widgetConfigSchemas.metric;
`,
};

function genericConsumer(name: string): string {
  return `import * as pkg from '${name}';\n\nexport type PublicSurface = typeof pkg;\n`;
}

/** The consumer file for package `name`: its entry in CONSUMERS, else the whole public surface. */
export function consumerFile(name: string): string {
  return CONSUMERS[name] ?? genericConsumer(name);
}

/**
 * Writes the smoke scripts into `dir`: the package's check, once under ESM `import` and
 * once under `require()` (which must give the same module instance as import, or users
 * get two copies of its state). A package that connects or schedules work at import
 * time never exits and times out.
 */
export async function writeSmokes(dir: string, name: string): Promise<void> {
  const check = SMOKES[name] ?? genericSmoke;
  const spec = JSON.stringify(name);
  await writeFile(join(dir, 'check.cjs'), `'use strict';\nmodule.exports = ${check.toString()};\n`);
  await writeFile(
    join(dir, 'smoke.mjs'),
    [
      "import assert from 'node:assert/strict';",
      "import { createRequire } from 'node:module';",
      `import * as pkg from ${spec};`,
      "const check = createRequire(import.meta.url)('./check.cjs');",
      'await check(pkg, assert);',
      `console.log('import ${name}: ok');`,
      '',
    ].join('\n'),
  );
  await writeFile(
    join(dir, 'smoke.cjs'),
    [
      "'use strict';",
      "const assert = require('node:assert/strict');",
      `const pkg = require(${spec});`,
      "const check = require('./check.cjs');",
      '(async () => {',
      '  await check(pkg, assert);',
      `  assert.equal(pkg, await import(${spec}), 'require() and import() give different instances');`,
      `  console.log('require ${name}: ok');`,
      '})().catch((error) => {',
      '  console.error(error);',
      '  process.exitCode = 1;',
      '});',
      '',
    ].join('\n'),
  );
}
