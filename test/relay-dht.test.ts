/**
 * The relay's DHT (`/p2pmq/kad/1.0.0`): a broker reserved on a relay is found there by peer ID,
 * with its relayed address, by a client that knows only the relay. The relay learns the address
 * from the broker's identify push (the broker runs no DHT); the library's client options reach
 * the broker the same way the CLI does.
 */
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { createBroker, createConsumer, createNode, createProducer, createRelay } from '../src/index.js'
import { p2pmqDHT } from '../src/node.js'
import { DHT_PROTOCOL, RECONNECT_MAX_DELAY } from '../src/constants.js'
import { onCleanup, tempDir, until } from './helpers.js'

describe('the relay\'s DHT', () => {
  it('finds a broker reserved on the relay by its peer ID, at its relayed address', async () => {
    const dir = await tempDir()
    const relay = await createRelay({ dataDir: join(dir, 'relay'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    onCleanup(async () => { await relay.stop() })
    expect(relay.getProtocols()).toContain(DHT_PROTOCOL)
    expect(relay.getProtocols().some((p) => p.startsWith('/ipfs/kad'))).toBe(false)
    const relayAddr = relay.getMultiaddrs()[0].toString()

    const broker = await createBroker({ home: join(dir, 'b'), memory: true, relays: [relayAddr], acl: 'open' })
    onCleanup(async () => { await broker.stop() })
    const circuit = (): string | undefined => broker.getMultiaddrs().map((a) => a.toString()).find((a) => a.includes('/p2p-circuit'))
    await until(() => circuit() != null, 10_000, 'the broker to reserve')
    const reserved = Date.now()

    const client = await createNode<Record<string, unknown>>({ circuitRelay: true, services: { dht: p2pmqDHT('client') } })
    await client.start()
    onCleanup(async () => { await client.stop() })
    await client.dial(multiaddr(relayAddr))
    // The relay learns the relayed address a moment after the reservation: look again until it has it.
    let found: string[] = []
    for (let i = 0; i < 50 && !found.some((a) => a.includes('/p2p-circuit')); i++) {
      const info = await client.peerRouting.findPeer(broker.peerId, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined)
      found = info?.multiaddrs.map((a) => a.toString()) ?? []
      if (!found.some((a) => a.includes('/p2p-circuit'))) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    console.log(`found by peer ID in the relay's DHT ${Date.now() - reserved} ms after the reservation`)
    expect(found.some((a) => circuit()?.startsWith(a) === true)).toBe(true)
  }, 60_000)

  it('library clients given { relays } reach a broker by peer ID with nothing in their address book', async () => {
    const dir = await tempDir()
    const relay = await createRelay({ dataDir: join(dir, 'relay'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    onCleanup(async () => { await relay.stop() })
    const relays = [relay.getMultiaddrs()[0].toString()]
    const broker = await createBroker({ home: join(dir, 'b'), memory: true, relays, acl: 'open' })
    onCleanup(async () => { await broker.stop() })
    await until(() => broker.getMultiaddrs().some((a) => a.toString().includes('/p2p-circuit')), 10_000, 'the broker to reserve')
    expect(broker.services.relays?.status()).toEqual([{ relay: relays[0], reserved: true, attempts: 1 }])

    const id = broker.peerId.toString()
    const consumer = await createConsumer({ broker: id, home: join(dir, 'c'), relays })
    onCleanup(async () => { await consumer.stop() })
    await consumer.subscribe('greet', async (m) => `hi ${m.payload as string}`)
    const producer = await createProducer({ broker: id, home: join(dir, 'p'), relays })
    onCleanup(async () => { await producer.stop() })
    const answers = await Promise.all(['a', 'b', 'c'].map(async (p) => await producer.send('greet', p)))
    expect(answers).toEqual(['hi a', 'hi b', 'hi c'])
    const conn = producer.node.getConnections(peerIdFromString(id))[0]
    expect(conn.remoteAddr.toString()).toContain('/p2p-circuit')
    expect(broker.services.mq.stats().clients.map((c) => c.via)).toEqual(['relay', 'relay'])
  }, 60_000)

  it('a client whose broker leaves its relay asks the relay about once a second for a while, then at the usual backoff', async () => {
    const dir = await tempDir()
    const relay = await createRelay({ dataDir: join(dir, 'relay'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    onCleanup(async () => { await relay.stop() })
    const relays = [relay.getMultiaddrs()[0].toString()]
    const broker = await createBroker({ home: join(dir, 'b'), memory: true, relays, acl: 'open' })
    await until(() => broker.getMultiaddrs().some((a) => a.toString().includes('/p2p-circuit')), 10_000, 'the broker to reserve')
    let stoppedAt = Infinity
    const retries: Array<{ at: number, wait: number, error: string }> = []
    const consumer = await createConsumer({
      broker: broker.peerId.toString(),
      home: join(dir, 'c'),
      relays,
      onRetry: (err, wait) => { retries.push({ at: performance.now() - stoppedAt, wait, error: err.message }) }
    })
    onCleanup(async () => { await consumer.stop() })
    await until(() => consumer.connected, 10_000, 'the consumer to connect through the relay')
    await broker.stop()
    stoppedAt = performance.now()
    // The broker never comes back: watch the client's retries for 28 s.
    await new Promise((resolve) => setTimeout(resolve, 28_000))
    const early = retries.filter((r) => r.at < 15_000)
    const late = retries.filter((r) => r.at > 22_000)
    console.log(`retries while the broker is away: ${early.length} in its first 15 s, ${late.length} from 22 s to 28 s (waits ${late.map((r) => r.wait).join(', ')} ms)`)
    expect(early.some((r) => /NO_RESERVATION/.test(r.error))).toBe(true)
    expect(early.length).toBeGreaterThanOrEqual(8)
    expect(early.filter((r) => /NO_RESERVATION/.test(r.error)).every((r) => r.wait <= 1_000)).toBe(true)
    // Past the fast window: at most one retry per RECONNECT_MAX_DELAY (5 s).
    expect(late.length).toBeGreaterThan(0)
    expect(late.length).toBeLessThanOrEqual(2)
    expect(late.every((r) => r.wait === RECONNECT_MAX_DELAY)).toBe(true)
  }, 60_000)
})
