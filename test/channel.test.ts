/**
 * The framed channel honours backpressure (issue 10, item 6): over a real libp2p stream whose
 * reader does not read, a side that answers every frame it reads stops reading once its unsent
 * answers pass a bound, and everything arrives once the reader reads again.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import type { Stream } from '@libp2p/interface'
import { createAdmin, createNode } from '../src/index.js'
import { CONSUMER_PROTOCOL, MAX_PREFETCH, PRODUCER_PROTOCOL } from '../src/constants.js'
import { FramedChannel } from '../src/protocol/channel.js'
import { FrameSplitter, FrameWriter, type FrameReader } from '../src/protocol/codec.js'
import { FrameType, readBrokerToConsumerFrame, readBrokerToProducerFrame, writeAck, writeHello, writePublish, writeSubscribe } from '../src/protocol/frames.js'
import { onCleanup, producer, sleep, startBroker, until } from './helpers.js'

const PROTOCOL = '/p2pmq-test/echo/1.0.0'
const FRAME = 7
const BOUND = 256 * 1024
const REQUEST = new Uint8Array(1000).fill(1)
const REQUESTS = 8_000 // 8 MB of requests, and as much in answers

const readFrame = (_type: number, r: FrameReader): Uint8Array => r.bytes()

describe('FramedChannel backpressure', () => {
  it('stops reading while its answers are not taken, and loses none', async () => {
    const server = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    await server.start()
    onCleanup(async () => { await server.stop() })
    let read = 0
    let channel: FramedChannel<Uint8Array> | undefined
    await server.handle(PROTOCOL, (stream: Stream) => {
      const ch: FramedChannel<Uint8Array> = new FramedChannel<Uint8Array>(stream, {
        maxFrameLength: 64 * 1024,
        pauseReadingAbove: BOUND,
        read: readFrame,
        // Every frame read is answered with one as large.
        onFrame: (payload) => { read++; ch.writer.begin(FRAME).bytes(payload).end() },
        onClose: () => {}
      })
      channel = ch
    })

    const client = await createNode()
    await client.start()
    onCleanup(async () => { await client.stop() })
    const stream = await client.dialProtocol(multiaddr(server.getMultiaddrs()[0].toString()), PROTOCOL)
    // The reader does not read: yamux stops granting the server window for this stream.
    stream.pause()
    const w = new FrameWriter((bytes) => { stream.send(bytes) })
    for (let i = 0; i < REQUESTS; i++) {
      w.begin(FRAME).bytes(REQUEST).end()
      if (i % 100 === 99) w.flush()
    }
    w.flush()

    // Give the server time to read what it will; note how much it answered at most.
    const answerSize = 4 + 1 + 4 + REQUEST.byteLength
    let mostUnsent = 0
    const end = Date.now() + 3_000
    while (Date.now() < end) {
      await sleep(50)
      mostUnsent = Math.max(mostUnsent, read * answerSize - stream.readBufferLength)
    }
    expect(channel).toBeDefined()
    // Answers the server made that the client has not taken: the bound, plus what one incoming
    // chunk asks for before the pause takes effect (a yamux window at most).
    expect(mostUnsent).toBeLessThan(BOUND + 2 * 1024 * 1024)
    expect(read).toBeLessThan(REQUESTS)
    expect(channel?.buffered ?? 0).toBeLessThan(BOUND + 2 * 1024 * 1024)

    // The reader reads again: every request is read and every answer arrives, in order.
    let answers = 0
    let intact = true
    const splitter = new FrameSplitter(64 * 1024, (_type, r) => {
      const payload = r.bytes()
      if (payload.byteLength !== REQUEST.byteLength || payload[0] !== 1) intact = false
      answers++
    })
    stream.addEventListener('message', (e) => { splitter.push(e.data) })
    stream.resume()
    await until(() => answers === REQUESTS, 20_000, 'all answers')
    expect(read).toBe(REQUESTS)
    expect(intact).toBe(true)
    expect(channel?.buffered).toBe(0)
  })

  it('a broker stops reading a producer that does not read its rejects, and loses none', async () => {
    const broker = await startBroker({ memory: true, maxPayload: 4096 })
    const node = await createNode()
    await node.start()
    onCleanup(async () => { await node.stop() })
    const stream = await node.dialProtocol(multiaddr(broker.address), PRODUCER_PROTOCOL)
    stream.pause()
    // An invalid command is rejected with a reason that quotes it: each publish (~280 bytes) asks for ~340 back.
    const command = 'not valid ' + 'x'.repeat(240)
    const publishes = 80_000
    const w = new FrameWriter((bytes) => { stream.send(bytes) })
    writeHello(w, 'raw-session')
    for (let seq = 1; seq <= publishes; seq++) {
      writePublish(w, seq, 0, { command, id: `m${seq}`, headers: undefined, kind: 0, payload: new Uint8Array(0) })
      if (seq % 100 === 0) w.flush()
    }
    w.flush()
    const written = stream.writeBufferLength
    await sleep(2_000)
    // What the broker took of the 22 MB of publishes it cannot answer: its bound (4 MiB of unsent
    // rejects plus a frame) and what it read before pausing took effect (measured ~3.9 MB taken).
    const taken = written - stream.writeBufferLength
    expect(taken).toBeLessThan(12 * 1024 * 1024)

    let rejects = 0
    let lastSeq = 0
    const splitter = new FrameSplitter(1 << 20, (type, r) => {
      const f = readBrokerToProducerFrame(type, r)
      if (f.type === FrameType.Reject) { rejects++; lastSeq = f.seq }
    })
    stream.addEventListener('message', (e) => { splitter.push(e.data) })
    stream.resume()
    await until(() => rejects === publishes, 30_000, 'every reject')
    expect(lastSeq).toBe(publishes)
  })
})

describe('deliveries and backpressure', () => {
  it('a broker stops delivering to a consumer whose stream does not take bytes, and loses none', async () => {
    const broker = await startBroker({ memory: true })
    const node = await createNode()
    await node.start()
    onCleanup(async () => { await node.stop() })
    const stream = await node.dialProtocol(multiaddr(broker.address), CONSUMER_PROTOCOL)
    stream.pause()
    const w = new FrameWriter((bytes) => { stream.send(bytes) })
    // The largest prefetch: credit alone would let the broker write every message to this stream.
    writeSubscribe(w, 1, MAX_PREFETCH, 0, 'slow', ['bulk'])
    w.flush()
    const p = await producer(broker)
    const messages = 600
    const payload = new Uint8Array(100_000).fill(7)
    for (let i = 0; i < messages; i++) await p.publish('bulk', payload)
    const admin = await createAdmin({ broker: broker.address, home: broker.home })
    onCleanup(async () => { await admin.stop() })
    const inFlight = async (): Promise<number> => (await admin.stats()).queues.find((q) => q.command === 'bulk')?.inFlight ?? -1
    await sleep(1_000)
    // 60 MB published; what went to the stream is what was written before its first send was
    // held (measured: 4 deliveries of 100 KB; all 600 before deliveries waited for drain).
    expect(await inFlight()).toBeLessThan(50)

    // It reads again: every message arrives, once, and is acked.
    const seen = new Set<number>()
    const splitter = new FrameSplitter(1 << 20, (type, r) => {
      const f = readBrokerToConsumerFrame(type, r)
      if (f.type !== FrameType.Deliver) return
      seen.add(f.tag)
      writeAck(w, f.tag)
    })
    stream.addEventListener('message', (e) => { splitter.push(e.data); w.flush() })
    stream.resume()
    await until(() => seen.size === messages, 30_000, 'every message')
    let left = -1
    for (let i = 0; i < 100 && left !== 0; i++) {
      left = await inFlight()
      if (left !== 0) await sleep(100)
    }
    expect(left).toBe(0)
  })
})
