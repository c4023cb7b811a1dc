// A Fastify hello-world in one of several observability setups, for run.ts.
// Usage: node server.ts MODE PORT   (prints "ready" on stdout once listening)
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { openSync } from 'node:fs';
import process from 'node:process';
import Fastify, { LogController } from 'fastify';
import pino from 'pino';
import { Histogram, Registry } from 'prom-client';
import {
  createHttpObservability,
  createLogDestination,
  createLogger,
  createMetrics,
} from '@flowforge/observability';
import { fastifyObservability, genReqId } from '@flowforge/observability/fastify';
import { serve, type Listener } from '../lib/serve.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** When the naive stack saw the request (performance.now()). */
    started?: number;
  }
}

/** A server of any mode, its route not yet added. */
interface HelloServer extends Listener {
  get(path: string, handler: () => { hello: string }): unknown;
}

// The package's default destination (one write per event-loop turn), on /dev/null.
const devNull = () => createLogDestination(openSync('/dev/null', 'w'));

/**
 * The full stack as apps/sample-api builds it: request id, context, access line,
 * metrics. `loggerInstance` also hands the logger to Fastify for its own messages.
 */
async function flowforge({ loggerInstance }: { loggerInstance: boolean }): Promise<HelloServer> {
  const logger = createLogger({
    level: 'info',
    format: 'json',
    service: 'bench',
    destination: devNull(),
  });
  const metrics = createMetrics();
  const http = createHttpObservability({ logger, metrics });
  const app = Fastify({
    genReqId,
    logController: new LogController({ disableRequestLogging: true }),
    // request.log is the process logger itself: the mixin already stamps request_id
    // on its lines, so a pino child per request (Fastify's default) buys nothing.
    ...(loggerInstance ? { loggerInstance: logger, childLoggerFactory: (parent) => parent } : {}),
  });
  await app.register(fastifyObservability, { http, metricsEndpoint: { metrics } });
  return app;
}

/** What a first attempt usually looks like: UUID + ALS, a sync pino line, a labelled histogram. */
function naive(): HelloServer {
  const storage = new AsyncLocalStorage<{ requestId: string }>();
  const logger = pino(pino.destination({ dest: '/dev/null', sync: true }));
  const registry = new Registry();
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration.',
    labelNames: ['method', 'route', 'status_code'],
    registers: [registry],
  });
  const app = Fastify();
  app.addHook('onRequest', (request, _reply, next) => {
    const requestId = randomUUID();
    storage.enterWith({ requestId });
    request.started = performance.now();
    next();
  });
  app.addHook('onResponse', (request, reply, next) => {
    const seconds = (performance.now() - (request.started ?? Number.NaN)) / 1000;
    const labels = {
      method: request.method,
      // Undefined only for a request no route matched; the bench sends none.
      route: request.routeOptions.url ?? '',
      status_code: reply.statusCode,
    };
    duration.observe(labels, seconds);
    logger.info(
      { ...labels, request_id: storage.getStore()?.requestId, duration_s: seconds },
      'request completed',
    );
    next();
  });
  return app;
}

const modes: Record<string, () => HelloServer | Promise<HelloServer>> = {
  bare: () => Fastify(),
  flowforge: () => flowforge({ loggerInstance: true }),
  'flowforge-no-fastify-log': () => flowforge({ loggerInstance: false }),
  'fastify-logger': () =>
    Fastify({
      logger: { level: 'info', stream: pino.destination({ dest: '/dev/null', sync: true }) },
    }),
  naive,
};

const [mode = '', portArgument = ''] = process.argv.slice(2);
const port = Number(portArgument);
const build = modes[mode];
if (build === undefined || !Number.isInteger(port) || port <= 0) {
  process.stderr.write(`usage: node server.ts <${Object.keys(modes).join('|')}> <port>\n`);
  process.exit(2);
}

const app = await build();
app.get('/hello', () => ({ hello: 'world' }));
await serve(app, port);
