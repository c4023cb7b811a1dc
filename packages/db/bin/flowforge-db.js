#!/usr/bin/env node
// The `flowforge-db` command. A committed file rather than dist/cli.js itself:
// pnpm links a workspace package's bin only when the target exists at install
// time, and dist/ is built after `pnpm install`. This file always exists, so
// the link is made; it runs the built CLI, or says to build it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli.js', import.meta.url);
if (existsSync(cli)) {
  await import(cli.href);
} else {
  process.stderr.write(
    `flowforge-db: ${fileURLToPath(cli)} is missing: build @flowforge/db first ` +
      '(in this repository: pnpm --filter @flowforge/db build, or pnpm run build)\n',
  );
  // EX_SOFTWARE: the installation is incomplete, not the command line or the settings.
  process.exitCode = 70;
}
