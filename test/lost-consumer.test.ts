/**
 * Consumers that vanish: a stream that subscribes and is dropped at once (closed, aborted, or its
 * whole connection closed while the broker is still setting the stream up), and a consumer that
 * stops reading. None may keep a subscription, and every delivery comes back to the queue.
 * Real libp2p nodes over 127.0.0.1.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { CONSUMER_PROTOCOL, createNode, type P2PMQNode } from '../src/index.js'
import { FrameWriter } from '../src/protocol/codec.js'
import { writeSubscribe } from '../src/protocol/frames.js'
import { consumer, onCleanup, producer, sleep, startBroker, until, type TestBroker } from './helpers.js'

type Drop = 'close' | 'abort' | 'hang up'

/** A raw consumer stream that subscribes to `command` and is dropped in the same moment. */
async function subscribeAndDrop (node: P2PMQNode, broker: TestBroker, command: string, drop: Drop): Promise<void> {
  const stream = await node.dialProtocol(multiaddr(broker.address), CONSUMER_PROTOCOL)
  const w = new FrameWriter((bytes) => { stream.send(bytes) })
  writeSubscribe(w, 1, 10, 0, 'default', [command])
  w.flush()
  if (drop === 'close') await stream.close().catch(() => {})
  else if (drop === 'abort') stream.abort(new Error('gone'))
  else await node.hangUp(multiaddr(broker.address)).catch(() => {})
}

async function clientNode (): Promise<P2PMQNode> {
  const node = await createNode()
  await node.start()
  onCleanup(async () => { await node.stop() })
  return node
}

const consumers = (broker: TestBroker): number => broker.node.services.mq.stats().clients.filter((c) => c.role === 'consumer').length

describe('lost consumers', () => {
  for (const drop of ['close', 'abort', 'hang up'] as const) {
    it(`a stream that subscribes and is dropped at once (${drop}) leaves no subscription and holds nothing`, async () => {
      // WebRTC on, as the CLI broker runs: its peer store is then on disk, and the time libp2p takes
      // to set a stream up is long enough to drop it in. A delivery taken back counts as an attempt,
      // and 150 ghosts take the same first messages over and over: no attempt limit here.
      const broker = await startBroker({ memory: true, webrtc: true, maxAttempts: 1000 })
      const p = await producer(broker)
      const total = 300
      await Promise.all(Array.from({ length: total }, async (_, i) => { await p.publish('ghost', `m${i}`) }))

      let joined = 0
      broker.node.services.mq.addEventListener('client:join', (e) => { if (e.detail.role === 'consumer') joined++ })

      // 150 tries from 5 peers (the broker takes 5 new connections a second from one host), 6 at a
      // time on each connection (it takes 8 streams of a protocol at once), so that some drops land
      // while the broker is still setting the stream up.
      const nodes = await Promise.all(Array.from({ length: 5 }, async () => await clientNode()))
      const rounds = drop === 'hang up' ? 1 : 5
      await Promise.all(nodes.map(async (node) => {
        for (let round = 0; round < rounds; round++) {
          await Promise.all(Array.from({ length: 6 }, async () => {
            // A try can fail to open (the broker turns a connection away): that is fine.
            await subscribeAndDrop(node, broker, 'ghost', drop).catch(() => {})
          }))
        }
      }))
      // The broker may still be setting the last streams up.
      await sleep(500)
      await until(() => consumers(broker) === 0, 5000, 'no consumer left').catch(() => {})
      expect(joined).toBeGreaterThanOrEqual(drop === 'hang up' ? 3 : 20)
      expect(consumers(broker)).toBe(0)
      const queue = broker.node.services.mq.stats().queues.find((q) => q.command === 'ghost')
      expect(queue?.inFlight ?? 0).toBe(0)

      // Every message reaches a real consumer, well inside the visibility timeout (30 s). (After a
      // second: the broker takes 5 new connections a second from one host.)
      await sleep(1100)
      const got = new Set<string>()
      const c = await consumer(broker)
      await c.subscribe('ghost', (m) => { got.add(m.payload as string) })
      await until(() => got.size === total, 10_000, `all ${total} messages (got ${got.size})`).catch(() => {})
      expect(got.size).toBe(total)
    }, 60_000)
  }

  it('a consumer that stops reading gets no new deliveries after its deliveries time out', async () => {
    // A consumer whose reader is stuck keeps its stream: its deliveries come back at the
    // visibility timeout and go to a consumer that works, not round and round to the stuck one.
    const broker = await startBroker({ memory: true, visibilityTimeout: 500, maxAttempts: 3 })
    const node = await clientNode()
    const stream = await node.dialProtocol(multiaddr(broker.address), CONSUMER_PROTOCOL)
    stream.pause() // never reads again
    const w = new FrameWriter((bytes) => { stream.send(bytes) })
    writeSubscribe(w, 1, 5, 0, 'default', ['stuck'])
    w.flush()
    await until(() => consumers(broker) === 1, 5000, 'the stuck consumer')
    const p = await producer(broker)
    for (let i = 0; i < 20; i++) await p.publish('stuck', `m${i}`)
    await sleep(100)
    const got = new Set<string>()
    const c = await consumer(broker)
    await c.subscribe('stuck', (m) => { got.add(m.payload as string) })
    await until(() => got.size === 20, 10_000, `all 20 messages (got ${got.size})`)
    await sleep(1000) // two more visibility timeouts: nothing goes round to the stuck one
    const q = broker.node.services.mq.stats().queues.find((x) => x.command === 'stuck')
    // 5 to the stuck consumer once, then all 20 to the working one.
    expect(q).toMatchObject({ failed: 0, delivered: 25, acked: 20, inFlight: 0 })
  })
})
