import { defineConfig } from 'vitest/config';

// npm run test:e2e: the exporter in demo mode scraped by a real Prometheus (Debian's package).
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
