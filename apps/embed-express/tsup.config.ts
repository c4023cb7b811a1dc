import type { Options } from 'tsup';
import { packageBuild } from '../../tsup.shared.js';

// An app, not a library: an entry point to run, no type declarations.
const config: Options = packageBuild({ entry: { main: 'src/main.ts' }, dts: false });
export default config;
