/** The broker's store across restarts and crashes: nothing confirmed is lost, nothing finished comes back. */
import { describe, expect, it } from 'vitest'
import { killGroup, startBroker as startBrokerProc } from './cli-helpers.js'
import { consumer, onCleanup, producer, restartableBroker, sleep, tempDir, until } from './helpers.js'
import type { AnsweredResult } from '../src/index.js'

describe('durability', () => {
  it('keeps unfinished messages across a restart, and drops what a producer resends of them', async () => {
    const broker = await restartableBroker()
    const p = await producer(broker.ref, { name: 'p1' })
    const sends = [1, 2, 3].map(async (i) => await p.send('work', `send ${i}`, { timeout: 20_000, transient: false }))
    await p.publish('work', 'publish 1')
    await p.publish('work', 'publish 2')
    await until(() => broker.node.services.mq.stats().messages === 5, 5000, '5 messages at the broker')

    await broker.restart()
    // The producer reconnects and resends its 3 unanswered sends; the broker knows their seqs.
    await p.ready() // reconnected
    await sleep(300)
    expect(broker.node.services.mq.stats().messages).toBe(5)

    const c = await consumer(broker.ref)
    const got: string[] = []
    await c.subscribe('work', (m) => { got.push(m.payload as string); return `done ${m.payload as string}` })
    expect(await Promise.all(sends)).toEqual(['done send 1', 'done send 2', 'done send 3'])
    await until(() => got.length >= 5, 5000, 'all 5 handled')
    await sleep(200)
    expect(got.sort()).toEqual(['publish 1', 'publish 2', 'send 1', 'send 2', 'send 3'])
  })

  it('drops a message whose producer-supplied id it saw for its command within the dedup window, also after a restart', async () => {
    const broker = await restartableBroker()
    const p = await producer(broker.ref, { name: 'dedup' })
    await p.publish('orders', 'first', { id: 'order-1' })
    await p.publish('orders', 'again', { id: 'order-1' })
    await broker.restart()
    await p.publish('orders', 'after the restart', { id: 'order-1' })
    // From any producer; another command's ids are its own.
    const other = await producer(broker.ref)
    await other.publish('orders', 'other producer', { id: 'order-1' })
    await other.publish('invoices', 'other command', { id: 'order-1' })
    const got: string[] = []
    const c = await consumer(broker.ref)
    await c.subscribe(['orders', 'invoices'], (m) => { got.push(m.payload as string) })
    await until(() => got.length === 2, 5000, 'the two distinct messages')
    await sleep(200)
    expect(got.sort()).toEqual(['first', 'other command'])
  })

  it('pages a backlog larger than its page: all of it delivered in order, also after a restart; purge clears the disk too', async () => {
    const broker = await restartableBroker({ pageSize: 20 })
    // The group is bound first, so the messages go to its queues (which page), not to the unrouted.
    const early = await consumer(broker.ref)
    await early.subscribe(['backlog', 'doomed'], () => {})
    await early.stop()
    const p = await producer(broker.ref)
    const ids: string[] = []
    for (let i = 0; i < 300; i++) ids.push(await p.publish('backlog', i))
    for (let i = 0; i < 50; i++) await p.publish('doomed', i)
    await broker.restart()
    const depth = (command: string): number => broker.node.services.mq.stats().queues.find((q) => q.command === command)?.depth ?? 0
    expect(depth('backlog')).toBe(300)
    expect(depth('doomed')).toBe(50)
    // Listed in order, those in memory (the first page) and those on disk after them.
    const listed = await broker.node.services.mq.messages({ command: 'backlog', limit: 1000 })
    expect(listed.map((m) => m.id)).toEqual(ids)
    expect(broker.node.services.mq.purge('doomed')).toBe(50)
    await p.publish('doomed', 'published right after the purge') // must survive the purge's clear

    const got: string[] = []
    const c = await consumer(broker.ref)
    await c.subscribe('backlog', (m) => { got.push(m.id) }, { prefetch: 7 })
    await until(() => got.length >= 300, 10_000, 'the whole backlog')
    await sleep(100)
    expect(got).toEqual(ids)
    await broker.restart()
    expect(depth('backlog')).toBe(0)
    expect(depth('doomed')).toBe(1)
  })

  it('pages unrouted and delayed messages through a restart, and delivers them all, in order, to a consumer that subscribes later', async () => {
    const broker = await restartableBroker({ pageSize: 1_000, pageBytes: 2_000 }) // 20 messages of 100 bytes
    const p = await producer(broker.ref)
    const t0 = Date.now()
    // Due in the reverse order of publishing, 100 ms apart (the broker's due time is the producer's
    // plus the time the publish took to reach it, which varies on a busy machine).
    const due = (i: number): number => t0 + 5_000 - i * 100
    const body = (i: number): string => `${i}`.padStart(100, '0')
    const published: Array<Promise<string>> = []
    for (let i = 0; i < 300; i++) published.push(p.publish('orphans', body(i)))
    for (let i = 0; i < 40; i++) published.push(p.publish('timers', body(i), { at: due(i) }))
    await Promise.all(published)
    const mq = (): any => broker.node.services.mq
    // Waiting messages in memory: a page of each unrouted queue, and at most two of the schedule
    // (on a slow machine, some timers may have come due and joined their queue already).
    const inMemory = (): number => [...mq().engine.live()].filter((x: { delivery?: unknown }) => x.delivery == null).length
    expect(inMemory()).toBeLessThanOrEqual(20 + 20 + 40)
    await broker.restart()
    expect(inMemory()).toBeLessThanOrEqual(20 + 20 + 20)
    expect(mq().stats().queues.map((q: { command: string, group: string, depth: number, delayed: number }) => [q.command, q.group, q.depth + q.delayed]))
      .toEqual([['orphans', '', 300], ['timers', '', 40]])

    const got = new Map<string, Array<{ i: number, at: number }>>([['orphans', []], ['timers', []]])
    const c = await consumer(broker.ref)
    await c.subscribe(['orphans', 'timers'], (m) => { got.get(m.command)?.push({ i: Number(m.payload), at: Date.now() }) }, { prefetch: 10 })
    await until(() => (got.get('orphans')?.length ?? 0) + (got.get('timers')?.length ?? 0) >= 340, 20_000, 'every message')
    await sleep(100)
    expect(got.get('orphans')?.map((x) => x.i)).toEqual(Array.from({ length: 300 }, (_, i) => i))
    const timers = got.get('timers') ?? []
    expect(timers.map((x) => x.i)).toEqual(Array.from({ length: 40 }, (_, i) => 39 - i))
    for (const t of timers) expect(t.at).toBeGreaterThanOrEqual(due(t.i) - 5)
    await broker.restart()
    expect(mq().stats().messages).toBe(0)
  })

  it('delivers delayed messages that came due while the broker was down, pages of them past the first', async () => {
    const broker = await restartableBroker({ pageSize: 20 })
    const early = await consumer(broker.ref)
    await early.subscribe('soon', () => {})
    await early.stop()
    const p = await producer(broker.ref)
    // 1 kB each: the store is read in several batches at the start (a timer could fire between them).
    await Promise.all(Array.from({ length: 100 }, async (_, i) => await p.publish('soon', `${i}`.padStart(1000, '0'), { delay: 200 })))
    await broker.node.stop()
    await sleep(300)
    await broker.restart()
    const got: number[] = []
    const c = await consumer(broker.ref)
    await c.subscribe('soon', (m) => { got.push(Number(m.payload)) })
    await until(() => got.length >= 100, 10_000, 'all 100 delayed messages')
    expect(new Set(got).size).toBe(100)
  })

  it('keeps dead letters and failed records across a restart, and replays them after it', async () => {
    const broker = await restartableBroker({ maxAttempts: 1 })
    let accept = false
    const handled: string[] = []
    const c = await consumer(broker.ref)
    await c.subscribe('jobs', (m) => {
      if (!accept) throw new Error('down')
      handled.push(m.payload as string)
    })
    const p = await producer(broker.ref)
    await p.publish('jobs', 'important')
    await until(() => broker.node.services.mq.stats().queues.some((q) => q.command === 'jobs.dlq' && q.depth === 1), 5000, 'the dead letter')
    expect(broker.node.services.mq.stats().queues.find((q) => q.command === 'jobs')?.deadLetters).toBe(1)
    await broker.restart()
    expect((await broker.node.services.mq.messages({ state: 'error' })).map((m) => [m.command, m.lastError])).toEqual([['jobs', 'down']])
    expect(broker.node.services.mq.stats().queues.find((q) => q.command === 'jobs.dlq')?.depth).toBe(1)
    accept = true
    expect(broker.node.services.mq.replayDeadLetters('jobs')).toBe(1)
    await until(() => handled.length === 1, 10_000, 'the replayed message')
    expect(handled).toEqual(['important'])
  })

  it('keeps every group\'s copy of a fanned-out message across a restart', async () => {
    const broker = await restartableBroker()
    for (const group of ['billing', 'audit']) {
      const c = await consumer(broker.ref)
      await c.subscribe('orders', () => {}, { group })
      await c.stop()
    }
    const p = await producer(broker.ref)
    await p.publish('orders', 'one order')
    await broker.restart()
    const got: string[] = []
    for (const group of ['billing', 'audit']) {
      const c = await consumer(broker.ref)
      await c.subscribe('orders', (m) => { got.push(`${group}:${m.payload as string}`) }, { group })
    }
    await until(() => got.length === 2, 5000, 'both copies')
    expect(got.sort()).toEqual(['audit:one order', 'billing:one order'])
  })

  it('does not remember the id of a message it refused, so a retry with that id is taken', async () => {
    const broker = await restartableBroker({ maxMessages: 1 })
    const p = await producer(broker.ref)
    await p.publish('jobs', 'first', { id: 'a' })
    await expect(p.publish('jobs', 'second', { id: 'b' })).rejects.toThrow(/broker is full/)
    expect(broker.node.services.mq.purge('jobs')).toBe(1)
    await p.publish('jobs', 'second, again', { id: 'b' })
    expect(broker.node.services.mq.stats().messages).toBe(1)
  })

  it('keeps the answer to a durable send for a disconnected producer across a restart (a transient send\'s, in memory only)', async () => {
    const broker = await restartableBroker()
    const first = await producer(broker.ref, { name: 'away' })
    const lost = first.send('slow', 'question', { timeout: 20_000, transient: false }).catch(() => 'stopped')
    const lostToo = first.send('slow', 'transient', { timeout: 20_000 }).catch(() => 'stopped')
    await until(() => broker.node.services.mq.stats().messages === 2, 5000, 'the messages at the broker')
    await first.stop()
    expect([await lost, await lostToo]).toEqual(['stopped', 'stopped'])
    const c = await consumer(broker.ref)
    await c.subscribe('slow', (m) => `answer to ${m.payload as string}`)
    await until(() => broker.node.services.mq.stats().keptAnswers === 2, 5000, 'the kept answers')

    await broker.restart()
    expect(broker.node.services.mq.stats().keptAnswers).toBe(1)
    const results: Array<AnsweredResult & { error?: string }> = []
    const again = await producer(broker.ref, { name: 'away' })
    again.events.addEventListener('result', (e) => { results.push(e.detail) })
    await until(() => results.length === 1, 10_000, 'the kept answer to arrive')
    expect(results[0].payload).toBe('answer to question')
    expect(broker.node.services.mq.stats().keptAnswers).toBe(0)
  })

  it('loses no confirmed message when the broker is killed with -9 again and again', async () => {
    const home = await tempDir()
    // A small page, so the backlog is mostly on disk when the broker dies.
    let broker = await startBrokerProc(home, ['-page-size=50'])
    const ref = { address: broker.peerId, home }
    const handled = new Map<string, number>()
    const c = await consumer(ref)
    let running = true
    // Slow while the broker is being killed, so a backlog of confirmed messages is there to lose.
    await c.subscribe('crash', async (m) => {
      if (running) await sleep(5)
      handled.set(m.id, (handled.get(m.id) ?? 0) + 1)
    }, { prefetch: 5 })
    const p = await producer(ref, { window: 200 })
    const confirmed = new Set<string>()
    let n = 0
    const publishing = (async () => {
      const inFlight = new Set<Promise<void>>()
      while (running) {
        const id = `m${n++}`
        const done = p.publish('crash', id, { id }).then(() => { confirmed.add(id) }, () => {})
        inFlight.add(done)
        void done.finally(() => inFlight.delete(done))
        if (inFlight.size >= 200) await Promise.race(inFlight)
      }
      await Promise.allSettled(inFlight)
    })()
    onCleanup(async () => { running = false; await p.stop() })

    for (let kill = 0; kill < 3; kill++) {
      const confirmedBefore = confirmed.size
      await until(() => confirmed.size > confirmedBefore + 200, 15_000, 'publishes to be confirmed')
      await sleep(Math.random() * 300)
      killGroup(broker.proc.child)
      await broker.proc.exited
      broker = await startBrokerProc(home, ['-page-size=50'])
    }
    await until(() => confirmed.size > 600, 15_000, 'publishes after the last restart')
    running = false
    await p.stop()
    await publishing

    await until(() => [...confirmed].every((id) => handled.has(id)), 20_000, 'every confirmed message to be handled')
    const duplicates = [...handled.values()].filter((count) => count > 1).length
    console.log(`crash test: ${n} published, ${confirmed.size} confirmed, all handled; ${duplicates} handled more than once`)
    expect(confirmed.size).toBeGreaterThan(600)
  }, 120_000) // its own waits add up to 80 s; under the whole suite in CI it once took over 30
})
