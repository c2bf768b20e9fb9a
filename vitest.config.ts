import { defineConfig } from 'vitest/config';

// Two projects: `unit` (no I/O, parallel) and `integration` (real servers started by
// scripts/test.sh or the harness; one file at a time so tests never fight over ports).
export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['**/src/**/*.test.ts', '{app,scripts,test,web/test}/**/*.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**', '**/*.int.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['**/src/**/*.int.test.ts', '{app,scripts,test,web/test}/**/*.int.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**'],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 120_000,
          globalSetup: ['test/integration-setup.ts'],
        },
      },
    ],
  },
});
