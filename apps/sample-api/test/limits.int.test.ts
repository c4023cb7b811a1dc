/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return --
   response bodies are untyped JSON; the assertions are what check their shape */
// Issue 16 rows 2–4 on real PostgreSQL: every list is paged (limit with a maximum,
// an opaque keyset cursor), a widget's config has a size and depth cap, every write
// route has a body limit, and a widget's kind is taken only exactly as one of its kinds.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createDatabase, type Database } from '@flowforge/db';
import { WIDGET_CONFIG_MAX_BYTES, WIDGET_CONFIG_MAX_DEPTH } from '@flowforge/widgets';
import { buildApp, type App } from '../src/app.js';
import type { AppDB } from '../src/db/schema.js';
import { requestJson, type JsonAnswer } from './support/http.js';
import { createMigratedDatabase } from './support/postgres.js';

const USER = '6d1f3b9e-2a4c-4e8b-9f00-000000000001';

let testDb: Awaited<ReturnType<typeof createMigratedDatabase>>;
/** A pool of the app's login, for seeding rows the way no route can (many in one transaction). */
let seeder: Database<AppDB>;
const apps: App[] = [];

beforeAll(async () => {
  testDb = await createMigratedDatabase('limits');
  seeder = createDatabase<AppDB>({ url: testDb.appUrl, poolSize: 1 });
});

afterAll(async () => {
  await Promise.allSettled(apps.map((app) => app.close()));
  await seeder?.close();
  await testDb?.drop();
});

interface Client {
  readonly tenant: string;
  request(method: string, path: string, body?: unknown): Promise<JsonAnswer>;
  /** Sends `text` as the JSON body exactly as given (deep nesting, padding). */
  send(method: string, path: string, text: string): Promise<JsonAnswer>;
}

