import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createHttpObservability,
  createLogger,
  createMetrics,
  getRequestContext,
  nodeHttpObservability,
} from '../src/index.js';
import { captureLines } from './log-capture.js';

let server: Server | undefined;
afterEach(async () => {
  server?.close();
  if (server) await once(server, 'close');
  server = undefined;
});

async function start(routeOf?: (url: string | undefined) => string | undefined) {
  const logs = captureLines();
  const logger = createLogger({ destination: logs.stream });
  const metrics = createMetrics({ defaultMetrics: false });
  const middleware = nodeHttpObservability(
    createHttpObservability({ logger, metrics }),
    routeOf ? { routeOf: (request) => routeOf(request.url) } : {},
  );
  server = createServer((request, response) => {
    middleware(request, response, () => {
      setTimeout(
        () => {
          logger.info('handling');
          const status = request.url === '/missing' ? 404 : 200;
          response.writeHead(status, { 'content-type': 'application/json' });
          response.end(JSON.stringify(getRequestContext()));
        },
        request.url === '/slow' ? 200 : 2,
      );
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return { base: `http://127.0.0.1:${port}`, logs, metrics };
}

describe('nodeHttpObservability (node:http, Express-style)', () => {
  it('sets X-Request-ID, runs the handler in the request context and writes the access line', async () => {
    const { base, logs, metrics } = await start((url) =>
      url?.startsWith('/items/') ? '/items/:id' : undefined,
    );
    const response = await fetch(`${base}/items/7`, {
      headers: {
        'x-request-id': 'n-1',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      },
    });
    expect(response.headers.get('x-request-id')).toBe('n-1');
    expect(await response.json()).toEqual({
      request_id: 'n-1',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      span_id: '00f067aa0ba902b7',
    });
    await fetch(`${base}/missing`);
    const lines = logs.lines();
    expect(lines.find((line) => line.msg === 'handling')).toMatchObject({ request_id: 'n-1' });
    const access = lines.filter((line) => line.msg === 'request completed');
    expect(access.map((line) => [line.route, line.status_code, line.level])).toEqual([
      ['/items/:id', 200, 'info'],
      ['UNMATCHED', 404, 'info'],
    ]);
    expect(await metrics.render()).toContain(
      'flowforge_http_requests_total{method="GET",route="/items/:id",status_code="200"} 1',
    );
  });

  it('records a request the client abandoned as 499', async () => {
    const { base, metrics } = await start();
    const controller = new AbortController();
    const pending = fetch(`${base}/slow`, { signal: controller.signal }).catch(() => 'aborted');
    await new Promise((resolve) => setTimeout(resolve, 50));
    controller.abort();
    expect(await pending).toBe('aborted');
    let text = '';
    for (let i = 0; i < 50 && !text.includes('status_code="499"'); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      text = await metrics.render();
    }
    expect(text).toContain(
      'flowforge_http_requests_total{method="GET",route="UNMATCHED",status_code="499"} 1',
    );
    expect(text).toMatch(/flowforge_http_requests_in_flight 0\n/);
  });
});
