/** Limits per peer (src/broker/peer-limits.ts) and the budget for partly received frames (codec.ts), without a network. */
import { describe, expect, it } from 'vitest'
import { LimitLog, PeerLimits } from '../src/broker/peer-limits.js'
import { OnceAMinute } from '../src/broker/once-a-minute.js'
import { Mailbox, type KeptResult } from '../src/broker/mailbox.js'
import { FrameSplitter, FrameWriter, PartialFrameBudget } from '../src/protocol/codec.js'
import { LimitReachedError } from '../src/errors.js'

function clock (): { now: () => number, advance: (ms: number) => void } {
  let t = 1_000_000
  return { now: () => t, advance: (ms) => { t += ms } }
}

function limits (init: Partial<ConstructorParameters<typeof PeerLimits>[0]> = {}): { peers: PeerLimits, logged: string[], advance: (ms: number) => void } {
  const c = clock()
  const logged: string[] = []
  const log = new LimitLog((peer, limit) => { logged.push(`${limit} ${peer}`) }, c.now)
  const peers = new PeerLimits({ maxSubscriptionsPerPeer: 3, maxPrefetchPerPeer: 100, maxWatchesPerPeer: 2, publishRate: 0, maxInFlightPerPeer: 3, maxInFlightBytesPerPeer: 1000, ...init }, log, c.now)
  return { peers, logged, advance: c.advance }
}

describe('PeerLimits', () => {
  it('counts subscriptions and their prefetch per peer, and frees them', () => {
    const { peers, logged } = limits()
    expect(peers.takeSubscription('a', 40)).toBeUndefined()
    expect(peers.takeSubscription('a', 40)).toBeUndefined()
    expect(peers.takeSubscription('a', 40)).toMatch(/at most 100 deliveries unacknowledged.*at most 20/)
    expect(peers.takeSubscription('b', 100)).toBeUndefined() // another peer has its own
    expect(peers.takeSubscription('a', 20)).toBeUndefined()
    expect(peers.takeSubscription('a', 0)).toMatch(/at most 3 subscriptions/)
    peers.releaseSubscription('a', 40)
    expect(peers.takeSubscription('a', 40)).toBeUndefined()
    expect(logged).toEqual(['prefetch a', 'subscriptions a'])
  })

  it('holds a peer\'s producer streams while it has too many messages or bytes in flight, and reads them again under 90% of them', () => {
    const { peers, logged } = limits({ maxInFlightPerPeer: 10 })
    const events: string[] = []
    const holder = (name: string): { holdForFlight: () => void, resumeForFlight: () => void } => ({
      holdForFlight: () => { events.push(`hold ${name}`) },
      resumeForFlight: () => { events.push(`resume ${name}`) }
    })
    const s1 = holder('s1')
    const s2 = holder('s2')
    const flight = peers.openFlight('a', s1)
    expect(peers.openFlight('a', s2)).toBe(flight) // shared by the peer's streams
    const take = (n: number, bytes: number, by: typeof s1): void => {
      peers.addInFlight(flight, n, bytes)
      peers.holdIfOver('a', flight, by)
    }
    take(9, 90, s1)
    expect(events).toEqual([])
    take(1, 10, s2) // the tenth message: at the limit
    expect(events).toEqual(['hold s2'])
    take(1, 10, s1)
    take(1, 10, s1) // held once
    expect(events).toEqual(['hold s2', 'hold s1'])
    // A stream opened meanwhile is held at once.
    const s3 = holder('s3')
    peers.openFlight('a', s3)
    expect(events.at(-1)).toBe('hold s3')
    peers.releaseInFlight('a', 3, 30) // 9 left: under the limit, not under 90% of it
    expect(events).toHaveLength(3)
    peers.releaseInFlight('a', 1, 10)
    expect(events.slice(3).sort()).toEqual(['resume s1', 'resume s2', 'resume s3'])
    // Bytes count the same way; another peer has its own.
    const other = peers.openFlight('b', s1)
    peers.addInFlight(other, 1, 1000)
    peers.holdIfOver('b', other, s1)
    expect(events.at(-1)).toBe('hold s1')
    peers.releaseInFlight('b', 5, 5000) // more than taken (taken before a restart): never below 0
    expect(other.messages).toBe(0)
    expect(other.bytes).toBe(0)
    expect(events.at(-1)).toBe('resume s1')
    expect(logged).toEqual(['in-flight a', 'in-flight b'])
    // Forgotten once no stream is open and nothing is in flight; a closed stream is not resumed.
    peers.closeFlight('b', other, s1)
    expect(peers.openFlight('b', s1)).not.toBe(other)
    take(10, 10, s1)
    expect(events.at(-1)).toBe('hold s1')
    peers.closeFlight('a', flight, s1)
    const before = events.length
    peers.releaseInFlight('a', 10, 10)
    expect(events).toHaveLength(before)
  })

  it('counts watches per peer', () => {
    const { peers } = limits()
    expect(peers.takeWatch('a')).toBeUndefined()
    expect(peers.takeWatch('a')).toBeUndefined()
    expect(peers.takeWatch('a')).toMatch(/at most 2 watches/)
    peers.releaseWatches('a', 2)
    expect(peers.takeWatch('a')).toBeUndefined()
  })

  it('paces publishes with a token bucket shared by a peer\'s streams, a second\'s worth saved', () => {
    const { peers, advance, logged } = limits({ publishRate: 10 })
    expect(peers.rateLimited).toBe(true)
    const s1 = peers.publishBucket('a')
    const s2 = peers.publishBucket('a')
    let taken = 0
    for (let i = 0; i < 10; i++) if ((i % 2 === 0 ? s1 : s2).take() === 0) taken++
    expect(taken).toBe(10)
    const wait = s1.take()
    expect(wait).toBeGreaterThan(0)
    expect(wait).toBeLessThanOrEqual(100)
    advance(100)
    expect(s2.take()).toBe(0)
    advance(60_000)
    for (let i = 0; i < 10; i++) expect(s1.take()).toBe(0) // at most a second's worth
    expect(s1.take()).toBeGreaterThan(0)
    expect(logged).toEqual(['rate a', 'rate a']) // once a minute
    expect(limits().peers.rateLimited).toBe(false)
  })
})

