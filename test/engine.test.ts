import { describe, expect, it } from 'vitest'
import { QueueEngine, type EngineOptions, type InFlight } from '../src/broker/engine.js'
import type { Queue, QueuedMessage, Subscription } from '../src/broker/queue.js'
import { Deliveries } from '../src/broker/deliveries.js'
import { persistence } from './persistence.js'
import type { Persistence } from '../src/broker/persistence.js'

type Owner = string

interface Delivery { tag: number, owner: Owner, id: string, command: string, group: string, attempt: number }

let nextId = 0
function msg (command: string, wantsAnswer = false): QueuedMessage {
  return {
    command,
    id: `m${nextId++}`,
    headers: undefined,
    kind: 1,
    payload: new Uint8Array([1, 2, 3]),
    producer: 'producer',
    timestamp: 0,
    wantsAnswer,
    attempts: 0
  }
}

function setup (options: Partial<EngineOptions> = {}, kept?: Persistence) {
  let now = 1_000
  const deliveries: Delivery[] = []
  const completed: Array<{ id: string, by: Owner, answer?: { kind: number, payload: Uint8Array } }> = []
  const failed: Array<{ id: string, error: string, by: Owner | undefined }> = []
  const expired: Array<InFlight<Owner>> = []
  const relieved: string[] = []
  let maxOverPrefetch = 0
  const engine = new QueueEngine<Owner>({
    deliver: (d) => {
      maxOverPrefetch = Math.max(maxOverPrefetch, d.sub.unacked - d.sub.prefetch)
      deliveries.push({ tag: d.tag, owner: d.sub.owner, id: d.message.id, command: d.message.command, group: d.queue.group, attempt: d.message.attempts })
    },
    completed: (m, by, answer) => completed.push({ id: m.id, by, answer }),
    failed: (m, error, by) => failed.push({ id: m.id, error, by }),
    expired: (d) => expired.push(d),
    relieved: (q) => relieved.push(q.name)
  }, { visibilityTimeout: 1_000, maxAttempts: Infinity, maxMessages: 10_000, highWater: Infinity, clock: () => now, ...options }, kept)
  const of = (owner: Owner): Delivery[] => deliveries.filter((d) => d.owner === owner)
  return {
    engine,
    deliveries,
    completed,
    failed,
    expired,
    relieved,
    of,
    ids: (owner: Owner) => of(owner).map((d) => d.id),
    advance: (ms: number) => { now += ms },
    maxOverPrefetch: () => maxOverPrefetch
  }
}

function publishMany (engine: QueueEngine<Owner>, command: string, n: number): string[] {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const m = msg(command)
    expect(engine.publish(m)).toBeGreaterThan(0)
    ids.push(m.id)
  }
  return ids
}

