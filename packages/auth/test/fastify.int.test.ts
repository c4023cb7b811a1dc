import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpObservability, createLogger, createMetrics } from '@flowforge/observability';
import { fastifyObservability, genReqId } from '@flowforge/observability/fastify';
import {
  AuthError,
  assertWidgetScope,
  createAuth,
  getCurrentTenantId,
  getCurrentUserId,
  isAuthError,
  type Principal,
} from '../src/index.js';
import { apiKey, bearer, fastifyAuth, requireRole } from '../src/fastify.js';
import { startKeycloak, type KeycloakFixture } from './support/keycloak.js';

const CLIENT = 'flowforge-api';
const lines: Record<string, unknown>[] = [];
const stream = {
  write: (chunk: string) => {
    for (const line of chunk.split('\n').filter(Boolean))
      lines.push(JSON.parse(line) as Record<string, unknown>);
  },
};

let keycloak: KeycloakFixture;
let app: FastifyInstance;

/** A key store for the hook's own behaviour (real API keys: test/api-keys.int.test.ts and the sample app). */
const KEY_PRINCIPAL: Principal = {
  userId: randomUUID(),
  tenantId: randomUUID(),
  roles: [],
  claims: {},
  method: 'api_key',
  widgetIds: ['6d1f3b9e-2a4c-4e8b-9f00-0000000000aa'],
  apiKeyId: randomUUID(),
};
const keys = {
  verify: (key: unknown) =>
    key === 'good-key'
      ? Promise.resolve(KEY_PRINCIPAL)
      : Promise.reject(new AuthError('API_KEY_INVALID', 'the API key is not valid')),
};

beforeAll(async () => {
  keycloak = await startKeycloak({ clientId: CLIENT });
  const logger = createLogger({ destination: stream, level: 'info' });
  const metrics = createMetrics({ defaultMetrics: false });
  const auth = createAuth(
    {
      appEnv: 'production',
      keycloak: { issuer: keycloak.issuer, jwksUrl: keycloak.jwksUrl, clientId: CLIENT },
    },
    { logger, metrics },
  );
  app = Fastify({ genReqId });
  await app.register(fastifyObservability, { http: createHttpObservability({ logger, metrics }) });
  await app.register(fastifyAuth);
  app.setErrorHandler((error, _request, reply) => {
    if (isAuthError(error)) {
      const challenge = error.challenge('test');
      if (challenge) void reply.header('www-authenticate', challenge);
      return reply.code(error.status).send({ code: error.code });
    }
    return reply.code(500).send({ code: 'BUG' });
  });
  app.get('/anonymous', (request) => ({ principal: request.principal }));
  app.get('/whoami', { onRequest: [bearer(auth), requireRole('viewer')] }, async (request) => {
    await new Promise((resolve) => setTimeout(resolve, 5)); // across an await
    logger.info('handler ran');
    return {
      tenant: getCurrentTenantId(),
      user: getCurrentUserId(),
      method: request.principal?.method,
    };
  });
  app.get<{ Params: { id: string } }>('/embed/:id', { onRequest: apiKey(keys) }, (request) => {
    assertWidgetScope(request.principal!, request.params.id);
    return { ok: true };
  });
  app.get('/unauthenticated-role-check', { onRequest: requireRole('viewer') }, () => ({}));
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await keycloak?.close();
});

describe('the Fastify hooks', () => {
  it('bind the principal to the request: getCurrent…() and every later log line carry it', async () => {
    const tenantId = randomUUID();
    const sub = randomUUID();
    const token = await keycloak.issueToken({ tenantId, sub, realmRoles: ['viewer'] });
    const response = await app.inject({
      url: '/whoami',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ tenant: tenantId, user: sub, method: 'jwt' });
    const handlerLine = lines.find(
      (line) => line.msg === 'handler ran' && line.tenant_id === tenantId,
    );
    expect(handlerLine).toMatchObject({ tenant_id: tenantId, user_id: sub });
    const accessLine = lines.find(
      (line) => line.msg === 'request completed' && line.route === '/whoami',
    );
    expect(accessLine).toMatchObject({ tenant_id: tenantId, user_id: sub });
    expect(JSON.stringify(lines)).not.toContain(token);
  });

  it('answer 401 with a challenge, 403 insufficient_scope, and never run the handler', async () => {
    const none = await app.inject({ url: '/whoami' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="test"');
    const noRole = await keycloak.issueToken({ realmRoles: ['other'] });
    const forbidden = await app.inject({
      url: '/whoami',
      headers: { authorization: `Bearer ${noRole}` },
    });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.headers['www-authenticate']).toContain('error="insufficient_scope"');
    // requireRole without an authentication hook is a programming error (500), not an open door.
    expect((await app.inject({ url: '/unauthenticated-role-check' })).statusCode).toBe(500);
    expect((await app.inject({ url: '/anonymous' })).json()).toEqual({ principal: null });
  });

  it('API keys: the header, one header only, scoped widgets', async () => {
    const widget = KEY_PRINCIPAL.widgetIds![0]!;
    expect(
      (await app.inject({ url: `/embed/${widget}`, headers: { 'x-api-key': 'good-key' } }))
        .statusCode,
    ).toBe(200);
    const outside = await app.inject({
      url: `/embed/${randomUUID()}`,
      headers: { 'x-api-key': 'good-key' },
    });
    expect(outside.statusCode).toBe(403);
    expect(
      (await app.inject({ url: `/embed/${widget}`, headers: { 'x-api-key': 'bad' } })).statusCode,
    ).toBe(401);
    expect((await app.inject({ url: `/embed/${widget}` })).statusCode).toBe(401);
    const twice = await app.inject({
      url: `/embed/${widget}`,
      headers: { 'x-api-key': ['good-key', 'good-key'] },
    });
    expect(twice.statusCode).toBe(400);
  });

  it('two Authorization headers are 400 invalid_request (Node itself would keep only the first)', async () => {
    const token = await keycloak.issueToken({ realmRoles: ['viewer'] });
    const twice = await app.inject({
      url: '/whoami',
      // light-my-request sends each element as its own header line; its types say string.
      headers: { authorization: [`Bearer ${token}`, 'Bearer dev-token'] } as unknown as Record<
        string,
        string
      >,
    });
    expect(twice.statusCode).toBe(400);
    expect(twice.headers['www-authenticate']).toContain('error="invalid_request"');
  });

  it('outside a request there is no principal: NO_PRINCIPAL, never a default tenant', () => {
    expect(() => getCurrentTenantId()).toThrowError(
      expect.objectContaining({ code: 'NO_PRINCIPAL' }),
    );
  });
});
