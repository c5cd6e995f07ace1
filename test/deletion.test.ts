/**
 * Groups and queues can end (issue 8, item 9): deleting one group's queue of a command, deleting a
 * whole group, and a group's expiry once idle (RabbitMQ's x-expires), in the pure engine with an
 * injected clock and end to end (real libp2p, LevelDB, restarts).
 */
import { describe, expect, it } from 'vitest'
import { AdminError, SubscriptionError, createAdmin } from '../src/index.js'
import { QueueEngine, type EngineOptions } from '../src/broker/engine.js'
import type { QueuedMessage, Subscription } from '../src/broker/queue.js'
import { LevelStore } from '../src/store/level-store.js'
import type { StoreOp } from '../src/store/store.js'
import { consumer, onCleanup, producer, restartableBroker, sleep, tempDir, until, type BrokerRef } from './helpers.js'
import { pagedBroker } from './paged-broker.js'
import { persistence } from './persistence.js'

let nextId = 0
function msg (command: string, dueAt?: number): QueuedMessage {
  return { command, id: `m${nextId++}`, headers: undefined, kind: 1, payload: new Uint8Array([1]), producer: 'p', timestamp: 0, wantsAnswer: false, attempts: 0, dueAt }
}

function setup (options: Partial<EngineOptions> = {}) {
  let now = 1_000
  const delivered: Array<{ tag: number, owner: string, group: string }> = []
  const ended: Array<{ sub: Subscription<string>, reason: string }> = []
  const expiries: Array<[string, number]> = []
  const engine = new QueueEngine<string>({
    deliver: (d) => { delivered.push({ tag: d.tag, owner: d.sub.owner, group: d.queue.group }) },
    completed: () => {},
    failed: () => {},
    ended: (sub, reason) => { ended.push({ sub, reason }) }
  }, { visibilityTimeout: 60_000, maxAttempts: Infinity, maxMessages: 10_000, highWater: Infinity, clock: () => now, ...options },
  persistence({ groupExpiry: (group, ms) => { expiries.push([group, ms]) } }))
  return { engine, delivered, ended, expiries, advance: (ms: number) => { now += ms } }
}

const groupsOf = (engine: QueueEngine<string>): string[] => engine.stats().map((q) => `${q.command}@${q.group}`)

