/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access --
   response bodies are untyped JSON; the assertions are what check their shape */
// Fuzzing the whole HTTP surface with fast-check, over raw sockets (so that
// malformed requests reach the server malformed), against the app in production
// with every real service: whatever a client sends, the answer is never a 5xx,
// never a stack trace, never a secret, and every error is a problem+json naming
// the request id. The routes come from the app's own OpenAPI document (checked
// against Fastify's route table), so a new route is fuzzed without editing this file.
import { randomBytes, randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createLogger, createMetrics } from '@flowforge/observability';
import {
  startKeycloak,
  type KeycloakFixture,
} from '../../../packages/auth/test/support/keycloak.js';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import {
  RedisServers,
  type RedisProcess,
} from '../../../packages/redis/test/support/redis-servers.js';
import { buildApp, type App } from '../src/app.js';
import { openDatabase } from '../src/db/open.js';
import { openOptionalStores } from '@flowforge/server';
import { CLICKHOUSE_URL, createMetricStore, READER } from './support/clickhouse.js';
import { requestJson } from './support/http.js';
import pg from 'pg';
import { createMigratedDatabase, url } from './support/postgres.js';
import { NoAnswer, rawExchange, rawRequest, type RawAnswer } from './support/raw-http.js';

const CLIENT = 'flowforge-api';
const TENANT = randomUUID();
const OTHER_TENANT = randomUUID();
const VIEW = 'fuzz_events';
const FIXTURE_NAME = `fixture-${randomBytes(6).toString('hex')}`;
const PLANTED = `planted-${randomBytes(6).toString('hex')}`;
/** Per property: enough runs to reach every route with every principal, bounded in time. */
const RUNS = 3_000;
const PROPERTY_TIME_LIMIT_MS = 30_000;

// Secrets of this app, all distinctive strings: none may ever show in an answer.
const SECRET_KEY = randomBytes(32).toString('hex');
const PG_PASSWORD = `pg-${randomBytes(12).toString('hex')}`; // trust on loopback: accepted, unchecked
const REDIS_PASSWORD = `redis-${randomBytes(12).toString('hex')}`;
const MZ_PASSWORD = `mz-${randomBytes(12).toString('hex')}`;
const METRICS_TOKEN = `scrape-${randomBytes(12).toString('hex')}`;

let keycloak: KeycloakFixture;
let testDb: Awaited<ReturnType<typeof createMigratedDatabase>>;
let metricStore: Awaited<ReturnType<typeof createMetricStore>>;
let double: MaterializeDouble;
const redisServers = new RedisServers();
let redis: RedisProcess;
let app: App;
let port: number;

/** Who a request is sent as. */
type As = 'anonymous' | 'viewer' | 'editor' | 'admin' | 'outsider' | 'api-key' | 'scraper';
const credentials = {} as Record<Exclude<As, 'anonymous'>, readonly [string, string]>;
/** Everything an answer must never contain (filled once the fixtures exist). */
const secrets: string[] = [];
/** Ids of the fixtures: fuzzed paths hit real rows too (never with DELETE). */
const fixtureIds: string[] = [];

interface Operation {
  readonly method: string;
  /** OpenAPI path template, `{id}` for parameters. */
  readonly path: string;
  /** The query and header parameters the document declares. */
  readonly parameters: readonly { in: string; name: string; schema: Schema }[];
  /** The JSON body schema the document declares, if any. */
  readonly body?: Schema;
}
/** The JSON Schema subset the route schemas use. */
interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  allOf?: { then?: Schema }[];
}
let operations: Operation[] = [];

interface FuzzRequest {
  readonly method: string;
  readonly target: string | Buffer;
  readonly headers: readonly (readonly [string, string | Buffer])[];
  readonly body?: Buffer;
  /** What the case is, for the failure message. */
  readonly label?: string;
  /** `METHOD /template` of the route the request was generated for. */
  readonly route?: string;
}

async function send(request: FuzzRequest): Promise<RawAnswer> {
  return rawExchange(
    port,
    rawRequest(request.method, request.target, request.headers, request.body),
    { head: request.method === 'HEAD' },
  );
}

const STACK = [
  /\bat [\w$.<>[\] ]+ \([^)]*:\d+:\d+\)/, // "at fn (file:line:col)"
  /\bat (?:file:\/\/|node:|\/)[^\s"]*:\d+:\d+/, // "at /path/file.js:line:col"
  /\.(?:ts|js|mjs|cjs):\d+:\d+/,
  /node_modules/,
  /\/work\//,
  /\b(?:TypeError|ReferenceError|RangeError|SyntaxError): /,
];

/** The invariants of every answer to anything a client can send. */
function checkAnswer(request: FuzzRequest, answer: RawAnswer): void {
  const where = `${request.label ?? ''} ${request.method} ${String(request.target).slice(0, 200)} → ${answer.status}\n${answer.head}\n${answer.body.toString('utf8').slice(0, 500)}`;
  expect(answer.status, where).toBeLessThan(500);
  const raw = `${answer.head}\n${answer.body.toString('latin1')}\n${answer.body.toString('utf8')}`;
  for (const secret of secrets) {
    expect(raw.includes(secret), `a secret leaked: ${where}`).toBe(false);
  }
  for (const pattern of STACK) expect(raw, `a stack trace: ${where}`).not.toMatch(pattern);
  // One sane X-Request-ID on every answer, never the client's garbage echoed.
  const ids = answer.headers.get('x-request-id') ?? [];
  expect(ids, where).toHaveLength(1);
  const requestId = ids[0]!;
  expect(requestId, where).toMatch(/^[A-Za-z0-9._:@/+=-]{1,128}$/);
  if (answer.status >= 400) {
    expect(answer.headers.get('content-type')?.[0], where).toMatch(/^application\/problem\+json/);
    if (request.method !== 'HEAD') {
      const problem = JSON.parse(answer.body.toString('utf8'));
      expect(problem, where).toMatchObject({
        status: answer.status,
        title: STATUS_CODES[answer.status],
        request_id: requestId,
      });
    }
  }
}

