/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument --
   response bodies are untyped JSON; the assertions are what check their shape */
// Live widgets as a browser reaches them (decision 017): a single-use ticket, then one stream
// for several widgets; refusals a browser's EventSource can act on; CORS closed by default; the
// stream bounded by the credential behind it. Real PostgreSQL, Redis (tickets shared by two
// instances), the Materialize wire double and real HTTP. What Chromium itself sees is
// test/browser/'s.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createDatabase } from '@flowforge/db';
import { createMaterialize, type Materialize } from '@flowforge/materialize';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import { createRedis } from '@flowforge/redis';
import { buildApp, type App, type AppOptions } from '../src/app.js';
import type { AppDB } from '../src/db/schema.js';
import { requestJson, type JsonAnswer } from './support/http.js';
import { createMigratedDatabase } from './support/postgres.js';
import { openSse, type SseEvent, type SseStream } from './support/sse.js';
import {
  startKeycloak,
  type KeycloakFixture,
} from '../../../packages/auth/test/support/keycloak.js';

const TENANT_A = randomUUID();
const TENANT_B = randomUUID();
const USER = randomUUID();
const VIEW = 'live_orders';
const PAGE = 'https://dashboards.example.com';

let testDb: Awaited<ReturnType<typeof createMigratedDatabase>>;
let double: MaterializeDouble;
const running: App[] = [];
const opened: SseStream[] = [];

