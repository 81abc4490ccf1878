import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    env: { METADATA_SERVER_DETECTION: 'none', LOG_LEVEL: 'silent' },
    // CI also writes a JSON summary, from which .ci/run prints the plain "N passed, N failed" line.
    reporters: process.env.CI
      ? ['default', ['json', { outputFile: 'build/test-results.json' }]]
      : ['default'],
  },
});
