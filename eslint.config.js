// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const processEnvBan = {
  object: 'process',
  property: 'env',
  message:
    'Only @flowforge/config reads process.env: take typed options, or use settings from @flowforge/config.',
};

export default tseslint.config(
  {
    // tsup writes a transient *.bundled_*.mjs beside its config while a build runs
    // (lint runs alongside it): a file that vanishes mid-lint is not source.
    ignores: [
      '**/dist/**',
      '**/node_modules/**',
      '.tools/**',
      '**/.turbo/**',
      'reports/**',
      '**/*.config.bundled_*.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: {
        // Each TypeScript file belongs to the nearest tsconfig.json (a package's; scripts/tsconfig.json
        // and bench/tsconfig.json for the repo's tooling); only the root's config files have none.
        projectService: {
          allowDefaultProject: ['*.js', '*.ts'],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test's test() and describe() return a promise that the runner itself awaits.
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', processEnvBan],
    },
  },
  {
    // The one package that reads the environment, and the repo's own tooling.
    files: ['packages/config/src/**', 'scripts/**', '*.config.ts', '*.config.js'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
