import type { Options } from 'tsup';
import { packageBuild } from '../../tsup.shared.js';

const config: Options = packageBuild();
export default config;
