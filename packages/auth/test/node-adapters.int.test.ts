// One set of cases, three servers: Fastify with the `./fastify` hooks, Express 5 and a plain
// node:http server with the `./node` middleware. Each speaks real HTTP on loopback; tokens come
// from the OpenID stand-in, API keys from real PostgreSQL. Compiling this file is also the check
// that Express's own types take the middleware without a cast.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Database } from '@flowforge/db';
import {
  createHttpObservability,
  createLogger,
  createMetrics,
  nodeHttpObservability,
  type Logger,
} from '@flowforge/observability';
import { fastifyObservability, genReqId } from '@flowforge/observability/fastify';
import express, { type ErrorRequestHandler } from 'express';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertWidgetScope,
  createApiKey,
  createApiKeyVerifier,
  createAuth,
  getCurrentTenantId,
  getCurrentUserId,
  isAuthError,
  revokeApiKey,
  type Auth,
  type AuthDB,
  type Principal,
} from '../src/index.js';
import * as fastifyHooks from '../src/fastify.js';
import * as node from '../src/node.js';
import type { ApiKeyVerifierLike } from '../src/node.js';
import { startKeycloak, type KeycloakFixture } from './support/keycloak.js';
import { createAuthTestDatabase, type AuthTestDatabase } from './support/postgres.js';

const CLIENT = 'flowforge-api';
const REALM = 'test';
const TENANT = randomUUID();
const CREATOR = randomUUID();
const WIDGET = randomUUID();

/** What every server's error handler answers, from whichever framework hands it the error. */
function answerError(
  error: unknown,
  path: string,
): {
  status: number;
  body: { status: number; code: string };
  challenge: string | undefined;
} {
  if (!isAuthError(error)) {
    return { status: 500, body: { status: 500, code: 'INTERNAL' }, challenge: undefined };
  }
  const scheme = path.startsWith('/embed') ? 'ApiKey' : 'Bearer';
  return {
    status: error.status,
    body: { status: error.status, code: error.code },
    challenge: error.challenge(REALM, scheme),
  };
}

/** What a route without authentication answers if requireRole lets it through (it must not). */
const REACHED = { reached: true };

/** What every route answers: the principal as the framework keeps it, and as the request context has it. */
function whoami(principal: Principal | null, logger: Logger): Record<string, unknown> {
  logger.info('handler ran');
  return {
    tenant: principal?.tenantId,
    user: principal?.userId,
    method: principal?.method,
    widget_ids: principal?.widgetIds ?? null,
    current_tenant: getCurrentTenantId(),
    current_user: getCurrentUserId(),
  };
}

/** The verifiers of the routes: the real one, and two broken ones. */
interface Verifiers {
  readonly keys: ApiKeyVerifierLike;
  /** Throws instead of rejecting. */
  readonly throwing: ApiKeyVerifierLike;
  /** Rejects with undefined: must not read as "go on". */
  readonly silent: ApiKeyVerifierLike;
}

/** A server under test, and the log lines of its requests. */
interface Target {
  readonly name: string;
  readonly url: string;
  readonly lines: readonly Record<string, unknown>[];
  /** Middleware that called next more than once (the node:http server counts them). */
  readonly misuse: readonly string[];
  close(): Promise<void>;
}

/** A logger whose lines land in an array, and the HTTP observability around it. */
function observed(): {
  logger: Logger;
  lines: Record<string, unknown>[];
  http: ReturnType<typeof createHttpObservability>;
} {
  const lines: Record<string, unknown>[] = [];
  const destination = {
    write: (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
    },
  };
  const logger = createLogger({ destination, level: 'info' });
  const metrics = createMetrics({ defaultMetrics: false });
  return { logger, lines, http: createHttpObservability({ logger, metrics }) };
}

