/** Restarts, reconnects, bad input and identities, on real libp2p nodes over 127.0.0.1. */
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import {
  CONSUMER_PROTOCOL, IdentityInUseError, MessageTooLargeError, PRODUCER_PROTOCOL,
  createBroker, createNode, createProducer
} from '../src/index.js'
import { FrameSplitter, FrameWriter } from '../src/protocol/codec.js'
import { FrameType, PublishFlags, readBrokerToProducerFrame, writeHello, writePublish } from '../src/protocol/frames.js'
import { decodePayload, encodePayload, payloadToText } from '../src/payload.js'
import { consumer, onCleanup, producer, restartableBroker, sleep, startBroker, tempDir, until } from './helpers.js'
import type { Libp2p, Stream } from '@libp2p/interface'

async function rawStream (address: string, protocol: string): Promise<Stream> {
  const node = await createNode()
  await node.start()
  onCleanup(async () => { await node.stop() })
  return await node.dialProtocol(multiaddr(address), protocol)
}

async function closed (stream: Stream): Promise<void> {
  if (stream.status !== 'open') return
  await new Promise<void>((resolve) => { stream.addEventListener('close', () => { resolve() }, { once: true }) })
}

describe('resilience', () => {
  it('clients find a restarted broker by peer ID, resubscribe and messages flow again', async () => {
    const broker = await restartableBroker()
    const firstAddress = broker.node.getMultiaddrs()[0].toString()

    // By peer ID only: found through the address book.
    const c = await consumer(broker.ref)
    const got: string[] = []
    await c.subscribe('tick', (m) => { got.push(m.payload as string); return 'ok' })
    const p = await producer(broker.ref)
    expect(await p.send('tick', 'before')).toBe('ok')

    await broker.node.stop()
    await until(() => !c.connected && !p.connected, 5000, 'clients to notice')
    await broker.restart()
    // Same identity, new port: the address book tells the clients where it is now.
    expect(broker.node.peerId.toString()).toBe(broker.ref.address)
    expect(broker.node.getMultiaddrs()[0].toString()).not.toBe(firstAddress)

    expect(await p.send('tick', 'after', { timeout: 15_000 })).toBe('ok')
    expect(got).toEqual(['before', 'after'])
    expect(broker.node.services.mq.stats().clients.find((x) => x.role === 'consumer')?.subscriptions?.[0].patterns).toEqual(['tick'])
  })

  it('keeps confirmed messages across a broker restart and resends the unconfirmed ones', async () => {
    const broker = await restartableBroker()
    const p = await producer(broker.ref)
    await p.publish('q', 'first')
    await broker.node.stop()
    // Published while the broker is down: held by the producer, sent when it is back.
    const pending = [p.publish('q', 'a'), p.publish('q', 'b')]
    await sleep(200)
    await broker.restart()
    await Promise.all(pending)
    const got: string[] = []
    const c = await consumer(broker.ref)
    await c.subscribe('q', (m) => { got.push(m.payload as string) })
    await until(() => got.length === 3, 5000, 'kept and resent messages')
    expect(got).toEqual(['first', 'a', 'b'])
  })

  it('resends an unanswered send, so it survives even an in-memory broker\'s restart', async () => {
    const broker = await restartableBroker({ memory: true })
    const p = await producer(broker.ref)
    const answer = p.send('later', 'x', { timeout: 20_000 })
    await until(() => broker.node.services.mq.stats().messages === 1, 5000, 'the send at the broker')
    await broker.restart()
    // The new broker started empty; the producer's resend is what it holds.
    await until(() => broker.node.services.mq.stats().messages === 1, 10_000, 'the resent send')
    const c = await consumer(broker.ref)
    await c.subscribe('later', (m) => `got ${m.payload as string}`)
    expect(await answer).toBe('got x')
  })

  it('ends a stream that sends a malformed frame and keeps serving everyone else, losing nothing', async () => {
    const broker = await startBroker()
    const good = await producer(broker)
    for (let i = 0; i < 5; i++) await good.publish('keep', i)
    const errors: string[] = []
    broker.node.services.mq.addEventListener('client:error', (e) => { errors.push(e.detail.error?.message ?? '') })

    // Unknown frame type.
    const s1 = await rawStream(broker.address, PRODUCER_PROTOCOL)
    s1.send(new Uint8Array([0, 0, 0, 2, 0x7e, 1]))
    await closed(s1)
    // A publish frame with a truncated body.
    const s2 = await rawStream(broker.address, PRODUCER_PROTOCOL)
    s2.send(new Uint8Array([0, 0, 0, 3, 0x01, 0, 0]))
    await closed(s2)
    // Garbage on the consumer protocol.
    const s3 = await rawStream(broker.address, CONSUMER_PROTOCOL)
    s3.send(new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n'))
    await closed(s3)

    await until(() => errors.length === 3, 5000, 'three protocol errors')
    expect(errors[0]).toMatch(/Unknown or misplaced frame type 0x7e/)
    expect(errors[1]).toMatch(/shorter than its fields/)
    expect(errors[2]).toMatch(/exceeds the limit/)

    for (let i = 5; i < 10; i++) await good.publish('keep', i)
    const got: number[] = []
    const c = await consumer(broker)
    await c.subscribe('keep', (m) => { got.push(m.payload as number) })
    await until(() => got.length === 10, 5000, 'all ten messages')
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })

  it('rejects an oversized payload with a clear error and ends a stream with an oversized frame', async () => {
    const broker = await startBroker({ maxPayload: 1000 })
    const p = await producer(broker)
    await p.ready() // the broker's welcome carries its limit
    await expect(p.publish('big', new Uint8Array(1001))).rejects.toBeInstanceOf(MessageTooLargeError)
    expect(await p.publish('big', new Uint8Array(1000))).toBeTypeOf('string')

    // A client that ignores the limit: the broker refuses the message, the stream stays up.
    const s = await rawStream(broker.address, PRODUCER_PROTOCOL)
    const replies: Uint8Array[] = []
    s.addEventListener('message', (e) => { replies.push(e.data instanceof Uint8Array ? e.data : e.data.subarray()) })
    const w = new FrameWriter((bytes) => { s.send(bytes) })
    writeHello(w, 'raw')
    writePublish(w, 7, 0, { command: 'big', id: 'x1', headers: undefined, kind: 1, payload: new Uint8Array(5000) })
    w.flush()
    await until(() => replies.some((r) => new TextDecoder().decode(r).includes('exceeds the broker')), 5000, 'a reject')
    expect(s.status).toBe('open')

    // A frame larger than the frame limit ends that stream.
    writePublish(w, 8, 0, { command: 'big', id: 'x2', headers: undefined, kind: 1, payload: new Uint8Array(200_000) })
    w.flush()
    await closed(s)
    expect(await p.publish('big', 'still fine')).toBeTypeOf('string')
    expect(broker.node.services.mq.stats().messages).toBe(2)
  })

  it('keeps answers for a named producer that disconnected and delivers them when it returns', async () => {
    const broker = await startBroker()
    const c = await consumer(broker)
    await c.subscribe('slow', async (m) => { await sleep(300); return `answer to ${m.payload as string}` })
    const first = await producer(broker, { name: 'reporter' })
    const peer = first.peerId
    void first.send('slow', 'q1').catch(() => {})
    await until(() => c.active === 1, 10_000, 'the consumer to handle it')
    await first.stop()
    await sleep(400) // the answer arrives at the broker while the producer is away
    expect(broker.node.services.mq.stats().keptAnswers).toBe(1)

    const again = await producer(broker, { name: 'reporter' })
    expect(again.peerId).toBe(peer)
    const kept = await new Promise<{ payload: unknown }>((resolve) => {
      again.events.addEventListener('result', (e) => { resolve(e.detail) }, { once: true })
    })
    expect(kept.payload).toBe('answer to q1')
  })

  it('refuses to start a stopped broker node again, clearly (it would restore its messages twice)', async () => {
    const broker = await startBroker()
    await broker.node.stop()
    await expect(broker.node.start()).rejects.toThrow(/cannot start again/)
  })

  it('refuses a second running process on the same identity', async () => {
    const broker = await startBroker()
    await producer(broker, { name: 'solo' })
    await expect(producer(broker, { name: 'solo' })).rejects.toBeInstanceOf(IdentityInUseError)
    await expect(createBroker({ home: broker.home, dataDir: broker.dataDir })).rejects.toBeInstanceOf(IdentityInUseError)
  })

  it('reports an unknown broker peer ID clearly and keeps retrying', async () => {
    const home = await tempDir()
    const retries: string[] = []
    const p = await createProducer({ broker: '12D3KooWP8zuXSRHr34uZEvgcrjrLH7TCMMATTus2o91C16duto7', home, onRetry: (err) => { retries.push(err.message) } })
    onCleanup(async () => { await p.stop() })
    await until(() => retries.length >= 2, 5000, 'two retries')
    expect(retries[0]).toMatch(/not in the address book/)
    await expect(createProducer({ broker: 'not-a-peer', home })).rejects.toThrow(/neither a peer ID nor a multiaddr/)
  })
})

/**
 * Opens a producer stream of `session` from `node`, publishes `seqs` (the "dup" command), waits
 * until the last is confirmed, then drops the stream as a lost connection would. Returns the
 * cumulative confirms received.
 */
async function publishRaw (node: Libp2p, address: string, session: string, seqs: number[]): Promise<number[]> {
  const s = await node.dialProtocol(multiaddr(address), PRODUCER_PROTOCOL)
  const confirms: number[] = []
  const splitter = new FrameSplitter(1 << 20, (type, r) => {
    const f = readBrokerToProducerFrame(type, r)
    if (f.type === FrameType.Confirm) confirms.push(f.seq)
  })
  s.addEventListener('message', (e) => { splitter.push(e.data) })
  const w = new FrameWriter((bytes) => { s.send(bytes) })
  writeHello(w, session)
  for (const seq of seqs) writePublish(w, seq, 0, { command: 'dup', id: `m${seq}`, headers: undefined, kind: 0, payload: new Uint8Array(0) })
  w.flush()
  await until(() => confirms.at(-1) === seqs.at(-1), 5000, 'confirms')
  s.abort(new Error('connection lost'))
  return confirms
}

/**
 * A producer stream of `session` from `node` that sends requests ("ask") and collects the answers
 * it gets (`<id>: <answer>`). Dropping it is left to the caller: as long as it is open, the broker
 * sees it open, as it sees a stream whose connection the producer dropped until it notices.
 */
async function requestStream (node: Libp2p, address: string, session: string): Promise<{ answers: string[], request: (seq: number, id: string, payload: string) => void }> {
  const s = await node.dialProtocol(multiaddr(address), PRODUCER_PROTOCOL)
  const answers: string[] = []
  const splitter = new FrameSplitter(1 << 20, (type, r) => {
    const f = readBrokerToProducerFrame(type, r)
    if (f.type === FrameType.Result) answers.push(`${f.id}: ${payloadToText(decodePayload(f.kind, f.payload))}`)
  })
  s.addEventListener('message', (e) => { splitter.push(e.data) })
  const w = new FrameWriter((bytes) => { s.send(bytes) })
  writeHello(w, session)
  w.flush()
  const request = (seq: number, id: string, payload: string): void => {
    const p = encodePayload(payload)
    writePublish(w, seq, PublishFlags.WantsAnswer, { command: 'ask', id, headers: undefined, kind: p.kind, payload: p.bytes })
    w.flush()
  }
  return { answers, request }
}

describe('resent duplicates', () => {
  it('confirms a resent publish again and keeps one copy; a publish before Hello ends the stream', async () => {
    const broker = await startBroker()
    const node = await createNode()
    await node.start()
    onCleanup(async () => { await node.stop() })
    // Publishes written together are confirmed together, by one cumulative confirm.
    expect(await publishRaw(node, broker.address, 'session-1', [1, 2, 3])).toEqual([3])
    // The same session on a new stream resends 2 and 3 (their confirms were "lost") and adds 4.
    expect(await publishRaw(node, broker.address, 'session-1', [2, 3, 4])).toEqual([4])
    expect(broker.node.services.mq.stats().messages).toBe(4)

    const bad = await rawStream(broker.address, PRODUCER_PROTOCOL)
    const w = new FrameWriter((bytes) => { bad.send(bytes) })
    writePublish(w, 1, 0, { command: 'dup', id: 'x', headers: undefined, kind: 0, payload: new Uint8Array(0) })
    w.flush()
    await closed(bad)
    expect(broker.node.services.mq.stats().messages).toBe(4)
  })

  it('answers a resent request on the newest stream of its session, whether the answer came before the resend or after', async () => {
    const broker = await startBroker({ memory: true })
    const node = await createNode()
    await node.start()
    onCleanup(async () => { await node.stop() })
    let release: (() => void) | undefined
    const c = await consumer(broker)
    await c.subscribe('ask', async (m) => {
      if (m.payload === 'held') await new Promise<void>((resolve) => { release = resolve })
      return `answer to ${String(m.payload)}`
    })
    // Answered on the first stream, whose answer the producer "lost" (it moved before reading it).
    const first = await requestStream(node, broker.address, 'moving')
    first.request(1, 'q1', 'quick')
    await until(() => first.answers.length === 1, 5000, 'the answer on the first stream')
    first.request(2, 'q2', 'held')
    await until(() => release != null, 5000, 'the held request at the consumer')
    // The producer moved: a second stream of the same session resends both.
    const second = await requestStream(node, broker.address, 'moving')
    second.request(1, 'q1', 'quick')
    second.request(2, 'q2', 'held')
    await until(() => second.answers.length === 1, 5000, 'the lost answer again, on the new stream')
    release?.()
    await until(() => second.answers.length === 2, 5000, 'the held answer, on the new stream')
    expect(second.answers).toEqual(['q1: answer to quick', 'q2: answer to held'])
    expect(first.answers).toEqual(['q1: answer to quick'])
    expect(broker.node.services.mq.stats().messages).toBe(0)
  })

  it('remembers a session that stayed connected but idle past the dedup window', async () => {
    // visibilityTimeout 200 makes the broker's housekeeping run every 50 ms.
    const broker = await startBroker({ dedupWindow: 300, visibilityTimeout: 200 })
    const node = await createNode()
    await node.start()
    onCleanup(async () => { await node.stop() })
    const s = await node.dialProtocol(multiaddr(broker.address), PRODUCER_PROTOCOL)
    const w = new FrameWriter((bytes) => { s.send(bytes) })
    writeHello(w, 'idle')
    writePublish(w, 1, 0, { command: 'dup', id: 'm1', headers: undefined, kind: 0, payload: new Uint8Array(0) })
    w.flush()
    await until(() => broker.node.services.mq.stats().messages === 1, 5000, 'the first message')
    await sleep(500) // connected, idle longer than the window
    s.abort(new Error('connection lost'))
    await sleep(150) // a reconnect backoff: several housekeeping rounds, still inside the window
    // Resends 1, whose confirm was lost: still one copy.
    expect(await publishRaw(node, broker.address, 'idle', [1, 2])).toEqual([2])
    expect(broker.node.services.mq.stats().messages).toBe(2)
  })
})