describe('LimitLog', () => {
  it('logs a peer and limit once a minute, and remembers a bounded number of them', () => {
    const c = clock()
    const lines: string[] = []
    const log = new LimitLog((peer, limit) => { lines.push(`${limit} ${peer}`) }, c.now)
    log.reached('a', 'x', '')
    log.reached('a', 'x', '')
    log.reached('a', 'y', '')
    log.reached('b', 'x', '')
    c.advance(60_000)
    log.reached('a', 'x', '')
    expect(lines).toEqual(['x a', 'y a', 'x b', 'x a'])
  })
})

describe('OnceAMinute', () => {
  it('tells a key once a minute with how many times it was held back, and forgets the longest untold first', () => {
    const once = new OnceAMinute()
    expect(once.tell('a', 0)).toBe(0)
    expect(once.tell('a', 1)).toBeUndefined()
    expect(once.tell('a', 59_999)).toBeUndefined()
    expect(once.tell('a', 60_000)).toBe(2)
    // 10,000 keys at most: 'a' (told first) is forgotten, so it is told again at once.
    for (let i = 0; i < 10_000; i++) once.tell(`k${i}`, 60_001)
    expect(once.tell('a', 60_002)).toBe(0)
    expect(once.tell('k9999', 60_002)).toBeUndefined()
  })
})

describe('Mailbox bytes', () => {
  it('keeps at most maxBytesPerProducer of payload per producer, dropping the oldest, and says so', () => {
    const pushed: string[] = []
    const box = new Mailbox(1_000, 100, () => {}, 250, (p) => { pushed.push(p) })
    const result = (id: string): KeptResult => ({ id, consumer: 'c', status: 0, attempts: 1, kind: 1, payload: new Uint8Array(100), keptAt: 0 })
    for (const id of ['r1', 'r2', 'r3']) box.keep('p', result(id))
    expect(box.take('p', 0).map((r) => r.id)).toEqual(['r2', 'r3'])
    expect(pushed).toEqual(['p'])
    // One larger than the bound is kept alone.
    box.keep('q', { ...result('big'), payload: new Uint8Array(1_000) })
    expect(box.take('q', 0).map((r) => r.id)).toEqual(['big'])
  })
})

describe('FrameSplitter with a budget', () => {
  const frame = (n: number): Uint8Array => {
    const parts: Uint8Array[] = []
    const w = new FrameWriter((b) => { parts.push(b) })
    w.begin(7).bytes(new Uint8Array(n)).end()
    w.flush()
    return Buffer.concat(parts)
  }

  it('counts partial frames past the free bytes, refuses past the budget, and gives back on completion or clear', () => {
    const budget = new PartialFrameBudget(1_000, 100)
    let frames = 0
    const a = new FrameSplitter(10_000, () => { frames++ }, budget)
    const b = new FrameSplitter(10_000, () => { frames++ }, budget)
    const big = frame(2_000)
    a.push(big.subarray(0, 50))
    expect(budget.used).toBe(0) // within the free bytes
    a.push(big.subarray(50, 900))
    expect(budget.used).toBe(800)
    expect(() => { b.push(big.subarray(0, 400)) }).toThrow(LimitReachedError)
    b.clear()
    expect(budget.used).toBe(800)
    a.clear()
    expect(budget.used).toBe(0)
    // A whole frame in pieces under the budget completes, and gives its bytes back.
    const c = new FrameSplitter(10_000, () => { frames++ }, new PartialFrameBudget(5_000, 100))
    c.push(big.subarray(0, 1_000))
    c.push(big.subarray(1_000))
    expect(frames).toBe(1)
  })

  it('pauses after the frame being handled, keeps the rest, and cuts it on resume', () => {
    const seen: number[] = []
    const s: FrameSplitter = new FrameSplitter(10_000, (_t, r) => { seen.push(r.bytes().byteLength); if (seen.length === 2) s.pause() })
    const bytes = Buffer.concat([frame(1), frame(2), frame(3), frame(4)])
    s.push(bytes.subarray(0, bytes.byteLength - 2))
    expect(seen).toEqual([1, 2])
    s.push(bytes.subarray(bytes.byteLength - 2))
    expect(seen).toEqual([1, 2])
    s.resume()
    expect(seen).toEqual([1, 2, 3, 4])
  })
})

describe('composeGaters', () => {
  it('refuses what any gater refuses, and keeps an address only when every gater keeps it', async () => {
    const { composeGaters } = await import('../src/node.js')
    const gater = composeGaters([
      { denyInboundEncryptedConnection: (peer) => String(peer) === 'a' },
      { denyInboundEncryptedConnection: async (peer) => String(peer) === 'b', filterMultiaddrForPeer: async () => false },
      { filterMultiaddrForPeer: () => true }
    ])
    const deny = gater.denyInboundEncryptedConnection as (peer: unknown, c: unknown) => Promise<boolean>
    expect(await deny('a', {})).toBe(true)
    expect(await deny('b', {})).toBe(true)
    expect(await deny('c', {})).toBe(false)
    expect(await (gater.filterMultiaddrForPeer as (p: unknown, m: unknown) => Promise<boolean>)('a', {})).toBe(false)
    expect(gater.denyDialPeer).toBeUndefined()
  })
})