describe('QueueEngine', () => {
  it('keeps unrouted messages until a matching subscriber arrives', () => {
    const t = setup()
    const ids = publishMany(t.engine, 'jobs', 3)
    expect(t.deliveries).toEqual([])
    expect(t.engine.size).toBe(3)
    expect(t.engine.stats()).toEqual([
      { command: 'jobs', group: '', depth: 3, inFlight: 0, delayed: 0, consumers: 0, published: 3, delivered: 0, acked: 0, nacked: 0, failed: 0, expired: 0 }
    ])

    t.engine.subscribe('b', 1, 'g', ['other'], 10)
    expect(t.deliveries).toEqual([])

    t.engine.subscribe('a', 1, 'g', ['jobs'], 10)
    expect(t.ids('a')).toEqual(ids)
    expect(t.of('a').map((d) => d.attempt)).toEqual([1, 1, 1])
    expect(t.engine.stats().find((s) => s.command === 'jobs')).toMatchObject({ group: 'g', depth: 0, inFlight: 3, published: 3 })
  })

  it('round-robins across the subscriptions of one group', () => {
    const t = setup()
    for (const owner of ['a', 'b', 'c']) t.engine.subscribe(owner, 1, 'g', ['work'], 100)
    const ids = publishMany(t.engine, 'work', 30)
    expect(t.deliveries.slice(0, 6).map((d) => d.owner)).toEqual(['a', 'b', 'c', 'a', 'b', 'c'])
    expect(t.ids('a')).toEqual(ids.filter((_, i) => i % 3 === 0))
    expect(t.ids('b')).toHaveLength(10)
    expect(t.ids('c')).toHaveLength(10)
  })

  it('never exceeds prefetch, and an ack returns credit and triggers the next delivery', () => {
    const t = setup()
    const sub = t.engine.subscribe('a', 1, 'g', ['work'], 3)
    const ids = publishMany(t.engine, 'work', 10)
    expect(t.ids('a')).toEqual(ids.slice(0, 3))
    expect(sub.unacked).toBe(3)
    expect(t.engine.stats()[0]).toMatchObject({ depth: 7, inFlight: 3 })

    expect(t.engine.ack('a', t.deliveries[0].tag)).toBe(true)
    expect(t.ids('a')).toEqual(ids.slice(0, 4))
    expect(sub.unacked).toBe(3)

    for (let i = 1; i < t.deliveries.length; i++) expect(t.engine.ack('a', t.deliveries[i].tag)).toBe(true)
    expect(t.ids('a')).toEqual(ids)
    expect(t.completed.map((c) => c.id)).toEqual(ids)
    expect(sub.unacked).toBe(0)
    expect(t.maxOverPrefetch()).toBe(0)
    expect(t.engine.size).toBe(0)
  })

  it('gives a slow consumer (small prefetch, not acking) fewer messages', () => {
    const t = setup()
    t.engine.subscribe('fast', 1, 'g', ['work'], 10)
    t.engine.subscribe('slow', 1, 'g', ['work'], 2)
    let acked = 0
    for (let i = 0; i < 30; i++) {
      t.engine.publish(msg('work'))
      const fast = t.of('fast')
      for (; acked < fast.length; acked++) t.engine.ack('fast', fast[acked].tag)
    }
    expect(t.of('slow')).toHaveLength(2)
    expect(t.of('fast')).toHaveLength(28)
  })

  it('fans out to every group; consumers inside a group share', () => {
    const t = setup()
    t.engine.subscribe('a1', 1, 'billing', ['orders'], 100)
    t.engine.subscribe('a2', 1, 'billing', ['orders'], 100)
    t.engine.subscribe('b', 1, 'shipping', ['orders'], 100)
    const ids = publishMany(t.engine, 'orders', 10)
    expect(t.ids('b')).toEqual(ids)
    expect(t.ids('a1')).toHaveLength(5)
    expect(t.ids('a2')).toHaveLength(5)
    expect([...t.ids('a1'), ...t.ids('a2')].sort()).toEqual([...ids].sort())
    expect(t.engine.size).toBe(20)
    expect(t.engine.publish(msg('orders'))).toBe(2) // the copies made: one per group
  })

  it('counts attempts per group: each fanned-out copy starts at attempt 1', () => {
    const t = setup({ maxAttempts: 2 })
    t.engine.subscribe('a', 1, 'g1', ['orders'], 1)
    t.engine.subscribe('b', 1, 'g2', ['orders'], 1)
    const [id] = publishMany(t.engine, 'orders', 1)
    expect(t.deliveries.map((d) => [d.owner, d.attempt])).toEqual([['a', 1], ['b', 1]])
    // g2's copy has one retry left, like g1's
    t.engine.nack('b', t.deliveries[1].tag, true, 'retry')
    expect(t.failed).toEqual([])
    expect(t.deliveries[2]).toMatchObject({ owner: 'b', id, attempt: 2 })
  })

  it('routes wildcards: users.* matches one word, users.# zero or more', () => {
    const t = setup()
    t.engine.subscribe('star', 1, 'star', ['users.*'], 100)
    t.engine.subscribe('hash', 1, 'hash', ['users.#'], 100)
    for (const command of ['users.a', 'users.a.b', 'users', 'orders.x']) t.engine.publish(msg(command))
    expect(t.of('star').map((d) => d.command)).toEqual(['users.a'])
    expect(t.of('hash').map((d) => d.command)).toEqual(['users.a', 'users.a.b', 'users'])
    expect(t.engine.stats().find((s) => s.command === 'orders.x')).toMatchObject({ group: '', depth: 1 })
  })

  it('nack with requeue redelivers with attempt raised, to another consumer with credit', () => {
    const t = setup()
    t.engine.subscribe('a', 1, 'g', ['work'], 1)
    t.engine.subscribe('b', 1, 'g', ['work'], 1)
    const [id] = publishMany(t.engine, 'work', 1)
    expect(t.deliveries).toMatchObject([{ owner: 'a', id, attempt: 1 }])
    expect(t.engine.nack('a', t.deliveries[0].tag, true, 'boom')).toBe(true)
    expect(t.deliveries).toHaveLength(2)
    expect(t.deliveries[1]).toMatchObject({ owner: 'b', id, attempt: 2 })
    expect(t.failed).toEqual([])
    expect(t.engine.stats()[0]).toMatchObject({ nacked: 1, delivered: 2, inFlight: 1 })
  })

  it('nack without requeue fails the message at once', () => {
    const t = setup()
    t.engine.subscribe('a', 1, 'g', ['work'], 1)
    t.engine.subscribe('b', 1, 'g', ['work'], 1)
    const [id] = publishMany(t.engine, 'work', 1)
    expect(t.engine.nack('a', t.deliveries[0].tag, false, 'rejected')).toBe(true)
    expect(t.failed).toEqual([{ id, error: 'rejected', by: 'a' }])
    expect(t.deliveries).toHaveLength(1)
    expect(t.engine.size).toBe(0)
    expect(t.engine.stats()[0]).toMatchObject({ failed: 1, nacked: 1, inFlight: 0, depth: 0 })
  })

  it('fails a message after maxAttempts failed deliveries', () => {
    const t = setup({ maxAttempts: 3 })
    t.engine.subscribe('a', 1, 'g', ['work'], 1)
    const [id] = publishMany(t.engine, 'work', 1)
    for (let i = 0; i < 3; i++) {
      expect(t.failed).toEqual([])
      t.engine.nack('a', t.deliveries[i].tag, true, `try ${i + 1}`)
    }
    expect(t.deliveries.map((d) => d.attempt)).toEqual([1, 2, 3])
    expect(t.failed).toEqual([{ id, error: 'try 3', by: 'a' }])
    expect(t.engine.size).toBe(0)
  })

  it('unsubscribe puts in-flight messages back, in order, for other consumers', () => {
    const t = setup()
    const a = t.engine.subscribe('a', 1, 'g', ['work'], 3)
    const ids = publishMany(t.engine, 'work', 4)
    expect(t.ids('a')).toEqual(ids.slice(0, 3))
    t.engine.subscribe('b', 1, 'g', ['work'], 10)
    expect(t.ids('b')).toEqual([ids[3]])

    t.engine.unsubscribe(a)
    expect(t.ids('b')).toEqual([ids[3], ids[0], ids[1], ids[2]])
    expect(t.of('b').map((d) => d.attempt)).toEqual([1, 2, 2, 2])
    expect(t.engine.ack('a', t.deliveries[0].tag)).toBe(false)
    expect(t.engine.stats()[0]).toMatchObject({ consumers: 1, inFlight: 4, depth: 0 })
  })

  it('expire() takes back deliveries past the visibility timeout; a late ack returns false', () => {
    const t = setup()
    t.engine.subscribe('a', 1, 'g', ['work'], 2)
    t.engine.subscribe('b', 1, 'g', ['work'], 2)
    const ids = publishMany(t.engine, 'work', 2)
    expect(t.ids('a')).toEqual([ids[0]])
    expect(t.ids('b')).toEqual([ids[1]])
    const [first, second] = t.deliveries
    expect(t.engine.ack('b', second.tag)).toBe(true)

    t.advance(999)
    expect(t.engine.expire()).toBe(0)
    t.advance(1)
    expect(t.engine.expire()).toBe(1)
    expect(t.expired.map((d) => d.tag)).toEqual([first.tag])
    expect(t.deliveries).toHaveLength(3)
    expect(t.deliveries[2]).toMatchObject({ id: ids[0], attempt: 2 })
    expect(t.engine.ack('a', first.tag)).toBe(false)
    expect(t.engine.ack(t.deliveries[2].owner, t.deliveries[2].tag)).toBe(true)
    expect(t.completed.map((c) => c.id)).toEqual([ids[1], ids[0]])
    expect(t.engine.expire()).toBe(0)
  })

  it('a subscription whose delivery timed out gets nothing new until its consumer settles something', () => {
    const t = setup()
    const stuck = t.engine.subscribe('stuck', 1, 'g', ['work'], 2)
    const ids = publishMany(t.engine, 'work', 4)
    expect(t.ids('stuck')).toEqual([ids[0], ids[1]])
    t.advance(1_000)
    expect(t.engine.expire()).toBe(2)
    // Not given back to the stuck consumer, not even the two that timed out.
    expect(t.deliveries).toHaveLength(2)
    expect(t.engine.stats()[0]).toMatchObject({ depth: 4, inFlight: 0 })
    t.engine.subscribe('b', 1, 'g', ['work'], 4)
    expect(t.ids('b')).toHaveLength(4)
    expect(t.ids('b')).toEqual(expect.arrayContaining(ids))
    // b is full; the stuck one takes nothing until a late ack shows it is alive (its session
    // calls resume then).
    publishMany(t.engine, 'work', 1)
    expect(t.of('stuck')).toHaveLength(2)
    expect(t.engine.ack('stuck', t.deliveries[0].tag)).toBe(false)
    t.engine.resume(stuck)
    expect(t.of('stuck')).toHaveLength(3)
  })

  it('refuses an ack from a different owner or for an unknown tag', () => {
    const t = setup()
    t.engine.subscribe('a', 1, 'g', ['work'], 1)
    publishMany(t.engine, 'work', 1)
    const { tag } = t.deliveries[0]
    expect(t.engine.ack('intruder', tag)).toBe(false)
    expect(t.engine.nack('intruder', tag, false, 'x')).toBe(false)
    expect(t.engine.ack('a', tag + 100)).toBe(false)
    expect(t.completed).toEqual([])
    expect(t.engine.ack('a', tag)).toBe(true)
    expect(t.engine.ack('a', tag)).toBe(false)
  })

  it('refuses publishes beyond maxMessages', () => {
    const t = setup({ maxMessages: 2 })
    expect(t.engine.publish(msg('work'))).toBe(1)
    expect(t.engine.publish(msg('work'))).toBe(1)
    expect(t.engine.publish(msg('work'))).toBe(0)
    expect(t.engine.size).toBe(2)

    t.engine.subscribe('a', 1, 'g', ['work'], 10)
    expect(t.deliveries).toHaveLength(2)
    expect(t.engine.publish(msg('work'))).toBe(0)
    t.engine.ack('a', t.deliveries[0].tag)
    expect(t.engine.publish(msg('work'))).toBe(1)
    expect(t.deliveries).toHaveLength(3)
  })

  it('answer() passes the answer to completed() only when the producer wants it', () => {
    const t = setup()
    t.engine.subscribe('a', 1, 'g', ['work'], 10)
    const asked = msg('work', true)
    const told = msg('work', false)
    t.engine.publish(asked)
    t.engine.publish(told)
    const payload = new Uint8Array([9, 8])
    expect(t.engine.answer('a', t.deliveries[0].tag, 2, payload)).toBe(true)
    expect(t.engine.answer('a', t.deliveries[1].tag, 2, payload)).toBe(true)
    expect(t.completed).toEqual([
      { id: asked.id, by: 'a', answer: { kind: 2, payload } },
      { id: told.id, by: 'a', answer: undefined }
    ])
    expect(t.engine.answer('a', t.deliveries[0].tag, 2, payload)).toBe(false)
  })

  it('stats() counts depth, inFlight, consumers and acked', () => {
    const t = setup()
    t.engine.subscribe('a', 1, 'g', ['work'], 2)
    t.engine.subscribe('b', 1, 'g', ['work'], 2)
    publishMany(t.engine, 'work', 6)
    t.engine.ack('a', t.deliveries[0].tag)
    expect(t.engine.stats()).toEqual([
      { command: 'work', group: 'g', depth: 1, inFlight: 4, delayed: 0, consumers: 2, published: 6, delivered: 5, acked: 1, nacked: 0, failed: 0, expired: 0 }
    ])
    expect(t.engine.size).toBe(5)
  })

  it('rejects invalid subscriptions', () => {
    const t = setup()
    expect(() => t.engine.subscribe('a', 1, 'g', [], 1)).toThrow(TypeError)
    expect(() => t.engine.subscribe('a', 1, 'g', ['a..b'], 1)).toThrow(TypeError)
    expect(() => t.engine.subscribe('a', 1, 'g', ['work'], 0)).toThrow(TypeError)
  })
})