async function listen(listener: RequestListener): Promise<{ server: Server; url: string }> {
  const server = createServer(listener);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function closeServer(server: Server): Promise<void> {
  server.close();
  await once(server, 'close');
}

async function startFastify(auth: Auth, verifiers: Verifiers): Promise<Target> {
  const { bearer, apiKey, requireRole, fastifyAuth } = fastifyHooks;
  const { logger, lines, http } = observed();
  const app = Fastify({ genReqId });
  await app.register(fastifyObservability, { http });
  await app.register(fastifyAuth);
  app.setErrorHandler((error, request, reply) => {
    const answer = answerError(error, request.url);
    if (answer.challenge !== undefined) void reply.header('www-authenticate', answer.challenge);
    return reply.code(answer.status).send(answer.body);
  });
  const me = (request: { principal: Principal | null }) => whoami(request.principal, logger);
  app.get('/me', { onRequest: [bearer(auth), requireRole('viewer')] }, me);
  app.get<{ Params: { id: string } }>(
    '/embed/:id',
    { onRequest: apiKey(verifiers.keys) },
    (request) => {
      assertWidgetScope(request.principal!, request.params.id);
      return me(request);
    },
  );
  app.get('/embed-admin', { onRequest: [apiKey(verifiers.keys), requireRole('admin')] }, me);
  app.get('/role-first', { onRequest: requireRole('viewer') }, () => REACHED);
  app.get('/embed-throwing', { onRequest: apiKey(verifiers.throwing) }, me);
  app.get('/embed-silent', { onRequest: apiKey(verifiers.silent) }, me);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { name: 'Fastify hooks', url, lines, misuse: [], close: () => app.close() };
}

async function startExpress(auth: Auth, verifiers: Verifiers): Promise<Target> {
  const { bearer, apiKey, requireRole, principalOf } = node;
  const { logger, lines, http } = observed();
  const app = express();
  app.use(nodeHttpObservability(http));
  // app.use and a router's use take the middleware as Express's own RequestHandler, no cast.
  const me = express.Router();
  me.use(bearer(auth));
  me.get('/', requireRole('viewer'), (req, res) => {
    res.json(whoami(principalOf(req), logger));
  });
  app.use('/me', me);
  app.get('/embed/:id', apiKey(verifiers.keys), (req, res) => {
    assertWidgetScope(principalOf(req)!, req.params.id); // params still typed from the path
    res.json(whoami(principalOf(req), logger));
  });
  app.get('/embed-admin', apiKey(verifiers.keys), requireRole('admin'), (req, res) => {
    res.json(whoami(principalOf(req), logger));
  });
  app.get('/role-first', requireRole('viewer'), (_req, res) => {
    res.json(REACHED);
  });
  app.get('/embed-throwing', apiKey(verifiers.throwing), (req, res) => {
    res.json(whoami(principalOf(req), logger));
  });
  app.get('/embed-silent', apiKey(verifiers.silent), (req, res) => {
    res.json(whoami(principalOf(req), logger));
  });
  const onError: ErrorRequestHandler = (error, req, res, _next) => {
    const answer = answerError(error, req.path);
    if (answer.challenge !== undefined) res.set('www-authenticate', answer.challenge);
    res.status(answer.status).json(answer.body);
  };
  app.use(onError);
  const { server, url } = await listen(app);
  return { name: 'Express 5 middleware', url, lines, misuse: [], close: () => closeServer(server) };
}

/** A plain node:http server: the middleware run one after the other, as Connect would. */
async function startNodeHttp(auth: Auth, verifiers: Verifiers): Promise<Target> {
  const { bearer, apiKey, requireRole, principalOf } = node;
  const { logger, lines, http } = observed();
  const misuse: string[] = [];
  const observe = nodeHttpObservability(http);
  // Path pattern, middleware, and the handler that answers once they let the request through.
  type Route = readonly [RegExp, readonly node.AuthMiddleware[], (req: IncomingMessage) => unknown];
  const me = (req: IncomingMessage): unknown => whoami(principalOf(req), logger);
  const routes: readonly Route[] = [
    [/^\/me$/, [bearer(auth), requireRole('viewer')], me],
    [
      /^\/embed\/([^/]+)$/,
      [apiKey(verifiers.keys)],
      (req) => {
        assertWidgetScope(principalOf(req)!, /[^/]+$/.exec(req.url!)![0]);
        return me(req);
      },
    ],
    [/^\/embed-admin$/, [apiKey(verifiers.keys), requireRole('admin')], me],
    [/^\/role-first$/, [requireRole('viewer')], () => REACHED],
    [/^\/embed-throwing$/, [apiKey(verifiers.throwing)], me],
    [/^\/embed-silent$/, [apiKey(verifiers.silent)], me],
  ];

  function send(res: ServerResponse, status: number, body: unknown, challenge?: string): void {
    res.writeHead(status, {
      'content-type': 'application/json',
      ...(challenge === undefined ? {} : { 'www-authenticate': challenge }),
    });
    res.end(JSON.stringify(body));
  }

  const { server, url } = await listen((req, res) => {
    observe(req, res, () => {
      const path = req.url ?? '/';
      const route = routes.find(([pattern]) => pattern.test(path));
      if (!route) return send(res, 404, { status: 404, code: 'NOT_FOUND' });
      const [, middleware, handler] = route;
      const fail = (error: unknown): void => {
        const answer = answerError(error, path);
        send(res, answer.status, answer.body, answer.challenge);
      };
      const step = (index: number): void => {
        const current = middleware[index];
        if (current === undefined) {
          try {
            send(res, 200, handler(req));
          } catch (error) {
            fail(error);
          }
          return;
        }
        let called = false;
        current(req, res, (error) => {
          if (called) {
            misuse.push(`${path}: middleware ${index} called next twice`);
            return;
          }
          called = true;
          if (error === undefined) step(index + 1);
          else fail(error);
        });
      };
      step(0);
    });
  });
  return { name: 'node:http middleware', url, lines, misuse, close: () => closeServer(server) };
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** Request headers; an array is sent as that many header lines. */
type Headers = Record<string, string | string[]>;

/** A GET over a fresh connection. */
function get(base: string, path: string, headers: Headers = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(new URL(path, base), { headers, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: JSON.parse(text) as Record<string, unknown>,
        });
      });
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

let keycloak: KeycloakFixture;
let store: AuthTestDatabase;
let goodKey: string;
let revokedKey: string;
const targets: Target[] = [];

beforeAll(async () => {
  keycloak = await startKeycloak({ clientId: CLIENT });
  store = await createAuthTestDatabase();
  const database: Database<AuthDB> = store.database;
  const input = { name: 'Wallboard', widgetIds: [WIDGET], createdBy: CREATOR };
  goodKey = (await createApiKey(database, TENANT, input)).key;
  const revoked = await createApiKey(database, TENANT, input);
  await revokeApiKey(database, TENANT, revoked.id);
  revokedKey = revoked.key;

  // Dev bypass off: no credentials is a 401, never the dev principal.
  const auth = createAuth({
    appEnv: 'production',
    keycloak: { issuer: keycloak.issuer, jwksUrl: keycloak.jwksUrl, clientId: CLIENT },
  });
  const verifiers: Verifiers = {
    keys: createApiKeyVerifier(database),
    throwing: {
      verify: () => {
        throw new Error('a verifier bug');
      },
    },
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the case under test
    silent: { verify: () => Promise.reject(undefined) },
  };
  for (const start of [startFastify, startExpress, startNodeHttp]) {
    targets.push(await start(auth, verifiers));
  }
});

afterAll(async () => {
  for (const target of targets) await target.close();
  await store?.close();
  await keycloak?.close();
});

// describe.each needs the servers before they exist: the names are fixed, the targets looked up.
describe.each(['Fastify hooks', 'Express 5 middleware', 'node:http middleware'])('%s', (name) => {
  const target = (): Target => targets.find((candidate) => candidate.name === name)!;
  const call = (path: string, headers?: Headers): Promise<Answer> =>
    get(target().url, path, headers);

  it('no credentials: 401 CREDENTIALS_MISSING with a challenge (the dev bypass is off)', async () => {
    const bearer = await call('/me');
    expect([bearer.status, bearer.body]).toEqual([
      401,
      { status: 401, code: 'CREDENTIALS_MISSING' },
    ]);
    expect(bearer.headers['www-authenticate']).toBe('Bearer realm="test"');
    const key = await call(`/embed/${WIDGET}`);
    expect([key.status, key.body]).toEqual([401, { status: 401, code: 'CREDENTIALS_MISSING' }]);
    expect(key.headers['www-authenticate']).toBe('ApiKey realm="test"');
  });

  it('a repeated Authorization or API-key header: 400 REQUEST_INVALID', async () => {
    const token = await keycloak.issueToken({ realmRoles: ['viewer'] });
    const twoTokens = await call('/me', { authorization: [`Bearer ${token}`, `Bearer ${token}`] });
    expect([twoTokens.status, twoTokens.body]).toEqual([
      400,
      { status: 400, code: 'REQUEST_INVALID' },
    ]);
    expect(twoTokens.headers['www-authenticate']).toContain('error="invalid_request"');
    const twoKeys = await call(`/embed/${WIDGET}`, { 'x-api-key': [goodKey, goodKey] });
    expect([twoKeys.status, twoKeys.body]).toEqual([400, { status: 400, code: 'REQUEST_INVALID' }]);
  });

  it('a valid token: its principal, bound to the request context and its log lines', async () => {
    const tenantId = randomUUID();
    const sub = randomUUID();
    const token = await keycloak.issueToken({ tenantId, sub, realmRoles: ['viewer'] });
    const requestId = randomUUID();
    const answer = await call('/me', {
      authorization: `Bearer ${token}`,
      'x-request-id': requestId,
    });
    expect([answer.status, answer.body]).toEqual([
      200,
      {
        tenant: tenantId,
        user: sub,
        method: 'jwt',
        widget_ids: null,
        current_tenant: tenantId,
        current_user: sub,
      },
    ]);
    const handlerLine = target().lines.find(
      (line) => line.msg === 'handler ran' && line.request_id === requestId,
    );
    expect(handlerLine).toMatchObject({ tenant_id: tenantId, user_id: sub });
  });

  it("a valid API key: the key's principal, bound to the request; other widgets 403", async () => {
    const requestId = randomUUID();
    const answer = await call(`/embed/${WIDGET}`, {
      'x-api-key': goodKey,
      'x-request-id': requestId,
    });
    expect([answer.status, answer.body]).toEqual([
      200,
      {
        tenant: TENANT,
        user: CREATOR,
        method: 'api_key',
        widget_ids: [WIDGET],
        current_tenant: TENANT,
        current_user: CREATOR,
      },
    ]);
    const handlerLine = target().lines.find(
      (line) => line.msg === 'handler ran' && line.request_id === requestId,
    );
    expect(handlerLine).toMatchObject({ tenant_id: TENANT, user_id: CREATOR });
    const outside = await call(`/embed/${randomUUID()}`, { 'x-api-key': goodKey });
    expect([outside.status, outside.body]).toEqual([
      403,
      { status: 403, code: 'INSUFFICIENT_SCOPE' },
    ]);
  });

  it('a revoked or invalid API key: 401 API_KEY_INVALID', async () => {
    for (const key of [revokedKey, 'ffk_not-a-key']) {
      const answer = await call(`/embed/${WIDGET}`, { 'x-api-key': key });
      expect([answer.status, answer.body]).toEqual([401, { status: 401, code: 'API_KEY_INVALID' }]);
      expect(answer.headers['www-authenticate']).toMatch(
        /^ApiKey realm="test", error="invalid_token"/,
      );
    }
  });

  it('requireRole without the role: 403 INSUFFICIENT_SCOPE', async () => {
    const token = await keycloak.issueToken({ realmRoles: ['other'] });
    const user = await call('/me', { authorization: `Bearer ${token}` });
    expect([user.status, user.body]).toEqual([403, { status: 403, code: 'INSUFFICIENT_SCOPE' }]);
    expect(user.headers['www-authenticate']).toContain('error="insufficient_scope"');
    const key = await call('/embed-admin', { 'x-api-key': goodKey }); // an API key has no roles
    expect([key.status, key.body]).toEqual([403, { status: 403, code: 'INSUFFICIENT_SCOPE' }]);
  });

  it('requireRole before any authentication: NO_PRINCIPAL (500), never an open door', async () => {
    const answer = await call('/role-first', { authorization: 'Bearer dev-token' });
    expect([answer.status, answer.body]).toEqual([500, { status: 500, code: 'NO_PRINCIPAL' }]);
    expect(answer.headers['www-authenticate']).toBeUndefined();
  });

  it('a verifier that throws, or rejects with nothing: the error handler answers 500', async () => {
    for (const path of ['/embed-throwing', '/embed-silent']) {
      const answer = await call(path, { 'x-api-key': goodKey });
      expect([path, answer.status, answer.body]).toEqual([
        path,
        500,
        { status: 500, code: 'INTERNAL' },
      ]);
    }
    expect(target().misuse).toEqual([]);
  });
});
