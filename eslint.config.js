// Lint and format: neostandard (standard style on eslint 9, with typescript-eslint), plus the
// type-aware rules of ts-standard that the code was written to. `npm run lint`; `npm run lint:fix`.
import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'web/dist/**', 'coverage/**'] }),
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { project: ['./tsconfig.test.json', './web/tsconfig.json'], tsconfigRootDir: import.meta.dirname }
    },
    rules: {
      // `void promise` marks a promise deliberately not awaited (ts-standard's convention).
      'no-void': ['error', { allowAsStatement: true }],
      // Loops here wait on a flag that a timer or a signal handler clears across an `await`,
      // which this rule cannot see (every report it made was such a loop).
      'no-unmodified-loop-condition': 'off',
      '@typescript-eslint/explicit-function-return-type': ['error', { allowExpressions: true, allowHigherOrderFunctions: true, allowTypedFunctionExpressions: true, allowDirectConstAssertionInArrowFunctions: true }],
      '@typescript-eslint/strict-boolean-expressions': ['error', { allowString: false, allowNumber: false, allowNullableObject: false, allowNullableBoolean: false, allowNullableString: false, allowNullableNumber: false, allowAny: false }],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/prefer-nullish-coalescing': ['error', { ignoreConditionalTests: false, ignoreMixedLogicalExpressions: false }],
      '@typescript-eslint/prefer-optional-chain': 'error',
      '@typescript-eslint/return-await': ['error', 'always'],
      // `typeof import('…')` types the optional peer dependency (@libp2p/webrtc) loaded lazily.
      // A `let` that a closure reads before its one assignment cannot be a const.
      'prefer-const': ['error', { destructuring: 'all', ignoreReadBeforeAssign: true }],
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }]
    }
  },
  {
    // Test harnesses (setup functions returning what a test drives) are typed by inference; the
    // tests are type-checked all the same.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/explicit-function-return-type': 'off' }
  }
]
