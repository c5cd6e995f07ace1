import { defineConfig } from 'vitest/config'

/**
 * Three tiers, each a vitest project:
 * - unit: the pure parts (engine, codec, topics, admin handlers) and the store on disk; seconds.
 * - integration: a real libp2p network on 127.0.0.1, the CLI as child processes; minutes.
 * - system: what needs more than Node: a browser (Chromium), root (mounts, PID and network
 *   namespaces) or the npm registry (the packed install).
 * `npm test` runs all three; CI also runs unit and integration on a second Node version.
 */
const UNIT = [
  'test/acl.test.ts',
  'test/admin-handlers.test.ts',
  'test/codec.test.ts',
  'test/deque.test.ts',
  'test/engine.test.ts',
  'test/gateway-tokens.test.ts',
  'test/journal.test.ts',
  'test/mailbox.test.ts',
  'test/options.test.ts',
  'test/peer-limits.test.ts',
  'test/recent-answers.test.ts',
  'test/relay-address.test.ts',
  'test/store.test.ts',
  'test/topic.test.ts'
]
const SYSTEM = [
  'test/browser.test.ts',
  'test/browser-relay.test.ts',
  'test/browser-acl.test.ts',
  'test/dashboard.test.ts',
  'test/page-security.test.ts',
  'test/full-disk.test.ts',
  'test/cli-signals.test.ts',
  'test/identity-lock.test.ts',
  'test/nat.test.ts',
  'test/nat-webrtc.test.ts',
  'test/nat-browser.test.ts',
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
      { extends: true, test: { name: 'unit', include: UNIT } },
      { extends: true, test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: [...UNIT, ...SYSTEM] } },
      { extends: true, test: { name: 'system', include: SYSTEM } }
    ]
  }
})
