import { defineConfig, type ViteUserConfig } from 'vitest/config';

// One-shot run of every package's suite from the root (`pnpm vitest`); CI runs
// them per package through turbo so unchanged packages come from the cache.
const config: ViteUserConfig = defineConfig({
  test: { projects: ['packages/*', 'apps/*', 'testing/*'] },
});
export default config;
