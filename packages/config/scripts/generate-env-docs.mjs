// Writes the repo's .env.example and this package's ENVIRONMENT.md from the
// variable table in src/schema.ts (through the built dist). With --check it
// writes nothing and exits 1 when either file is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { listVariables } from '../dist/index.js';

const check = process.argv.includes('--check');
const variables = listVariables();
const GENERATED =
  'Generated from packages/config/src/schema.ts by `pnpm --filter @flowforge/config generate`; do not edit.';

const envExample = [
  `# FlowForge environment. ${GENERATED}`,
  '# Empty means unset: the default applies. Secrets have no defaults.',
  '',
  ...variables.flatMap((v) => [
    `# ${v.description}${v.secret ? ' (secret)' : ''}`,
    `${v.name}=${v.secret ? '' : (v.default ?? '')}`,
    '',
  ]),
].join('\n');

const cell = (text) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
const reference = [
  '# Environment variables',
  '',
  `<!-- ${GENERATED} -->`,
  '',
  'Read only by `@flowforge/config`. Empty counts as unset. An unset `APP_ENV` means `production`',
  '(`NODE_ENV` does not choose it): set `APP_ENV=development` for local work; only that turns on the dev bypass',
  'and the embedded database. With `APP_ENV=staging` or `production` (or unset),',
  'loading also refuses: a `SECRET_KEY` shorter than 32 characters, no `DATABASE_URL`, `DATABASE_SSL=disable`',
  'for a non-loopback database, `KEYCLOAK_URL` left at its default or on plain http to a non-loopback host,',
  'any `AUTH_DEV_*` variable, and `CLICKHOUSE_URL` without `CLICKHOUSE_PASSWORD`.',
  '',
  '| name | type | default | secret | description |',
  '| --- | --- | --- | --- | --- |',
  ...variables.map(
    (v) =>
      `| \`${v.name}\` | ${v.type} | ${v.default === undefined ? '—' : `\`${v.default || '""'}\``} | ${v.secret ? 'yes' : 'no'} | ${cell(v.description)} |`,
  ),
  '',
].join('\n');

const targets = [
  [fileURLToPath(new URL('../../../.env.example', import.meta.url)), envExample],
  [fileURLToPath(new URL('../ENVIRONMENT.md', import.meta.url)), reference],
];

let stale = 0;
for (const [path, content] of targets) {
  let current = '';
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    // missing counts as stale
  }
  if (current === content) continue;
  if (check) {
    console.error(`stale: ${path} (run: pnpm --filter @flowforge/config generate)`);
    stale += 1;
  } else {
    writeFileSync(path, content);
    console.log(`wrote ${path}`);
  }
}
if (stale > 0) process.exit(1);
if (check) console.log('env docs are up to date');
