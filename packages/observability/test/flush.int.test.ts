import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// A real process using the default production destination (stdout, buffered,
// asynchronous), killed with SIGTERM while it logs as fast as it can.
const FIXTURE = fileURLToPath(new URL('./fixtures/log-until-sigterm.mjs', import.meta.url));

async function logUntilSigterm(): Promise<{
  code: number | null;
  lines: Record<string, unknown>[];
  stderr: string;
}> {
  const child = spawn(process.execPath, [FIXTURE], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await once(child, 'message');
  await new Promise((resolve) => setTimeout(resolve, 150));
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  const lines = stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { code, lines, stderr };
}

describe('buffered logging and SIGTERM', () => {
  it('loses no line: every numbered line, in order, then the last line written in the handler', async () => {
    const { code, lines, stderr } = await logUntilSigterm();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const last = lines.at(-1);
    expect(last).toMatchObject({ msg: 'last line' });
    const numbered = lines.slice(0, -1);
    expect(numbered.length).toBe(last?.count);
    expect(numbered.length).toBeGreaterThan(1000);
    numbered.forEach((line, index) => {
      if (line.i !== index) expect(line).toMatchObject({ i: index });
    });
  });
});

describe('an idle service', () => {
  it('writes its line at once, not when some buffer fills', async () => {
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL('./fixtures/log-once-then-idle.mjs', import.meta.url))],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      const first = await Promise.race([
        once(child.stdout, 'data').then(([chunk]) => String(chunk)),
        // Generous: it includes the child's start-up on a loaded machine. A line held
        // until a buffer fills would never come, however long the wait: the child idles.
        new Promise<string>((resolve) => setTimeout(() => resolve('nothing within 15 s'), 15_000)),
      ]);
      expect(first).toContain('"msg":"only line"');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('a reader that goes away', () => {
  it('does not crash the process (EPIPE): logging stops, the service goes on', async () => {
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL('./fixtures/log-into-closed-pipe.mjs', import.meta.url))],
      {
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await once(child, 'message');
    child.stdout?.destroy();
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(stderr).toMatch(/^alive after \d+ lines\n$/);
    expect(code).toBe(0);
  });
});