describe('publisher flow control', () => {
  it('marks a queue with consumers congested at highWater and relieves it at half', () => {
    const t = setup({ highWater: 10 })
    t.engine.subscribe('c1', 1, 'g', ['work'], 2)
    publishMany(t.engine, 'work', 11)
    // 2 in flight, 9 ready: below the mark.
    expect(t.engine.congested('work')).toBe(false)
    publishMany(t.engine, 'work', 1)
    expect(t.engine.congested('work')).toBe(true)
    expect(t.engine.congested('other')).toBe(false)
    // Each ack lets one more out: 10 ready → 9 → … → 5, where it is relieved, once.
    for (let i = 0; i < 4; i++) t.engine.ack('c1', t.deliveries[i].tag)
    expect(t.engine.congested('work')).toBe(true)
    expect(t.relieved).toEqual([])
    t.engine.ack('c1', t.deliveries[4].tag)
    expect(t.engine.congested('work')).toBe(false)
    expect(t.relieved).toEqual(['work@g'])
    t.engine.ack('c1', t.deliveries[5].tag)
    expect(t.relieved).toEqual(['work@g'])
  })

  it('never congests a queue without consumers, and relieves one whose last consumer leaves', () => {
    const t = setup({ highWater: 3 })
    publishMany(t.engine, 'waiting', 10) // unrouted: no group wants it yet
    expect(t.engine.congested('waiting')).toBe(false)
    const sub = t.engine.subscribe('c1', 1, 'g', ['work'], 1)
    publishMany(t.engine, 'work', 5)
    expect(t.engine.congested('work')).toBe(true)
    t.engine.unsubscribe(sub)
    expect(t.engine.congested('work')).toBe(false)
    expect(t.relieved).toEqual(['work@g'])
    publishMany(t.engine, 'work', 5)
    expect(t.engine.congested('work')).toBe(false)
  })
})

