import type { Options } from 'tsup';
import { packageBuild } from '../../tsup.shared.js';

// Two entries: the Fastify bindings live at `./fastify`, so the main entry's types do not
// import the optional peer. Splitting keeps one copy of the shared modules (error classes,
// request context) for both entries.
const config: Options = packageBuild({
  entry: ['src/index.ts', 'src/fastify.ts'],
  splitting: true,
});
export default config;
