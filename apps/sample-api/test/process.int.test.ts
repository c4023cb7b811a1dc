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
});