describe('deleting queues and groups (engine)', () => {
  it('deletes a queue with its waiting, delayed and in-flight messages; its consumers keep their subscription', () => {
    const t = setup()
    t.engine.subscribe('a', 1, 'g', ['jobs'], 2)
    for (let i = 0; i < 5; i++) t.engine.publish(msg('jobs'))
    t.engine.publish(msg('jobs', 60_000))
    expect(t.delivered).toHaveLength(2)
    expect(t.engine.size).toBe(6)
    expect(() => t.engine.deleteQueue('jobs', 'g')).toThrow(/has 1 consumer/)
    expect(t.engine.deleteQueue('jobs', 'nope')).toBeUndefined()

    const deleted = t.engine.deleteQueue('jobs', 'g', true)
    expect(deleted?.messages).toBe(6)
    expect(t.engine.size).toBe(0)
    expect(groupsOf(t.engine)).toEqual([])
    // A dropped delivery's settle does nothing; the consumer has its credit back.
    expect(t.engine.ack('a', t.delivered[0].tag)).toBe(false)
    t.engine.publish(msg('jobs'))
    t.engine.publish(msg('jobs'))
    expect(t.delivered).toHaveLength(4)
    expect(groupsOf(t.engine)).toEqual(['jobs@g'])
  })

  it('deletes a group: its bindings stop routing copies to it; a forced delete ends its subscriptions', () => {
    const t = setup()
    t.engine.subscribe('a', 1, 'busy', ['#'], 10)
    t.engine.bind('idle', '#')
    t.engine.publish(msg('x'))
    expect(groupsOf(t.engine)).toEqual(['x@busy', 'x@idle'])

    expect(t.engine.deleteGroup('idle')?.patterns).toEqual(['#'])
    t.engine.publish(msg('y'))
    expect(groupsOf(t.engine)).toEqual(['x@busy', 'y@busy'])

    expect(() => t.engine.deleteGroup('busy')).toThrow(/has 1 subscription/)
    const deleted = t.engine.deleteGroup('busy', true)
    expect(deleted?.queues.map((q) => q.name)).toEqual(['x@busy', 'y@busy'])
    expect(deleted?.messages).toBe(2)
    expect(t.ended.map((e) => [e.sub.owner, e.reason])).toEqual([['a', 'group "busy" was deleted']])
    expect(t.engine.size).toBe(0)
    // No group wants it now: it waits unrouted.
    t.engine.publish(msg('z'))
    expect(t.engine.stats()).toMatchObject([{ command: 'z', group: '', depth: 1 }])
    // The ended subscription's later unsubscribe (its stream closing) does nothing.
    t.engine.unsubscribe(deleted?.ended[0] as Subscription<string>)
  })

  it('expires a group idle for its expiry (injected clock): not while subscribed, admin use restarts the wait', () => {
    const t = setup()
    const sub = t.engine.subscribe('a', 1, 'tab', ['jobs'], 1, false, 1_000)
    expect(t.expiries).toEqual([['tab', 1_000]])
    t.engine.publish(msg('jobs'))
    t.engine.publish(msg('jobs'))
    t.advance(5_000)
    expect(t.engine.expireGroups()).toEqual([]) // subscribed
    t.engine.unsubscribe(sub)
    t.advance(600)
    t.engine.touchGroup('tab')
    t.advance(999)
    expect(t.engine.expireGroups()).toEqual([])
    t.advance(1)
    const gone = t.engine.expireGroups()
    expect(gone.map((d) => [d.group, d.messages, d.patterns])).toEqual([['tab', 2, ['jobs']]])
    expect(t.engine.size).toBe(0)
    t.engine.publish(msg('jobs'))
    expect(t.engine.stats()).toMatchObject([{ command: 'jobs', group: '' }])
  })

  it('a subscription never arms expiry on a group that has none; it sets it on a group it makes, or lengthens it', () => {
    const t = setup()
    const worker = t.engine.subscribe('w', 1, 'workers', ['jobs'], 1)
    const tab = t.engine.subscribe('tab', 2, 'workers', ['jobs'], 1, false, 1_000) // a page opened with &group=workers
    t.engine.unsubscribe(worker)
    t.engine.unsubscribe(tab)
    t.engine.publish(msg('jobs'))
    t.advance(10_000)
    expect(t.engine.expireGroups()).toEqual([])
    expect(t.expiries).toEqual([])
    const own = t.engine.subscribe('x', 3, 'mine', ['jobs'], 1, false, 1_000)
    t.engine.subscribe('y', 4, 'mine', ['jobs'], 1, false, 500) // shorter: ignored
    t.engine.subscribe('z', 5, 'mine', ['jobs'], 1, false, 2_000) // longer: taken
    expect(t.expiries).toEqual([['mine', 1_000], ['mine', 2_000]])
    expect(own.group).toBe('mine')
  })

  it('takes an expiry from a queue policy: for the groups of the commands it matches, or every group for #', () => {
    const t = setup({ policies: [{ pattern: 'logs.*', group: 'tabs', expires: 100 }, { pattern: 'metrics', expires: 300 }] })
    t.engine.bind('tabs', 'logs.#')
    t.engine.bind('other', 'logs.#')
    t.engine.bind('meter', 'metrics')
    t.engine.publish(msg('logs.a'))
    t.engine.publish(msg('metrics'))
    t.advance(100)
    expect(t.engine.expireGroups().map((d) => d.group)).toEqual(['tabs'])
    t.advance(200)
    expect(t.engine.expireGroups().map((d) => d.group)).toEqual(['meter'])
    t.advance(10_000)
    expect(t.engine.expireGroups()).toEqual([])
    expect(groupsOf(t.engine)).toEqual(['logs.a@other'])

    const all = setup({ policies: [{ pattern: '#', expires: 50 }] })
    all.engine.bind('never-got-a-message', 'x')
    all.advance(50)
    expect(all.engine.expireGroups().map((d) => d.group)).toEqual(['never-got-a-message'])
  })
})

async function adminOf (broker: BrokerRef): Promise<Awaited<ReturnType<typeof createAdmin>>> {
  const a = await createAdmin({ broker: broker.address, home: broker.home })
  onCleanup(async () => { await a.stop() })
  return a
}

