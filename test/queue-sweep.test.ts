/** Idle empty queues are removed: commands that embed an id do not grow the broker, its stats or its store without bound. */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createAdmin, createBroker, LevelStore, type BrokerNode } from '../src/index.js'
import { QUEUE_PREFIX } from '../src/broker/records.js'
import { consumer, onCleanup, producer, tempDir, until } from './helpers.js'
import { run, startBroker } from './cli-helpers.js'

const COMMANDS = 2_000

/** The ids of the queue records in a stopped broker's store. */
async function queueIds (dataDir: string): Promise<number[]> {
  const store = new LevelStore(join(dataDir, 'store'))
  await store.open()
  const ids: number[] = []
  try {
    for await (const key of store.keys(QUEUE_PREFIX)) ids.push(new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(1))
  } finally {
    await store.close()
  }
  return ids
}

describe('idle queue sweep', () => {
  it('removes the queues of 2,000 consumed commands from memory, stats and the store; a new message makes its queue again', async () => {
    const home = await tempDir()
    const dataDir = join(home, 'broker')
    let node: BrokerNode | undefined
    const start = async (): Promise<BrokerNode> => {
      node = await createBroker({ home, dataDir, queueSweepInterval: 200, visibilityTimeout: 2_000 })
      return node
    }
    onCleanup(async () => { await node?.stop() })
    let broker = await start()
    const ref = { address: broker.peerId.toString(), home }
    const mq = (): BrokerNode['services']['mq'] => broker.services.mq

    // The group is bound to `#` first, so each command gets a queue of group g.
    const early = await consumer(ref)
    await early.subscribe('#', () => {}, { group: 'g' })
    await early.stop()
    const p = await producer(ref)
    for (let i = 0; i < COMMANDS; i += 500) {
      await Promise.all(Array.from({ length: 500 }, async (_, j) => await p.publish(`user.${i + j}.created`, i + j)))
    }
    // The stats list the deepest queues only, and count the rest: the reply stays small.
    const admin = await createAdmin({ broker: ref.address, home })
    onCleanup(async () => { await admin.stop() })
    const listed = await admin.stats(10_000)
    expect(listed.queues).toHaveLength(1_000)
    expect(listed.moreQueues).toBe(COMMANDS - 1_000)
    expect(listed.messages).toBe(COMMANDS)

    const got = new Set<string>()
    const c = await consumer(ref)
    await c.subscribe('#', (m) => { got.add(m.command) }, { group: 'g', prefetch: 100 })
    await until(() => got.size === COMMANDS, 30_000, 'every command consumed')
    await until(() => mq().stats().messages === 0, 10_000, 'every message acked')
    await until(() => mq().stats().queues.length === 0, 10_000, 'the idle queues swept')
    expect(mq().stats().moreQueues).toBe(0)

    // The store's queue records went too: none comes back after a restart.
    await broker.stop()
    node = undefined
    expect(await queueIds(dataDir)).toEqual([])
    broker = await start()
    expect(mq().stats().queues).toEqual([])

    // A new message of a swept command makes its queue again, and reaches the `#` subscription.
    await c.ready() // reconnected and subscribed again
    got.clear()
    await p.publish('user.7.created', 'again')
    await until(() => got.has('user.7.created'), 10_000, 'the new message')
    expect(mq().stats().queues).toMatchObject([{ command: 'user.7.created', group: 'g', published: 1 }])
  }, 90_000)

  it('drops the records of queues that hold nothing when it starts, and never gives their ids again', async () => {
    const home = await tempDir()
    const dataDir = join(home, 'broker')
    let node: BrokerNode | undefined
    onCleanup(async () => { await node?.stop() })
    const restart = async (): Promise<void> => {
      await node?.stop()
      node = await createBroker({ home, dataDir })
    }
    const stop = async (): Promise<void> => {
      await node?.stop()
      node = undefined
    }
    await restart()
    const ref = { address: (node as BrokerNode).peerId.toString(), home }
    const got = new Set<string>()
    const c = await consumer(ref)
    await c.subscribe('#', (m) => { got.add(m.command) }, { group: 'g' })
    const p = await producer(ref)
    for (let i = 0; i < 50; i++) await p.publish(`user.${i}.created`, i)
    await until(() => got.size === 50 && node?.services.mq.stats().messages === 0, 10_000, 'all consumed')
    await stop() // before any sweep: the 50 empty queues' records are still stored
    const before = await queueIds(dataDir)
    expect(before).toHaveLength(50)
    await restart()
    await stop()
    expect(await queueIds(dataDir)).toEqual([])
    await restart()
    await Promise.all([c.ready(), p.ready()]) // reconnected, and the consumer subscribed again
    got.clear()
    await p.publish('user.0.created', 'again')
    await until(() => got.has('user.0.created') && node?.services.mq.stats().messages === 0, 10_000, 'the new one consumed')
    await stop()
    const after = await queueIds(dataDir)
    expect(after).toHaveLength(1)
    expect(after[0]).toBeGreaterThan(Math.max(...before))
  }, 60_000)

  it('p2pmq stats lists the deepest 1,000 queues and counts the rest; -queue-sweep removes them once consumed', async () => {
    const home = await tempDir()
    const { peerId } = await startBroker(home, ['-queue-sweep=200', '-visibility-timeout=2000'])
    const ref = { address: peerId, home }
    const p = await producer(ref)
    await Promise.all(Array.from({ length: 1_005 }, async (_, i) => await p.publish(`order.${i}.placed`, 'x')))
    await p.publish('order.0.placed', 'deeper') // the deepest comes first
    const stats = async (args: string[] = []): Promise<string[]> => {
      const proc = run(['stats', `-broker=${peerId}`, ...args], home)
      expect(await proc.exited).toBe(0)
      return proc.out
    }
    const json = JSON.parse((await stats(['-json'])).join(''))
    expect(json.queues).toHaveLength(1_000)
    expect(json.queues[0]).toMatchObject({ command: 'order.0.placed', depth: 2 })
    expect(json.moreQueues).toBe(5)
    expect(await stats()).toContain('and 5 more queues, shallower')
    let got = 0
    const c = await consumer(ref)
    await c.subscribe('order.#', () => { got++ }, { prefetch: 100 })
    await until(() => got === 1_006, 20_000, 'every message consumed')
    let text: string[] = []
    const end = Date.now() + 15_000
    while (Date.now() < end) {
      text = await stats(['-json'])
      if (JSON.parse(text.join('')).queues.length === 0) break
    }
    expect(JSON.parse(text.join(''))).toMatchObject({ queues: [], moreQueues: 0, messages: 0 })
  }, 60_000)
})
