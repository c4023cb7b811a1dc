import type { ViteUserConfig } from 'vitest/config';

/**
 * The vitest config every workspace package shares: unit tests beside the code
 * (`src/**\/*.test.ts`), integration tests in `test/` (`*.int.test.ts`).
 */
export function packageTest(name: string, overrides: ViteUserConfig['test'] = {}): ViteUserConfig {
  return {
    test: {
      name,
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      environment: 'node',
      testTimeout: 20_000,
      hookTimeout: 60_000,
      ...overrides,
    },
  };
}
