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
        projectService: {
          allowDefaultProject: ['*.js', '*.ts', 'scripts/*.mjs', 'scripts/*/*.mjs'],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
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
