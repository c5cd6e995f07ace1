/**
 * Names and counts are bounded (issue 8, item 8): huge group names, too many patterns,
 * subscriptions or groups, and huge prefetches are refused or capped with clear errors, through
 * the real protocol; a store holding names an older version let in still starts.
 */
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import {
  CONSUMER_PROTOCOL, InvalidMessageError, LevelStore, MAX_PREFETCH, SubscriptionError, createNode
} from '../src/index.js'
import { Journal } from '../src/broker/journal.js'
import { Queue } from '../src/broker/queue.js'
import { FrameSplitter, FrameWriter } from '../src/protocol/codec.js'
import { FrameType, readBrokerToConsumerFrame, writeSubscribe } from '../src/protocol/frames.js'
import { consumer, onCleanup, producer, startBroker, tempDir, until } from './helpers.js'

/** A raw consumer stream: Subscribe frames out, the broker's Subscribed answers collected. */
async function rawConsumer (address: string): Promise<{ subscribe: (subId: number, group: string, patterns: string[], prefetch?: number) => void, answers: Map<number, string> }> {
  const node = await createNode()
  await node.start()
  onCleanup(async () => { await node.stop() })
  const s = await node.dialProtocol(multiaddr(address), CONSUMER_PROTOCOL)
  const answers = new Map<number, string>()
  const splitter = new FrameSplitter(1 << 20, (type, r) => {
    const f = readBrokerToConsumerFrame(type, r)
    if (f.type === FrameType.Subscribed) answers.set(f.subId, f.error)
  })
  s.addEventListener('message', (e) => { splitter.push(e.data) })
  const w = new FrameWriter((bytes) => { s.send(bytes) })
  return {
    subscribe: (subId, group, patterns, prefetch = 10) => {
      writeSubscribe(w, subId, prefetch, 0, group, patterns)
      w.flush()
    },
    answers
  }
}

const huge = (i: number): string => `g${i}-`.padEnd(65_000, 'x')

