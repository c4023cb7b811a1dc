import type { Options } from 'tsup';
import { packageBuild } from '../../tsup.shared.js';

// Three entries: the core is framework-neutral; `./fastify` and `./node` (node:http and
// Express) are thin bindings, so neither framework's types reach the core's declarations.
// Splitting keeps one copy of the shared modules (the error class) for all three.
const config: Options = packageBuild({
  entry: ['src/index.ts', 'src/fastify.ts', 'src/node.ts'],
  splitting: true,
});
export default config;