describe('due times, retries and expiry', () => {
  it('holds a delayed message until its due time, then queues it at the tail', () => {
    const t = setup()
    t.engine.subscribe('c1', 1, 'g', ['work'], 10)
    const later = msg('work')
    later.dueAt = 1_000 + 500
    t.engine.publish(later)
    t.engine.publish(msg('work'))
    expect(t.deliveries.map((d) => d.id)).not.toContain(later.id)
    expect(t.engine.stats()[0]).toMatchObject({ depth: 0, delayed: 1 })
    expect(t.engine.nextDue).toBe(1_500)
    t.advance(499)
    expect(t.engine.promote()).toBe(1_500)
    expect(t.deliveries).toHaveLength(1)
    t.advance(1)
    expect(t.engine.promote()).toBeUndefined()
    expect(t.deliveries.map((d) => d.id)).toContain(later.id)
    expect(t.engine.stats()[0]).toMatchObject({ delayed: 0, inFlight: 2 })
  })

  it('backs off before each retry: delay × factor^(failures − 1), at most maxDelay', () => {
    const t = setup({ retry: { delay: 100, factor: 2, maxDelay: 300 } })
    t.engine.subscribe('c1', 1, 'g', ['work'], 1)
    t.engine.publish(msg('work'))
    let now = 1_000
    const waits: number[] = []
    for (let attempt = 1; attempt <= 4; attempt++) {
      const d = t.deliveries[t.deliveries.length - 1]
      expect(d.attempt).toBe(attempt)
      t.engine.nack('c1', d.tag, true, `failure ${attempt}`)
      const due = t.engine.nextDue as number
      waits.push(due - now)
      t.advance(due - now)
      now = due
      t.engine.promote()
    }
    expect(waits).toEqual([100, 200, 300, 300])
  })

  it('fails an expired message as "expired" instead of delivering it; a queue policy sets a TTL', () => {
    const t = setup({ policies: [{ pattern: 'short.*', ttl: 50 }] })
    const stale = msg('work')
    stale.expiresAt = 1_000 + 10
    t.engine.publish(stale)
    const short = msg('short.lived') // waits unrouted; the TTL counts from its publish (time 0 here)
    t.engine.publish(short)
    t.advance(100)
    t.engine.subscribe('c1', 1, 'g', ['work', 'short.*'], 10)
    t.engine.publish(msg('work'))
    expect(t.failed.map((f) => [f.id, f.error, f.by]).sort()).toEqual([[stale.id, 'expired', undefined], [short.id, 'expired', undefined]].sort())
    expect(t.deliveries.map((d) => d.command)).toEqual(['work'])
    const fresh = msg('short.lived')
    fresh.timestamp = 1_100
    t.engine.publish(fresh)
    expect(fresh.expiresAt).toBe(1_100 + 50)
  })

  it('withdraws waiting messages of a command from every group and from the unrouted ones', () => {
    const t = setup()
    t.engine.publish(msg('x.dlq'))
    t.engine.publish(msg('x.dlq'))
    expect(t.engine.withdraw('x.dlq', 1)).toHaveLength(1)
    expect(t.engine.size).toBe(1)
    expect(t.engine.withdraw('x.dlq', 10)).toHaveLength(1)
    expect(t.engine.size).toBe(0)
  })
})

