import { defineConfig } from 'vitest/config'

/**
 * Tests that need more than Node: a browser (Chromium), root (mounts, PID namespaces) or the npm
 * registry (the packed install). The rest is the unit tier (`npm run test:unit`), which CI also
 * runs on a second Node version.
 */
const SYSTEM = [
  'test/browser.test.ts',
  'test/page-security.test.ts',
  'test/full-disk.test.ts',
  'test/cli-signals.test.ts',
  'test/identity-lock.test.ts',
  'test/package.test.ts'
]

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests open real sockets and child processes; two cores, so keep parallelism modest.
    maxWorkers: 2,
    setupFiles: ['./src/polyfill.ts'],
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: SYSTEM } },
      { extends: true, test: { name: 'system', include: SYSTEM } }
    ]
  }
})
