import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Settings } from '@flowforge/config';
import { bindRequestContext } from '@flowforge/observability';
import { sendProblem } from './problem.js';

/** Who is calling: the one source of the tenant id for every query. */
export interface Principal {
  readonly userId: string;
  readonly tenantId: string;
  readonly roles: readonly string[];
  readonly method: 'dev';
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `requirePrincipal` on the routes that need one. */
    principal?: Principal;
  }
}

/**
 * Until @flowforge/auth lands, the only principal is the development bypass:
 * APP_ENV=development, and no Authorization header or the literal `dev-token`.
 * Everything else is 401, so no route ever runs without a verified tenant.
 */
export function requirePrincipal(settings: Settings) {
  const dev = settings.auth.devBypass;
  return async function authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization;
    if (dev && (header === undefined || header === 'Bearer dev-token')) {
      request.principal = {
        userId: dev.userId,
        tenantId: dev.tenantId,
        roles: ['admin'],
        method: 'dev',
      };
      bindRequestContext({ tenant_id: dev.tenantId, user_id: dev.userId });
      return;
    }
    // RFC 6750: no credentials → the challenge alone; a bad token → error="invalid_token".
    const challenge =
      header === undefined
        ? 'Bearer realm="flowforge"'
        : 'Bearer realm="flowforge", error="invalid_token"';
    await sendProblem(request, reply.header('www-authenticate', challenge), {
      title: 'Unauthorized',
      status: 401,
      detail:
        header === undefined ? 'A bearer token is required.' : 'The bearer token is not valid.',
    });
  };
}
