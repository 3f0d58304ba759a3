import { defineConfig } from 'vitest/config';

// npm run test:faults: the fault storm, property-based parser tests and the secret scan (issue 7).
// Each file reports its figures; test/faults/report.ts prints them and, with UPDATE_RELIABILITY=1,
// writes docs/reliability.md.
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/faults/report.ts'],
    testTimeout: 240_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
