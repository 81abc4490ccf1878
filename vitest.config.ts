import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // Two files at a time, whatever the machine: most suites wait on real servers and timers more than they
    // compute, so a second worker halves the wall time on two cores, and a fixed number keeps timings alike
    // on every machine (vitest's default is one worker fewer than the cores).
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    env: { METADATA_SERVER_DETECTION: 'none', LOG_LEVEL: 'silent' },
    // CI also writes a JSON summary, from which .ci/run prints the plain "N passed, N failed" line.
    reporters: process.env.CI
      ? ['default', ['json', { outputFile: 'build/test-results.json' }]]
      : ['default'],
  },
});
