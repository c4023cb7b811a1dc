import type { Options } from 'tsup';
import { packageBuild } from '../../tsup.shared.js';

const config: Options = packageBuild({ entry: ['src/index.ts', 'src/cli.ts'] });
export default config;
