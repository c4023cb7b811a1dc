import { Agent, request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { loadSettings } from '@flowforge/config';
import { buildApp } from '../src/app.js';

interface Answer {
  status: number;
  connection: string | undefined;
  body: string;
}

function get(port: number, path: string, agent: Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

async function slowApp(delayMs: number, shutdownTimeoutMs = 5_000) {
  const app = await buildApp({
    settings: loadSettings({ APP_ENV: 'test', SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs) }),
    routes: (server) => {
      server.get('/slow', async () => {
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        return { done: true };
      });
    },
  });
  await app.server.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.server.address() as { port: number };
  return { app, port };
}

describe('app.close(): the lifecycle of the server kit over the real app', () => {
  it('drains an in-flight request on a keep-alive connection, which then closes', async () => {
    const { app, port } = await slowApp(300);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    expect((await get(port, '/health/live', agent)).connection).toBe('keep-alive');

    const inFlight = get(port, '/slow', agent);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closing = app.close();

    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ done: true });
    // Without this header the client would keep the socket and close() would wait on it.
    expect(answer.connection).toBe('close');
    expect(await closing).toBe('drained');
    agent.destroy();
  });

  it('cuts what is still open at the deadline, so shutdown always ends', async () => {
    const { app, port } = await slowApp(10_000, 300);
    const agent = new Agent({ keepAlive: true });
    const inFlight = get(port, '/slow', agent).catch((error: NodeJS.ErrnoException) => error.code);
    await new Promise((resolve) => setTimeout(resolve, 50));

    const started = performance.now();
    expect(await app.close()).toBe('deadline');
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(await inFlight).toBe('ECONNRESET');
    agent.destroy();
  });

  it('refuses new requests once closing (503) while finishing old ones', async () => {
    const { app, port } = await slowApp(300);
    const agent = new Agent({ keepAlive: false });
    const inFlight = get(port, '/slow', agent);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closing = app.close();
    const late = await get(port, '/health/live', agent).catch(
      (error: NodeJS.ErrnoException) => error.code,
    );
    // The listener is closed: a new connection is refused outright, or reset when it
    // was accepted in the tick before the listener closed (close() runs the app's
    // preClose hook first). Either way it is never served.
    expect(['ECONNREFUSED', 'ECONNRESET']).toContain(late);
    expect((await inFlight).status).toBe(200);
    expect(await closing).toBe('drained');
  });
});