describe('single-active consumers and purge', () => {
  it('gives a single-active queue to one consumer, one message at a time, in order; the next takes over', () => {
    const t = setup({ retry: { delay: 1_000, factor: 1, maxDelay: 1_000 } })
    const first = t.engine.subscribe('c1', 1, 'g', ['serial'], 10, true)
    t.engine.subscribe('c2', 1, 'g', ['serial'], 10, true)
    const ids = publishMany(t.engine, 'serial', 3)
    expect(t.deliveries.map((d) => [d.owner, d.id])).toEqual([['c1', ids[0]]])
    t.engine.ack('c1', t.deliveries[0].tag)
    expect(t.deliveries.map((d) => [d.owner, d.id])).toEqual([['c1', ids[0]], ['c1', ids[1]]])
    // A nack retries at once and first, despite the backoff: the order holds.
    t.engine.nack('c1', t.deliveries[1].tag, true, 'again')
    expect(t.deliveries[2]).toMatchObject({ owner: 'c1', id: ids[1], attempt: 2 })
    // c1 leaves: its message goes back first, to c2, which then gets the rest in order.
    t.engine.unsubscribe(first)
    expect(t.deliveries[3]).toMatchObject({ owner: 'c2', id: ids[1], attempt: 3 })
    t.engine.ack('c2', t.deliveries[3].tag)
    expect(t.deliveries[4]).toMatchObject({ owner: 'c2', id: ids[2] })
    expect(t.deliveries).toHaveLength(5)
  })

  it('purges waiting and delayed messages of a command, in one group or all, leaving those in flight', () => {
    const t = setup()
    t.engine.subscribe('c1', 1, 'g', ['work'], 1)
    t.engine.subscribe('c2', 2, 'h', ['work'], 1)
    publishMany(t.engine, 'work', 3)
    const later = msg('work')
    later.dueAt = 5_000
    t.engine.publish(later)
    publishMany(t.engine, 'unbound', 2)
    expect(t.engine.purge('work', 'g').messages.length).toBe(3) // 2 waiting + 1 delayed; 1 in flight stays
    expect(t.engine.stats().find((q) => q.group === 'g')).toMatchObject({ depth: 0, delayed: 0, inFlight: 1 })
    expect(t.engine.stats().find((q) => q.group === 'h')).toMatchObject({ depth: 2, delayed: 1 })
    expect(t.engine.purge('work').messages.length).toBe(3)
    expect(t.engine.purge('unbound').messages.length).toBe(2)
    expect(t.engine.size).toBe(2) // the two in flight
  })
})

