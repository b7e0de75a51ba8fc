// ESLint configuration (flat config, ESLint 9): typescript-eslint's type-aware recommended rules
// for all TypeScript in the repository, ESLint's recommended rules for the few plain JavaScript
// files. Formatting is Prettier's job (`prettier --check .` in `npm run lint`), so no stylistic
// rules are enabled here. Every rule tuned below says why.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  // Build output, dependencies and generated benchmark results are not written by hand.
  globalIgnores(['dist/', 'coverage/', 'bench/results/', 'statefn-data/', '.tmp/']),
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        // The project service finds each file's tsconfig.json, the way the editor does. The root
        // tsconfig.json includes every .ts file of the repository (product, tests, benchmarks,
        // scripts), so one TypeScript program serves them all, and a .ts file that no tsconfig
        // includes is an error rather than silently linted without types.
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      // A leading underscore marks a binding that is unused on purpose: a parameter an interface
      // requires, an element skipped in array destructuring, a caught error that is not needed.
      // Rest siblings let `const { a, ...rest } = o` drop `a` from a copy.
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'all',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrors: 'all',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
      // Numbers and booleans print unambiguously in messages and log lines; objects, null,
      // undefined and `unknown` still need an explicit conversion so that "[object Object]" and
      // "undefined" never reach a log line by accident.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // Floating promises hide errors and ordering bugs in an engine whose correctness depends on
      // ordering (checkpoints, acknowledgements). They stay errors; `void p` marks a deliberate
      // fire-and-forget, and a promise-returning callback passed where a void one is expected is
      // still reported by no-misused-promises.
      '@typescript-eslint/no-floating-promises': 'error',
      // The code compares with === and !== only; keep it that way (== null hides whether
      // undefined, null or both are meant).
      eqeqeq: ['error', 'always'],
    },
  },
  {
    // Plain JavaScript: the command line launcher, the tsx bootstrap for piscina's worker and the
    // JavaScript fixture services. They are not in tsconfig.json, so they get ESLint's untyped
    // recommended rules and Node's globals.
    files: ['**/*.js', '**/*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.node },
    },
    rules: {
      // The same convention for deliberately unused bindings as in TypeScript above.
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
    },
  },
);