interface Instance {
  readonly app: App;
  readonly base: string;
  call(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<JsonAnswer>;
  /** A live widget of the instance's dev tenant on VIEW. */
  widget(kind?: 'live' | 'metric'): Promise<string>;
  /** A ticket for `widgetIds` (201 expected), by `path`. */
  ticket(
    widgetIds: readonly string[],
    options?: { resume?: Record<string, string>; headers?: Record<string, string>; path?: string },
  ): Promise<{ ticket: string; url: string; expires_at: string }>;
  stream(url: string, headers?: Record<string, string>): Promise<SseStream>;
}

async function instance(
  env: Record<string, string> = {},
  options: Partial<AppOptions> & { withRedis?: boolean } = {},
): Promise<Instance> {
  const settings = loadSettings({
    APP_ENV: 'development',
    AUTH_DEV_TENANT_ID: TENANT_A,
    AUTH_DEV_USER_ID: USER,
    HTTP_CORS_ORIGINS: PAGE,
    ...env,
  });
  const materialize: Materialize = createMaterialize({
    url: double.url,
    poolSize: 4,
    optional: true,
    connectTimeoutMs: 1_000,
    fetchTimeoutMs: 200,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
  });
  await materialize.start();
  const { withRedis, ...appOptions } = options;
  const app = await buildApp({
    settings,
    database: createDatabase<AppDB>({ url: testDb.appUrl, poolSize: 2 }),
    materialize,
    ...(withRedis === true
      ? {
          redis: createRedis(
            loadSettings({ APP_ENV: 'test', REDIS_URL: 'redis://127.0.0.1:6379' }).redis,
          ),
        }
      : {}),
    liveLingerMs: 100,
    ...appOptions,
  });
  running.push(app);
  const base = await app.server.listen({ host: '127.0.0.1', port: 0 });
  const call: Instance['call'] = (method, path, body, headers = {}) =>
    requestJson(base, method, path, body, headers);
  return {
    app,
    base,
    call,
    async widget(kind = 'live') {
      const dashboard = await call('POST', '/api/v1/dashboards', { name: 'Live' });
      const created = await call('POST', `/api/v1/dashboards/${dashboard.body.id}/widgets`, {
        name: 'w',
        kind,
        config: kind === 'live' ? { view: VIEW } : { metric: 'orders' },
      });
      expect(created.status).toBe(201);
      return created.body.id as string;
    },
    async ticket(widgetIds, { resume, headers, path = '/api/v1/live/tickets' } = {}) {
      const answer = await call(
        'POST',
        path,
        { widget_ids: widgetIds, ...(resume === undefined ? {} : { resume }) },
        headers,
      );
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      return answer.body;
    },
    async stream(url, headers = {}) {
      const stream = await openSse(base, url, headers);
      opened.push(stream);
      return stream;
    },
  };
}

const data = (event: SseEvent) => JSON.parse(event.data);
/** Events until every widget in `ids` had a progress at or after `frontier`. */
async function untilAllProgress(
  stream: SseStream,
  ids: readonly string[],
  frontier: bigint,
): Promise<SseEvent[]> {
  const pending = new Set(ids);
  return stream.collect((event) => {
    if (event.event === 'progress' && BigInt(data(event).mz_timestamp) >= frontier) {
      pending.delete(data(event).widget_id);
    }
    return pending.size === 0;
  });
}
const names = (events: readonly SseEvent[], widgetId: string) =>
  events
    .filter((event) => event.event === 'update' && data(event).widget_id === widgetId)
    .map((event) => data(event).row.name as string);

beforeAll(async () => {
  testDb = await createMigratedDatabase('live');
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
});

afterEach(async () => {
  double.onStatement(null);
  for (const stream of opened.splice(0)) stream.close();
  await Promise.allSettled(running.splice(0).map((app) => app.close()));
});

afterAll(async () => {
  await double?.stop();
  await testDb?.drop();
});

describe('POST /api/v1/live/tickets, then GET /live/v1/stream?ticket=', () => {
  it('streams several widgets on one connection, each event tagged with its widget, no ids', async () => {
    const a = await instance();
    const [first, second] = [await a.widget(), await a.widget()];
    const issued = await a.ticket([first, second]);
    expect(issued.ticket).toMatch(/^\S{40,}$/);
    expect(issued.url).toBe(`/live/v1/stream?ticket=${encodeURIComponent(issued.ticket)}`);
    expect(Date.parse(issued.expires_at) - Date.now()).toBeLessThanOrEqual(30_000);

    const stream = await a.stream(issued.url);
    expect(stream.status).toBe(200);
    expect(stream.headers.get('connection')).toBe('close');
    const snapshot = await untilAllProgress(stream, [first, second], double.upper);
    expect(names(snapshot, first)).toEqual(['a-initial']);
    expect(names(snapshot, second)).toEqual(['a-initial']);
    double.insert(VIEW, [
      { tenant_id: TENANT_B, name: 'b-live', value: 20 },
      { tenant_id: TENANT_A, name: 'a-live', value: 2n ** 60n },
    ]);
    const live = await untilAllProgress(stream, [first, second], double.upper);
    expect(names(live, first)).toEqual(['a-live']);
    expect(names(live, second)).toEqual(['a-live']);
    // int8 arrives as a string, exact past 2^53.
    const update = live.find((event) => event.event === 'update')!;
    expect(data(update).row.value).toBe((2n ** 60n).toString());
    expect(typeof data(update).mz_diff).toBe('number');
    expect([...snapshot, ...live].every((event) => event.id === undefined)).toBe(true);
    // One stream for both widgets, counted once against the user's limit.
    expect(a.app.streams.heldBy(USER)).toBe(1);
  });

  it('opens one stream per ticket: a second use, a made-up ticket and no ticket are refused', async () => {
    const a = await instance();
    const id = await a.widget();
    const issued = await a.ticket([id]);
    expect((await a.stream(issued.url)).status).toBe(200);
    const again = await a.stream(issued.url);
    expect(again.status).toBe(401);
    expect(again.headers.get('www-authenticate')).toContain('invalid_token');
    const madeUp = await a.stream(`/live/v1/stream?ticket=${'x'.repeat(48)}`);
    expect(madeUp.status).toBe(401);
    expect((await a.stream('/live/v1/stream')).status).toBe(400);
  });

  it('redeems on another instance what one issued, through Redis', async () => {
    const a = await instance({}, { withRedis: true });
    const b = await instance({}, { withRedis: true });
    const id = await a.widget();
    const issued = await a.ticket([id]);
    const stream = await b.stream(issued.url);
    expect(stream.status).toBe(200);
    expect(names(await untilAllProgress(stream, [id], double.upper), id)).toContain('a-initial');
    expect((await a.stream(issued.url)).status).toBe(401);
  });

  it("resumes each widget from its progress in the ticket's resume, nothing lost or repeated", async () => {
    const a = await instance();
    const [first, second] = [await a.widget(), await a.widget()];
    const stream = await a.stream((await a.ticket([first, second])).url);
    const seen = await untilAllProgress(stream, [first, second], double.upper);
    const resume: Record<string, string> = {};
    for (const event of seen) {
      if (event.event === 'progress') resume[data(event).widget_id] = data(event).mz_timestamp;
    }
    stream.close();
    double.insert(VIEW, [{ tenant_id: TENANT_A, name: 'while-away', value: 3 }]);
    const again = await a.stream((await a.ticket([first, second], { resume })).url);
    const caughtUp = await untilAllProgress(again, [first, second], double.upper);
    expect(names(caughtUp, first)).toEqual(['while-away']);
    expect(names(caughtUp, second)).toEqual(['while-away']);
  });

  it('checks every widget when issuing: 404, 409, 400, and an API key only its own widgets', async () => {
    const a = await instance();
    const b = await instance({ AUTH_DEV_TENANT_ID: TENANT_B });
    const live = await a.widget();
    const metric = await a.widget('metric');
    const foreign = await b.widget();
    const ask = (ids: unknown, headers?: Record<string, string>, path = '/api/v1/live/tickets') =>
      a.call('POST', path, { widget_ids: ids }, headers);
    expect((await ask([live, foreign])).status).toBe(404);
    expect((await ask([live, metric])).status).toBe(409);
    expect((await ask([])).status).toBe(400);
    expect((await ask([live, live])).status).toBe(400);
    expect((await ask(Array.from({ length: 17 }, () => randomUUID()))).status).toBe(400);
    expect(
      (await a.call('POST', '/api/v1/live/tickets', { widget_ids: [live], tenant_id: TENANT_B }))
        .status,
    ).toBe(400);

    const key = await a.call('POST', '/api/v1/api-keys', { name: 'site', widget_ids: [live] });
    expect(key.status).toBe(201);
    const apiKey = { 'x-api-key': key.body.key as string };
    expect((await ask([live], apiKey, '/embed/v1/live/tickets')).status).toBe(201);
    const outOfScope = await ask([live, await a.widget()], apiKey, '/embed/v1/live/tickets');
    expect(outOfScope.status).toBe(403);
    expect((await ask([live], {}, '/embed/v1/live/tickets')).status).toBe(401);
  });
});

describe('what a browser can act on', () => {
  it('answers a temporary refusal with 200, retry and a refused event, then closes', async () => {
    const a = await instance({ HTTP_STREAMS_PER_USER: '1' });
    const id = await a.widget();
    expect((await a.stream((await a.ticket([id])).url)).status).toBe(200);
    const refused = await a.stream((await a.ticket([id])).url);
    expect(refused.status).toBe(200);
    expect(refused.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const event = await refused.next();
    expect(event.event).toBe('refused');
    expect(data(event)).toEqual({ status: 429, code: 'TOO_MANY_STREAMS', retry_after_ms: 5_000 });
    await refused.ended;
    // The per-widget route does the same.
    const single = await a.stream(`/api/v1/widgets/${id}/stream`);
    expect(single.status).toBe(200);
    expect((await single.next()).event).toBe('refused');
  });

  it('ends a stream with shutdown and closes its connection, so a reconnect reaches another instance', async () => {
    const a = await instance();
    const id = await a.widget();
    const stream = await a.stream((await a.ticket([id])).url);
    await untilAllProgress(stream, [id], double.upper);
    const closing = a.app.close();
    const rest = await stream.collect((event) => event.event === 'shutdown');
    expect(rest.at(-1)!.event).toBe('shutdown');
    await stream.ended;
    expect(await closing).toBe('drained');
  });

  it('refuses another origin before anything runs, and serves a listed one', async () => {
    const a = await instance();
    const id = await a.widget();
    let declared = 0;
    double.onStatement((statement) => {
      if (statement.startsWith('DECLARE')) declared += 1;
    });
    const issued = await a.ticket([id]);
    const stranger = await a.stream(issued.url, { origin: 'https://evil.example' });
    expect(stranger.status).toBe(403);
    expect(JSON.stringify(stranger.problem)).toMatch(/origin/i);
    expect(declared).toBe(0);
    expect(
      (await a.call('POST', '/api/v1/live/tickets', { widget_ids: [id] }, { origin: 'null' }))
        .status,
    ).toBe(403);

    // The ticket was not spent by the refused request: the listed origin opens it.
    const listed = await a.stream(issued.url, { origin: PAGE });
    expect(listed.status).toBe(200);
    expect(listed.headers.get('access-control-allow-origin')).toBe(PAGE);
    const preflight = await fetch(`${a.base}/embed/v1/live/tickets`, {
      method: 'OPTIONS',
      headers: {
        origin: PAGE,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'x-api-key, content-type',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(PAGE);
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain(
      'x-api-key',
    );
  });

  it('sends no CORS header by default', async () => {
    const a = await instance({ HTTP_CORS_ORIGINS: '' });
    const answer = await a.call('GET', '/health/live', undefined, { origin: PAGE });
    expect(answer.status).toBe(403);
    expect(answer.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('a stream ends with the credential behind it', () => {
  it('sends credential-expired when the API key expires, and revoked when it is revoked', async () => {
    const a = await instance({}, { apiKeyRecheckMs: 200 });
    const id = await a.widget();
    const expiring = await a.call('POST', '/api/v1/api-keys', {
      name: 'soon',
      widget_ids: [id],
      expires_at: new Date(Date.now() + 2_000).toISOString(),
    });
    const lasting = await a.call('POST', '/api/v1/api-keys', { name: 'site', widget_ids: [id] });
    const path = '/embed/v1/live/tickets';
    const soon = await a.stream(
      (await a.ticket([id], { path, headers: { 'x-api-key': expiring.body.key } })).url,
    );
    const revoked = await a.stream(
      (await a.ticket([id], { path, headers: { 'x-api-key': lasting.body.key } })).url,
    );
    await untilAllProgress(revoked, [id], double.upper);
    expect((await a.call('DELETE', `/api/v1/api-keys/${lasting.body.id}`)).status).toBeLessThan(
      300,
    );
    const ending = await revoked.collect((event) => event.event === 'revoked', 5_000);
    expect(ending.at(-1)!.event).toBe('revoked');
    await revoked.ended;
    const expired = await soon.collect((event) => event.event === 'credential-expired', 5_000);
    expect(expired.at(-1)!.event).toBe('credential-expired');
    await soon.ended;
  });

  describe('with bearer tokens', () => {
    let keycloak: KeycloakFixture;
    beforeAll(async () => {
      keycloak = await startKeycloak({ clientId: 'flowforge-api' });
    });
    afterAll(async () => {
      await keycloak?.close();
    });

    it('sends credential-expired at the token’s exp', async () => {
      const a = await instance({
        AUTH_DEV_TENANT_ID: '',
        AUTH_DEV_USER_ID: '',
        APP_ENV: 'production',
        SECRET_KEY: randomBytes(32).toString('hex'),
        METRICS_TOKEN: randomBytes(16).toString('hex'),
        DATABASE_URL: testDb.appUrl,
        KEYCLOAK_URL: keycloak.url,
        KEYCLOAK_REALM: keycloak.realm,
        KEYCLOAK_CLIENT_ID: 'flowforge-api',
      });
      const editor = await keycloak.issueToken({ tenantId: TENANT_A, realmRoles: ['editor'] });
      const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
      const dashboard = await a.call('POST', '/api/v1/dashboards', { name: 'd' }, bearer(editor));
      const widget = await a.call(
        'POST',
        `/api/v1/dashboards/${dashboard.body.id}/widgets`,
        { name: 'w', kind: 'live', config: { view: VIEW } },
        bearer(editor),
      );
      const shortLived = await keycloak.issueToken({
        tenantId: TENANT_A,
        realmRoles: ['viewer'],
        expiresIn: 2,
      });
      const issued = await a.ticket([widget.body.id], { headers: bearer(shortLived) });
      const stream = await a.stream(issued.url);
      expect(stream.status).toBe(200);
      const events = await stream.collect((event) => event.event === 'credential-expired', 6_000);
      expect(events.at(-1)!.event).toBe('credential-expired');
      await stream.ended;
    });
  });
});
