/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument --
   response bodies are untyped JSON; the assertions are what check their shape */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createDatabase, tenantIsolationProblems, type Database } from '@flowforge/db';
import { buildApp, type App } from '../src/app.js';
import type { AppDB } from '../src/db/schema.js';
import { requestJson, type JsonAnswer } from './support/http.js';
import { admin, createMigratedDatabase } from './support/postgres.js';

const TENANT_A = '6d1f3b9e-2a4c-4e8b-9f00-00000000000a';
const TENANT_B = '6d1f3b9e-2a4c-4e8b-9f00-00000000000b';
const USER = '6d1f3b9e-2a4c-4e8b-9f00-000000000001';

let testDb: Awaited<ReturnType<typeof createMigratedDatabase>>;

interface Client {
  readonly app: App;
  readonly base: string;
  request(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<JsonAnswer>;
}

/** The app as one tenant's dev principal sees it, over a real socket, on its own pool. */
async function appFor(tenant: string, database: Database<AppDB> | null): Promise<Client> {
  const settings = loadSettings({
    APP_ENV: 'development',
    AUTH_DEV_TENANT_ID: tenant,
    AUTH_DEV_USER_ID: USER,
  });
  const app = await buildApp({ settings, database });
  const base = await app.server.listen({ host: '127.0.0.1', port: 0 });
  return {
    app,
    base,
    request: (method, path, body, headers) => requestJson(base, method, path, body, headers),
  };
}

const open = (): Database<AppDB> => createDatabase<AppDB>({ url: testDb.appUrl, poolSize: 2 });

let a: Client;
let b: Client;

beforeAll(async () => {
  testDb = await createMigratedDatabase('app');
  a = await appFor(TENANT_A, open());
  b = await appFor(TENANT_B, open());
});

afterAll(async () => {
  await a?.app.close();
  await b?.app.close();
  await testDb?.drop();
});

describe('the schema', () => {
  it('dashboards and widgets pass the tenant isolation walk', async () => {
    const owner = createDatabase<unknown>({ url: testDb.ownerUrl, poolSize: 1 });
    try {
      expect(await tenantIsolationProblems(owner.db)).toEqual([]);
    } finally {
      await owner.close();
    }
  });
});

describe('dashboards and widgets, per tenant', () => {
  it('create, read, list, update and delete a dashboard', async () => {
    const created = await a.request('POST', '/api/v1/dashboards', {
      name: 'Sales',
      description: 'Q4',
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: 'Sales',
      description: 'Q4',
      created_by: USER,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    expect(created.headers.get('location')).toBe(`/api/v1/dashboards/${created.body.id}`);
    const id: string = created.body.id;

    expect((await a.request('GET', `/api/v1/dashboards/${id}`)).body).toEqual(created.body);
    const listed = await a.request('GET', '/api/v1/dashboards');
    expect(listed.body.items.map((item: { id: string }) => item.id)).toContain(id);

    const patched = await a.request('PATCH', `/api/v1/dashboards/${id}`, { description: null });
    expect(patched.status).toBe(200);
    expect(patched.body).not.toHaveProperty('description');
    expect(patched.body.name).toBe('Sales');
    expect(Date.parse(patched.body.updated_at)).toBeGreaterThanOrEqual(
      Date.parse(created.body.updated_at),
    );

    const widget = await a.request('POST', `/api/v1/dashboards/${id}/widgets`, {
      name: 'Revenue',
      kind: 'metric',
      config: { query: 'revenue_by_day' },
    });
    expect(widget.status).toBe(201);
    expect(widget.body).toMatchObject({
      dashboard_id: id,
      name: 'Revenue',
      kind: 'metric',
      config: { query: 'revenue_by_day' },
    });
    const widgets = await a.request('GET', `/api/v1/dashboards/${id}/widgets`);
    // DESIGN.md's `{ items }`, with the cursor of the next page (none: this is the only one).
    expect(widgets.body).toEqual({ items: [widget.body], next_cursor: null });

    expect((await a.request('DELETE', `/api/v1/dashboards/${id}`)).status).toBe(204);
    expect((await a.request('GET', `/api/v1/dashboards/${id}`)).status).toBe(404);
    // The widgets went with it (the foreign key cascades within the tenant).
    expect((await a.request('GET', `/api/v1/dashboards/${id}/widgets`)).status).toBe(404);
  });

  it("tenant B gets 404 for every route on A's dashboard, exactly as for an id that does not exist", async () => {
    const { body: dashboard } = await a.request('POST', '/api/v1/dashboards', { name: 'Private' });
    const id: string = dashboard.id;
    await a.request('POST', `/api/v1/dashboards/${id}/widgets`, { name: 'w', kind: 'live' });
    const missing = randomUUID();
    const attempts: [string, string, unknown?][] = [
      ['GET', `/api/v1/dashboards/{id}`],
      ['PATCH', `/api/v1/dashboards/{id}`, { name: 'taken over' }],
      ['DELETE', `/api/v1/dashboards/{id}`],
      ['GET', `/api/v1/dashboards/{id}/widgets`],
      ['POST', `/api/v1/dashboards/{id}/widgets`, { name: 'planted', kind: 'metric' }],
    ];
    for (const [method, path, body] of attempts) {
      const foreign = await b.request(method, path.replace('{id}', id), body);
      const absent = await b.request(method, path.replace('{id}', missing), body);
      expect([method, path, foreign.status]).toEqual([method, path, 404]);
      expect(absent.status).toBe(404);
      // Same answer, apart from the request id: nothing tells B that the id exists.
      const strip = (problem: Record<string, unknown>) => ({
        ...problem,
        instance: '',
        request_id: '',
      });
      expect(strip(foreign.body)).toEqual(strip(absent.body));
    }
    expect((await b.request('GET', '/api/v1/dashboards')).body.items).not.toContainEqual(
      expect.objectContaining({ id }),
    );
    // A's data is untouched.
    expect((await a.request('GET', `/api/v1/dashboards/${id}`)).body.name).toBe('Private');
    const widgets = await a.request('GET', `/api/v1/dashboards/${id}/widgets`);
    expect(widgets.body.items.map((w: { name: string }) => w.name)).toEqual(['w']);
  });

  it('refuses a tenant_id in the body (400) and never stores it', async () => {
    const response = await a.request('POST', '/api/v1/dashboards', {
      name: 'Sneaky',
      tenant_id: TENANT_B,
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    const patched = await a.request('PATCH', `/api/v1/dashboards/${randomUUID()}`, {
      tenant_id: TENANT_B,
    });
    expect(patched.status).toBe(400);
    const names = (await b.request('GET', '/api/v1/dashboards')).body.items.map(
      (d: { name: string }) => d.name,
    );
    expect(names).not.toContain('Sneaky');
  });

  it('answers 400 for a malformed id or body, and 401 for a token it cannot verify', async () => {
    expect((await a.request('GET', '/api/v1/dashboards/not-a-uuid')).status).toBe(400);
    expect((await a.request('POST', '/api/v1/dashboards', { name: '' })).status).toBe(400);
    expect((await a.request('POST', '/api/v1/dashboards', { name: 'x'.repeat(201) })).status).toBe(
      400,
    );
    expect((await a.request('GET', '/api/v1/dashboards?limit=0')).status).toBe(400);
    expect((await a.request('GET', '/api/v1/dashboards?limit=101')).status).toBe(400);
    const { body: dashboard } = await a.request('POST', '/api/v1/dashboards', { name: 'Kinds' });
    const badKind = await a.request('POST', `/api/v1/dashboards/${dashboard.id}/widgets`, {
      name: 'w',
      kind: 'pie',
    });
    expect(badKind.status).toBe(400);
    const unauthorized = await a.request('GET', '/api/v1/dashboards', undefined, {
      authorization: 'Bearer forged',
    });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get('www-authenticate')).toMatch(
      /^Bearer realm="flowforge", error="invalid_token", error_description="[^"]+"$/,
    );
  });
});

describe('when PostgreSQL is not there', () => {
  it('answers 503 quickly (not a hang, not a 500) while it is unreachable, with readiness down', async () => {
    // Port 1 on loopback refuses connections at once.
    const down = await appFor(
      TENANT_A,
      createDatabase<AppDB>({
        url: `postgres://flowforge@127.0.0.1:1/${testDb.name}`,
        connectTimeoutMs: 1_000,
      }),
    );
    try {
      const started = performance.now();
      const response = await down.request('GET', '/api/v1/dashboards');
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('1');
      expect(response.body).toMatchObject({ title: 'Service Unavailable', status: 503 });
      expect(performance.now() - started).toBeLessThan(2_000);
      const ready = await down.request('GET', '/health/ready');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.postgres.status).toBe('down');
    } finally {
      await down.app.close();
    }
  });

  it('answers 503 naming DATABASE_URL when no database is configured', async () => {
    const settings = loadSettings({ APP_ENV: 'test' });
    const app = await buildApp({ settings, database: null });
    try {
      // Outside development there is no dev principal: authentication answers first.
      const response = await app.server.inject({ method: 'GET', url: '/api/v1/dashboards' });
      expect(response.statusCode).toBe(401);
      // Before the body is validated: an anonymous caller learns nothing about the schema.
      const invalid = await app.server.inject({
        method: 'POST',
        url: '/api/v1/dashboards',
        payload: {},
      });
      expect(invalid.statusCode).toBe(401);
    } finally {
      await app.close();
    }
    const unconfigured = await appFor(TENANT_A, null);
    try {
      const response = await unconfigured.request('GET', '/api/v1/dashboards');
      expect(response.status).toBe(503);
      expect(response.body.detail).toContain('DATABASE_URL');
    } finally {
      await unconfigured.app.close();
    }
  });

  it('recovers without a restart when its connections were killed while idle', async () => {
    const before = await a.request('GET', '/api/v1/dashboards');
    expect(before.status).toBe(200);
    await admin(
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${testDb.name}' and usename = 'flowforge'`,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const after = await a.request('GET', '/api/v1/dashboards');
    expect(after.status).toBe(200);
  });
});
