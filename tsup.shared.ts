import type { Options } from 'tsup';

/**
 * The one build config every package shares: ESM-only, Node 22, with `.d.ts`.
 * A package's `tsup.config.ts` is two lines that call this.
 */
export function packageBuild(overrides: Options = {}): Options {
  return {
    entry: ['src/index.ts'],
    format: ['esm'],
    target: 'node22',
    platform: 'node',
    dts: true,
    clean: true,
    sourcemap: true,
    splitting: false,
    treeshake: true,
    ...overrides,
  };
}