describe('paging', () => {
  it('keeps a page in memory, the rest on disk, and reads pages back in order as consumers take them', () => {
    const disk: QueuedMessage[] = []
    const deliveries: string[] = []
    const asked: number[] = []
    let queue: Queue | undefined
    // The test is the store: it keeps every message at the order the engine gave it, and serves the pages the engine asks for.
    const engine = new QueueEngine<Owner>({
      deliver: (d) => { deliveries.push(d.message.id) },
      completed: () => {},
      failed: () => {},
      pageNeeded: (q) => { asked.push(q.tail) }
    }, { visibilityTimeout: 1_000, maxAttempts: Infinity, maxMessages: 1_000, highWater: Infinity, pageSize: 10 }, persistence({ enqueued: (m, q) => { queue = q; disk.push(m) } }))
    engine.unsubscribe(engine.subscribe('c0', 0, 'g', ['work'], 1)) // binds the group, then leaves
    const ids = publishMany(engine, 'work', 25)
    expect(engine.stats()[0]).toMatchObject({ depth: 25 })
    const readPage = (): void => {
      const q = queue as Queue
      engine.loadPage(q, q.generation, disk.filter((m) => (m.pageOrder as number) > q.tail).slice(0, 10))
    }
    engine.subscribe('c1', 1, 'g', ['work'], 100)
    expect(deliveries).toHaveLength(10) // the page that was in memory
    expect(asked).toEqual([10]) // it ran low: the next page, after order 10
    readPage()
    expect(asked).toEqual([10, 20])
    readPage()
    expect(deliveries).toEqual(ids)
    expect(engine.stats()[0]).toMatchObject({ depth: 0, inFlight: 25 })
  })
})

describe('transient messages', () => {
  it('are never given to persistence nor paged out: past a full page they wait in memory (ahead of the paged part); retries and delays too', () => {
    const stored: string[] = []
    const pagedOut: string[] = []
    const deliveries: string[] = []
    let now = 1_000
    const engine = new QueueEngine<Owner>({
      deliver: (d) => { deliveries.push(d.message.id) },
      completed: () => {},
      failed: () => {},
      pagedOut: (m) => { pagedOut.push(m.id) }
    }, {
      visibilityTimeout: 1_000,
      maxAttempts: Infinity,
      maxMessages: 1_000,
      highWater: Infinity,
      pageSize: 2,
      clock: () => now,
      retry: { delay: 100, factor: 1, maxDelay: 100 },
      policies: [{ pattern: 'metrics.#', transient: true }]
    }, persistence({ enqueued: (m) => { stored.push(m.id) }, delayed: (m) => { stored.push(m.id) }, requeued: (m) => { stored.push(m.id) } }))
    const durable = publishMany(engine, 'work', 3) // the third is paged out
    const transient = [msg('work'), msg('work'), { ...msg('work'), dueAt: now + 50 }].map((m) => ({ ...m, transient: true }))
    for (const m of transient) engine.publish(m)
    const byPolicy = msg('metrics.cpu')
    engine.publish(byPolicy)
    expect(byPolicy.transient).toBe(true)
    expect(stored).toEqual(durable)
    expect(pagedOut).toEqual([durable[2]])
    expect(engine.size).toBe(7)
    engine.subscribe('c', 0, 'g', ['work'], 10)
    expect(deliveries).toEqual([durable[0], durable[1], transient[0].id, transient[1].id])
    engine.nack('c', 1, true, 'try again') // durable[0]: delayed for its retry, written
    engine.nack('c', 3, true, 'try again') // transient[0]: delayed for its retry, in memory
    expect(stored).toEqual([...durable, durable[0]])
    now += 100
    engine.promote()
    // The transient ones, due, go ahead of the paged part; durable[0], due, waits behind it on disk.
    expect(deliveries.slice(4)).toEqual([transient[2].id, transient[0].id])
    expect(pagedOut).toEqual([durable[2], durable[0]])
    expect(new Set(stored)).toEqual(new Set(durable))
  })
})

describe('paging delayed messages', () => {
  it('reads a message stored in the middle of a page being read, that the page lacks', () => {
    let now = 0
    const disk: Array<{ message: QueuedMessage, queue: Queue }> = []
    let asked: { after: { at: number, order: number }, generation: number } | undefined
    const delivered: string[] = []
    const engine = new QueueEngine<Owner>({
      deliver: (d) => { delivered.push(d.message.id) },
      completed: () => {},
      failed: () => {},
      delayedPageNeeded: (after, generation) => { asked = { after, generation } }
    }, { visibilityTimeout: 1_000, maxAttempts: Infinity, maxMessages: 1_000, highWater: Infinity, pageSize: 4, clock: () => now },
    // The test is the store: it keeps every delayed message at the order the engine gave it, and serves the pages the engine asks for.
    persistence({ delayed: (m, q) => { disk.push({ message: m, queue: q }) } }))
    engine.subscribe('c', 1, 'g', ['later'], 100)
    const publish = (id: string, at: number): void => { engine.publish({ ...msg('later'), id, dueAt: at }) }
    const beyond = (x: { message: QueuedMessage }, b: { at: number, order: number }): boolean =>
      (x.message.dueAt as number) > b.at || (x.message.dueAt === b.at && (x.message.dueOrder as number) > b.order)
    /** Answers the page asked for, from what was stored up to `upTo`. */
    const serve = (upTo = disk.length): void => {
      const ask = asked as NonNullable<typeof asked>
      asked = undefined
      const page = disk.slice(0, upTo).filter((x) => beyond(x, ask.after)).sort((a, b) => (a.message.dueAt as number) - (b.message.dueAt as number)).slice(0, 4)
      engine.loadDelayedPage(ask.generation, page)
    }
    for (let i = 0; i < 10; i++) publish(`d${i * 10}`, 100 + i * 10) // 4 in memory, 6 only on disk
    now = 135
    engine.promote() // 4 due: the schedule runs low and asks for the page after (130, 4)
    expect(asked).toBeDefined()
    const stored = disk.length
    publish('d155', 155) // stored while the page (140, 150, 160, 170) is being read, and not in it
    serve(stored)
    now = 1_000
    for (let i = 0; i < 5; i++) {
      engine.promote()
      if (asked != null) serve()
    }
    expect(delivered).toEqual(['d0', 'd10', 'd20', 'd30', 'd40', 'd50', 'd155', 'd60', 'd70', 'd80', 'd90'])
    expect(engine.size).toBe(11)
  })
})

