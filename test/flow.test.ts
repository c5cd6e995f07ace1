/**
 * One stuck consumer does not stall every producer (issue 8, item 7): publisher flow control
 * counts only queues whose consumers make progress. A group whose consumer takes deliveries and
 * never settles them stops holding confirms after `stallTimeout`; its backlog pages to disk (with a
 * store) or is bounded by `maxMessages` (in memory) with clear Full rejects.
 */
import { describe, expect, it } from 'vitest'
import { RejectedError } from '../src/index.js'
import { QueueEngine } from '../src/broker/engine.js'
import type { QueuedMessage } from '../src/broker/queue.js'
import { consumer, producer, startBroker, until, type TestBroker } from './helpers.js'

let nextId = 0
function msg (command: string): QueuedMessage {
  return { command, id: `m${nextId++}`, headers: undefined, kind: 1, payload: new Uint8Array([1]), producer: 'p', timestamp: 0, wantsAnswer: false, attempts: 0 }
}

describe('stalled queues (engine, injected clock)', () => {
  it('a congested queue whose consumers settle nothing for stallTimeout stops counting as congested, until they move again', () => {
    let now = 0
    const relieved: string[] = []
    const delivered: number[] = []
    const engine = new QueueEngine<string>({
      deliver: (d) => { if (d.sub.owner === 'stuck') delivered.push(d.tag) },
      completed: () => {},
      failed: () => {},
      relieved: (q) => { relieved.push(q.name) }
    }, { visibilityTimeout: 60_000, maxAttempts: Infinity, maxMessages: 100_000, highWater: 10, stallTimeout: 1_000, clock: () => now })
    engine.subscribe('stuck', 1, 'a', ['x'], 5)
    engine.subscribe('healthy', 2, 'b', ['x'], 1_000)
    for (let i = 0; i < 20; i++) engine.publish(msg('x'))
    expect(engine.congested('x')).toBe(true)

    now += 999
    engine.relieveStalled()
    expect(engine.congested('x')).toBe(true)
    now += 1
    engine.relieveStalled()
    expect(relieved).toEqual(['x@a'])
    expect(engine.congested('x')).toBe(false)
    // Stalled, it stays out of flow control however long it grows.
    for (let i = 0; i < 100; i++) engine.publish(msg('x'))
    expect(engine.congested('x')).toBe(false)

    // Its consumer moves again: flow control counts it again.
    engine.ack('stuck', delivered[0])
    engine.publish(msg('x'))
    expect(engine.congested('x')).toBe(true)
    // Progress within stallTimeout keeps it congested (a slow consumer still slows producers).
    now += 900
    engine.ack('stuck', delivered[1])
    now += 900
    engine.relieveStalled()
    expect(engine.congested('x')).toBe(true)
  })
})

/** Publishes `n` messages of `command` (each resolved or rejected); returns how many were confirmed and the rejections. */
async function publishAll (broker: TestBroker, n: number, commands: string[]): Promise<{ confirmed: number, rejected: Error[] }> {
  const p = await producer(broker)
  const results = await Promise.allSettled(Array.from({ length: n }, async (_, i) => await p.publish(commands[i % commands.length], `m${i}`)))
  return {
    confirmed: results.filter((r) => r.status === 'fulfilled').length,
    rejected: results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as Error)
  }
}

describe('one stuck consumer (end to end)', () => {
  it('with a store: producers keep getting confirms, the healthy group keeps up, the stuck group pages to disk', async () => {
    const broker = await startBroker({ pageSize: 500, highWater: 1_000, visibilityTimeout: 120_000 })
    const stuck = await consumer(broker)
    let taken = 0
    await stuck.subscribe('x', async () => { taken++; await new Promise(() => {}) }, { group: 'A', prefetch: 100, timeout: 120_000 })
    const healthy = await consumer(broker)
    let got = 0
    await healthy.subscribe(['x', 'y'], () => { got++ }, { group: 'B' })

    const started = Date.now()
    const { confirmed, rejected } = await publishAll(broker, 25_000, ['x', 'x', 'x', 'x', 'y'])
    expect(rejected).toEqual([])
    expect(confirmed).toBe(25_000)
    expect(Date.now() - started).toBeLessThan(40_000)
    await until(() => got === 25_000, 20_000, 'group B to get every message')
    expect(taken).toBe(100)
    const queueA = (broker.node.services.mq as any).engine.queue('x', 'A')
    expect(queueA.ready.length + queueA.onDisk).toBe(20_000 - 100)
    expect(queueA.ready.length).toBeLessThanOrEqual(500) // the rest waits on disk only
  }, 90_000)

  it('in memory: the stuck group is bounded by maxMessages, past which publishes get a clear Full reject', async () => {
    const broker = await startBroker({ memory: true, maxMessages: 10_000, highWater: 1_000, visibilityTimeout: 120_000 })
    const stuck = await consumer(broker)
    await stuck.subscribe('x', async () => { await new Promise(() => {}) }, { group: 'A', prefetch: 100, timeout: 120_000 })
    const healthy = await consumer(broker)
    let got = 0
    await healthy.subscribe('x', () => { got++ }, { group: 'B' })

    // Two copies of each (A's and B's): 3,000 publishes stay under the 10,000 messages the broker holds.
    const first = await publishAll(broker, 3_000, ['x'])
    expect(first).toEqual({ confirmed: 3_000, rejected: [] })
    await until(() => got === 3_000, 20_000, 'group B to get every message')
    // A keeps its 3,000; of 10,000 more, those that fit are taken (3,500 to 7,000, as fast as B
    // takes its copies), and the rest are refused whole (B gets no copy), with a clear reason.
    const second = await publishAll(broker, 10_000, ['x'])
    expect(second.confirmed).toBeGreaterThanOrEqual(3_500)
    expect(second.confirmed).toBeLessThanOrEqual(7_000)
    expect(second.rejected).toHaveLength(10_000 - second.confirmed)
    for (const err of second.rejected) {
      expect(err).toBeInstanceOf(RejectedError)
      expect(err.message).toMatch(/The broker is full/)
    }
    await until(() => got === 3_000 + second.confirmed, 20_000, 'group B to get the accepted ones')
    // B's last acks may still be on their way to the broker when its handler has run.
    await until(() => broker.node.services.mq.stats().messages === 3_000 + second.confirmed, 5_000, 'B\'s acks to reach the broker')
    expect(broker.node.services.mq.stats().messages).toBe(3_000 + second.confirmed)
  }, 90_000)
})