async function exchange(request: FuzzRequest): Promise<RawAnswer> {
  let answer: RawAnswer;
  try {
    answer = await send(request);
  } catch (error) {
    const received = error instanceof NoAnswer ? error.received.slice(0, 300) : '';
    throw new Error(
      `${request.label ?? ''} ${request.method} ${String(request.target).slice(0, 200)}: ${String(error)} ${received}`,
      { cause: error },
    );
  }
  checkAnswer(request, answer);
  return answer;
}

// ---------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------

const percentBytes = fc
  .uint8Array({ minLength: 1, maxLength: 12 })
  .map((bytes) => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join(''));

/** What goes where a route has `{id}`: real ids, other UUIDs, and everything that is not one. */
const idArb = (method: string): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 3, arbitrary: method === 'DELETE' ? fc.uuid() : fc.constantFrom(...fixtureIds) },
    { weight: 2, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.uuid().map((id) => id.toUpperCase()) },
    { weight: 2, arbitrary: fc.string({ maxLength: 40 }).map(encodeURIComponent) },
    {
      weight: 2,
      arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }).map(encodeURIComponent),
    },
    { weight: 1, arbitrary: percentBytes },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        '..',
        '%2e%2e',
        '..%2f..%2f..%2fetc%2fpasswd',
        '%00',
        '%',
        '%zz',
        '%C0%AF',
        '%FF%FE',
        "x'%20OR%201=1--",
        '__proto__',
        'a'.repeat(1_000),
        '%E2%80%AE',
        '',
      ),
    },
  );

const queryArb = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom('limit', 'tenant_id', 'offset', '__proto__', 'limit[]', 'id'),
        fc.string({ maxLength: 10 }),
      ),
      fc.oneof(
        fc.integer({ min: -1_000, max: 1_000 }).map(String),
        fc.constantFrom('1e3', '-0', '', '%', '%zz', '%FF', 'NaN', '9'.repeat(40), OTHER_TENANT),
        fc.string({ maxLength: 30 }),
      ),
      fc.boolean(),
    ),
    { maxLength: 4 },
  )
  .map((pairs) =>
    pairs.length === 0
      ? ''
      : `?${pairs
          .map(([key, value, encode]) =>
            encode ? `${encodeURIComponent(key)}=${encodeURIComponent(value)}` : `${key}=${value}`,
          )
          .join('&')}`,
  );

/** Header values a request line can carry without breaking the framing (no CR/LF). */
const headerValue = fc.string({ maxLength: 60 }).map((value) => value.replace(/[\r\n]/g, ''));
const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/problem+json',
  'text/plain',
  'application/xml',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  '*/*',
  'application/json, text/plain',
  ';;;',
  '',
];
const extraHeaderArb = fc.oneof(
  fc.tuple(fc.constant('content-type'), fc.constantFrom(...CONTENT_TYPES)),
  fc.tuple(
    fc.constant('accept'),
    fc.constantFrom('text/event-stream', 'application/json', '*/*', 'text/html', ';q=x'),
  ),
  fc.tuple(
    fc.constant('last-event-id'),
    fc.oneof(
      fc.constantFrom('0', '-1', 'abc', '1e10', '18446744073709551616', '99999999999999999999', ''),
      fc.bigInt({ min: 0n, max: 2n ** 64n }).map(String),
      headerValue,
    ),
  ),
  fc.tuple(fc.constant('x-request-id'), fc.oneof(headerValue, fc.constant('r'.repeat(300)))),
  fc.tuple(fc.constant('traceparent'), headerValue),
  fc.tuple(
    fc.constantFrom('x-tenant-id', 'tenant-id', 'x-forwarded-for', 'forwarded'),
    headerValue,
  ),
  fc.tuple(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), headerValue),
);

const garbageAuthArb = fc.oneof(
  fc.constantFrom(
    'Bearer',
    'Bearer ',
    'Bearer dev-token',
    'Basic Zm9vOmJhcg==',
    'Bearer a.b.c',
    'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
    'bearer    x',
    'Bearer ' + 'x'.repeat(5_000),
  ),
  headerValue.map((value) => `Bearer ${value}`),
);

const authArb: fc.Arbitrary<readonly (readonly [string, string])[]> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .constantFrom<As>('anonymous', 'viewer', 'editor', 'admin', 'outsider', 'api-key', 'scraper')
      .map((as) => (as === 'anonymous' ? [] : [credentials[as]])),
  },
  garbageAuthArb.map((value) => [['authorization', value] as const]),
  headerValue.map((value) => [['x-api-key', value] as const]),
);