describe('idle queue sweep', () => {
  const names = (engine: QueueEngine<Owner>): string[] => engine.stats().map((q) => `${q.command}@${q.group}`).sort()

  it('removes a queue that stayed empty and idle between two sweeps; a new message makes it again for the attached consumer', () => {
    const t = setup({ queueSweepInterval: 1_000 })
    const sub = t.engine.subscribe('c1', 1, 'g', ['user.#'], 10)
    for (const id of ['1', '2', '3']) t.engine.publish(msg(`user.${id}.created`))
    for (const d of [...t.deliveries]) t.engine.ack('c1', d.tag)
    expect(sub.queues).toHaveLength(3)
    expect(t.engine.sweepQueues()).toEqual([]) // before the interval: no sweep
    t.advance(1_000)
    expect(t.engine.sweepQueues()).toEqual([]) // the first sweep that finds them empty marks them
    t.engine.publish(msg('user.2.created')) // activity: user.2 stays one more interval
    t.engine.ack('c1', t.deliveries[3].tag)
    t.advance(1_000)
    expect(t.engine.sweepQueues().map((q) => q.name).sort()).toEqual(['user.1.created@g', 'user.3.created@g'])
    expect(names(t.engine)).toEqual(['user.2.created@g'])
    expect(sub.queues.map((q) => q.name)).toEqual(['user.2.created@g'])
    t.advance(1_000)
    expect(t.engine.sweepQueues().map((q) => q.name)).toEqual(['user.2.created@g'])
    expect(t.engine.stats()).toEqual([])
    expect(sub.queues).toEqual([])
    // Made again, attached to the subscription, with fresh counters.
    const again = msg('user.1.created')
    t.engine.publish(again)
    expect(t.deliveries.at(-1)).toMatchObject({ owner: 'c1', id: again.id, group: 'g' })
    expect(sub.queues.map((q) => q.name)).toEqual(['user.1.created@g'])
    expect(t.engine.stats()).toMatchObject([{ command: 'user.1.created', published: 1, inFlight: 1, consumers: 1 }])
  })

  it('keeps a queue with a message in flight, delayed (in memory or on disk), or paged on disk', () => {
    const t = setup({ queueSweepInterval: 1_000 })
    t.engine.subscribe('c1', 1, 'g', ['busy', 'later'], 10)
    t.engine.bind('g', 'paged')
    t.engine.bind('g', 'later-on-disk')
    t.engine.publish(msg('busy')) // in flight, never settled
    t.engine.publish({ ...msg('later'), dueAt: 1_000_000 }) // delayed, in memory
    t.engine.restoreDelayedOnDisk('later-on-disk', 'g', 1) // delayed, only on disk
    t.engine.restoreOnDisk('paged', 'g', 2) // ready, only on disk (no consumer)
    for (let i = 0; i < 3; i++) {
      t.advance(1_000)
      expect(t.engine.sweepQueues()).toEqual([])
    }
    expect(names(t.engine)).toEqual(['busy@g', 'later-on-disk@g', 'later@g', 'paged@g'])
    // Settled, the in-flight one's queue goes two sweeps later.
    t.engine.ack('c1', t.deliveries[0].tag)
    t.advance(1_000)
    expect(t.engine.sweepQueues()).toEqual([])
    t.advance(1_000)
    expect(t.engine.sweepQueues().map((q) => q.name)).toEqual(['busy@g'])
  })

  it('removes an emptied unrouted queue, and keeps the round robin over the queues that stay', () => {
    const t = setup({ queueSweepInterval: 1_000 })
    t.engine.publish(msg('jobs.dlq')) // no group wants it: unrouted
    t.engine.publish(msg('waiting')) // unrouted, and stays so
    expect(t.engine.withdraw('jobs.dlq', 10)).toHaveLength(1) // a replay of dead letters empties it
    const sub = t.engine.subscribe('c1', 1, 'g', ['a', 'b', 'c'], 1)
    for (const c of ['a', 'b', 'c']) t.engine.publish(msg(c))
    t.engine.ack('c1', t.deliveries[0].tag) // a done: b is delivered
    t.engine.ack('c1', t.deliveries[1].tag) // b done: c is delivered, the round robin is past c
    t.engine.publish(msg('a'))
    t.advance(1_000)
    t.engine.sweepQueues()
    t.advance(1_000)
    // a (ready, waiting for credit) and c (in flight) stay; b goes.
    expect(t.engine.sweepQueues().map((q) => q.name)).toEqual(['b@g', 'jobs.dlq@'])
    expect(sub.queues.map((q) => q.name)).toEqual(['a@g', 'c@g'])
    t.engine.ack('c1', t.deliveries[2].tag)
    expect(t.deliveries.map((d) => d.command)).toEqual(['a', 'b', 'c', 'a'])
    t.advance(1_000)
    t.engine.sweepQueues()
    t.advance(1_000)
    t.engine.sweepQueues()
    expect(names(t.engine)).toEqual(['a@g', 'waiting@']) // in flight, and waiting
  })
})