describe('name limits', () => {
  it('refuses a flood of groups with 65,000-byte names at once and keeps serving another client', async () => {
    const broker = await startBroker({ memory: true })
    const flood = await rawConsumer(broker.address)
    const started = Date.now()
    for (let i = 1; i <= 150; i++) flood.subscribe(i, huge(i), ['#'])
    await until(() => flood.answers.size === 150, 10_000, 'every Subscribed')
    expect(Date.now() - started).toBeLessThan(5_000)
    for (const error of flood.answers.values()) expect(error).toMatch(/group name is at most 255 bytes/)
    expect(broker.node.services.mq.stats().queues).toEqual([])

    // Another client is served at once, and many distinct commands cost little.
    const c = await consumer(broker)
    const got: string[] = []
    await c.subscribe('#', (m) => { got.push(m.command) }, { group: 'ok' })
    const p = await producer(broker)
    await Promise.all(Array.from({ length: 500 }, async (_, i) => { await p.publish(`cmd.${i}`, 'x') }))
    await until(() => got.length === 500, 10_000, '500 deliveries')

    // The client library surfaces refusals as typed errors.
    await expect(c.subscribe('#', () => {}, { group: 'x'.repeat(256) })).rejects.toThrow(SubscriptionError)
    await expect(c.subscribe('#', () => {}, { group: 'bad\u0007bell' })).rejects.toThrow(/control characters/)
    await expect(c.subscribe('é'.repeat(128), () => {}, { group: 'ok' })).rejects.toThrow(/pattern is at most 255 bytes/)
    await expect(p.publish('a\u0001b', 'x')).rejects.toThrow(InvalidMessageError)
    await expect(p.publish('é'.repeat(128), 'x')).rejects.toThrow(/at most 255 bytes/)
    expect(typeof await p.publish('é'.repeat(127), 'x')).toBe('string')
  })

  it('bounds patterns per subscription, subscriptions per stream and groups per broker', async () => {
    const broker = await startBroker({ memory: true, maxGroups: 300 })
    const raw = await rawConsumer(broker.address)
    raw.subscribe(1, 'g', Array.from({ length: 65 }, (_, i) => `p${i}`))
    raw.subscribe(2, 'g', Array.from({ length: 64 }, (_, i) => `p${i}`))
    await until(() => raw.answers.size === 2, 5_000, 'Subscribed')
    expect(raw.answers.get(1)).toMatch(/at most 64 patterns/)
    expect(raw.answers.get(2)).toBe('')
    for (let i = 3; i <= 258; i++) raw.subscribe(i, `group-${i}`, ['a'])
    await until(() => raw.answers.size === 258, 5_000, 'Subscribed')
    expect(raw.answers.get(257)).toBe('')
    expect(raw.answers.get(258)).toMatch(/at most 256 subscriptions/)

    // The broker holds 256 groups; 44 more fill it to its limit of 300.
    const c = await consumer(broker)
    for (let i = 0; i < 44; i++) await c.subscribe('a', () => {}, { group: `more-${i}` })
    await expect(c.subscribe('a', () => {}, { group: 'one-too-many' })).rejects.toThrow(/holds 300 groups, its limit/)
    // An existing group can always be joined.
    await c.subscribe('b', () => {}, { group: 'more-0' })
  })

  it(`caps a prefetch of 4,294,967,295 at ${MAX_PREFETCH}`, async () => {
    const broker = await startBroker({ memory: true, visibilityTimeout: 60_000 })
    const p = await producer(broker)
    await Promise.all(Array.from({ length: MAX_PREFETCH + 500 }, async () => { await p.publish('work', 'x') }))
    const raw = await rawConsumer(broker.address)
    raw.subscribe(1, 'default', ['work'], 4_294_967_295)
    await until(() => raw.answers.size === 1, 5_000, 'Subscribed')
    expect(raw.answers.get(1)).toBe('')
    const stats = (): ReturnType<typeof broker.node.services.mq.stats> => broker.node.services.mq.stats()
    expect(stats().clients.find((c) => c.role === 'consumer')?.subscriptions?.[0].prefetch).toBe(MAX_PREFETCH)
    await until(() => stats().queues[0].inFlight === MAX_PREFETCH, 10_000, 'a full prefetch in flight')
    expect(stats().queues[0].depth).toBe(500)
  })

  it('starts from a store holding 150 groups with 65,000-byte names (written by the real journal), skipping them', async () => {
    const home = await tempDir()
    const dataDir = join(home, 'broker')
    // What an older broker wrote: bindings and a queue with a message for huge groups, beside a valid group's.
    const journal = new Journal(new LevelStore(join(dataDir, 'store')), 0, { size: 5000, bytes: Infinity }, (err) => { throw err })
    await journal.store.open()
    let order = 0
    const message = (id: string): any => ({ command: 'jobs', id, headers: undefined, kind: 2, payload: new TextEncoder().encode(id), producer: 'p', timestamp: Date.now(), wantsAnswer: false, attempts: 0, pageOrder: ++order })
    for (let i = 0; i < 150; i++) {
      journal.bound(huge(i), '#')
      journal.enqueued(message(`huge-${i}`), new Queue('jobs', huge(i)))
    }
    journal.bound('valid', 'jobs')
    journal.enqueued(message('kept'), new Queue('jobs', 'valid'))
    await journal.close()

    const started = Date.now()
    const broker = await startBroker({ home, dataDir })
    expect(Date.now() - started).toBeLessThan(10_000)
    const queues = broker.node.services.mq.stats().queues
    expect(queues.map((q) => `${q.command}@${q.group}:${q.depth}`)).toEqual(['jobs@valid:1'])

    // The valid group gets its stored message and new ones, once each.
    const c = await consumer(broker)
    const got: string[] = []
    await c.subscribe('jobs', (m) => { got.push(m.payload as string) }, { group: 'valid' })
    const p = await producer(broker)
    await p.publish('jobs', 'new')
    await until(() => got.length === 2, 5_000, 'two deliveries')
    expect(got.sort()).toEqual(['kept', 'new'])
    expect(broker.node.services.mq.stats().queues).toHaveLength(1)
  })
})
