// Type-aware linting: typescript-eslint's `recommendedTypeChecked` on every TypeScript file, with the
// promise rules as hard errors (a promise nobody awaits or catches is a crash waiting for a blip).
// `npm run lint` runs this over src, test, bench and scripts; `npm run format` is Prettier's job.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  globalIgnores(['src/generated/', 'node_modules/', 'bench/results/']),

  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      // The project service reads tsconfig.json, so lint sees the same types as `npm run typecheck`.
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Already in the preset; named here so no later preset or override can quietly weaken them.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // `return promise` inside try/catch skips the catch when it rejects: require the await there.
      '@typescript-eslint/return-await': ['error', 'error-handling-correctness-only'],
      // A leading underscore marks a deliberately unused binding: a field dropped by destructuring
      // (`const { hashedPassword: _hash, ...user } = found`), a skipped parameter, `for (const _ of …)`.
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },

  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests read JSON bodies (`await res.json()`, graphql-ws payloads) as `any` and let `expect`
      // check their shape; typing every response only to satisfy these rules would be noise. The code
      // under test (src) keeps them.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Tests keep a service's original method to monkey-patch it and put it back afterwards.
      '@typescript-eslint/unbound-method': 'off',
      // Test stubs are `async` to match the promise-returning signature they stand in for.
      '@typescript-eslint/require-await': 'off',
    },
  },
);
