/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call --
   response bodies are untyped JSON; the assertions are what check their shape */
import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { createDatabase } from '@flowforge/db';
import { buildApp, type App } from '../src/app.js';
import type { AppDB } from '../src/db/schema.js';
import { requestJson, type JsonAnswer } from './support/http.js';
import { createMigratedDatabase } from './support/postgres.js';
// The Keycloak-shaped OpenID provider (npm oidc-provider) of @flowforge/auth's tests.
import {
  startKeycloak,
  type KeycloakFixture,
} from '../../../packages/auth/test/support/keycloak.js';

const CLIENT = 'flowforge-api';
const TENANT_A = randomUUID();
const TENANT_B = randomUUID();

let testDb: Awaited<ReturnType<typeof createMigratedDatabase>>;

let keycloak: KeycloakFixture;
let app: App;
let base: string;

function call(
  method: string,
  path: string,
  options: { token?: string; apiKey?: string; body?: unknown } = {},
): Promise<JsonAnswer> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.apiKey) headers['x-api-key'] = options.apiKey;
  return requestJson(base, method, path, options.body, headers);
}

const token = (tenantId: string, roles: string[]): Promise<string> =>
  keycloak.issueToken({ tenantId, realmRoles: roles });

beforeAll(async () => {
  keycloak = await startKeycloak({ clientId: CLIENT });
  testDb = await createMigratedDatabase('app_auth');
  // Production: no dev bypass; every /api/v1 request needs a verified token.
  const settings = loadSettings({
    APP_ENV: 'production',
    SECRET_KEY: randomBytes(32).toString('hex'),
    METRICS_TOKEN: randomBytes(16).toString('hex'),
    DATABASE_URL: testDb.appUrl,
    KEYCLOAK_URL: keycloak.url,
    KEYCLOAK_REALM: keycloak.realm,
    KEYCLOAK_CLIENT_ID: CLIENT,
  });
  app = await buildApp({
    settings,
    database: createDatabase<AppDB>({ url: testDb.appUrl, poolSize: 2 }),
  });
  base = await app.server.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  await keycloak?.close();
  await testDb?.drop();
});

