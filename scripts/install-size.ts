#!/usr/bin/env node
// Each package's install size with its production dependencies: the package is packed,
// published to a throwaway verdaccio and installed alone with npm into a fresh project
// (the registry check's machinery, scripts/registry-check.ts); the size is that project's
// node_modules. Needs the packages built (`pnpm build`) and the npm registry.
//
//   node scripts/install-size.ts           print the sizes
//   node scripts/install-size.ts --write   also update the "Install size …" line of each
//                                          package README that has one (never adds it)
//
// FLOWFORGE_REGISTRY_SKIP leaves packages out, as in the registry check.
import console from 'node:console';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { formatMegabytes, listPackages, parseSkipList, startRun } from './registry-check.ts';

const README_LINE = /^Install size with production dependencies: .*$/m;

const line = (bytes: number): string =>
  `Install size with production dependencies: ${formatMegabytes(bytes)} (measured by scripts/install-size.ts).`;

async function main(): Promise<void> {
  const write = process.argv.includes('--write');
  const packages = listPackages({ skip: parseSkipList(process.env['FLOWFORGE_REGISTRY_SKIP']) });
  const session = await startRun(packages, { smoke: false, types: false });
  let failed = false;
  try {
    for (const pkg of packages) {
      const install = (await session.steps.get(pkg.name))?.install;
      const published = session.published.get(pkg.name);
      const result = published?.ok === false ? published : install;
      if (!result?.ok) {
        failed = true;
        console.log(`${pkg.name.padEnd(26)} FAIL ${result?.error.message ?? 'not installed'}`);
        continue;
      }
      const size = result.value;
      console.log(
        `${pkg.name.padEnd(26)} ${formatMegabytes(size.bytes).padStart(8)}  (${size.files} files, ${formatMegabytes(size.diskBytes)} on disk)`,
      );
      if (!write) continue;
      const readme = join(pkg.dir, 'README.md');
      const text = readFileSync(readme, 'utf8');
      if (README_LINE.test(text))
        writeFileSync(readme, text.replace(README_LINE, line(size.bytes)));
      else console.log(`  ${readme} has no "Install size …" line: add it to its Install section`);
    }
  } finally {
    await session.close();
  }
  if (failed) process.exitCode = 1;
}

await main();