describe('deleting queues and groups (end to end)', () => {
  it('deletes a queue and a group with their stored (paged) messages and bindings, for good across a restart', async () => {
    const broker = await restartableBroker({ pageSize: 10 })
    const mq = (): typeof broker.node.services.mq => broker.node.services.mq
    // Two groups bound to everything, whose consumers left.
    for (const group of ['gone', 'kept']) {
      const c = await consumer(broker.ref)
      await c.subscribe('#', () => {}, { group })
      await c.stop()
    }
    const p = await producer(broker.ref)
    await Promise.all(Array.from({ length: 50 }, async (_, i) => { await p.publish('jobs', `j${i}`) }))
    await p.publish('other', 'o')
    const depth = (): Record<string, number> => Object.fromEntries(mq().stats().queues.map((q) => [`${q.command}@${q.group}`, q.depth]))
    expect(depth()).toEqual({ 'jobs@gone': 50, 'other@gone': 1, 'jobs@kept': 50, 'other@kept': 1 })

    const admin = await adminOf(broker.ref)
    expect(await admin.deleteQueue('jobs', 'gone')).toBe(50)
    await expect(admin.deleteQueue('jobs', 'gone')).rejects.toThrow(AdminError)
    expect(depth()).toEqual({ 'other@gone': 1, 'jobs@kept': 50, 'other@kept': 1 })
    expect(await admin.deleteGroup('gone')).toEqual({ queues: 1, messages: 1 })
    await expect(admin.deleteGroup('gone')).rejects.toThrow(/No group "gone"/)
    await expect(admin.deleteGroup('x'.repeat(300))).rejects.toThrow(/group name is at most 255 bytes/)
    await p.publish('jobs', 'after')
    expect(depth()).toEqual({ 'jobs@kept': 51, 'other@kept': 1 })
    await p.stop()
    await admin.stop()

    await broker.restart()
    expect(depth()).toEqual({ 'jobs@kept': 51, 'other@kept': 1 })
    const p2 = await producer(broker.ref)
    await p2.publish('jobs', 'after the restart')
    expect(depth()).toEqual({ 'jobs@kept': 52, 'other@kept': 1 })
    expect((await mq().messages({ state: 'pending', limit: 1000 })).filter((m) => m.group === 'gone')).toEqual([])
  })

  it('refuses to delete a group in use unless forced; forced, the consumer is told its subscription ended', async () => {
    const broker = await restartableBroker()
    const c = await consumer(broker.ref)
    const got: string[] = []
    await c.subscribe('work', async (m) => { got.push(m.payload as string); await new Promise(() => {}) }, { group: 'busy', prefetch: 1 })
    const ended: Array<{ group: string, error: Error }> = []
    c.events.addEventListener('subscription:ended', (e) => { ended.push(e.detail) })
    const p = await producer(broker.ref)
    await p.publish('work', 'one')
    await p.publish('work', 'two')
    await until(() => got.length === 1, 5_000, 'the first delivery')

    const admin = await adminOf(broker.ref)
    await expect(admin.deleteGroup('busy')).rejects.toThrow(/has 1 subscription\(s\): unsubscribe them first, or force/)
    await expect(admin.deleteQueue('work', 'busy')).rejects.toThrow(/has 1 consumer/)
    // In flight and waiting: both go.
    expect(await admin.deleteGroup('busy', { force: true })).toEqual({ queues: 1, messages: 2 })
    await until(() => ended.length === 1, 5_000, 'subscription:ended')
    expect(ended[0].group).toBe('busy')
    expect(ended[0].error).toBeInstanceOf(SubscriptionError)
    expect(ended[0].error.message).toMatch(/group "busy" was deleted/)
    await p.publish('work', 'three')
    await sleep(200)
    expect(got).toEqual(['one'])
    expect(broker.node.services.mq.stats().queues).toMatchObject([{ command: 'work', group: '', depth: 1 }])
  })

  it('expires a group idle for its expiry, set by the subscription and kept across a restart', async () => {
    // A short visibility timeout makes the housekeeping tick 100 ms.
    const broker = await restartableBroker({ visibilityTimeout: 400 })
    const tab = await consumer(broker.ref)
    await tab.subscribe('#', () => {}, { group: 'tab', expires: 1_500 })
    const stays = await consumer(broker.ref)
    // Its message stays in process, so its queue is there after the restart.
    await stays.subscribe('#', async () => { await new Promise(() => {}) }, { group: 'stays', expires: 4_000 })
    await tab.stop()
    const p = await producer(broker.ref)
    await p.publish('values', 1)
    await p.stop()
    const groups = (): string[] => [...new Set(broker.node.services.mq.stats().queues.map((q) => q.group))].sort()
    expect(groups()).toEqual(['stays', 'tab'])

    // Restarted before it expired: the expiry comes back with the group (its idle time starts again).
    await broker.restart()
    const restartedAt = Date.now()
    expect(groups()).toEqual(['stays', 'tab'])
    const back = await consumer(broker.ref)
    await back.subscribe('#', async () => { await new Promise(() => {}) }, { group: 'stays' }) // connected: never expires
    await until(() => !groups().includes('tab'), 5_000, 'the tab group to expire')
    expect(Date.now() - restartedAt).toBeGreaterThanOrEqual(1_400)
    await sleep(Math.max(0, restartedAt + 4_500 - Date.now())) // past the expiry of 'stays', which has a consumer
    expect(groups()).toEqual(['stays'])

    // Gone from the store too: its bindings do not come back.
    await back.stop()
    await broker.restart()
    const p2 = await producer(broker.ref)
    await p2.publish('values', 2)
    expect(groups()).toEqual(['stays'])
  })
})