describe('order', () => {
  it('gives each message its place, from one counter for queue order and due order, after those restored', () => {
    const t = setup({}, persistence())
    t.engine.restoreOrder(41) // a store holds messages numbered up to 41
    const ready = { ...msg('work') }
    const later = { ...msg('work'), dueAt: 5_000 }
    const after = { ...msg('work') }
    t.engine.publish(ready)
    t.engine.publish(later)
    t.engine.publish(after)
    expect([ready.pageOrder, later.dueOrder, after.pageOrder]).toEqual([42, 43, 44])
    expect(later.pageOrder).toBeUndefined()
    t.advance(5_000)
    t.engine.promote() // came due: it takes the next place in its queue's order
    expect([later.pageOrder, later.dueOrder]).toEqual([45, undefined])
  })

  it('gives none without persistence (nothing pages): the messages keep their shape', () => {
    const t = setup()
    const ready = { ...msg('work') }
    const later = { ...msg('work'), dueAt: 5_000 }
    t.engine.publish(ready)
    t.engine.publish(later)
    expect(['pageOrder' in ready, 'dueOrder' in ready, 'pageOrder' in later, 'dueOrder' in later]).toEqual([false, false, false, false])
  })
})

describe('persistence', () => {
  it('is told every change a restart must find: messages in order and delayed, requeues, adoptions, bindings, group expiries', () => {
    const told: string[] = []
    const engine = new QueueEngine<Owner>({ deliver: () => {}, completed: () => {}, failed: () => {} }, { visibilityTimeout: 1_000, maxAttempts: Infinity, maxMessages: 100, highWater: Infinity, clock: () => 1_000 }, persistence({
      enqueued: (m, q) => { told.push(`enqueued ${m.id} ${q.name} ${m.pageOrder}`) },
      delayed: (m, q) => { told.push(`delayed ${m.id} ${q.name} ${m.dueOrder}`) },
      requeued: (m, q) => { told.push(`requeued ${m.id} ${q.name}`) },
      adopted: (q) => { told.push(`adopted ${q.name}`) },
      bound: (group, pattern) => { told.push(`bound ${group} ${pattern}`) },
      groupExpiry: (group, ms) => { told.push(`expiry ${group} ${ms}`) }
    }))
    engine.publish({ ...msg('work'), id: 'a' })
    engine.publish({ ...msg('work'), id: 'b', dueAt: 2_000 })
    const sub = engine.subscribe('c', 1, 'g', ['work'], 1, false, 60_000)
    engine.unsubscribe(sub) // a goes back to wait
    expect(told).toEqual([
      'enqueued a work@ 1',
      'delayed b work@ 2',
      'bound g work',
      'expiry g 60000',
      'adopted work@g',
      'requeued a work@g'
    ])
  })
})

describe('Deliveries', () => {
  it('drops settled deliveries kept behind one held for long: the list stays about twice those in flight', () => {
    const deliveries = new Deliveries<string>()
    const sub = { owner: 'c', unacked: 0, timedOut: false } as unknown as Subscription<string>
    const queue = { inFlight: 0, delivered: 0 } as unknown as Queue
    const message = (): QueuedMessage => msg('work')
    deliveries.start(sub, queue, message(), 30_000) // held, never settled
    let peak = 0
    for (let i = 0; i < 100_000; i++) {
      const d = deliveries.start(sub, queue, message(), 30_000 + i)
      deliveries.settle('c', d.tag)
      peak = Math.max(peak, deliveries.tracked)
    }
    // Before, all 100,001 stayed (each with its message) until the first one's deadline.
    expect(peak).toBeLessThanOrEqual(2 + 1024 + 1)
    expect(deliveries.nextExpired(30_000)?.tag).toBe(1)
    expect(deliveries.nextExpired(Infinity)).toBeUndefined()
  })
})
