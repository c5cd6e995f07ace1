/**
 * Hostile peers against a real broker (`p2pmq broker`, a child process on 127.0.0.1): raw TCP
 * sockets and raw libp2p streams from attacker nodes built with createNode (no p2pmq client code
 * on the attacker's side), while a real producer/consumer pair keeps working and the broker's RSS
 * (read from /proc) stays bounded. Issue 12, items 5 and 6.
 */
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import type { Stream } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createAdmin, createConsumer, createProducer, type Consumer, type Producer } from '../src/index.js'
import { createNode, type P2PMQNode } from '../src/node.js'
import { ADMIN_PROTOCOL, CONSUMER_PROTOCOL, DEFAULT_MAX_PAYLOAD, FRAME_OVERHEAD_LIMIT, PRODUCER_PROTOCOL } from '../src/constants.js'
import type { FrameWriter } from '../src/protocol/codec.js'
import { frames, sendAll } from './raw-frames.js'
import { FrameType, PublishFlags, writeAck, writeAnswer, writeHello, writePublish, writeRequest, writeSubscribe, writeUnsubscribe } from '../src/protocol/frames.js'
import { startBroker } from './cli-helpers.js'
import { consumer, onCleanup, producer, sleep, startBroker as startLibraryBroker, tempDir, until } from './helpers.js'

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024

/** Samples a process's RSS every 100 ms; `peak()` is the highest seen. */
function rssSampler (pid: number): { before: number, peak: () => number, stop: () => void } {
  const before = rssMiB(pid)
  let peak = before
  const timer = setInterval(() => { try { peak = Math.max(peak, rssMiB(pid)) } catch {} }, 100)
  onCleanup(() => { clearInterval(timer) })
  return { before, peak: () => peak, stop: () => { clearInterval(timer) } }
}

interface Broker { pid: number, tcp: string, home: string, out: string[], err: string[] }

async function broker (args: string[] = []): Promise<Broker> {
  const home = await tempDir()
  const b = await startBroker(join(home, 'broker'), ['-memory', '-quiet', ...args])
  return { pid: b.proc.child.pid as number, tcp: b.tcp, home, out: b.proc.out, err: b.proc.err }
}

/** The real pair: a consumer answering `victim.work` in group `victims`, and a producer sending to it. */
async function victims (b: Broker): Promise<{ producer: Producer, consumer: Consumer, received: () => number }> {
  const consumer = await createConsumer({ broker: b.tcp, home: b.home })
  onCleanup(async () => { await consumer.stop() })
  let received = 0
  await consumer.subscribe('victim.work', async () => { received++; return 'ok' }, { group: 'victims' })
  const producer = await createProducer({ broker: b.tcp, home: b.home })
  onCleanup(async () => { await producer.stop() })
  expect(await producer.send('victim.work', 'hello')).toBe('ok')
  return { producer, consumer, received: () => received }
}

/**
 * The share of its answer rate before an attack that the pair must keep during it. A 2 s rate on
 * this shared 2-core machine varies 2x run to run (CI once measured 10,768/s before an attack and
 * 21,968/s during it, and once 5,680/s and 2,720/s); a pair the attack starves answers next to nothing.
 */
const KEPT_RATE = 0.25

/** Answers a second over `ms`, from 32 sends kept in flight (each given up after 5 s). */
async function answerRate (producer: Producer, ms: number): Promise<number> {
  const end = Date.now() + ms
  let answered = 0
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (Date.now() < end) {
      try {
        await producer.send('victim.work', 'x', { timeout: 5_000 })
        answered++
      } catch {}
    }
  }))
  return answered * 1000 / ms
}

async function attacker (): Promise<P2PMQNode> {
  const node = await createNode({})
  await node.start()
  onCleanup(async () => { await node.stop() })
  return node
}

async function open (node: P2PMQNode, b: Broker, protocol: string): Promise<Stream | undefined> {
  try {
    return await node.dialProtocol(multiaddr(b.tcp), protocol, { signal: AbortSignal.timeout(5_000) })
  } catch {
    return undefined
  }
}

const publishFrame = (seq: number, command: string, payload: Uint8Array, flags = 0): (w: FrameWriter) => void =>
  (w) => { writePublish(w, seq, flags, { command, id: `m${seq}`, headers: undefined, kind: 0, payload }) }

