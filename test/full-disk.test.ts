/**
 * A full and a read-only disk, for real: the broker's data directory on a tmpfs of 4 MiB (mounting
 * needs root, as in this project's CI; elsewhere the tests are skipped and say why).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createBroker, RejectedError } from '../src/index.js'
import { consumer, onCleanup, producer, tempDir, until } from './helpers.js'

function tryMount (): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'p2pmq-tmpfs-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { stdio: 'ignore' })
    return dir
  } catch {
    rmSync(dir, { recursive: true, force: true })
    return undefined
  }
}

/** A fresh 4 MiB tmpfs, unmounted after the test. */
function tmpfs (): string {
  const dir = tryMount() as string
  onCleanup(() => {
    execFileSync('umount', ['-l', dir])
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

const probe = tryMount()
if (probe != null) {
  execFileSync('umount', [probe])
  rmSync(probe, { recursive: true, force: true })
} else {
  console.warn('full and read-only disk tests skipped: cannot mount a tmpfs here (needs root)')
}

describe.runIf(probe != null)('a full or read-only disk', () => {
  it('a read-only one: the broker does not start, and says why', async () => {
    const dir = tmpfs()
    const home = await tempDir()
    const first = await createBroker({ home, dataDir: join(dir, 'broker') })
    await first.stop()
    await until(() => !existsSync(join(dir, 'broker', 'identity.lock')), 5000, 'the identity lock to go')
    execFileSync('mount', ['-o', 'remount,ro', dir])
    onCleanup(() => { execFileSync('mount', ['-o', 'remount,rw', dir]) })
    await expect(createBroker({ home, dataDir: join(dir, 'broker') })).rejects.toThrow(/read-only file system/)
  })

  it('a full one: clear rejects and no confirms, and the broker keeps serving what it has', async () => {
    const dir = tmpfs()
    const home = await tempDir()
    const node = await createBroker({ home, dataDir: join(dir, 'broker') })
    onCleanup(async () => { await node.stop() })
    const ref = { address: node.getMultiaddrs()[0].toString(), home }
    const p = await producer(ref)
    await p.publish('disk', 'stored before the disk filled')

    // Fill the disk, leaving less than one message.
    let i = 0
    try {
      for (;;) writeFileSync(join(dir, `filler-${i++}`), new Uint8Array(256 * 1024))
    } catch {}
    try {
      for (;;) writeFileSync(join(dir, `small-${i++}`), new Uint8Array(1024))
    } catch {}

    const big = new Uint8Array(64 * 1024)
    const results = await Promise.allSettled([1, 2, 3].map(async () => await p.publish('disk', big)))
    for (const r of results) {
      expect(r.status).toBe('rejected')
      const err = (r as PromiseRejectedResult).reason as Error
      expect(err).toBeInstanceOf(RejectedError)
      expect(err.message).toMatch(/could not store the message/)
    }
    // Still serving: stats answer, and the stored message is delivered.
    expect(node.services.mq.stats().queues.find((q) => q.command === 'disk')).toBeDefined()
    const got: unknown[] = []
    const c = await consumer(ref)
    await c.subscribe('disk', (m) => { got.push(m.payload) })
    await until(() => got.includes('stored before the disk filled'), 5000, 'the stored message')
  })
})
