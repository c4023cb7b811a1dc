import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { request, Agent } from 'node:http';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The built entry point, run as a real process the way `pnpm start` runs it.
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

function start(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  let output = '';
  const child = spawn(process.execPath, [MAIN], {
    env, // exactly the variables given: nothing inherited from the test runner
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

async function waitForListening(output: () => string): Promise<void> {
  // Up to 30 s: in development the embedded PGlite database starts (and migrates) first.
  for (let i = 0; i < 600 && !output().includes('listening'); i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(output()).toContain('listening');
}

function get(port: number, path: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the sample-api process', () => {
  it('exits 0 promptly on SIGTERM even with a keep-alive connection open', async () => {
    const port = await freePort();
    const { child, output } = start({
      APP_ENV: 'test',
      PORT: String(port),
      SHUTDOWN_TIMEOUT_MS: '8000',
    });
    await waitForListening(output);
    const agent = new Agent({ keepAlive: true });
    expect(await get(port, '/health/live', agent)).toBe(200);

    const signalled = performance.now();
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    const tookMs = performance.now() - signalled;
    agent.destroy();

    expect(code).toBe(0);
    // Well inside the 8 s deadline: the idle keep-alive socket did not hold close() open.
    expect(tookMs).toBeLessThan(8_000);
    expect(output()).toContain('"msg":"stopped"');
  });

  it('serves tenant data from embedded PGlite in development, and exits 0 on SIGINT with its shutdown lines', async () => {
    const port = await freePort();
    const { child, output } = start({
      APP_ENV: 'development',
      PORT: String(port),
      DATABASE_EMBEDDED_DIR: 'memory://',
    });
    await waitForListening(output);
    expect(output()).toMatch(/embedded PGlite database ready/);
    const base = `http://127.0.0.1:${port}`;
    const ready = await fetch(`${base}/health/ready`);
    expect(ready.status).toBe(200);
    const created = await fetch(`${base}/api/v1/dashboards`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Embedded' }),
    });
    expect(created.status).toBe(201);
    const list = (await (await fetch(`${base}/api/v1/dashboards`)).json()) as {
      items: { name: string }[];
    };
    expect(list.items.map((item) => item.name)).toEqual(['Embedded']);
    child.kill('SIGINT');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(output()).toMatch(/INFO.*: shutting down/);
    expect(output()).toMatch(/INFO.*: stopped/);
  }, 60_000);

  it('refuses to start on invalid settings: exit 78, every problem listed, no secret echoed', async () => {
    const { child, output } = start({
      APP_ENV: 'production',
      PORT: 'eighty',
      SECRET_KEY: 'too-short-LEAKCHECK',
      DATABASE_URL: 'postgres://u:pw-LEAKCHECK@db.example.com/app',
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(78);
    expect(output()).toContain('PORT: expected a whole number');
    expect(output()).toContain('SECRET_KEY: must be set to at least 32 characters');
    expect(output()).toContain('DATABASE_SSL: must be require or verify-full');
    expect(output()).not.toContain('LEAKCHECK');
  });

  it('with APP_ENV unset (NODE_ENV=production) runs as production: an unauthenticated request is 401, never the dev principal', async () => {
    const port = await freePort();
    const { child, output } = start({
      // No APP_ENV: what an adopter who only knows NODE_ENV deploys.
      NODE_ENV: 'production',
      PORT: String(port),
      SECRET_KEY: 'k'.repeat(40),
      METRICS_TOKEN: 'm'.repeat(24),
      // Never connected by these requests (the pool is lazy); loopback, so TLS may be off.
      DATABASE_URL: 'postgres://flowforge:flowforge@127.0.0.1:5432/flowforge',
      KEYCLOAK_URL: 'http://127.0.0.1:1',
      DATABASE_EMBEDDED_DIR: 'memory://',
    });
    try {
      await waitForListening(output);
      const base = `http://127.0.0.1:${port}`;
      for (const headers of [{}, { authorization: 'Bearer dev-token' }]) {
        const response = await fetch(`${base}/api/v1/me`, { headers });
        const body = await response.text();
        expect(response.status, JSON.stringify(headers)).toBe(401);
        expect(response.headers.get('www-authenticate')).toMatch(/^Bearer /);
        expect(body).not.toContain('"auth_method":"dev"');
        expect(body).not.toContain('00000000-0000-4000-8000-000000000001');
      }
      expect(output()).not.toContain('development bypass');
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }, 60_000);

  it('with APP_ENV unset and no production settings, refuses to start and says to set APP_ENV', async () => {
    const { child, output } = start({
      PORT: String(await freePort()),
      DATABASE_EMBEDDED_DIR: 'memory://',
    });
    const exited = once(child, 'exit') as Promise<[number | null]>;
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const [code] = await exited;
    clearTimeout(timer);
    expect(output()).toContain('APP_ENV: is not set');
    expect(output()).toContain('set APP_ENV=development for local work');
    expect(code).toBe(78);
  }, 40_000);
});
