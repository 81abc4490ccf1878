// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Layers (docs/architecture.md): imports point down, never up. ESLint's own `no-restricted-imports` states
 * each layer's forbidden neighbours; a handful of folder rules needs no plugin. Each layer is one folder
 * deep in shared/, so a neighbour is always `../<folder>/...`, and anything above shared/ is `../../...`.
 */
const ABOVE_SHARED = '^\\.\\./\\.\\./(functions|scripts|emulator|bench|test)/';
/**
 * @param {string} files
 * @param {string[]} forbidden
 */
function layer(files, forbidden) {
  const patterns = [
    { regex: ABOVE_SHARED, message: 'shared/ never imports the adapters, CLI, emulator, benches or tests.' },
  ];
  if (forbidden.length > 0) {
    patterns.push({
      regex: `^(${forbidden.join('|')})`,
      message: 'a layer imports only the layers below it (docs/architecture.md).',
    });
  }
  return { files: [files], rules: { 'no-restricted-imports': ['error', { patterns }] } };
}
const UPPER = ['\\.\\./run/', '\\.\\./notify/', '\\.\\./platform/(runtime|delivery)\\.js'];

export default tseslint.config(
  { ignores: ['build/', 'node_modules/', 'coverage/', '.bench-tmp/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', 'bin/*.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // The Functions Framework exits the instance on an unhandled rejection: no promise may float.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  layer('shared/**/*.ts', []),
  layer('shared/platform/{log,duration,hash,google-api}.ts', [
    '\\.\\./',
    '\\./(config|runtime|delivery|first-deliveries)\\.js',
  ]),
  layer('shared/cloud-tasks/*.ts', [
    '\\.\\./(triggers|control|run|notify)/',
    '\\.\\./platform/(config|runtime|delivery|first-deliveries)\\.js',
  ]),
  layer('shared/{triggers,control}/*.ts', UPPER),
  layer('shared/run/*.ts', ['\\.\\./notify/', '\\.\\./platform/(runtime|delivery)\\.js']),
  layer('shared/notify/*.ts', ['\\.\\./platform/(runtime|delivery)\\.js']),
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