const deepJson = fc
  .integer({ min: 1, max: 20_000 })
  .map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`);
/** Bodies shaped like what the routes take, with hostile values and extra fields (after setup). */
const shapedBody = () =>
  fc.record(
    {
      name: fc.oneof(
        fc.string({ maxLength: 250 }),
        fc.string({ unit: 'binary', maxLength: 20 }),
        fc.jsonValue(),
      ),
      description: fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.constant(null)),
      kind: fc.oneof(fc.constantFrom('metric', 'live', 'x', ''), fc.jsonValue()),
      config: fc.oneof(
        fc.record(
          {
            metric: fc.oneof(fc.constantFrom('orders', 'orders; DROP TABLE x'), fc.string()),
            days: fc.oneof(fc.integer(), fc.double()),
            view: fc.oneof(fc.constantFrom(VIEW, 'no_such_view', 'a.b', 'x"; --'), fc.string()),
          },
          { requiredKeys: [] },
        ),
        fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), fc.jsonValue({ maxDepth: 3 })),
      ),
      widget_ids: fc.array(fc.oneof(fc.uuid(), fc.constantFrom(...fixtureIds), fc.string()), {
        maxLength: 5,
      }),
      expires_at: fc.oneof(
        fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
        fc.string({ maxLength: 30 }),
        fc.constant(null),
      ),
      tenant_id: fc.constantFrom(OTHER_TENANT, TENANT, 'x'),
    },
    { requiredKeys: [] },
  );
const bodyArb = (): fc.Arbitrary<Buffer | undefined> =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 4, arbitrary: shapedBody().map((body) => Buffer.from(JSON.stringify(body))) },
    {
      weight: 2,
      arbitrary: fc.jsonValue().map((value) => Buffer.from(JSON.stringify(value) ?? 'null')),
    },
    { weight: 1, arbitrary: deepJson.map((text) => Buffer.from(text)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 100 }).map((text) => Buffer.from(text)) },
  );

/** `arbitrary` about once in `every` draws, `null` otherwise. */
const rarely = <T>(arbitrary: fc.Arbitrary<T>, every: number): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: every - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });

/**
 * Values for a JSON Schema of the route table: mostly valid (so that requests
 * get past validation into the handlers and the stores), sometimes just off
 * (a bound crossed, a wrong type, an extra field such as tenant_id).
 */
function fromSchema(schema: Schema, depth = 0): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 6, arbitrary: validFromSchema(schema, depth) },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.jsonValue({ maxDepth: 2 }),
        fc.string({ unit: 'binary', maxLength: 30 }),
        fc.constantFrom(null, '', 0, -1, 1e308, true, [], {}),
      ),
    },
  );
}

function validFromSchema(schema: Schema, depth: number): fc.Arbitrary<unknown> {
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const types = Array.isArray(schema.type) ? schema.type : [schema.type ?? 'object'];
  return fc.oneof(...types.map((type) => ofType(type, schema, depth)));
}

function ofType(type: string, schema: Schema, depth: number): fc.Arbitrary<unknown> {
  switch (type) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer':
    case 'number': {
      const min = schema.minimum ?? -1e6;
      const max = schema.maximum ?? 1e6;
      return fc.oneof(
        fc.integer({ min: Math.ceil(min), max: Math.floor(max) }),
        fc.constantFrom(min - 1, max + 1, 0.5, -0),
      );
    }
    case 'string': {
      if (schema.format === 'uuid') {
        return fc.oneof(
          fc.constantFrom(...fixtureIds),
          fc.uuid(),
          fc.uuid().map((id) => id.toUpperCase()),
        );
      }
      if (schema.format === 'date-time') {
        return fc.oneof(
          fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
          fc.constantFrom('2024-02-30T00:00:00Z', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59Z'),
        );
      }
      if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern));
      const minLength = schema.minLength ?? 0;
      const maxLength = Math.min(schema.maxLength ?? 100, 300);
      return fc.oneof(
        fc.string({ minLength, maxLength }),
        fc.string({
          unit: 'binary',
          minLength,
          maxLength: Math.max(minLength, Math.min(maxLength, 40)),
        }),
        fc.constantFrom('\u0000', 'a\u0000b', '\ud800', '\u202e', "'; DROP TABLE dashboards; --"),
        fc.constant('x'.repeat(maxLength + 1)),
      );
    }
    case 'array':
      return fc.array(schema.items ? fromSchema(schema.items, depth + 1) : fc.jsonValue(), {
        maxLength: Math.min(schema.maxItems ?? 5, 5) + 1,
      });
    default: {
      if (depth > 3) return fc.jsonValue({ maxDepth: 1 });
      // Conditional branches (allOf/if/then) add the shapes their properties may take.
      const properties: Record<string, Schema[]> = {};
      for (const [key, property] of Object.entries(schema.properties ?? {})) {
        properties[key] = [property];
      }
      for (const branch of schema.allOf ?? []) {
        for (const [key, property] of Object.entries(branch.then?.properties ?? {})) {
          (properties[key] ??= []).push(property);
        }
      }
      const keys = Object.keys(properties);
      if (keys.length === 0) {
        return fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }), {
          maxKeys: 4,
        });
      }
      const record = fc.record(
        Object.fromEntries(
          keys.map((key) => [
            key,
            fc.oneof(...properties[key]!.map((p) => fromSchema(p, depth + 1))),
          ]),
        ),
        { requiredKeys: [] },
      );
      const required = schema.required ?? [];
      return fc
        .tuple(
          record,
          fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, fc.constant(false)), // fill in required keys
          rarely(
            fc.tuple(
              fc.constantFrom('tenant_id', 'id', 'created_by', '__proto__'),
              fc.jsonValue({ maxDepth: 1 }),
            ),
            6,
          ),
        )
        .map(([value, fillRequired, extra]) => {
          const object: Record<string, unknown> = { ...value };
          if (fillRequired) {
            for (const key of required) {
              if (!(key in object))
                object[key] = key === 'kind' ? 'metric' : key === 'name' ? 'n' : [];
            }
          }
          if (extra) object[extra[0]] = extra[1];
          return object;
        });
    }
  }
}

const OTHER_METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'PROPFIND',
  'FOO',
];

/**
 * A request to one of the app's routes, fuzzed everywhere a client controls:
 * the method, the path parameters, the query string and headers (the declared
 * parameters from their schemas, plus anything), the credentials and the body
 * (from the route's body schema, or anything).
 */
const requestArb = (): fc.Arbitrary<FuzzRequest> =>
  fc
    .record({
      operation: fc.constantFrom(...operations),
      otherMethod: rarely(fc.constantFrom(...OTHER_METHODS), 6),
      query: queryArb,
      auth: authArb,
      extra: fc.array(extraHeaderArb, { maxLength: 4 }),
      body: bodyArb(),
      jsonType: fc.boolean(),
    })
    .chain((parts) => {
      const method = parts.otherMethod ?? parts.operation.method;
      const ids = (parts.operation.path.match(/\{[^}]+\}/g) ?? []).length;
      const declared = parts.operation.parameters;
      const schemaBody = parts.operation.body
        ? fc.option(
            fromSchema(parts.operation.body).map((value) => Buffer.from(JSON.stringify(value))),
            { freq: 6, nil: undefined },
          )
        : fc.constant(undefined);
      return fc
        .tuple(
          fc.array(idArb(method), { minLength: ids, maxLength: ids }),
          fc.tuple(...declared.map((p) => fc.option(fromSchema(p.schema), { freq: 3 }))),
          schemaBody,
        )
        .map(([values, declaredValues, fromBodySchema]) => {
          let index = 0;
          const path = parts.operation.path.replace(/\{[^}]+\}/g, () => values[index++]!);
          const headers: (readonly [string, string])[] = [...parts.auth, ...parts.extra];
          const pairs: string[] = [];
          declared.forEach((parameter, i) => {
            const value = declaredValues[i];
            if (value === null || value === undefined) return;
            const text = typeof value === 'string' ? value : JSON.stringify(value);
            if (parameter.in === 'query') {
              pairs.push(`${encodeURIComponent(parameter.name)}=${encodeURIComponent(text)}`);
            } else if (parameter.in === 'header') {
              headers.push([parameter.name, text.replace(/[\r\n]/g, '')]);
            }
          });
          const query =
            pairs.length === 0
              ? parts.query
              : `${parts.query ? `${parts.query}&` : '?'}${pairs.join('&')}`;
          const body = fromBodySchema ?? parts.body;
          const typed = headers.some(([name]) => name === 'content-type');
          if (body !== undefined && (parts.jsonType || fromBodySchema) && !typed) {
            headers.push(['content-type', 'application/json']);
          }
          return {
            route: `${method} ${parts.operation.path}`,
            method,
            target: `${path}${query}`,
            headers,
            ...(body === undefined || method === 'HEAD' ? {} : { body }),
          };
        });
    });

// ---------------------------------------------------------------------------

beforeAll(async () => {
  [keycloak, testDb, metricStore, double, redis] = await Promise.all([
    startKeycloak({ clientId: CLIENT }),
    createMigratedDatabase('fuzz'),
    createMetricStore('fuzz'),
    startMaterializeDouble({ password: MZ_PASSWORD }),
    redisServers.standalone(['--requirepass', REDIS_PASSWORD]),
  ]);
  await metricStore.insert([{ tenant_id: TENANT, metric: 'orders', daysAgo: 1, value: 3 }]);
  double.defineView(
    VIEW,
    [
      { name: 'tenant_id', type: 'uuid' },
      { name: 'name', type: 'text' },
    ],
    [{ tenant_id: TENANT, name: 'initial' }],
  );
  const settings = loadSettings({
    APP_ENV: 'production',
    SECRET_KEY,
    DATABASE_URL: `postgres://flowforge:${PG_PASSWORD}@127.0.0.1:5432/${testDb.name}`,
    KEYCLOAK_URL: keycloak.url,
    KEYCLOAK_REALM: keycloak.realm,
    KEYCLOAK_CLIENT_ID: CLIENT,
    CLICKHOUSE_URL,
    CLICKHOUSE_USER: READER.user,
    CLICKHOUSE_PASSWORD: READER.password,
    CLICKHOUSE_DATABASE: metricStore.database,
    REDIS_URL: `redis://:${REDIS_PASSWORD}@127.0.0.1:${redis.port}`,
    MATERIALIZE_URL: double.url,
    MATERIALIZE_POOL_SIZE: '20',
    METRICS_TOKEN,
    // Every hostile request here is one by one from loopback: the wrong-key throttle (429) would
    // answer most of them instead of the route. The throttle has tests of its own.
    AUTH_API_KEY_MAX_FAILURES: '100000',
  });
  expect(double.url).toContain(MZ_PASSWORD);
  const logger = createLogger({ level: 'silent' });
  const metrics = createMetrics();
  app = await buildApp({
    settings,
    logger,
    metrics,
    database: await openDatabase(settings, logger, metrics),
    ...(await openOptionalStores(settings, { logger, metrics })),
  });
  const base = await app.server.listen({ host: '127.0.0.1', port: 0 });
  port = Number(new URL(base).port);

  const bearer = async (tenantId: string, roles: string[]) =>
    [
      'authorization',
      `Bearer ${await keycloak.issueToken({ tenantId, realmRoles: roles })}`,
    ] as const;
  credentials.viewer = await bearer(TENANT, ['viewer']);
  credentials.editor = await bearer(TENANT, ['editor']);
  credentials.admin = await bearer(TENANT, ['admin']);
  credentials.outsider = await bearer(OTHER_TENANT, ['admin', 'editor', 'viewer']);
  credentials.scraper = ['authorization', `Bearer ${METRICS_TOKEN}`];
  const as = (who: As) => Object.fromEntries([credentials[who as Exclude<As, 'anonymous'>]]);

  const dashboard = await requestJson(
    base,
    'POST',
    '/api/v1/dashboards',
    { name: FIXTURE_NAME },
    as('editor'),
  );
  const widgets = `/api/v1/dashboards/${dashboard.body.id}/widgets`;
  const metric = await requestJson(
    base,
    'POST',
    widgets,
    { name: 'm', kind: 'metric', config: { metric: 'orders', days: 7 } },
    as('editor'),
  );
  const live = await requestJson(
    base,
    'POST',
    widgets,
    { name: 'l', kind: 'live', config: { view: VIEW } },
    as('editor'),
  );
  const key = await requestJson(
    base,
    'POST',
    '/api/v1/api-keys',
    { name: 'k', widget_ids: [metric.body.id] },
    as('admin'),
  );
  expect([dashboard.status, metric.status, live.status, key.status]).toEqual([201, 201, 201, 201]);
  const apiKeyPlaintext = key.body.key as string;
  credentials['api-key'] = ['x-api-key', apiKeyPlaintext];
  fixtureIds.push(...[dashboard, metric, live, key].map((created) => created.body.id as string));

  secrets.push(
    SECRET_KEY,
    PG_PASSWORD,
    READER.password,
    REDIS_PASSWORD,
    MZ_PASSWORD,
    METRICS_TOKEN,
    apiKeyPlaintext,
    ...(['viewer', 'editor', 'admin', 'outsider'] as const).map((who) =>
      credentials[who][1].slice('Bearer '.length),
    ),
  );

  // The routes, from the OpenAPI document the app serves (plus the hidden ones).
  const doc = await requestJson(base, 'GET', '/openapi.json');
  type DocOperation = {
    parameters?: Operation['parameters'];
    requestBody?: { content?: Record<string, { schema?: Schema }> };
  };
  operations = Object.entries(
    doc.body.paths as Record<string, Record<string, DocOperation>>,
  ).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => {
      const body = operation.requestBody?.content?.['application/json']?.schema;
      return {
        method: method.toUpperCase(),
        path,
        parameters: (operation.parameters ?? []).filter((p) => p.in !== 'path'),
        ...(body ? { body } : {}),
      };
    }),
  );
  operations.push({ method: 'GET', path: '/openapi.json', parameters: [] });
}, 60_000);

