/** Delivery over a real libp2p network on 127.0.0.1: balancing, redelivery, backlog, groups, wildcards. */
import { describe, expect, it } from 'vitest'
import { MessageFailedError, RejectMessage, AnswerTimeoutError, type Message } from '../src/index.js'
import { consumer, producer, sleep, startBroker, until } from './helpers.js'

describe('delivery', () => {
  it('answers a send and preserves payload types end to end', async () => {
    const broker = await startBroker()
    const c = await consumer(broker)
    const seen: Message[] = []
    await c.subscribe('echo', (m) => { seen.push(m); return m.payload })
    const p = await producer(broker)
    expect(await p.send('echo', 'text')).toBe('text')
    expect(await p.send('echo', { a: [1, 2], b: null })).toEqual({ a: [1, 2], b: null })
    const bytes = await p.send('echo', new Uint8Array([0, 1, 255]))
    expect(bytes).toBeInstanceOf(Uint8Array)
    expect([...(bytes as Uint8Array)]).toEqual([0, 1, 255])
    expect(await p.send('echo', 42)).toBe(42)
    expect(await p.send('echo', undefined)).toBeUndefined()
    const reply = await p.request('echo', 'who', { headers: { trace: 't1' } })
    expect(reply.consumer).toBe(c.peerId)
    expect(reply.attempts).toBe(1)
    const last = seen[seen.length - 1]
    expect(last.headers).toEqual({ trace: 't1' })
    // The producer's identity comes from its authenticated connection.
    expect(last.producer).toBe(p.peerId)
    expect(last.attempt).toBe(1)
  })

  it('balances across 3 consumers round robin', async () => {
    const broker = await startBroker()
    const counts = new Map<string, number>()
    for (let i = 0; i < 3; i++) {
      const c = await consumer(broker)
      await c.subscribe('work', async () => {
        await sleep(5)
        counts.set(c.peerId, (counts.get(c.peerId) ?? 0) + 1)
        return 'done'
      }, { prefetch: 2 })
    }
    const p = await producer(broker)
    const replies = await Promise.all(Array.from({ length: 60 }, async (_, i) => await p.request('work', i)))
    expect(replies).toHaveLength(60)
    expect(counts.size).toBe(3)
    for (const n of counts.values()) expect(n).toBeGreaterThanOrEqual(15)
  })

  it('gives a slow consumer fewer messages', async () => {
    const broker = await startBroker()
    const fast = await consumer(broker)
    const slow = await consumer(broker)
    let nFast = 0
    let nSlow = 0
    await fast.subscribe('job', async () => { nFast++; await sleep(1) }, { prefetch: 1 })
    await slow.subscribe('job', async () => { nSlow++; await sleep(100) }, { prefetch: 1 })
    const p = await producer(broker)
    await Promise.all(Array.from({ length: 40 }, async () => await p.send('job', 'x')))
    expect(nFast + nSlow).toBe(40)
    expect(nSlow).toBeLessThan(nFast / 2)
  })

  it('keeps messages while no consumer is connected and delivers the backlog to a late one', async () => {
    const broker = await startBroker()
    const p = await producer(broker)
    for (let i = 0; i < 25; i++) await p.publish('late', i)
    expect(broker.node.services.mq.stats().messages).toBe(25)
    const got: number[] = []
    const c = await consumer(broker)
    await c.subscribe('late', (m) => { got.push(m.payload as number) })
    await until(() => got.length === 25, 5000, '25 deliveries')
    expect(got).toEqual(Array.from({ length: 25 }, (_, i) => i))
    await until(() => broker.node.services.mq.stats().messages === 0, 2000, 'acks')
  })

  it('redelivers the message of a consumer that dies mid-message to another consumer', async () => {
    const broker = await startBroker()
    const doomed = await consumer(broker)
    let doomedGot = 0
    await doomed.subscribe('task', async () => { doomedGot++; await new Promise(() => {}) }, { prefetch: 1 })
    const p = await producer(broker)
    const reply = p.request('task', 'important')
    await until(() => doomedGot === 1, 5000, 'first delivery')
    const survivor = await consumer(broker)
    await survivor.subscribe('task', (m) => `done by survivor on attempt ${m.attempt}`)
    await doomed.node.stop() // the connection drops with the message unanswered
    const r = await reply
    expect(r.consumer).toBe(survivor.peerId)
    expect(r.attempts).toBe(2)
    expect(r.payload).toBe('done by survivor on attempt 2')
  })

  it('takes back a delivery whose visibility timeout passes and gives it to another consumer', async () => {
    const broker = await startBroker({ visibilityTimeout: 300 })
    const hung = await consumer(broker)
    await hung.subscribe('slow', async () => await new Promise(() => {}), { prefetch: 1, timeout: 60_000 })
    const p = await producer(broker)
    const reply = p.request('slow', 'x')
    await until(() => hung.active === 1, 10_000, 'the hung consumer to take it')
    const other = await consumer(broker)
    await other.subscribe('slow', () => 'ok')
    const r = await reply
    expect(r.consumer).toBe(other.peerId)
    expect(r.attempts).toBeGreaterThanOrEqual(2)
  })

  it('retries a throwing handler, then fails the message with the last error', async () => {
    const broker = await startBroker({ maxAttempts: 3 })
    const c = await consumer(broker)
    let calls = 0
    await c.subscribe('flaky', () => { calls++; throw new Error(`boom ${calls}`) })
    const p = await producer(broker)
    const err = await p.send('flaky', 'x').catch((e) => e)
    expect(err).toBeInstanceOf(MessageFailedError)
    expect(err.message).toBe('boom 3')
    expect(err.attempts).toBe(3)
    expect(calls).toBe(3)

    // A handler that recovers on a later attempt answers normally.
    let tries = 0
    await c.subscribe('recovers', (m) => { tries++; if (m.attempt < 2) throw new Error('not yet'); return 'fine' })
    expect(await p.send('recovers', 'x')).toBe('fine')
    expect(tries).toBe(2)

    // RejectMessage fails at once, without retries.
    let rejected = 0
    await c.subscribe('bad', () => { rejected++; throw new RejectMessage('unknown command') })
    await expect(p.send('bad', 'x')).rejects.toThrow('unknown command')
    expect(rejected).toBe(1)
  })

  it('a hung handler is nacked after its timeout and does not wedge the consumer', async () => {
    const broker = await startBroker()
    const c = await consumer(broker)
    await c.subscribe('maybe', async (m) => {
      if (m.attempt === 1) await new Promise(() => {})
      return `answered on attempt ${m.attempt}`
    }, { prefetch: 1, timeout: 200 })
    const p = await producer(broker)
    expect(await p.send('maybe', 'x')).toBe('answered on attempt 2')
    expect(await p.send('maybe', 'y')).toBe('answered on attempt 2')
  })

  it('fans out to every group while consumers inside a group share', async () => {
    const broker = await startBroker()
    const byGroup: Record<string, Set<number>> = { audit: new Set(), billing: new Set() }
    const perConsumer = new Map<string, number>()
    for (const group of ['audit', 'audit', 'billing']) {
      const c = await consumer(broker)
      await c.subscribe('order.created', (m) => {
        byGroup[group].add(m.payload as number)
        perConsumer.set(c.peerId, (perConsumer.get(c.peerId) ?? 0) + 1)
      }, { group, prefetch: 1 })
    }
    const p = await producer(broker)
    for (let i = 0; i < 20; i++) await p.publish('order.created', i)
    await until(() => byGroup.audit.size === 20 && byGroup.billing.size === 20, 5000, 'both groups')
    const counts = [...perConsumer.values()].sort((a, b) => a - b)
    expect(counts.reduce((a, b) => a + b)).toBe(40)
    expect(counts).toHaveLength(3)
    expect(counts[2]).toBe(20) // billing's only consumer gets every copy
    expect(counts[0]).toBeGreaterThan(0) // the two audit consumers share theirs
  })

  it('routes AMQP-style wildcards', async () => {
    const broker = await startBroker()
    const star: string[] = []
    const hash: string[] = []
    const c = await consumer(broker)
    await c.subscribe('users.*', (m) => { star.push(m.command) }, { group: 'star' })
    await c.subscribe(['users.#', 'admin'], (m) => { hash.push(m.command) }, { group: 'hash' })
    const p = await producer(broker)
    for (const cmd of ['users', 'users.created', 'users.a.b', 'admin', 'other']) await p.publish(cmd, cmd)
    await until(() => star.length === 1 && hash.length === 4, 5000, 'wildcard deliveries')
    expect(star).toEqual(['users.created'])
    expect(hash.sort()).toEqual(['admin', 'users', 'users.a.b', 'users.created'])
    await expect(c.subscribe('bad..pattern', () => {})).rejects.toThrow(/refused/)
    await expect(p.publish('users.*', 'x')).rejects.toThrow(/Invalid command/)
  })

  it('times out a send with no consumer and drops its late answer', async () => {
    const broker = await startBroker()
    const p = await producer(broker)
    await expect(p.send('nobody', 'x', { timeout: 200 })).rejects.toBeInstanceOf(AnswerTimeoutError)
    const c = await consumer(broker)
    await c.subscribe('nobody', () => 'late answer')
    await until(() => p.lateResults === 1, 5000, 'the late answer')
    // The next send gets its own answer, not the late one.
    expect(await p.send('nobody', 'y')).toBe('late answer')
  })

  it('bounds unconfirmed messages by the producer window', async () => {
    const broker = await startBroker()
    const p = await producer(broker, { window: 5 })
    const sends = Array.from({ length: 12 }, async (_, i) => await p.send('wait', i, { timeout: 10_000 }))
    await until(() => broker.node.services.mq.stats().messages === 5, 5000, '5 messages at the broker')
    await sleep(100)
    expect(broker.node.services.mq.stats().messages).toBe(5)
    expect(p.pending).toBe(5)
    const c = await consumer(broker)
    await c.subscribe('wait', (m) => m.payload)
    expect(await Promise.all(sends)).toEqual(Array.from({ length: 12 }, (_, i) => i))
  })

  it('holds confirms while consumers lag behind (publisher flow control) and releases them as the queue drains', async () => {
    const broker = await startBroker({ highWater: 20 })
    const c = await consumer(broker)
    const gate = Promise.withResolvers<void>()
    let handled = 0
    await c.subscribe('slow', async () => { await gate.promise; handled++ }, { prefetch: 5 })
    const p = await producer(broker, { window: 100 })
    let confirmed = 0
    const publishes = Array.from({ length: 100 }, async (_, i) => { await p.publish('slow', i); confirmed++ })
    await until(() => broker.node.services.mq.stats().messages === 100, 5000, 'all 100 at the broker')
    await sleep(200)
    // 5 in flight and 20 waiting congest the queue: later confirms are held.
    expect(confirmed).toBeLessThanOrEqual(25)
    // A queue nobody consumes does not hold confirms, nor does another producer's queue.
    const other = await producer(broker)
    await other.publish('nobody-listens', 'x')
    gate.resolve()
    await Promise.all(publishes)
    expect(confirmed).toBe(100)
    await until(() => handled === 100, 5000, 'all handled')
  })

  it('single-active consumers: one at a time, in order, and the next takes over when it leaves', async () => {
    const broker = await startBroker()
    const order: string[] = []
    let running = 0
    let overlap = false
    const handler = (name: string, leaveAfter?: string) => async (m: Message): Promise<void> => {
      if (++running > 1) overlap = true
      await sleep(5)
      order.push(`${name}:${m.payload as string}`)
      running--
      // Leaves before its ack goes out: message 4 is given to the next consumer.
      if (m.payload === leaveAfter) void first.stop()
    }
    const first = await consumer(broker)
    await first.subscribe('serial', handler('first', '4'), { singleActive: true, prefetch: 10 })
    const second = await consumer(broker)
    await second.subscribe('serial', handler('second'), { singleActive: true, prefetch: 10 })
    const p = await producer(broker)
    for (let i = 0; i < 10; i++) await p.publish('serial', String(i))
    await until(() => order.length === 11, 5000, 'every message, 4 twice')
    expect(order).toEqual([
      'first:0', 'first:1', 'first:2', 'first:3', 'first:4',
      'second:4', 'second:5', 'second:6', 'second:7', 'second:8', 'second:9'
    ])
    expect(overlap).toBe(false)
  })
})
