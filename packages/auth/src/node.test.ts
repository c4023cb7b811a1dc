import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createAuth } from './auth.js';
import { bearer, principalOf, requireRole, type AuthMiddleware } from './node.js';

// The dev bypass answers without a network: the middleware's own behaviour is what is tested
// here (every credential against real servers: test/node-adapters.int.test.ts).
const auth = createAuth({
  appEnv: 'development',
  keycloak: {
    issuer: 'http://127.0.0.1:1/realms/x',
    jwksUrl: 'http://127.0.0.1:1/x',
    clientId: 'x',
  },
  devBypass: {
    userId: '00000000-0000-4000-8000-000000000001',
    tenantId: '00000000-0000-4000-8000-00000000000a',
  },
  fetch: () => Promise.reject(new Error('no network in unit tests')),
});

function requestWithout(): IncomingMessage {
  return new IncomingMessage(new Socket());
}

/** The arguments of the middleware's first call of next. */
function nextOf(middleware: AuthMiddleware, request: IncomingMessage): Promise<unknown[]> {
  return new Promise((resolve) => {
    middleware(request, new ServerResponse(request), (...args: unknown[]) => resolve(args));
  });
}

describe('@flowforge/auth/node', () => {
  it('keeps the principal under a symbol of its own, hidden from copies of the request', async () => {
    const request = requestWithout();
    expect(principalOf(request)).toBeNull();
    expect(await nextOf(bearer(auth), request)).toEqual([]); // next(), not next(undefined)
    expect(principalOf(request)).toMatchObject({
      method: 'dev',
      roles: ['viewer', 'editor', 'admin'],
    });
    const [key] = Object.getOwnPropertySymbols(request).filter(
      (symbol) => symbol.description === 'flowforge.auth.principal',
    );
    expect(Object.prototype.propertyIsEnumerable.call(request, key!)).toBe(false);
    expect(Object.getOwnPropertySymbols({ ...request })).not.toContain(key);
  });

  it('a principal written by the app is not one: requireRole still finds none', async () => {
    const request = requestWithout();
    Object.assign(request, { principal: { roles: ['admin'] } });
    const [error] = await nextOf(requireRole('admin'), request);
    expect(error).toMatchObject({ code: 'NO_PRINCIPAL', status: 500 });
  });

  it('works outside a request context too (nothing to bind the principal to)', async () => {
    const request = requestWithout();
    expect(await nextOf(bearer(auth), request)).toEqual([]);
    expect(await nextOf(requireRole('editor'), request)).toEqual([]);
    const [error] = await nextOf(requireRole('owner'), request);
    expect(error).toMatchObject({ code: 'INSUFFICIENT_SCOPE', status: 403 });
  });
});
