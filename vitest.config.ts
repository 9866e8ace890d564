import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // End-to-end tests start real gateway processes; give them room on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // CI also writes a JSON report, from which .ci/run prints a one-line summary.
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: '.vitest-report.json' },
  },
});