afterAll(async () => {
  await app?.close();
  await Promise.allSettled([keycloak?.close(), double?.stop(), redisServers.stopAll()]);
  await Promise.allSettled([testDb?.drop(), metricStore?.drop()]);
});

/** Fastify's route table as `METHOD /path/{param}` (HEAD twins left out). */
function routeTable(server: App['server']): string[] {
  const found: string[] = [];
  const stack: { depth: number; path: string }[] = [];
  for (const line of server.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+)(?: \(([^)]*)\))?/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    stack.length = depth;
    const path = `${stack.at(-1)?.path ?? ''}${match[2]}`;
    stack.push({ depth, path });
    for (const method of (match[3] ?? '').split(', ').filter(Boolean)) {
      if (method !== 'HEAD') found.push(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return found.sort();
}

describe('fuzzing every route', () => {
  it('covers every route the app has', () => {
    expect(operations.length).toBeGreaterThanOrEqual(16);
    expect(operations.map((op) => `${op.method} ${op.path}`).sort()).toEqual(
      routeTable(app.server),
    );
  });

  it(
    'headers, paths, query strings and bodies as anyone: no 5xx, no stack, no secret, problem+json errors',
    { timeout: 60_000 },
    async () => {
      const seen = new Map<string, Map<number, number>>();
      await fc.assert(
        fc.asyncProperty(requestArb(), async (request) => {
          const answer = await exchange(request);
          const statuses = seen.get(request.route!) ?? new Map<number, number>();
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
          seen.set(request.route!, statuses);
        }),
        {
          // A failure prints fast-check's seed and path: pass both here to replay it.
          numRuns: RUNS,
          // Bounded in time on a busy machine; the runs done so far still count.
          interruptAfterTimeLimit: PROPERTY_TIME_LIMIT_MS,
          markInterruptAsFailure: false,
        },
      );
      // The fuzzing reached every route, and got past authentication into each of them.
      const summary = JSON.stringify(
        Object.fromEntries(
          [...seen].map(([route, statuses]) => [route, Object.fromEntries(statuses)]),
        ),
      );
      for (const { method, path } of operations) {
        const statuses = seen.get(`${method} ${path}`);
        expect(statuses, `${method} ${path} never fuzzed: ${summary}`).toBeDefined();
        const authenticated = [...statuses!.keys()].filter(
          (status) => status !== 401 && status !== 403,
        );
        expect(
          authenticated.length,
          `${method} ${path} never got past auth: ${summary}`,
        ).toBeGreaterThan(0);
      }
      const all = new Set([...seen.values()].flatMap((statuses) => [...statuses.keys()]));
      for (const status of [200, 201, 400, 401, 403, 404, 415]) {
        expect(all.has(status), `no ${status} in ${summary}`).toBe(true);
      }
    },
  );
});

describe('hostile requests, one by one', () => {
  const auth = (who: Exclude<As, 'anonymous'>) => [credentials[who]] as const;
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  const jsonType = ['content-type', 'application/json'] as const;

  async function expectStatus(request: FuzzRequest, statuses: number[]): Promise<RawAnswer> {
    const answer = await exchange(request);
    expect(
      statuses,
      `${request.label}: ${answer.status} ${answer.body.toString('utf8').slice(0, 300)}`,
    ).toContain(answer.status);
    return answer;
  }

  it('values PostgreSQL refuses (NUL, lone surrogates, out-of-range dates) are 400s', async () => {
    const [dashboard, metric] = fixtureIds;
    const cases: [string, string, unknown, As][] = [
      ['POST', '/api/v1/dashboards', { name: 'a\u0000b' }, 'editor'],
      ['POST', '/api/v1/dashboards', { name: 'ok', description: '\u0000' }, 'editor'],
      ['PATCH', `/api/v1/dashboards/${dashboard}`, { name: '\u0000' }, 'editor'],
      ['POST', '/api/v1/dashboards', { name: '\ud800' }, 'editor'],
      [
        'POST',
        `/api/v1/dashboards/${dashboard}/widgets`,
        { name: 'w', kind: 'metric', config: { note: 'a\u0000' } },
        'editor',
      ],
      [
        'POST',
        `/api/v1/dashboards/${dashboard}/widgets`,
        { name: 'w', kind: 'live', config: { '\u0000': 1 } },
        'editor',
      ],
      ['POST', '/api/v1/api-keys', { name: '\u0000', widget_ids: [metric] }, 'admin'],
      [
        'POST',
        '/api/v1/api-keys',
        { name: 'k', widget_ids: [metric], expires_at: '0001-01-01T00:00:00Z' },
        'admin',
      ],
      [
        'POST',
        '/api/v1/api-keys',
        { name: 'k', widget_ids: [metric], expires_at: '9999-12-31T23:59:59Z' },
        'admin',
      ],
      [
        'POST',
        '/api/v1/api-keys',
        { name: 'k', widget_ids: [metric], expires_at: '2024-02-30T00:00:00Z' },
        'admin',
      ],
      [
        'POST',
        '/api/v1/api-keys',
        { name: 'k', widget_ids: [metric], expires_at: '2024-01-01T25:00:00Z' },
        'admin',
      ],
    ];
    for (const [method, path, body, who] of cases) {
      await expectStatus(
        {
          label: JSON.stringify(body),
          method,
          target: path,
          headers: [...auth(who as 'editor'), jsonType],
          body: json(body),
        },
        [201, 200, 400],
      );
    }
  });

  it('Last-Event-ID garbage is a 400; a valid but unknown position streams, never hangs', async () => {
    const live = fixtureIds[2]!;
    const path = `/api/v1/widgets/${live}/stream`;
    for (const value of [
      'abc',
      '-1',
      '0',
      '1e10',
      '１２',
      '18446744073709551616', // 2^64
      '99999999999999999999',
      '7'.repeat(200),
    ]) {
      await expectStatus(
        {
          label: `Last-Event-ID ${value}`,
          method: 'GET',
          target: path,
          headers: [...auth('viewer'), ['last-event-id', value]],
        },
        [400],
      );
    }
    for (const value of ['1', '18446744073709551615', `${double.upper + 1_000_000n}`]) {
      const answer = await expectStatus(
        {
          label: `Last-Event-ID ${value}`,
          method: 'GET',
          target: path,
          headers: [...auth('viewer'), ['last-event-id', value]],
        },
        [200],
      );
      expect(answer.headers.get('content-type')?.[0]).toMatch(/^text\/event-stream/);
    }
  });

  it('huge headers, URLs and bodies: 431, 413 as problems with a request id', async () => {
    const big = 'a'.repeat(20_000);
    await expectStatus(
      { label: 'huge header', method: 'GET', target: '/health/live', headers: [['x-big', big]] },
      [431],
    );
    await expectStatus(
      {
        label: 'huge bearer',
        method: 'GET',
        target: '/api/v1/me',
        headers: [['authorization', `Bearer ${big}`]],
      },
      [431],
    );
    await expectStatus(
      {
        label: 'huge API key',
        method: 'GET',
        target: `/embed/v1/widgets/${fixtureIds[1]}/data`,
        headers: [['x-api-key', big]],
      },
      [431],
    );
    await expectStatus(
      { label: 'huge URL', method: 'GET', target: `/api/v1/dashboards/${big}`, headers: [] },
      [431, 414],
    );
    await expectStatus(
      {
        label: 'many headers',
        method: 'GET',
        target: '/health/live',
        headers: Array.from({ length: 3_000 }, (_, i) => [`x-h${i}`, '1'] as const),
      },
      [431],
    );
    // Under the limits: still served.
    await expectStatus(
      {
        label: 'a few hundred headers',
        method: 'GET',
        target: '/health/live',
        headers: Array.from({ length: 500 }, (_, i) => [`x-h${i}`, '1'] as const),
      },
      [200],
    );
    await expectStatus(
      {
        label: 'a 2 MB body',
        method: 'POST',
        target: '/api/v1/dashboards',
        headers: [...auth('editor'), jsonType],
        body: json({ name: 'x', description: 'd'.repeat(2_000_000) }),
      },
      [413],
    );
  });

  it('invalid percent-encoding and UTF-8 in paths and query strings: 400 or 404, never more', async () => {
    const targets: (string | Buffer)[] = [
      '/%',
      '/%zz',
      '/api/v1/dashboards/%zz',
      '/api/v1/dashboards/%C0%AF',
      '/api/v1/dashboards/%FF%FE%FD',
      '/api/v1/dashboards/%ED%A0%80', // an encoded lone surrogate
      '/api/v1/widgets/%00/data',
      '/api/v1/dashboards?limit=%',
      '/api/v1/dashboards?limit=%zz&%=%',
      '/api/v1/dashboards?limit=%FF',
      Buffer.from([0x2f, 0x61, 0x70, 0x69, 0xff, 0xfe]), // raw bytes that are not UTF-8
      Buffer.concat([Buffer.from('/api/v1/dashboards/'), Buffer.from([0xc3, 0x28])]),
      '/api/v1/dashboards?\u00e9=\u00e9',
    ];
    for (const target of targets) {
      await expectStatus(
        { label: 'bad encoding', method: 'GET', target, headers: [...auth('viewer')] },
        [400, 404],
      );
    }
    // The well-formed neighbours are served.
    await expectStatus(
      {
        label: 'ok',
        method: 'GET',
        target: '/api/v1/dashboards?limit=5&x=%C3%A9',
        headers: [...auth('viewer')],
      },
      [400],
    );
    await expectStatus(
      {
        label: 'ok',
        method: 'GET',
        target: '/api/v1/dashboards?limit=5',
        headers: [...auth('viewer')],
      },
      [200],
    );
  });

  it('tenant_id in a body is refused (400) and never used', async () => {
    const [dashboard, metric] = fixtureIds;
    const cases: [string, string, Record<string, unknown>, 'editor' | 'admin'][] = [
      ['POST', '/api/v1/dashboards', { name: PLANTED, tenant_id: OTHER_TENANT }, 'editor'],
      ['PATCH', `/api/v1/dashboards/${dashboard}`, { tenant_id: OTHER_TENANT }, 'editor'],
      [
        'PATCH',
        `/api/v1/dashboards/${dashboard}`,
        { name: PLANTED, tenant_id: OTHER_TENANT },
        'editor',
      ],
      [
        'POST',
        `/api/v1/dashboards/${dashboard}/widgets`,
        { name: PLANTED, kind: 'metric', tenant_id: OTHER_TENANT },
        'editor',
      ],
      [
        'POST',
        '/api/v1/api-keys',
        { name: PLANTED, widget_ids: [metric], tenant_id: OTHER_TENANT },
        'admin',
      ],
    ];
    for (const [method, path, body, who] of cases) {
      await expectStatus(
        {
          label: `tenant_id in ${method} ${path}`,
          method,
          target: path,
          headers: [...auth(who), jsonType],
          body: json(body),
        },
        [400],
      );
    }
    // In the query string it is refused too (the list takes no unknown fields).
    const listed = await exchange({
      method: 'GET',
      target: `/api/v1/dashboards?tenant_id=${OTHER_TENANT}`,
      headers: [...auth('viewer')],
    });
    expect(listed.status).toBe(400);
    // In a header it is ignored: the token's tenant is the tenant.
    const readAs = (who: 'viewer' | 'outsider', tenantHeader: string) =>
      exchange({
        method: 'GET',
        target: `/api/v1/dashboards/${dashboard}`,
        headers: [...auth(who), ['x-tenant-id', tenantHeader]],
      });
    expect((await readAs('viewer', OTHER_TENANT)).status).toBe(200);
    expect((await readAs('outsider', TENANT)).status).toBe(404);
    // Nothing was planted anywhere: counted in the database itself (the superuser sees every
    // tenant's rows), not in a list page the fuzzing may have filled past its limit.
    const planted = new pg.Client({ connectionString: url('postgres', testDb.name) });
    await planted.connect();
    try {
      const { rows } = await planted.query<{ n: string }>(
        `select (select count(*) from dashboards where name = $1)
              + (select count(*) from widgets where name = $1)
              + (select count(*) from api_keys where name = $1) as n`,
        [PLANTED],
      );
      expect(rows[0]?.n).toBe('0');
    } finally {
      await planted.end();
    }
  });

  it('JSON bombs and wrong content types: 4xx', async () => {
    const post = (label: string, body: Buffer, type = 'application/json'): FuzzRequest => ({
      label,
      method: 'POST',
      target: '/api/v1/dashboards',
      headers: [...auth('editor'), ['content-type', type]],
      body,
    });
    // Over the route's body limit (16 KiB): refused before it is read (413). Within it,
    // deep enough to have overflowed recursive code: refused by the depth limit (400).
    for (const depth of [200_000, 5_000]) {
      const expected = depth > 5_000 ? [413] : [400];
      await expectStatus(
        post('deep arrays', Buffer.from(`${'['.repeat(depth)}${']'.repeat(depth)}`)),
        expected,
      );
      await expectStatus(
        post('deep objects', Buffer.from(`${'{"a":'.repeat(depth / 5)}1${'}'.repeat(depth / 5)}`)),
        depth > 5_000 ? [413] : [400],
      );
      await expectStatus(
        post(
          'deep under a valid name',
          Buffer.from(`{"name":"x","description":${'['.repeat(depth)}${']'.repeat(depth)}}`),
        ),
        expected,
      );
    }
    await expectStatus(
      post(
        'wide object',
        Buffer.from(
          JSON.stringify(
            Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, i])),
          ),
        ),
      ),
      [413],
    );
    await expectStatus(
      post('__proto__', Buffer.from('{"name":"x","__proto__":{"admin":true}}')),
      [400],
    );
    await expectStatus(
      post(
        'constructor.prototype',
        Buffer.from('{"name":"x","constructor":{"prototype":{"a":1}}}'),
      ),
      [400],
    );
    // Fastify's Ajv coerces scalars (coerceTypes): a number name is stored as its string.
    await expectStatus(post('1e400', Buffer.from('{"name":1e400}')), [201, 400]);
    await expectStatus(post('not JSON', Buffer.from('{"name":')), [400]);
    await expectStatus(post('empty JSON body', Buffer.alloc(0)), [400]);
    await expectStatus(post('BOM', Buffer.from('\ufeff{"name":"x"}')), [400, 201]);
    await expectStatus(
      post('UTF-16', Buffer.from('{"name":"x"}', 'utf16le'), 'application/json; charset=utf-16'),
      [400, 415],
    );
    // Fastify parses text/plain as a string: the body schema refuses it.
    await expectStatus(post('text/plain', Buffer.from('name=x'), 'text/plain'), [400]);
    for (const type of [
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/octet-stream',
      'application/jsonx',
      'json',
    ]) {
      await expectStatus(post(type, Buffer.from('name=x'), type), [415]);
    }
    // A body and no content type.
    await expectStatus(
      {
        label: 'no content type',
        method: 'POST',
        target: '/api/v1/dashboards',
        headers: [...auth('editor')],
        body: Buffer.from('{"name":"x"}'),
      },
      [415],
    );
  });

  it('methods a route does not take: 404 problems, never a 5xx or a dropped connection', async () => {
    const cases: [string, string][] = [
      ['PUT', '/api/v1/dashboards'],
      ['PUT', `/api/v1/dashboards/${fixtureIds[0]}`],
      ['POST', '/health/live'],
      ['DELETE', '/metrics'],
      ['OPTIONS', '/api/v1/me'],
      ['TRACE', '/api/v1/me'],
      ['PROPFIND', '/api/v1/dashboards'],
      ['GET', '/api/v1/api-keys'],
      ['PATCH', `/embed/v1/widgets/${fixtureIds[1]}/data`],
    ];
    for (const [method, target] of cases) {
      await expectStatus({ label: method, method, target, headers: [...auth('admin')] }, [404]);
    }
    // Not HTTP methods at all: refused by the parser, still as a problem.
    for (const method of ['FOO', 'GET\u0000', 'G ET']) {
      await expectStatus({ label: method, method, target: '/health/live', headers: [] }, [400]);
    }
    // CONNECT (a proxy tunnel) is not served either.
    await expectStatus(
      { label: 'CONNECT', method: 'CONNECT', target: '127.0.0.1:5432', headers: [] },
      [400, 404, 405],
    );
  });

  it('path traversal reaches nothing it should not', async () => {
    const targets = [
      '/api/v1/../../etc/passwd',
      '/health/live/../../api/v1/me',
      '/embed/v1/widgets/../../../api/v1/me',
      '/embed/v1/widgets/..%2f..%2f..%2fapi%2fv1%2fme/data',
      '/api/v1/dashboards/..%2f..%2fme',
      '/api/v1/dashboards/%2e%2e/widgets',
      '//api/v1/me',
      '/api/v1//me',
      '/api/v1/me/',
      '/API/V1/ME',
      '/api/v1\\me',
      '/./api/v1/me',
      'http://evil.example/api/v1/me',
      '*',
    ];
    for (const target of targets) {
      // With an API key only: anything reached outside /embed is refused or not found.
      const answer = await expectStatus(
        { label: 'traversal', method: 'GET', target, headers: [...auth('api-key')] },
        [400, 401, 404],
      );
      expect(answer.body.toString('utf8')).not.toContain('tenant_id');
    }
  });

  it('X-Request-ID injection: CR/LF, very long, hostile characters are never echoed', async () => {
    const sane = await exchange({
      method: 'GET',
      target: '/health/live',
      headers: [['x-request-id', 'trace-123']],
    });
    expect(sane.headers.get('x-request-id')).toEqual(['trace-123']);
    for (const value of [
      'r'.repeat(10_000),
      '<script>alert(1)</script>',
      'a b',
      '"quoted"',
      'caf\u00e9',
      '\u202eevil',
      'a,b',
    ]) {
      const answer = await exchange({
        label: 'x-request-id',
        method: 'GET',
        target: '/api/v1/me',
        headers: [['x-request-id', value]],
      });
      expect(answer.status).toBe(401);
      expect(answer.headers.get('x-request-id')?.[0]).not.toBe(value);
      expect(answer.head + answer.body.toString('utf8')).not.toContain('<script>');
    }
    // CR/LF on the wire: the rest becomes another header of the request, never of the answer.
    const split = await exchange({
      label: 'CRLF',
      method: 'GET',
      target: '/health/live',
      headers: [['x-request-id', 'abc\r\nSet-Cookie: pwned=1']],
    });
    expect(split.headers.has('set-cookie')).toBe(false);
    for (const value of [
      'abc\rdef',
      'abc\ndef',
      'abc\u0000def',
      'abc\r\n\r\nGET /api/v1/me HTTP/1.1',
    ]) {
      const answer = await expectStatus(
        {
          label: JSON.stringify(value),
          method: 'GET',
          target: '/health/live',
          headers: [['x-request-id', value]],
        },
        [200, 400],
      );
      expect(answer.headers.get('x-request-id')?.[0]).not.toContain('def');
    }
    // Two of them.
    const twice = await exchange({
      method: 'GET',
      target: '/health/live',
      headers: [
        ['x-request-id', 'one'],
        ['x-request-id', 'two'],
      ],
    });
    expect(twice.headers.get('x-request-id')).toHaveLength(1);
  });
});
