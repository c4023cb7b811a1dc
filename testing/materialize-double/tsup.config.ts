import type { Options } from 'tsup';
import { packageBuild } from '../../tsup.shared.js';

// Built rather than served as .ts: consumers type-check it with `.js` relative imports, and
// plain `node` (bench, scripts/demo) cannot run those from source.
const config: Options = packageBuild({ entry: ['src/index.ts', 'src/cli.ts'] });
export default config;
