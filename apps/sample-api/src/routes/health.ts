import type { FastifyInstance } from 'fastify';
import { checkReadiness, type ReadinessCheck, type UnconfiguredDependency } from '../readiness.js';

export interface HealthRoutesOptions {
  readonly checks: readonly (ReadinessCheck | UnconfiguredDependency)[];
  /** True once shutdown has begun: readiness answers 503 before anything else stops. */
  readonly isShuttingDown: () => boolean;
  readonly checkTimeoutMs: number;
}

/** GET /health/live (the process runs) and GET /health/ready (its dependencies answer). */
export function healthRoutes(app: FastifyInstance, options: HealthRoutesOptions): void {
  app.get('/health/live', () => ({ status: 'ok' }));

  app.get('/health/ready', async (_request, reply) => {
    if (options.isShuttingDown()) {
      return reply.code(503).send({ status: 'shutting_down', checks: {} });
    }
    const report = await checkReadiness(options.checks, options.checkTimeoutMs);
    return reply.code(report.status === 'not_ready' ? 503 : 200).send(report);
  });
}
