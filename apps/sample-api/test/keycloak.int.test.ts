/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access --
   response bodies are untyped JSON; the assertions are what check their shape */
// The sample app with tokens issued by the real Keycloak of `scripts/services`
// (realm scripts/keycloak/realm-flowforge.json), fetched from its token endpoint as a
// client would: the app in production (no dev bypass), composed from settings whose
// KEYCLOAK_URL / KEYCLOAK_REALM / KEYCLOAK_CLIENT_ID point at it, on real PostgreSQL.
// The wider journey (ClickHouse, Redis, Materialize, API keys on the embed route) runs
// with the oidc-provider stand-in in journey.int.test.ts; this one is about the tokens.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createDatabase } from '@flowforge/db';
import { buildApp, type App } from '../src/app.js';
import type { AppDB } from '../src/db/schema.js';
import { requestJson, type JsonAnswer } from './support/http.js';
import { createMigratedDatabase } from './support/postgres.js';
import {
  API_CLIENT,
  clientCredentialsGrant,
  KEYCLOAK_REALM,
  KEYCLOAK_URL,
  OTHER_CLIENT,
  passwordGrant,
  SERVICE_ACCOUNT,
  TENANT_A,
  TENANT_B,
  USERS,
  waitForKeycloak,
} from '../../../packages/auth/test/support/real-keycloak.js';

let testDb: Awaited<ReturnType<typeof createMigratedDatabase>>;
let app: App;
let base: string;

function call(method: string, path: string, token?: string, body?: unknown): Promise<JsonAnswer> {
  return requestJson(base, method, path, body, token ? { authorization: `Bearer ${token}` } : {});
}

/** A 4xx as DESIGN.md says every error is: problem+json naming the request id. */
function expectProblem(answer: JsonAnswer, status: number): void {
  expect(answer.status).toBe(status);
  expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(answer.body).toMatchObject({ status, request_id: answer.headers.get('x-request-id') });
}

beforeAll(async () => {
  await waitForKeycloak();
  testDb = await createMigratedDatabase('app_keycloak');
  const settings = loadSettings({
    APP_ENV: 'production',
    SECRET_KEY: randomBytes(32).toString('hex'),
    METRICS_TOKEN: randomBytes(16).toString('hex'),
    DATABASE_URL: testDb.appUrl,
    KEYCLOAK_URL,
    KEYCLOAK_REALM,
    KEYCLOAK_CLIENT_ID: API_CLIENT.clientId,
  });
  app = await buildApp({
    settings,
    database: createDatabase<AppDB>({ url: testDb.appUrl, poolSize: 2 }),
  });
  base = await app.server.listen({ host: '127.0.0.1', port: 0 });
}, 60_000);

afterAll(async () => {
  await app?.close();
  await testDb?.drop();
});

describe('the sample app with tokens from the real Keycloak', () => {
  it('alice writes and reads back, her tenant sees it, bob (another tenant, viewer) neither sees nor writes, /me shows each principal', async () => {
    const access = async (grant: Promise<{ access_token: string }>) => (await grant).access_token;
    const [alice, bob, carol, service, nobody, aliceViaOther] = await Promise.all([
      access(passwordGrant(USERS.alice)),
      access(passwordGrant(USERS.bob)),
      access(passwordGrant(USERS.carol)),
      access(clientCredentialsGrant()),
      access(passwordGrant(USERS.nobody)),
      access(passwordGrant(USERS.alice, { client: OTHER_CLIENT })),
    ]);

    // 1. /api/v1/me: the principal the token carries, roles from realm_access and resource_access.
    const me = await call('GET', '/api/v1/me', alice);
    expect(me.status).toBe(200);
    expect(me.body).toEqual({
      user_id: USERS.alice.id,
      tenant_id: TENANT_A,
      roles: expect.arrayContaining(['viewer', 'editor', 'widgets:write']),
      auth_method: 'jwt',
    });
    const bobMe = await call('GET', '/api/v1/me', bob);
    expect(bobMe.body).toMatchObject({ user_id: USERS.bob.id, tenant_id: TENANT_B });
    expect(bobMe.body.roles).toContain('viewer');
    expect(bobMe.body.roles).not.toContain('editor');
    // The service account is a reader too (editor, no viewer role).
    expect((await call('GET', '/api/v1/me', service)).body).toMatchObject({
      user_id: SERVICE_ACCOUNT.id,
      tenant_id: SERVICE_ACCOUNT.tenantId,
      auth_method: 'jwt',
    });

    // 2. alice (editor) creates a dashboard and a widget, and reads them back.
    const created = await call('POST', '/api/v1/dashboards', alice, {
      name: 'Revenue',
      description: 'made with a Keycloak token',
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'Revenue',
      description: 'made with a Keycloak token',
      created_by: USERS.alice.id,
    });
    const dashboard = created.body;
    const path = `/api/v1/dashboards/${dashboard.id}`;
    expect((await call('GET', path, alice)).body).toEqual(dashboard);
    const widget = await call('POST', `${path}/widgets`, alice, {
      name: 'Revenue per day',
      kind: 'metric',
      config: { metric: 'revenue', days: 7 },
    });
    expect(widget.status).toBe(201);

    // 3. Her tenant: carol (admin) and the service account see it; carol's admin role
    //    lets her create an API key for the widget.
    for (const reader of [carol, service]) {
      const listed = await call('GET', '/api/v1/dashboards', reader);
      expect(listed.status).toBe(200);
      expect(listed.body.items).toEqual([dashboard]);
    }
    const key = await call('POST', '/api/v1/api-keys', carol, {
      name: 'wallboard',
      widget_ids: [widget.body.id],
    });
    expect(key.status).toBe(201);
    expectProblem(
      await call('POST', '/api/v1/api-keys', alice, { name: 'k', widget_ids: [widget.body.id] }),
      403,
    );

    // 4. bob, tenant B: alice's dashboard does not exist for him (404, never 403), his list
    //    is empty, and as a viewer he cannot write at all (403 insufficient_scope).
    expectProblem(await call('GET', path, bob), 404);
    expectProblem(await call('GET', `${path}/widgets`, bob), 404);
    expect((await call('GET', '/api/v1/dashboards', bob)).body).toEqual({
      items: [],
      next_cursor: null,
    });
    for (const [method, target, body] of [
      ['POST', '/api/v1/dashboards', { name: 'mine' }],
      ['PATCH', path, { name: 'taken over' }],
      ['DELETE', path, undefined],
    ] as const) {
      const refused = await call(method, target, bob, body);
      expectProblem(refused, 403);
      expect(refused.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    }

    // 5. Tokens the app must refuse: nobody (no tenant_id), alice through other-client (no
    //    flowforge-api audience), none at all.
    for (const token of [nobody, aliceViaOther]) {
      const refused = await call('GET', '/api/v1/me', token);
      expectProblem(refused, 401);
      expect(refused.headers.get('www-authenticate')).toMatch(
        /^Bearer realm="flowforge", error="invalid_token"/,
      );
    }
    expectProblem(await call('GET', '/api/v1/me'), 401);

    // Nothing bob tried changed alice's dashboard.
    expect((await call('GET', path, alice)).body).toEqual(dashboard);
  });
});
