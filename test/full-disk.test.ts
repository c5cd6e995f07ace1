/**
 * A full and a read-only disk, for real: the broker's data directory on a tmpfs of 4 MiB (mounting
 * needs root, as in this project's CI; elsewhere the tests are skipped and say why).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createBroker, LevelStore, RejectedError } from '../src/index.js'
import { consumer, onCleanup, producer, sleep, tempDir, until } from './helpers.js'

function tryMount (size = '4m'): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'p2pmq-tmpfs-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' })
    return dir
  } catch {
    rmSync(dir, { recursive: true, force: true })
    return undefined
  }
}

/** A fresh tmpfs (4 MiB), unmounted after the test. */
function tmpfs (size?: string): string {
  const dir = tryMount(size) as string
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

/** Fills the file system of `dir` with files, leaving less than one message of room. */
function fill (dir: string): void {
  let i = 0
  try {
    for (;;) writeFileSync(join(dir, `filler-${i++}`), new Uint8Array(256 * 1024))
  } catch {}
  try {
    for (;;) writeFileSync(join(dir, `filler-${i++}`), new Uint8Array(1024))
  } catch {}
}

/** Removes what `fill` wrote. */
function free (dir: string): void {
  for (const name of readdirSync(dir)) {
    if (name.startsWith('filler-')) rmSync(join(dir, name))
  }
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

    fill(dir)

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

  it('a full one: transient messages need no disk, so sends and transient publishes are still taken and answered', async () => {
    const dir = tmpfs()
    const home = await tempDir()
    const node = await createBroker({ home, dataDir: join(dir, 'broker') })
    onCleanup(async () => { await node.stop() })
    const ref = { address: node.getMultiaddrs()[0].toString(), home }
    const c = await consumer(ref)
    await c.subscribe('rpc', (m) => `done ${m.payload as string}`)
    const p = await producer(ref)
    expect(await p.send('rpc', 'before')).toBe('done before')

    fill(dir)

    await expect(p.publish('rpc', new Uint8Array(64 * 1024))).rejects.toThrow(/could not store the message/)
    for (let i = 0; i < 10; i++) expect(await p.send('rpc', `s${i}`)).toBe(`done s${i}`)
    await p.publish('rpc', 'transient publish', { transient: true })
    await expect(p.send('rpc', 'durable send', { transient: false })).rejects.toThrow(/could not store the message/)
  })

  it('a full one with a paged backlog: consumers drain it all, publishes resume once there is room, stop is prompt', async () => {
    const dir = tmpfs('16m')
    const home = await tempDir()
    const dataDir = join(dir, 'broker')
    let node = await createBroker({ home, dataDir, pageSize: 100, webrtc: true })
    onCleanup(async () => { await node.stop() })
    const ref = { address: node.peerId.toString(), home }
    const p = await producer(ref)
    const backlog = 3000
    const payload = (i: number): string => `backlog ${i} `.padEnd(200, '.')
    await Promise.all(Array.from({ length: backlog }, async (_, i) => { await p.publish('disk', payload(i)) }))
    // Mostly paged out: a page (100) in memory, the rest only on disk.
    expect(node.services.mq.stats().queues.find((q) => q.command === 'disk')?.depth).toBe(backlog)

    // A send stored before the disk fills, answered while it is full.
    let answer: unknown
    const asked = p.send('ask', 'question', { timeout: 60_000, transient: false }).then((a) => { answer = a })
    await until(() => node.services.mq.stats().messages === backlog + 1, 5000, 'the send stored')
    fill(dir)
    const refused = await Promise.allSettled([1, 2, 3].map(async (n) => { await p.publish('disk', `while full ${n}`.padEnd(64 * 1024, '.')) }))
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(RejectedError)
    // Known to fail now: refused at once, not taken.
    await expect(p.publish('disk', 'still full')).rejects.toThrow(/could not store the message/)

    // A consumer drains the whole backlog, paged messages too, though no ack can be written.
    const got = new Set<string>()
    const c = await consumer(ref)
    await c.subscribe('disk', (m) => { got.add(m.payload as string) })
    await until(() => [...Array(backlog).keys()].every((i) => got.has(payload(i))), 20_000, `the backlog (got ${got.size} of ${backlog})`)
    await expect(p.publish('disk', 'full still')).rejects.toThrow(/could not store the message/)
    // Its answer waits until the completion is on disk.
    await c.subscribe('ask', () => 'the answer')
    await sleep(500)
    expect(answer).toBeUndefined()

    // Room again: the broker writes by itself, no restart, and confirms publishes again.
    free(dir)
    const resumed = Date.now()
    for (;;) {
      try {
        await p.publish('disk', 'after')
        break
      } catch (err) {
        expect(err).toBeInstanceOf(RejectedError)
        if (Date.now() - resumed > 10_000) throw new Error('publishes were still refused 10 s after the disk had room')
        await sleep(200)
      }
    }
    await Promise.all(Array.from({ length: 100 }, async (_, i) => { await p.publish('disk', `after ${i}`) }))
    await until(() => got.has('after 99'), 10_000, 'the messages published after')
    await asked
    expect(answer).toBe('the answer')
    await until(() => node.services.mq.stats().messages === 0, 5000, 'every message acked')

    const stopping = Date.now()
    await node.stop()
    expect(Date.now() - stopping).toBeLessThan(3000)

    // The acks made while the disk was full were stored once it had room: nothing comes back.
    node = await createBroker({ home, dataDir, pageSize: 100, webrtc: true })
    expect(node.services.mq.stats().messages).toBe(0)
  }, 90_000)

  it('a full one: a broker stops promptly while its writes fail, and loses nothing', async () => {
    const dir = tmpfs()
    const home = await tempDir()
    const dataDir = join(dir, 'broker')
    // With WebRTC, libp2p's peer store is on the same disk (and stopping writes to it).
    let node = await createBroker({ home, dataDir, webrtc: true })
    onCleanup(async () => { await node.stop() })
    const ref = { address: node.peerId.toString(), home }
    const p = await producer(ref)
    await p.publish('disk', 'stored')
    const c = await consumer(ref)
    const got: unknown[] = []
    fill(dir)
    await expect(p.publish('disk', 'x'.repeat(64 * 1024))).rejects.toThrow(/could not store the message/)
    await c.subscribe('disk', (m) => { got.push(m.payload) }) // an ack that cannot be written
    await until(() => got.includes('stored'), 5000, 'the stored message')
    await sleep(300) // a few retries
    const stopping = Date.now()
    await node.stop()
    expect(Date.now() - stopping).toBeLessThan(3000)

    // Its ack never reached the disk: the message comes back (at least once), nothing is lost.
    free(dir)
    got.length = 0
    node = await createBroker({ home, dataDir, webrtc: true })
    await until(() => got.includes('stored'), 15_000, 'the message again after a restart')
  }, 60_000)

  it('LevelDB\'s sticky error (a compaction that found no room) is cleared: the store reopens once there is room', async () => {
    // About 5 MiB for the store: its first log fills at 4 MiB, and the table LevelDB then compacts
    // it into cannot fit. A failed compaction makes LevelDB refuse every later write.
    const dir = tmpfs('16m')
    writeFileSync(join(dir, 'filler-reserve'), new Uint8Array(11 * 1024 * 1024))
    const store = new LevelStore(join(dir, 'store'))
    await store.open()
    onCleanup(async () => { await store.close().catch(() => {}) })
    const value = new Uint8Array(10_000).map(() => Math.floor(Math.random() * 256)) // incompressible
    const key = (n: number): Uint8Array => new TextEncoder().encode(`k${String(n).padStart(6, '0')}`)
    let n = 0
    let error: Error | undefined
    for (; n < 5000 && error == null; n++) {
      await store.write([{ type: 'put', key: key(n), value }]).catch((err: Error) => { error = err })
    }
    expect(error?.message).toMatch(/No space left on device/)
    await sleep(500) // the compaction in the background fails too
    free(dir)
    // Room again: written (LevelDB alone would refuse every write until reopened).
    await store.write([{ type: 'put', key: key(n), value }])
    let count = 0
    for await (const key of store.keys(new TextEncoder().encode('k'))) if (key.byteLength > 0) count++
    expect(count).toBeGreaterThan(100)
  }, 60_000)
})
