import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const pkg = fileURLToPath(new URL('..', import.meta.url));
const repo = join(pkg, '..', '..');

// A copy of the generator, its built input and its outputs, laid out as in the repo.
const sandbox = mkdtempSync(join(tmpdir(), 'ff-env-docs-'));
const sandboxPkg = join(sandbox, 'packages', 'config');
for (const part of ['scripts', 'dist', 'ENVIRONMENT.md', 'package.json']) {
  cpSync(join(pkg, part), join(sandboxPkg, part), { recursive: true });
}
cpSync(join(repo, '.env.example'), join(sandbox, '.env.example'));
// dist imports zod: let the copy resolve the package's real node_modules.
cpSync(join(pkg, 'node_modules'), join(sandboxPkg, 'node_modules'), {
  recursive: true,
  dereference: false,
});

afterAll(() => rmSync(sandbox, { recursive: true, force: true }));

const check = (cwdPkg: string) =>
  run(process.execPath, ['scripts/generate-env-docs.mjs', '--check'], { cwd: cwdPkg }).then(
    () => 0,
    (error: { code: number; stderr: string }) => error,
  );

describe('generated .env.example and ENVIRONMENT.md', () => {
  it('are up to date in the repo', async () => {
    expect(await check(pkg)).toBe(0);
  });

  it('--check fails on a stale .env.example and names the file', async () => {
    writeFileSync(join(sandbox, '.env.example'), 'PORT=1\n');
    const result = await check(sandboxPkg);
    expect(result).toMatchObject({ code: 1 });
    expect((result as { stderr: string }).stderr).toContain('stale:');
  });

  it('regenerating fixes it', async () => {
    await run(process.execPath, ['scripts/generate-env-docs.mjs'], { cwd: sandboxPkg });
    expect(await check(sandboxPkg)).toBe(0);
    expect(readFileSync(join(sandbox, '.env.example'), 'utf8')).toContain('DATABASE_URL=');
  });
});
