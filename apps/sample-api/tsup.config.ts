import type { Options } from 'tsup';
import { packageBuild } from '../../tsup.shared.js';

// An app, not a library: entry points to run, no type declarations. dist/migrations.js
// is what `flowforge-db migrate up --migrations` loads in a deploy; dist/seed.js loads demo data.
const config: Options = packageBuild({
  entry: { main: 'src/main.ts', migrations: 'src/db/migrations.ts', seed: 'src/seed.ts' },
  dts: false,
});
export default config;
