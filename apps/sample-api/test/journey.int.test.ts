/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call --
   response bodies are untyped JSON; the assertions are what check their shape */
// The end-to-end journey of issue 8, over real sockets with every real service:
// the app in production (no dev bypass) composed from settings exactly as
// src/main.ts composes it, the Keycloak stand-in issuing tokens by role,
// PostgreSQL, ClickHouse 18.16 (the app reads as the readonly user; this test's
// writer stands in for the pipeline), Redis (the cache) and the Materialize
// wire double (live widgets).
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createLogger, createMetrics } from '@flowforge/observability';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import {
  startKeycloak,
  type KeycloakFixture,
} from '../../../packages/auth/test/support/keycloak.js';
import { buildApp, type App } from '../src/app.js';
import { openDatabase } from '../src/db/open.js';
import { openOptionalStores } from '@flowforge/server';
import { CLICKHOUSE_URL, createMetricStore, dayBefore, READER } from './support/clickhouse.js';
import { requestJson, type JsonAnswer } from './support/http.js';
import { createMigratedDatabase, url } from './support/postgres.js';
import { openSse, type SseEvent, type SseStream } from './support/sse.js';

const CLIENT = 'flowforge-api';
const TENANT_A = randomUUID();
const TENANT_B = randomUUID();
const EDITOR = randomUUID();
const VIEW = 'journey_events';

let keycloak: KeycloakFixture;
let testDb: Awaited<ReturnType<typeof createMigratedDatabase>>;
let metricStore: Awaited<ReturnType<typeof createMetricStore>>;
let double: MaterializeDouble;
let app: App;
let base: string;
const openStreams: SseStream[] = [];

interface Credentials {
  readonly token?: string;
  readonly apiKey?: string;
}

function call(
  method: string,
  path: string,
  credentials: Credentials,
  body?: unknown,
): Promise<JsonAnswer> {
  const headers: Record<string, string> = {};
  if (credentials.token) headers.authorization = `Bearer ${credentials.token}`;
  if (credentials.apiKey) headers['x-api-key'] = credentials.apiKey;
  return requestJson(base, method, path, body, headers);
}

async function stream(path: string, token: string, lastEventId?: string): Promise<SseStream> {
  const opened = await openSse(base, path, {
    authorization: `Bearer ${token}`,
    ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }),
  });
  openStreams.push(opened);
  return opened;
}

/** Events until the first progress at or after `frontier` (everything before it was sent). */
const untilProgress = (sse: SseStream, frontier: bigint): Promise<SseEvent[]> =>
  sse.collect((event) => event.event === 'progress' && BigInt(event.id!) >= frontier);

const updateNames = (events: readonly SseEvent[]): string[] =>
  events
    .filter((event) => event.event === 'update')
    .map((event) => (JSON.parse(event.data) as { row: { name: string } }).row.name);

/** A 4xx/5xx as DESIGN.md says every error is: problem+json naming the request id. */
function expectProblem(answer: JsonAnswer, status: number): void {
  expect(answer.status).toBe(status);
  expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const requestId = answer.headers.get('x-request-id');
  expect(requestId).toBeTruthy();
  expect(answer.body).toMatchObject({ status, request_id: requestId });
}

beforeAll(async () => {
  [keycloak, testDb, metricStore, double] = await Promise.all([
    startKeycloak({ clientId: CLIENT }),
    createMigratedDatabase('journey'),
    createMetricStore('journey'),
    startMaterializeDouble(),
  ]);
  // The pipeline's writes: tenant A's orders over the last days, plus rows the
  // widget must not show (too old, another metric, another tenant).
  await metricStore.insert([
    { tenant_id: TENANT_A, metric: 'orders', daysAgo: 0, value: 4 },
    { tenant_id: TENANT_A, metric: 'orders', daysAgo: 0, value: 6 },
    { tenant_id: TENANT_A, metric: 'orders', daysAgo: 3, value: 2.5 },
    { tenant_id: TENANT_A, metric: 'orders', daysAgo: 9, value: 1_000 },
    { tenant_id: TENANT_A, metric: 'visits', daysAgo: 1, value: 77 },
    { tenant_id: TENANT_B, metric: 'orders', daysAgo: 0, value: 99 },
  ]);
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

  // Production: no dev bypass. Every store comes from its variable, as in src/main.ts.
  const settings = loadSettings({
    APP_ENV: 'production',
    SECRET_KEY: randomBytes(32).toString('hex'),
    METRICS_TOKEN: randomBytes(16).toString('hex'),
    DATABASE_URL: testDb.appUrl,
    KEYCLOAK_URL: keycloak.url,
    KEYCLOAK_REALM: keycloak.realm,
    KEYCLOAK_CLIENT_ID: CLIENT,
    CLICKHOUSE_URL,
    CLICKHOUSE_USER: READER.user,
    CLICKHOUSE_PASSWORD: READER.password,
    CLICKHOUSE_DATABASE: metricStore.database,
    REDIS_URL: 'redis://127.0.0.1:6379',
    // Other files' wrong keys from 127.0.0.1 count in this Redis too; the throttle has its own tests.
    AUTH_API_KEY_MAX_FAILURES: '100000',
    MATERIALIZE_URL: double.url,
  });
  const logger = createLogger({ level: 'silent' });
  const metrics = createMetrics();
  app = await buildApp({
    settings,
    logger,
    metrics,
    database: await openDatabase(settings, logger, metrics),
    ...(await openOptionalStores(settings, { logger, metrics })),
  });
  base = await app.server.listen({ host: '127.0.0.1', port: 0 });
}, 60_000);