describe('deleting queues and groups (store)', () => {
  const page = { size: 10, bytes: Infinity }

  /** Deletes a group in the engine and its journal, as the broker does. */
  function deleteGroup (b: Awaited<ReturnType<typeof pagedBroker>>, group: string): void {
    const d = b.engine.deleteGroup(group, true) as NonNullable<ReturnType<typeof b.engine.deleteGroup>>
    void b.journal.deletedQueues(d.queues)
    b.journal.deletedGroup(d.group, d.patterns)
  }

  it('a deleted group\'s delayed messages on disk do not hide another group\'s from the delayed pages', async () => {
    let now = 1_000_000
    const b = await pagedBroker(await tempDir(), page, () => now)
    onCleanup(async () => { await b.close() })
    b.engine.bind('A', 'a')
    b.engine.bind('B', 'b')
    for (let i = 0; i < 100; i++) b.engine.publish(msg('a', 1_001_000 + i)) // due first, more than a page
    for (let i = 0; i < 5; i++) b.engine.publish(msg('b', 1_005_000 + i))
    await b.settle()
    deleteGroup(b, 'A')
    await b.settle()
    now += 10_000
    for (let i = 0; i < 5; i++) {
      b.engine.promote()
      await b.settle()
    }
    expect(b.engine.stats()).toMatchObject([{ command: 'b', group: 'B', depth: 5, delayed: 0 }])
    expect(b.engine.size).toBe(5)
  })

  it('a group deleted while the disk cannot write stays deleted once it can, also after a restart', async () => {
    class FailingStore extends LevelStore {
      failing = false
      async write (ops: StoreOp[]): Promise<void> {
        if (this.failing) throw new Error('ENOSPC: no space left on device')
        await super.write(ops)
      }
    }
    const dir = await tempDir()
    const store = new FailingStore(dir)
    let b = await pagedBroker(dir, page, Date.now, undefined, store)
    const sub = b.engine.subscribe('c', 1, 'G', ['jobs'], 1)
    b.engine.publish(msg('jobs'))
    b.engine.publish(msg('jobs'))
    await b.settle()
    store.failing = true
    b.engine.unsubscribe(sub) // the delivery goes back: a write that fails now, and is retried
    await sleep(20)
    expect(b.journal.failure?.message).toMatch(/ENOSPC/)
    deleteGroup(b, 'G')
    store.failing = false
    await until(() => b.journal.failure == null, 5_000, 'the store writes again')
    await b.settle()
    await b.close()

    b = await pagedBroker(dir, page, Date.now)
    onCleanup(async () => { await b.close() })
    expect(b.engine.stats()).toEqual([])
    expect(b.engine.size).toBe(0)
  })
})