describe('a broker against hostile peers', () => {
  it('takes new clients while 40 raw TCP sockets from 8 hosts never start their handshake', async () => {
    const b = await broker()
    const port = Number(b.tcp.split('/')[4])
    const sockets: Socket[] = []
    onCleanup(() => { for (const s of sockets) s.destroy() })
    // Five per host (127.0.0.2-9): under libp2p's 5 new connections a second per host.
    for (let host = 2; host <= 9; host++) {
      for (let i = 0; i < 5; i++) {
        const s = connect({ host: '127.0.0.1', port, localAddress: `127.0.0.${host}` })
        s.on('error', () => {})
        sockets.push(s)
      }
    }
    await until(() => sockets.every((s) => !s.connecting), 5_000, 'the raw sockets to connect')
    await sleep(200)
    // A new client (its own node) is served at once, not after the upgrade timeout of a socket.
    const started = Date.now()
    const producer = await createProducer({ broker: b.tcp, home: b.home })
    onCleanup(async () => { await producer.stop() })
    const consumer = await createConsumer({ broker: b.tcp, home: b.home })
    onCleanup(async () => { await consumer.stop() })
    await consumer.subscribe('victim.work', async () => 'ok')
    expect(await producer.send('victim.work', 'x', { timeout: 10_000 })).toBe('ok')
    const ms = Date.now() - started
    console.log(`slow handshakes: a new client answered after ${ms} ms with 40 idle sockets held`)
    expect(ms).toBeLessThan(3_000)
  }, 60_000)

  it('holds a budget for partly received frames: 480 streams each sending a largest frame but its last byte', async () => {
    const b = await broker()
    const pair = await victims(b)
    const rss = rssSampler(b.pid)
    const frameLength = DEFAULT_MAX_PAYLOAD + FRAME_OVERHEAD_LIMIT
    // A frame header announcing the largest frame, and all of its body but the last byte.
    const partial = new Uint8Array(frameLength + 3)
    new DataView(partial.buffer).setUint32(0, frameLength)
    partial[4] = FrameType.Publish
    const nodes: P2PMQNode[] = []
    let sent = 0
    // 20 attackers (4 a second: libp2p's per-host rate), 8 streams of each protocol each.
    await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      await sleep(i * 250)
      const node = await attacker()
      nodes.push(node)
      await Promise.all([PRODUCER_PROTOCOL, CONSUMER_PROTOCOL, ADMIN_PROTOCOL].flatMap((protocol) => Array.from({ length: 8 }, async () => {
        const s = await open(node, b, protocol)
        if (s != null && await sendAll(s, partial, 10_000)) sent++
      })))
    }))
    await sleep(2_000)
    const during = await answerRate(pair.producer, 2_000)
    const peak = rss.peak() - rss.before
    // The attackers leave: what they left is released (the streams' partial frames go with them).
    await Promise.all(nodes.map(async (n) => { await n.stop() }))
    await sleep(3_000)
    rss.stop()
    const after = rssMiB(b.pid) - rss.before
    console.log(`partial frames: ${sent} of 480 streams sent a frame but its last byte; RSS ${rss.before.toFixed(0)} MiB, peak +${peak.toFixed(0)}, after they left +${after.toFixed(0)}; the pair answered ${during.toFixed(0)}/s meanwhile`)
    // Measured: +569 MiB before the budget (kept after they left), +220 after (64 MiB budget, 64 KiB free per stream, garbage);
    // +274 on Node 24 in CI under the whole suite.
    expect(peak).toBeLessThan(400)
    expect(during).toBeGreaterThan(50)
    expect(await pair.producer.send('victim.work', 'after')).toBe('ok')
  }, 120_000)

  it('bounds what an admin stream that never reads makes the broker hold: 1,500 `messages` requests', async () => {
    const b = await broker()
    const pair = await victims(b)
    // A backlog to list: 3,000 messages no one consumes.
    await Promise.all(Array.from({ length: 3_000 }, async (_, i) => { await pair.producer.publish('backlog', `message ${i}`) }))
    const rss = rssSampler(b.pid)
    const node = await attacker()
    const s = await open(node, b, ADMIN_PROTOCOL)
    expect(s).toBeDefined()
    const stream = s as Stream
    stream.pause() // never reads
    const body = new TextEncoder().encode(JSON.stringify({ limit: 3_000 }))
    const requests = frames((w) => { for (let i = 1; i <= 1_500; i++) writeRequest(w, i, 'messages', body) })
    await sendAll(stream, requests)
    await sleep(6_000)
    const during = await answerRate(pair.producer, 2_000)
    rss.stop()
    const peak = rss.peak() - rss.before
    console.log(`admin flood: ${requests.byteLength} bytes of requests; RSS ${rss.before.toFixed(0)} MiB, peak +${peak.toFixed(0)}; the pair answered ${during.toFixed(0)}/s meanwhile`)
    // Measured: +855 MiB before the bound, +55 after on Node 20; +160 on Node 24 under the whole
    // suite in CI (its heap grows larger before it collects).
    expect(peak).toBeLessThan(300)
    expect(during).toBeGreaterThan(50)
  }, 60_000)

  it('keeps the answers of a producer that never reads in its bounded mailbox: 40,000 answers of 10 KB', async () => {
    const b = await broker()
    const pair = await victims(b)
    // The answers come from a consumer of the attacker's command (any consumer would do).
    const answerer = await createConsumer({ broker: b.tcp, home: b.home })
    onCleanup(async () => { await answerer.stop() })
    const big = 'y'.repeat(10_000)
    await answerer.subscribe('attack.echo', async () => big, { prefetch: 1000 })
    const rss = rssSampler(b.pid)
    const node = await attacker()
    const stream = await open(node, b, PRODUCER_PROTOCOL) as Stream
    stream.pause() // never reads
    const payload = new Uint8Array(10)
    for (let batch = 0; batch < 40; batch++) {
      const bytes = frames((w) => {
        if (batch === 0) writeHello(w, 'attacker')
        for (let i = 1; i <= 1_000; i++) publishFrame(batch * 1_000 + i, 'attack.echo', payload, PublishFlags.WantsAnswer)(w)
      })
      if (!await sendAll(stream, bytes, 2_000)) break
    }
    await sleep(8_000)
    const during = await answerRate(pair.producer, 2_000)
    rss.stop()
    const peak = rss.peak() - rss.before
    console.log(`unread answers: RSS ${rss.before.toFixed(0)} MiB, peak +${peak.toFixed(0)}; the pair answered ${during.toFixed(0)}/s meanwhile`)
    // Measured: +516 MiB before the bound, +224 after on Node 20 (16 MiB unsent, the 64 MiB mailbox,
    // and garbage not yet collected); on Node 24, whose heap grows larger before it collects, +374
    // alone and +403 under the whole suite in CI. (A thin margin against +516: more answers would
    // widen it, at the cost of a longer test.)
    expect(peak).toBeLessThan(450)
    expect(b.err.some((l) => /answers unread/.test(l))).toBe(true)
    expect(during).toBeGreaterThan(50)
  }, 90_000)

  it('bounds what one peer has in flight: 60,000 requests of 2 KB for a command nobody consumes, never reading', async () => {
    const b = await broker()
    const pair = await victims(b)
    const baseline = await answerRate(pair.producer, 2_000)
    const node = await attacker()
    const stream = await open(node, b, PRODUCER_PROTOCOL) as Stream
    stream.pause()
    const payload = new Uint8Array(2_048)
    let sent = 0
    for (let batch = 0; batch < 60; batch++) {
      const bytes = frames((w) => {
        if (batch === 0) writeHello(w, 'attacker')
        for (let i = 1; i <= 1_000; i++) publishFrame(batch * 1_000 + i, 'attack.sink', payload, PublishFlags.WantsAnswer)(w)
      })
      if (!await sendAll(stream, bytes, 2_000)) break
      sent += 1_000
    }
    await sleep(1_000)
    const during = await answerRate(pair.producer, 2_000)
    const admin = await createAdmin({ broker: b.tcp, home: b.home })
    onCleanup(async () => { await admin.stop() })
    const held = (await admin.stats()).messages
    console.log(`requests in flight: ${sent} sent, the broker took ${held} (64 MiB / 2 KB = 32,768); the pair answered ${baseline.toFixed(0)}/s before, ${during.toFixed(0)}/s meanwhile`)
    // The default maxInFlightBytesPerPeer, 64 MiB, stops reading the attacker at 32,768 requests (one more per stream may be taken).
    expect(held).toBeLessThanOrEqual(32_768 + 2)
    expect(held).toBeGreaterThanOrEqual(32_768)
    expect(b.err.some((l) => /not yet confirmed or answered/.test(l))).toBe(true)
    expect(during).toBeGreaterThan(baseline * KEPT_RATE)
  }, 60_000)

  it('holds a peer at its in-flight limit on its new streams too: 50 streams opened, each with 5 requests, then closed', async () => {
    const b = await broker(['-max-in-flight-per-peer=100'])
    const node = await attacker()
    const request = (seq: number): (w: FrameWriter) => void => publishFrame(seq, 'attack.sink', new Uint8Array(10), PublishFlags.WantsAnswer)
    const first = await open(node, b, PRODUCER_PROTOCOL) as Stream
    first.pause()
    await sendAll(first, frames((w) => { writeHello(w, 'first'); for (let i = 1; i <= 200; i++) request(i)(w) }))
    const admin = await createAdmin({ broker: b.tcp, home: b.home })
    onCleanup(async () => { await admin.stop() })
    let taken = 0
    for (const end = Date.now() + 5_000; taken < 100 && Date.now() < end; await sleep(50)) taken = (await admin.stats()).messages
    expect(taken).toBe(100)
    for (let k = 0; k < 50; k++) {
      const s = await open(node, b, PRODUCER_PROTOCOL)
      if (s == null) continue
      await sendAll(s, frames((w) => { writeHello(w, `s${k}`); for (let i = 1; i <= 5; i++) request(i)(w) }))
      await s.close().catch(() => {})
    }
    await sleep(1_000)
    const held = (await admin.stats()).messages
    console.log(`in-flight limit 100: the broker took ${held} requests from 1 stream of 200 and 50 new streams of 5`)
    // Before new streams were held at once, each took one request past the limit (114 measured).
    expect(held).toBeLessThanOrEqual(101)
  }, 60_000)

  it('bounds watches per peer: 8 admin streams of 1,500 `watch` requests each do not starve the pair', async () => {
    const b = await broker()
    const pair = await victims(b)
    const baseline = await answerRate(pair.producer, 2_000)
    const node = await attacker()
    let refused = 0
    const watch = frames((w) => { for (let i = 1; i <= 1_500; i++) writeRequest(w, i, 'watch', new TextEncoder().encode('{"interval":0}')) })
    await Promise.all(Array.from({ length: 8 }, async () => {
      const s = await open(node, b, ADMIN_PROTOCOL)
      if (s == null) return
      s.addEventListener('message', (e) => { if (/LimitReached|at most/.test(Buffer.from(e.data.subarray()).toString())) refused++ })
      await sendAll(s, watch)
    }))
    await sleep(1_000)
    const during = await answerRate(pair.producer, 3_000)
    console.log(`watch flood: the pair answered ${baseline.toFixed(0)}/s before, ${during.toFixed(0)}/s under 12,000 watch requests`)
    expect(refused).toBeGreaterThan(0)
    expect(during).toBeGreaterThan(baseline * KEPT_RATE)
  }, 60_000)

  it('bounds the deliveries one peer holds: a consumer with prefetch 4,294,967,295 on 2,048 subscriptions that never acks', async () => {
    const b = await broker()
    const pair = await victims(b)
    const node = await attacker()
    await Promise.all(Array.from({ length: 8 }, async (_, stream) => {
      const s = await open(node, b, CONSUMER_PROTOCOL)
      if (s == null) return
      s.addEventListener('message', () => {}) // reads its deliveries, never settles them
      await sendAll(s, frames((w) => {
        for (let i = 1; i <= 256; i++) writeSubscribe(w, stream * 1000 + i, 0xffffffff, 0, 'victims', ['victim.work'])
      }))
    }))
    await sleep(1_000)
    const before = pair.received()
    await Promise.all(Array.from({ length: 2_000 }, async (_, i) => { await pair.producer.publish('victim.work', `p${i}`) }))
    await sleep(3_000)
    const got = pair.received() - before
    console.log(`prefetch hog: the victim's consumer got ${got} of 2,000 messages published to its group`)
    expect(got).toBeGreaterThan(500)
  }, 60_000)

  it('refuses a peer more than -max-connections-per-peer connections', async () => {
    const b = await broker(['-max-connections-per-peer=8'])
    const node = await attacker()
    for (let i = 0; i < 12; i++) {
      await node.dial(multiaddr(b.tcp), { force: true }).catch(() => {})
      await sleep(250) // under libp2p's 5 new connections a second per host
    }
    await sleep(500)
    const held = node.getConnections().filter((c) => c.status === 'open').length
    console.log(`connections per peer: ${held} of 12 held`)
    expect(held).toBeLessThanOrEqual(8)
    expect(b.err.some((l) => /at most 8 connections/.test(l))).toBe(true)
  }, 30_000)

  it('survives 100,000 random and mutated frames on every protocol, and keeps serving', async () => {
    const b = await broker()
    const pair = await victims(b)
    const node = await attacker()
    // Seeded, so a failure can be replayed.
    let seed = 12
    const random = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n }
    const valid = [
      frames((w) => { writeHello(w, 's'); publishFrame(1, 'victim.work', new Uint8Array(8), PublishFlags.WantsAnswer)(w) }),
      frames((w) => { writeSubscribe(w, 1, 10, 0, 'victims', ['victim.*']); writeAck(w, 1); writeAnswer(w, 2, 0, new Uint8Array(4)); writeUnsubscribe(w, 1) }),
      frames((w) => { writeRequest(w, 1, 'stats', new Uint8Array(0)); writeRequest(w, 2, 'messages', new TextEncoder().encode('{"limit":5}')) })
    ]
    const protocols = [PRODUCER_PROTOCOL, CONSUMER_PROTOCOL, ADMIN_PROTOCOL]
    let sent = 0
    let streams = 0
    while (sent < 100_000) {
      await Promise.all(Array.from({ length: 6 }, async (_, k) => {
        const p = (streams + k) % 3
        const s = await open(node, b, protocols[p])
        if (s == null) return
        const chunks: Uint8Array[] = []
        for (let i = 0; i < 100; i++) {
          const frame = new Uint8Array(valid[p])
          if (random(4) === 0) {
            // Random bytes with a plausible length prefix.
            const body = new Uint8Array(1 + random(64)).map(() => random(256))
            const f = new Uint8Array(4 + body.byteLength)
            new DataView(f.buffer).setUint32(0, body.byteLength)
            f.set(body, 4)
            chunks.push(f)
          } else {
            for (let m = 0; m < 1 + random(3); m++) frame[random(frame.byteLength)] = random(256)
            chunks.push(frame)
          }
        }
        await sendAll(s, Buffer.concat(chunks), 1_000)
        s.abort(new Error('done'))
      }))
      streams += 6
      sent += 600
    }
    console.log(`fuzz: ${sent} frames on ${streams} streams`)
    expect(await pair.producer.send('victim.work', 'after')).toBe('ok')
    expect(await answerRate(pair.producer, 1_000)).toBeGreaterThan(50)
  }, 180_000)
})

