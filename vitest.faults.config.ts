import { defineConfig } from 'vitest/config';

// npm run test:faults: property-based and fault-storm tests (issue 7's suite, growing).
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