describe('in production, every /api/v1 route needs a verified token', () => {
  it('no token and "dev-token" are 401 with a Bearer challenge', async () => {
    const none = await call('GET', '/api/v1/me');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="flowforge"');
    expect(none.headers.get('content-type')).toContain('application/problem+json');
    const dev = await call('GET', '/api/v1/me', { token: 'dev-token' });
    expect(dev.status).toBe(401);
    expect(dev.headers.get('www-authenticate')).toContain('error="invalid_token"');
    // Before the body is validated: nothing about the schema is revealed.
    expect((await call('POST', '/api/v1/dashboards', { body: {} })).status).toBe(401);
  });

  it('two Authorization headers on the wire are 400 invalid_request', async () => {
    const valid = await token(TENANT_A, ['viewer']);
    const answer = await new Promise<{ status: number; challenge: string | undefined }>(
      (resolve, reject) => {
        const request = httpRequest(
          `${base}/api/v1/me`,
          // Node's raw form: two header lines with the same name. A raw list carries no
          // Host of its own, and without one Node answers 400 before any hook runs.
          {
            headers: [
              'host',
              new URL(base).host,
              'authorization',
              `Bearer ${valid}`,
              'authorization',
              'Bearer dev-token',
            ],
          },
          (response) => {
            response.resume();
            resolve({
              status: response.statusCode ?? 0,
              challenge: response.headers['www-authenticate'],
            });
          },
        );
        request.on('error', reject);
        request.end();
      },
    );
    expect(answer.status).toBe(400);
    // The auth hook's answer, not Node's parser's: it challenges with invalid_request.
    expect(answer.challenge).toMatch(/error="invalid_request"/);
  });

  it('GET /api/v1/me answers the principal of the token', async () => {
    const me = await call('GET', '/api/v1/me', { token: await token(TENANT_A, ['viewer']) });
    expect(me.status).toBe(200);
    expect(me.body).toEqual({
      user_id: expect.any(String),
      tenant_id: TENANT_A,
      roles: ['viewer'],
      auth_method: 'jwt',
    });
  });

  it('roles: viewer reads, editor writes, only admin manages API keys (403 insufficient_scope)', async () => {
    const viewer = await token(TENANT_A, ['viewer']);
    const editor = await token(TENANT_A, ['editor']);
    expect((await call('GET', '/api/v1/dashboards', { token: viewer })).status).toBe(200);
    const refused = await call('POST', '/api/v1/dashboards', {
      token: viewer,
      body: { name: 'x' },
    });
    expect(refused.status).toBe(403);
    expect(refused.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    expect(
      (await call('POST', '/api/v1/dashboards', { token: editor, body: { name: 'ok' } })).status,
    ).toBe(201);
    const keyByEditor = await call('POST', '/api/v1/api-keys', {
      token: editor,
      body: { name: 'k', widget_ids: [] },
    });
    expect(keyByEditor.status).toBe(403);
    expect((await call('GET', '/api/v1/me', { token: await token(TENANT_A, []) })).status).toBe(
      403,
    );
  });

  it("the tenant comes from the token: B never sees A's dashboards", async () => {
    const a = await token(TENANT_A, ['editor']);
    const b = await token(TENANT_B, ['editor']);
    const created = await call('POST', '/api/v1/dashboards', {
      token: a,
      body: { name: 'A only' },
    });
    expect((await call('GET', `/api/v1/dashboards/${created.body.id}`, { token: b })).status).toBe(
      404,
    );
    const listed = await call('GET', '/api/v1/dashboards', { token: b });
    expect(listed.body.items.map((d: { id: string }) => d.id)).not.toContain(created.body.id);
  });
});

describe('API keys and the embed route', () => {
  it('an admin creates a key (plaintext once), it reads only its widgets, and revoking ends it', async () => {
    const adminToken = await token(TENANT_A, ['admin']);
    const { body: dashboard } = await call('POST', '/api/v1/dashboards', {
      token: adminToken,
      body: { name: 'Embed' },
    });
    const inScope = await call('POST', `/api/v1/dashboards/${dashboard.id}/widgets`, {
      token: adminToken,
      body: { name: 'in', kind: 'metric', config: { metric: 'orders' } },
    });
    const outOfScope = await call('POST', `/api/v1/dashboards/${dashboard.id}/widgets`, {
      token: adminToken,
      body: { name: 'out', kind: 'metric', config: { metric: 'orders' } },
    });
    const created = await call('POST', '/api/v1/api-keys', {
      token: adminToken,
      body: { name: 'site', widget_ids: [inScope.body.id] },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('cache-control')).toBe('no-store');
    expect(created.body).toEqual({
      id: expect.any(String),
      key: expect.stringMatching(/^ffk_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$/),
      prefix: expect.stringMatching(/^ffk_/),
      widget_ids: [inScope.body.id],
      expires_at: null,
    });
    const key: string = created.body.key;

    // In scope: authorized (this app has no ClickHouse configured: 503 naming it, not 401/403).
    const data = await call('GET', `/embed/v1/widgets/${inScope.body.id}/data`, { apiKey: key });
    expect(data.status).toBe(503);
    expect(data.body.detail).toContain('CLICKHOUSE_URL');
    const other = await call('GET', `/embed/v1/widgets/${outOfScope.body.id}/data`, {
      apiKey: key,
    });
    expect(other.status).toBe(403);
    expect(other.headers.get('www-authenticate')).toContain('insufficient_scope');
    // Wrong, missing and tampered keys.
    expect((await call('GET', `/embed/v1/widgets/${inScope.body.id}/data`)).status).toBe(401);
    const wrong = `${key.slice(0, -5)}AAAAA`;
    expect(
      (await call('GET', `/embed/v1/widgets/${inScope.body.id}/data`, { apiKey: wrong })).status,
    ).toBe(401);
    // A JWT does not open the embed route, and a key does not open /api/v1.
    const byToken = await call('GET', `/embed/v1/widgets/${inScope.body.id}/data`, {
      token: adminToken,
    });
    expect(byToken.status).toBe(401);
    expect(byToken.headers.get('www-authenticate')).toBe('ApiKey realm="flowforge"');
    expect((await call('GET', '/api/v1/me', { apiKey: key })).status).toBe(401);
    // Refusals are counted by reason, for bearer tokens and API keys alike.
    const metricsText = await app.metrics.render();
    expect(metricsText).toMatch(/flowforge_auth_failures_total\{reason="api_key_invalid"\} [1-9]/);
    expect(metricsText).toMatch(/flowforge_auth_failures_total\{reason="missing"\} [1-9]/);

    expect(
      (await call('DELETE', `/api/v1/api-keys/${created.body.id}`, { token: adminToken })).status,
    ).toBe(204);
    expect(
      (await call('DELETE', `/api/v1/api-keys/${created.body.id}`, { token: adminToken })).status,
    ).toBe(404);
    expect(
      (await call('GET', `/embed/v1/widgets/${inScope.body.id}/data`, { apiKey: key })).status,
    ).toBe(401);
  });

  it("a key cannot be scoped to another tenant's widget, nor revoked by another tenant", async () => {
    const a = await token(TENANT_A, ['admin']);
    const b = await token(TENANT_B, ['admin']);
    const { body: dashboard } = await call('POST', '/api/v1/dashboards', {
      token: a,
      body: { name: 'A' },
    });
    const { body: widget } = await call('POST', `/api/v1/dashboards/${dashboard.id}/widgets`, {
      token: a,
      body: { name: 'w', kind: 'metric', config: { metric: 'orders' } },
    });
    const foreign = await call('POST', '/api/v1/api-keys', {
      token: b,
      body: { name: 'k', widget_ids: [widget.id] },
    });
    expect(foreign.status).toBe(400);
    const own = await call('POST', '/api/v1/api-keys', {
      token: a,
      body: { name: 'k', widget_ids: [widget.id] },
    });
    expect((await call('DELETE', `/api/v1/api-keys/${own.body.id}`, { token: b })).status).toBe(
      404,
    );
    expect(
      (await call('GET', `/embed/v1/widgets/${widget.id}/data`, { apiKey: own.body.key })).status,
    ).toBe(503);
  });
});
