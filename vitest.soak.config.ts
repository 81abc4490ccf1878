import { defineConfig } from 'vitest/config';

/** The crash soaks (test/soak), apart from `npm test`: `npm run soak`. One round at a time. */
export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.ts'],
    pool: 'forks',
    maxWorkers: 1,
    env: { METADATA_SERVER_DETECTION: 'none', LOG_LEVEL: 'silent' },
  },
});