afterAll(async () => {
  for (const sse of openStreams) sse.close();
  await app?.close();
  await Promise.allSettled([keycloak?.close(), double?.stop()]);
  await Promise.allSettled([testDb?.drop(), metricStore?.drop()]);
});

describe('the journey: editor, viewer, admin, embed client, live client, another tenant', () => {
  it('goes end to end over every real service', { timeout: 60_000 }, async () => {
    const token = (tenantId: string, roles: string[], sub?: string) =>
      keycloak.issueToken({ tenantId, realmRoles: roles, ...(sub ? { sub } : {}) });
    const [editor, viewer, admin, outsider, outsiderAdmin] = await Promise.all([
      token(TENANT_A, ['editor'], EDITOR),
      token(TENANT_A, ['viewer']),
      token(TENANT_A, ['admin']),
      token(TENANT_B, ['editor', 'viewer']),
      token(TENANT_B, ['admin']),
    ]);
    const asEditor = { token: editor };
    const asViewer = { token: viewer };
    const asAdmin = { token: admin };
    const asOutsider = { token: outsider };

    // Everything is ready: every dependency answers.
    const ready = await call('GET', '/health/ready', {});
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ready');
    for (const name of ['postgres', 'clickhouse', 'redis', 'materialize']) {
      expect(ready.body.checks[name]).toMatchObject({ status: 'up' });
    }

    // 1. The editor builds a dashboard with a metric widget, a live widget and a
    //    second metric widget (the one the API key will not cover).
    const created = await call('POST', '/api/v1/dashboards', asEditor, {
      name: 'Sales',
      description: 'Orders, live and by day',
    });
    expect(created.status).toBe(201);
    const dashboard = created.body;
    expect(dashboard).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: 'Sales',
      description: 'Orders, live and by day',
      created_by: EDITOR,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    expect(created.headers.get('location')).toBe(`/api/v1/dashboards/${dashboard.id}`);
    const widgetsPath = `/api/v1/dashboards/${dashboard.id}/widgets`;
    const metric = await call('POST', widgetsPath, asEditor, {
      name: 'Orders per day',
      kind: 'metric',
      config: { metric: 'orders', days: 7 },
    });
    expect(metric.status).toBe(201);
    const live = await call('POST', widgetsPath, asEditor, {
      name: 'Orders live',
      kind: 'live',
      config: { view: VIEW },
    });
    expect(live.status).toBe(201);
    const visits = await call('POST', widgetsPath, asEditor, {
      name: 'Visits',
      kind: 'metric',
      config: { metric: 'visits', days: 30 },
    });
    expect(visits.status).toBe(201);
    const renamed = await call('PATCH', `/api/v1/dashboards/${dashboard.id}`, asEditor, {
      name: 'Sales (EU)',
    });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ id: dashboard.id, name: 'Sales (EU)' });

    // 2. A viewer of the same tenant lists and reads them.
    const listed = await call('GET', '/api/v1/dashboards', asViewer);
    expect(listed.status).toBe(200);
    expect(listed.body.items).toEqual([renamed.body]);
    const read = await call('GET', `/api/v1/dashboards/${dashboard.id}`, asViewer);
    expect(read.body).toEqual(renamed.body);
    const widgets = await call('GET', widgetsPath, asViewer);
    expect(widgets.status).toBe(200);
    expect(widgets.body.items).toEqual([metric.body, live.body, visits.body]);
    expect(widgets.body.items.map((w: { kind: string }) => w.kind)).toEqual([
      'metric',
      'live',
      'metric',
    ]);

    // 3. The metric widget's data: tenant A's orders of the last 7 days, per day,
    //    from ClickHouse; the second read is served from the Redis cache.
    const dataPath = `/api/v1/widgets/${metric.body.id}/data`;
    const data = await call('GET', dataPath, asViewer);
    expect(data.status).toBe(200);
    const expectedData = {
      widget_id: metric.body.id,
      metric: 'orders',
      days: 7,
      points: [
        { day: dayBefore(metricStore.today, 3), value: 2.5 },
        { day: metricStore.today, value: 10 },
      ],
    };
    expect(data.body).toEqual({ ...expectedData, cached: false });
    const again = await call('GET', dataPath, asViewer);
    expect(again.body).toEqual({ ...expectedData, cached: true });

    // 4. A viewer cannot write: 403 with an insufficient_scope challenge, and nothing changed.
    const writes: [string, string, unknown][] = [
      ['POST', '/api/v1/dashboards', { name: 'nope' }],
      ['PATCH', `/api/v1/dashboards/${dashboard.id}`, { name: 'nope' }],
      ['DELETE', `/api/v1/dashboards/${dashboard.id}`, undefined],
      ['POST', widgetsPath, { name: 'nope', kind: 'metric' }],
      ['POST', '/api/v1/api-keys', { name: 'nope', widget_ids: [] }],
    ];
    for (const [method, path, body] of writes) {
      const refused = await call(method, path, asViewer, body);
      expectProblem(refused, 403);
      expect(refused.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    }
    // An editor cannot manage API keys either.
    expectProblem(
      await call('POST', '/api/v1/api-keys', asEditor, { name: 'k', widget_ids: [] }),
      403,
    );
    expect((await call('GET', `/api/v1/dashboards/${dashboard.id}`, asViewer)).body).toEqual(
      renamed.body,
    );
    expect((await call('GET', widgetsPath, asViewer)).body.items).toHaveLength(3);

    // 5. An admin creates an API key scoped to the metric widget: the plaintext is
    //    in this answer only (not stored, not cacheable).
    const createdKey = await call('POST', '/api/v1/api-keys', asAdmin, {
      name: 'Public site',
      widget_ids: [metric.body.id.toUpperCase()], // the same widget, in the other case
    });
    expect(createdKey.status).toBe(201);
    expect(createdKey.headers.get('cache-control')).toBe('no-store');
    expect(createdKey.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      key: expect.stringMatching(/^ffk_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$/),
      prefix: expect.stringMatching(/^ffk_/),
      widget_ids: [metric.body.id],
      expires_at: null,
    });
    const key: string = createdKey.body.key;
    // ffk_<id>_<secret>: the prefix people see is the secret's first characters.
    const secret = key.slice('ffk_'.length + 33);
    expect(createdKey.body.prefix).toBe(`ffk_${secret.slice(0, 8)}`);
    // As the superuser: row-level security hides the row from every other role outside a tenant.
    const stored = new pg.Client({ connectionString: url('postgres', testDb.name) });
    await stored.connect();
    try {
      const { rows } = await stored.query<Record<string, unknown>>(
        'select * from api_keys where id = $1',
        [createdKey.body.id],
      );
      expect(rows).toHaveLength(1);
      // Only a hash and the short prefix are kept: the plaintext is nowhere in the row.
      expect(JSON.stringify(rows[0])).not.toContain(secret);
    } finally {
      await stored.end();
    }

    // 6. The embed client reads the widget in scope with the key, and only that one.
    const embedded = await call('GET', `/embed/v1/widgets/${metric.body.id}/data`, { apiKey: key });
    expect(embedded.status).toBe(200);
    expect(embedded.body).toEqual({ ...expectedData, cached: true });
    for (const outside of [visits.body.id, live.body.id]) {
      const refused = await call('GET', `/embed/v1/widgets/${outside}/data`, { apiKey: key });
      expectProblem(refused, 403);
      expect(refused.headers.get('www-authenticate')).toContain('insufficient_scope');
    }
    const tampered = `${key.slice(0, -4)}${key.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    for (const bad of [tampered, 'ffk_not-a-key', randomBytes(24).toString('base64url')]) {
      const refused = await call('GET', `/embed/v1/widgets/${metric.body.id}/data`, {
        apiKey: bad,
      });
      expectProblem(refused, 401);
      expect(refused.headers.get('www-authenticate')).toMatch(/^ApiKey realm="flowforge"/);
    }
    // The key opens nothing under /api/v1, and a bearer token does not open /embed.
    expectProblem(await call('GET', dataPath, { apiKey: key }), 401);
    expectProblem(await call('GET', `/embed/v1/widgets/${metric.body.id}/data`, asAdmin), 401);

    // 7. A client streams the live widget: its tenant's snapshot, then its tenant's
    //    changes as the double commits them (never tenant B's).
    const streamPath = `/api/v1/widgets/${live.body.id}/stream`;
    const first = await stream(streamPath, viewer);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(updateNames(await untilProgress(first, double.upper))).toEqual(['a-initial']);
    double.insert(VIEW, [
      { tenant_id: TENANT_B, name: 'b-live', value: 20 },
      { tenant_id: TENANT_A, name: 'a-live-1', value: 10 },
    ]);
    double.insert(VIEW, [{ tenant_id: TENANT_A, name: 'a-live-2', value: 11 }]);
    expect(updateNames(await untilProgress(first, double.upper))).toEqual(['a-live-1', 'a-live-2']);
    const resumeAt = first.lastEventId;
    expect(resumeAt).toBe(double.upper.toString());

    // The client disconnects; changes are committed while it is away.
    first.close();
    await first.ended;
    double.insert(VIEW, [{ tenant_id: TENANT_A, name: 'away-1', value: 12 }]);
    double.insert(VIEW, [{ tenant_id: TENANT_B, name: 'b-away', value: 21 }]);
    double.remove(VIEW, [{ tenant_id: TENANT_A, name: 'a-live-1', value: 10 }]);
    double.insert(VIEW, [{ tenant_id: TENANT_A, name: 'away-2', value: 13 }]);

    // It resumes with Last-Event-ID: no snapshot again, nothing missed, nothing repeated.
    const resumed = await stream(streamPath, viewer, resumeAt);
    expect(resumed.status).toBe(200);
    const caughtUp = await untilProgress(resumed, double.upper);
    expect(caughtUp.map((event) => event.event)).not.toContain('reset');
    expect(
      caughtUp
        .filter((event) => event.event === 'update')
        .map((event) => {
          const change = JSON.parse(event.data) as { mz_diff: number; row: { name: string } };
          return `${change.mz_diff > 0 ? '+' : '-'}${change.row.name}`;
        }),
    ).toEqual(['+away-1', '-a-live-1', '+away-2']);
    // …and it stays live after the resume.
    double.insert(VIEW, [{ tenant_id: TENANT_A, name: 'after-resume', value: 14 }]);
    expect(updateNames(await untilProgress(resumed, double.upper))).toEqual(['after-resume']);
    resumed.close();

    // 8. Another tenant's token sees none of it: not found (never forbidden, which
    //    would confirm the ids exist), and its own lists are empty.
    const hidden: [string, string, unknown][] = [
      ['GET', `/api/v1/dashboards/${dashboard.id}`, undefined],
      ['PATCH', `/api/v1/dashboards/${dashboard.id}`, { name: 'taken over' }],
      ['DELETE', `/api/v1/dashboards/${dashboard.id}`, undefined],
      ['GET', widgetsPath, undefined],
      ['POST', widgetsPath, { name: 'planted', kind: 'metric' }],
      ['GET', dataPath, undefined],
      ['GET', `/api/v1/widgets/${visits.body.id}/data`, undefined],
    ];
    for (const [method, path, body] of hidden) {
      expectProblem(await call(method, path, asOutsider, body), 404);
    }
    const foreignStream = await stream(streamPath, outsider);
    expect(foreignStream.status).toBe(404);
    expect((await call('GET', '/api/v1/dashboards', asOutsider)).body).toEqual({
      items: [],
      next_cursor: null,
    });
    // Its admin can neither scope a key to tenant A's widget nor revoke tenant A's key.
    expectProblem(
      await call(
        'POST',
        '/api/v1/api-keys',
        { token: outsiderAdmin },
        { name: 'steal', widget_ids: [metric.body.id] },
      ),
      400,
    );
    expectProblem(
      await call('DELETE', `/api/v1/api-keys/${createdKey.body.id}`, { token: outsiderAdmin }),
      404,
    );
    // Tenant A's data is untouched by all of that.
    expect((await call('GET', `/api/v1/dashboards/${dashboard.id}`, asViewer)).body).toEqual(
      renamed.body,
    );
    expect((await call('GET', widgetsPath, asViewer)).body.items).toHaveLength(3);

    // 9. The admin revokes the key: the embed client is refused from then on.
    expect((await call('DELETE', `/api/v1/api-keys/${createdKey.body.id}`, asAdmin)).status).toBe(
      204,
    );
    expectProblem(
      await call('GET', `/embed/v1/widgets/${metric.body.id}/data`, { apiKey: key }),
      401,
    );
  });
});

describe('GET /openapi.json', () => {
  // DESIGN.md's HTTP surface, every route and method of it, and nothing else.
  const SURFACE = [
    'GET /health/live',
    'GET /health/ready',
    'GET /metrics',
    'GET /api/v1/me',
    'GET /api/v1/dashboards',
    'POST /api/v1/dashboards',
    'GET /api/v1/dashboards/{id}',
    'PATCH /api/v1/dashboards/{id}',
    'DELETE /api/v1/dashboards/{id}',
    'GET /api/v1/dashboards/{id}/widgets',
    'POST /api/v1/dashboards/{id}/widgets',
    'GET /api/v1/widgets/{id}/data',
    'GET /api/v1/widgets/{id}/stream',
    'POST /api/v1/api-keys',
    'DELETE /api/v1/api-keys/{id}',
    'GET /embed/v1/widgets/{id}/data',
    'POST /api/v1/live/tickets',
    'POST /embed/v1/live/tickets',
    'GET /live/v1/stream',
  ];
  interface DocOperation {
    responses?: Record<string, unknown>;
    parameters?: { in: string; name: string; required?: boolean }[];
    security?: Record<string, string[]>[];
  }
  const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

  it('is an OpenAPI 3.1 document of the whole HTTP surface, with its security schemes', async () => {
    const response = await fetch(`${base}/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.headers.get('x-request-id')).toBeTruthy();
    const doc = JSON.parse(await response.text());

    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    expect(doc.components.securitySchemes).toEqual({
      bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
      apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' },
      streamTicket: { type: 'apiKey', in: 'query', name: 'ticket' },
    });

    const operations: string[] = [];
    for (const [path, item] of Object.entries(doc.paths as Record<string, object>)) {
      expect(path).toMatch(/^\//);
      for (const [method, operation] of Object.entries(item as Record<string, DocOperation>)) {
        if (!METHODS.has(method)) continue;
        operations.push(`${method.toUpperCase()} ${path}`);
        // Valid operations: responses, and every {param} of the path declared as a required path parameter.
        expect(Object.keys(operation.responses ?? {}).length).toBeGreaterThan(0);
        const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]);
        const declared = (operation.parameters ?? [])
          .filter((parameter) => parameter.in === 'path')
          .map((parameter) => {
            expect(parameter.required).toBe(true);
            return parameter.name;
          });
        expect(declared.sort()).toEqual(templated.sort());
        // Credentials follow the prefix; the health and metrics routes take none.
        const security = path.startsWith('/api/')
          ? [{ bearer: [] }]
          : path.startsWith('/embed/')
            ? [{ apiKey: [] }]
            : path.startsWith('/live/')
              ? [{ streamTicket: [] }]
              : undefined;
        expect(operation.security).toEqual(security);
        for (const requirement of operation.security ?? []) {
          for (const scheme of Object.keys(requirement)) {
            expect(doc.components.securitySchemes).toHaveProperty(scheme);
          }
        }
      }
    }
    expect(operations.sort()).toEqual([...SURFACE].sort());
    // Every $ref resolves inside the document.
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/([^"]+)"/g)].map((m) => m[1]!);
    for (const ref of refs) {
      const target = ref
        .split('/')
        .reduce<unknown>(
          (node, part) => (node as Record<string, unknown> | undefined)?.[part],
          doc,
        );
      expect(target, ref).toBeDefined();
    }
    // Request bodies are described from the route schemas (what the app validates).
    expect(
      doc.paths['/api/v1/api-keys'].post.requestBody.content['application/json'].schema,
    ).toMatchObject({
      required: ['name', 'widget_ids'],
      additionalProperties: false,
    });
  });
});
