import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests open real sockets and child processes; two cores, so keep parallelism modest.
    maxWorkers: 2,
    setupFiles: ['./src/polyfill.ts']
  }
})
