// Prints one closing line, `N passed, N failed`, summed over every package's
// vitest JSON reports (packages/*, testing/* and apps/*/reports/vitest.json, and the
// unit tests on the oldest Node we claim, packages/*/reports/vitest-oldest-node.json)
// and the TAP reports of the graph check, the README examples check and the registry check
// (reports/check-graph.tap, reports/check-examples.tap, reports/registry-check.tap). Exits 1 when any
// test failed or when no test ran at all.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT as root } from './lib/workspace.ts';

/** The counts of a vitest JSON report that the summary adds up. */
interface VitestReport {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests?: number;
}

let passed = 0;
let failed = 0;
let skipped = 0;
const rows: string[] = [];

for (const group of ['packages', 'testing', 'apps']) {
  const dir = join(root, group);
  if (!existsSync(dir)) continue;
  for (const name of readdirSync(dir)) {
    for (const [file, label] of [
      ['vitest.json', ''],
      ['vitest-oldest-node.json', ' (unit tests, oldest Node claimed)'],
    ] as const) {
      const report = join(dir, name, 'reports', file);
      if (!existsSync(report)) continue;
      const json = JSON.parse(readFileSync(report, 'utf8')) as VitestReport;
      passed += json.numPassedTests;
      failed += json.numFailedTests;
      skipped += json.numPendingTests + (json.numTodoTests ?? 0);
      rows.push(
        `${group}/${name}${label}: ${json.numPassedTests} passed, ${json.numFailedTests} failed`,
      );
    }
  }
}

// The root checks run under node --test; their TAP reports end in `# pass N` / `# fail N`.
for (const name of ['check-graph', 'check-examples', 'registry-check']) {
  const tap = join(root, 'reports', `${name}.tap`);
  if (!existsSync(tap)) continue;
  const text = readFileSync(tap, 'utf8');
  const count = (label: string): number =>
    Number(text.match(new RegExp(`^# ${label} (\\d+)$`, 'm'))?.[1] ?? 0);
  passed += count('pass');
  failed += count('fail') + count('cancelled');
  skipped += count('skipped') + count('todo');
  rows.push(
    `scripts/${name}: ${count('pass')} passed, ${count('fail') + count('cancelled')} failed`,
  );
}

for (const row of rows) console.log(`  ${row}`);
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
if (failed > 0 || passed === 0) process.exit(1);