describe('limits per peer, through the real clients', () => {
  /** A library broker with `init`, and what it reports of the limits peers reach (`peer:limit`: the message, or what `pick` takes). */
  async function limitedBroker (init: Parameters<typeof startLibraryBroker>[0], pick = (d: { limit: string, message: string }): string => d.message): Promise<{ b: Awaited<ReturnType<typeof startLibraryBroker>>, limits: string[] }> {
    const b = await startLibraryBroker(init)
    const limits: string[] = []
    b.node.services.mq.addEventListener('peer:limit', (e) => { limits.push(pick(e.detail)) })
    return { b, limits }
  }

  it('refuses a peer\'s subscriptions past maxSubscriptionsPerPeer and maxPrefetchPerPeer with a coded error, across its streams', async () => {
    const { b, limits } = await limitedBroker({ memory: true, maxSubscriptionsPerPeer: 2, maxPrefetchPerPeer: 150 }, (d) => d.limit)
    // Two consumers on one node (one peer ID): the limits are the peer's, not a stream's.
    const shared = await attacker()
    const c1 = await consumer(b, { node: shared })
    const c2 = await consumer(b, { node: shared })
    await c1.subscribe('a', async () => {}, { prefetch: 100 })
    await expect(c2.subscribe('b', async () => {}, { prefetch: 100 })).rejects.toMatchObject({ code: 5, message: expect.stringMatching(/at most 150 deliveries.*at most 50/) })
    await c2.subscribe('b', async () => {}, { prefetch: 50 })
    await expect(c1.subscribe('c', async () => {}, { prefetch: 1 })).rejects.toMatchObject({ code: 5, message: expect.stringMatching(/at most 2 subscriptions/) })
    // A consumer that leaves gives its subscriptions back.
    await c1.stop()
    await until(() => b.node.services.mq.stats().clients.length === 1, 5_000, 'the first consumer to leave')
    await c2.subscribe('c', async () => {}, { prefetch: 100 })
    expect(limits).toEqual(['prefetch', 'subscriptions'])
  })

  it('bounds the producer sessions a peer leaves behind: 8,000 streams each naming a new 64 KB session in Hello', async () => {
    const b = await broker()
    const pair = await victims(b)
    const rss = rssSampler(b.pid)
    const node = await attacker()
    const name = (i: number): string => `${i}-`.padEnd(65_000, 'x')
    let opened = 0
    // Each session was kept for the dedup window (5 min) with its name.
    for (let batch = 0; batch < 8_000 / 50; batch++) {
      await Promise.all(Array.from({ length: 50 }, async (_, j) => {
        const stream = await open(node, b, PRODUCER_PROTOCOL)
        if (stream == null) return
        opened++
        await sendAll(stream, frames((w) => { writeHello(w, name(batch * 50 + j)); publishFrame(1, 'victim.spam', new Uint8Array(1))(w) }))
        await sleep(20)
        await stream.close().catch(() => { stream.abort(new Error('done')) })
      }))
    }
    await sleep(1_000)
    const during = await answerRate(pair.producer, 2_000)
    rss.stop()
    const peak = rss.peak() - rss.before
    console.log(`producer sessions: ${opened} streams with 64 KB session names; RSS ${rss.before.toFixed(0)} MiB, peak +${peak.toFixed(0)}; the pair answered ${during.toFixed(0)}/s meanwhile`)
    expect(opened).toBeGreaterThan(6_000)
    // Measured: +302 MiB before the bound (Node 20); after it +84 on Node 20 alone, +168 on Node 24
    // in CI under the whole suite (buffers of the frames in flight).
    expect(peak).toBeLessThan(240)
    expect(during).toBeGreaterThan(50)
  }, 120_000)

  it('reads a peer past maxInFlightPerPeer again as its requests are answered, and loses none', async () => {
    const { b, limits } = await limitedBroker({ memory: true, maxInFlightPerPeer: 100 })
    const p = await producer(b)
    const answers = Promise.all(Array.from({ length: 1_000 }, async (_, i) => await p.send('held', i, { timeout: 60_000 })))
    await until(() => limits.length === 1, 5_000, 'the in-flight limit')
    await sleep(500)
    // The broker took 100 (one more may be read with the 100th), the rest wait unread in the stream.
    expect(b.node.services.mq.stats().messages).toBeLessThanOrEqual(101)
    expect(limits[0]).toMatch(/^100 messages .* not yet confirmed or answered/)
    // Another peer is not held meanwhile.
    const other = await producer(b, { privateKey: await generateKeyPair('Ed25519') })
    await other.publish('other', 'x')
    const c = await consumer(b)
    await c.subscribe('held', async (m) => `answer ${String(m.payload)}`, { prefetch: 10 })
    const got = await answers
    expect(got).toEqual(Array.from({ length: 1_000 }, (_, i) => `answer ${i}`))
  }, 60_000)

  it('with a store, counts only the requests in memory: durable ones waiting on disk behind a full page do not hold their producer', async () => {
    const { b, limits } = await limitedBroker({ pageSize: 10, maxInFlightPerPeer: 50 })
    const p = await producer(b)
    const answers = Promise.all(Array.from({ length: 300 }, async (_, i) => await p.send('paged', i, { timeout: 60_000, transient: false })))
    await until(() => b.node.services.mq.stats().messages === 300, 10_000, 'all 300 requests taken')
    expect(limits).toEqual([])
    const c = await consumer(b)
    await c.subscribe('paged', async (m) => `answer ${String(m.payload)}`, { prefetch: 10 })
    expect(await answers).toEqual(Array.from({ length: 300 }, (_, i) => `answer ${i}`))
  }, 60_000)

  it('paces a peer past publishRate by reading it slower, and loses nothing', async () => {
    const { b, limits } = await limitedBroker({ memory: true, publishRate: 200 })
    let received = 0
    const c = await consumer(b)
    await c.subscribe('paced', async () => { received++ })
    const p = await producer(b)
    const started = Date.now()
    await Promise.all(Array.from({ length: 600 }, async (_, i) => { await p.publish('paced', `m${i}`) }))
    const ms = Date.now() - started
    await until(() => received === 600, 10_000, 'every message to arrive')
    console.log(`publish rate 200/s: 600 publishes confirmed in ${ms} ms`)
    // A second's worth at once, then 200 a second.
    expect(ms).toBeGreaterThan(1_800)
    expect(ms).toBeLessThan(6_000)
    expect(limits).toHaveLength(1)
    expect(limits[0]).toMatch(/over 200\/s/)
  })
})