/** The app as the dev principal (viewer, editor, admin) of a tenant of its own sees it. */
async function client(): Promise<Client> {
  const tenant = randomUUID();
  const settings = loadSettings({
    APP_ENV: 'development',
    AUTH_DEV_TENANT_ID: tenant,
    AUTH_DEV_USER_ID: USER,
  });
  const app = await buildApp({
    settings,
    database: createDatabase<AppDB>({ url: testDb.appUrl, poolSize: 2 }),
  });
  apps.push(app);
  const base = await app.server.listen({ host: '127.0.0.1', port: 0 });
  return {
    tenant,
    request: (method, path, body) => requestJson(base, method, path, body),
    async send(method, path, text) {
      const response = await fetch(`${base}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: text,
      });
      const answer = await response.text();
      return {
        status: response.status,
        headers: response.headers,
        body: answer ? (JSON.parse(answer) as unknown) : null,
      };
    },
  };
}

/** `answer` is an RFC 9457 problem with `status`; its detail. */
function problem(answer: JsonAnswer, status: number): string {
  expect([answer.status, answer.headers.get('content-type')]).toEqual([
    status,
    expect.stringMatching(/^application\/problem\+json/),
  ]);
  expect(answer.body).toMatchObject({ status, request_id: expect.any(String) });
  return String(answer.body.detail ?? '');
}

/** Every page of `path` with `limit`, following next_cursor to the end. */
async function walk(app: Client, path: string, limit: number): Promise<JsonAnswer[]> {
  const pages: JsonAnswer[] = [];
  let cursor: string | null = null;
  do {
    const query: string = `limit=${limit}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
    const page = await app.request('GET', `${path}?${query}`);
    expect(page.status).toBe(200);
    expect(page.body.items.length).toBeLessThanOrEqual(limit);
    pages.push(page);
    cursor = page.body.next_cursor;
    expect(pages.length).toBeLessThan(100);
  } while (cursor !== null);
  return pages;
}

/** `count` dashboards of `tenant` created in one transaction: one `created_at` for all of them. */
async function seedDashboards(tenant: string, count: number): Promise<string[]> {
  const rows = await seeder.withTenant(tenant, (trx) =>
    trx
      .insertInto('dashboards')
      .values(
        Array.from({ length: count }, (_, i) => ({
          name: `d${i}`,
          description: null,
          created_by: USER,
        })),
      )
      .returning('id')
      .execute(),
  );
  return rows.map((row) => row.id);
}

/** `count` widgets on `dashboard` in one transaction (one `created_at`). */
async function seedWidgets(tenant: string, dashboard: string, count: number): Promise<string[]> {
  const rows = await seeder.withTenant(tenant, (trx) =>
    trx
      .insertInto('widgets')
      .values(
        Array.from({ length: count }, (_, i) => ({
          dashboard_id: dashboard,
          name: `w${i}`,
          kind: 'live' as const,
          config: '{}',
        })),
      )
      .returning('id')
      .execute(),
  );
  return rows.map((row) => row.id);
}

describe('list routes are paged', () => {
  it('GET /api/v1/dashboards walks every dashboard exactly once, newest first, including rows created in the same microsecond', async () => {
    const app = await client();
    const first = await seedDashboards(app.tenant, 5);
    const created = [];
    for (const name of ['a', 'b', 'c']) {
      const answer = await app.request('POST', '/api/v1/dashboards', { name });
      expect(answer.status).toBe(201);
      created.push(answer.body.id as string);
    }
    const pages = await walk(app, '/api/v1/dashboards', 3);
    expect(pages.map((page) => page.body.items.length)).toEqual([3, 3, 2]);
    const seen = pages.flatMap((page) => page.body.items.map((item: { id: string }) => item.id));
    expect(seen).toHaveLength(8);
    expect(new Set(seen)).toEqual(new Set([...first, ...created]));
    // Newest first: the three made through the API after the five seeded together.
    expect(seen.slice(0, 3)).toEqual([...created].reverse());
    expect(pages.at(-1)!.body.next_cursor).toBeNull();
  });

  it('GET /api/v1/dashboards/:id/widgets walks every widget exactly once, oldest first', async () => {
    const app = await client();
    const { body: dashboard } = await app.request('POST', '/api/v1/dashboards', { name: 'D' });
    const path = `/api/v1/dashboards/${dashboard.id}/widgets`;
    const tied = await seedWidgets(app.tenant, dashboard.id, 5);
    const later = await app.request('POST', path, { name: 'last', kind: 'live', config: {} });
    expect(later.status).toBe(201);
    for (const limit of [1, 2, 6, 100]) {
      const pages = await walk(app, path, limit);
      const seen = pages.flatMap((page) => page.body.items.map((item: { id: string }) => item.id));
      expect([limit, seen.length]).toEqual([limit, 6]);
      expect(new Set(seen.slice(0, 5))).toEqual(new Set(tied));
      expect(seen.at(-1)).toBe(later.body.id);
    }
    expect((await app.request('GET', `${path}?limit=6`)).body).toMatchObject({
      items: expect.any(Array),
      next_cursor: null,
    });
  });

  it('answers 50 items when no limit is given, and refuses a limit out of 1–100 with a 400 problem', async () => {
    const app = await client();
    await seedDashboards(app.tenant, 101);
    const page = await app.request('GET', '/api/v1/dashboards');
    expect(page.body.items).toHaveLength(50);
    expect(page.body.next_cursor).toEqual(expect.any(String));
    expect((await app.request('GET', '/api/v1/dashboards?limit=100')).body.items).toHaveLength(100);
    const { body: dashboard } = await app.request('POST', '/api/v1/dashboards', { name: 'D' });
    for (const path of ['/api/v1/dashboards', `/api/v1/dashboards/${dashboard.id}/widgets`]) {
      for (const limit of ['101', '500', '0', '-1', '1.5', 'ten']) {
        problem(await app.request('GET', `${path}?limit=${limit}`), 400);
      }
    }
  });

  it('refuses a cursor that was edited, made up, or given by another list with a 400 problem', async () => {
    const app = await client();
    await seedDashboards(app.tenant, 3);
    const { body: page } = await app.request('GET', '/api/v1/dashboards?limit=1');
    const cursor: string = page.next_cursor;
    expect(cursor).toEqual(expect.any(String));
    // The cursor works as given…
    expect((await app.request('GET', `/api/v1/dashboards?limit=1&cursor=${cursor}`)).status).toBe(
      200,
    );
    // …and not edited: each character changed in turn.
    const [payload = ''] = cursor.split('.');
    const edits = [0, 5, payload.length - 1, payload.length + 1, cursor.length - 1].map(
      (at) => `${cursor.slice(0, at)}${cursor[at] === 'A' ? 'B' : 'A'}${cursor.slice(at + 1)}`,
    );
    const forged = Buffer.from(`0.${randomUUID()}`).toString('base64url');
    for (const bad of [...edits, cursor.slice(0, -1), `${forged}.AAAAAAAAAAAAAAAA`, 'abc', '']) {
      const detail = problem(
        await app.request('GET', `/api/v1/dashboards?cursor=${encodeURIComponent(bad)}`),
        400,
      );
      expect(detail, bad).toMatch(/cursor/);
    }
    // A dashboards cursor is no widgets cursor, and one dashboard's widgets cursor is not another's.
    const dashboards: string[] = [];
    for (const name of ['one', 'two']) {
      const { body } = await app.request('POST', '/api/v1/dashboards', { name });
      await seedWidgets(app.tenant, body.id, 2);
      dashboards.push(body.id);
    }
    const [one, two] = dashboards;
    problem(await app.request('GET', `/api/v1/dashboards/${one}/widgets?cursor=${cursor}`), 400);
    const { body: widgets } = await app.request('GET', `/api/v1/dashboards/${one}/widgets?limit=1`);
    problem(
      await app.request('GET', `/api/v1/dashboards/${two}/widgets?cursor=${widgets.next_cursor}`),
      400,
    );
    const upper = await app.request(
      'GET',
      `/api/v1/dashboards/${one!.toUpperCase()}/widgets?cursor=${widgets.next_cursor}`,
    );
    expect(upper.status).toBe(200);
  });

  it('documents limit, cursor and next_cursor in the OpenAPI document', async () => {
    const app = await client();
    const { body: doc } = await app.request('GET', '/openapi.json');
    for (const path of ['/api/v1/dashboards', '/api/v1/dashboards/{id}/widgets']) {
      const operation = doc.paths[path].get;
      const query = operation.parameters.filter((p: { in: string }) => p.in === 'query');
      expect(query.map((p: { name: string }) => p.name).sort()).toEqual(['cursor', 'limit']);
      expect(query.find((p: { name: string }) => p.name === 'limit').schema).toMatchObject({
        type: 'integer',
        minimum: 1,
        maximum: 100,
        default: 50,
      });
      const answer = operation.responses['200'].content['application/json'].schema;
      expect(answer.required).toEqual(['items', 'next_cursor']);
      expect(answer.properties.next_cursor.type).toEqual(['string', 'null']);
    }
  });
});

describe("a widget's config is capped in size and depth", () => {
  async function dashboardPath(app: Client): Promise<string> {
    const { body } = await app.request('POST', '/api/v1/dashboards', { name: 'Caps' });
    return `/api/v1/dashboards/${body.id}/widgets`;
  }

  it(`takes a config of ${WIDGET_CONFIG_MAX_BYTES} bytes and refuses a larger one with a 400 naming the cap`, async () => {
    const app = await client();
    const path = await dashboardPath(app);
    // {"pad":"…"} is 10 bytes around the text.
    const fits = { pad: 'x'.repeat(WIDGET_CONFIG_MAX_BYTES - 10) };
    expect(
      (await app.request('POST', path, { name: 'fits', kind: 'live', config: fits })).status,
    ).toBe(201);
    const over = { pad: 'x'.repeat(20_000) };
    const detail = problem(
      await app.request('POST', path, { name: 'over', kind: 'live', config: over }),
      400,
    );
    expect(detail).toContain(String(WIDGET_CONFIG_MAX_BYTES));
    const names = (await app.request('GET', path)).body.items.map((w: { name: string }) => w.name);
    expect(names).toEqual(['fits']);
  });

  it('refuses a widget body past its route limit (the 1 MB configs of the issue too) with a 413 problem', async () => {
    const app = await client();
    const path = await dashboardPath(app);
    // Past the widget route's limit, within Fastify's and the server kit's defaults (1 MiB, 64 KiB).
    for (const size of [50_000, 1_000_000]) {
      const config = { pad: 'x'.repeat(size) };
      problem(await app.request('POST', path, { name: 'big', kind: 'live', config }), 413);
    }
    expect((await app.request('GET', path)).body.items).toEqual([]);
  });

  it('refuses a config nested 10,000 deep (a 20 KB body) with a 400 problem, not a 500', async () => {
    const app = await client();
    const path = await dashboardPath(app);
    const deep = `{"name":"deep","kind":"metric","config":{"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}}`;
    expect(deep.length).toBeLessThan(21_000);
    problem(await app.send('POST', path, deep), 400);
    // One level past the cap is refused the same way; the cap itself is taken.
    const nest = (levels: number) =>
      `{"name":"n","kind":"live","config":${'{"a":'.repeat(levels - 1)}{}${'}'.repeat(levels - 1)}}`;
    const detail = problem(await app.send('POST', path, nest(WIDGET_CONFIG_MAX_DEPTH + 1)), 400);
    expect(detail).toContain(String(WIDGET_CONFIG_MAX_DEPTH));
    expect((await app.send('POST', path, nest(WIDGET_CONFIG_MAX_DEPTH))).status).toBe(201);
    // The app is fine afterwards.
    expect((await app.request('GET', path)).body.items).toHaveLength(1);
  });
});

describe("a widget's kind is taken only exactly", () => {
  it('refuses "kind": ["metric"] with a 400 problem, with a bad or a good config, and stores nothing', async () => {
    const app = await client();
    const { body } = await app.request('POST', '/api/v1/dashboards', { name: 'Kinds' });
    const path = `/api/v1/dashboards/${body.id}/widgets`;
    for (const config of [{ metric: "x' OR 1=1 --" }, { metric: 'orders' }]) {
      problem(await app.request('POST', path, { name: 'w', kind: ['metric'], config }), 400);
    }
    for (const kind of [['live'], 'Metric', null, 1]) {
      problem(await app.request('POST', path, { name: 'w', kind, config: {} }), 400);
    }
    // The rules of the kind apply to a kind given as it should be.
    problem(
      await app.request('POST', path, {
        name: 'w',
        kind: 'metric',
        config: { metric: "x' OR 1=1 --" },
      }),
      400,
    );
    expect((await app.request('GET', path)).body.items).toEqual([]);
  });
});

describe('write routes have body limits', () => {
  // Valid JSON made big by whitespace: only the size is wrong with it.
  const padded = (json: string, bytes: number) => `${json.slice(0, -1)}${' '.repeat(bytes)}}`;

  it('refuses a dashboard body over 16 KiB with a 413 problem, and takes one under it', async () => {
    const app = await client();
    problem(await app.send('POST', '/api/v1/dashboards', padded('{"name":"big"}', 20_000)), 413);
    expect(
      (await app.send('POST', '/api/v1/dashboards', padded('{"name":"ok"}', 10_000))).status,
    ).toBe(201);
    const { body } = await app.request('POST', '/api/v1/dashboards', { name: 'P' });
    problem(
      await app.send('PATCH', `/api/v1/dashboards/${body.id}`, padded('{"name":"big"}', 20_000)),
      413,
    );
    problem(await app.send('DELETE', `/api/v1/dashboards/${body.id}`, padded('{}', 4_000)), 413);
    const names = (await app.request('GET', '/api/v1/dashboards')).body.items.map(
      (d: { name: string }) => d.name,
    );
    expect(names.sort()).toEqual(['P', 'ok']);
  });

  it('refuses an API key body over 8 KiB with a 413 problem', async () => {
    const app = await client();
    problem(
      await app.send('POST', '/api/v1/api-keys', padded('{"name":"k","widget_ids":[]}', 10_000)),
      413,
    );
    expect(
      (await app.send('POST', '/api/v1/api-keys', padded('{"name":"k","widget_ids":[]}', 4_000)))
        .status,
    ).toBe(201);
  });
});
