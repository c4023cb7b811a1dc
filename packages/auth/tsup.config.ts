import type { Options } from 'tsup';
import { packageBuild } from '../../tsup.shared.js';

// Three entries: the Fastify bindings live at `./fastify`, so the main entry's types do not
// import the optional peer; the Connect-style middleware (Express, node:http) at `./node`.
// Splitting keeps one copy of the shared modules (error classes, request context, the
// credential checks) for all of them.
const config: Options = packageBuild({
  entry: ['src/index.ts', 'src/fastify.ts', 'src/node.ts'],
  splitting: true,
});
export default config;
