import type { Options } from 'tsup';
import { packageBuild } from '../../tsup.shared.js';

// Built rather than served as .ts: the apps' tests type-check it with `.js` relative imports.
const config: Options = packageBuild();
export default config;
