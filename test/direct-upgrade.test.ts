/**
 * The direct upgrade told the peer's own addresses: a client that reached its broker through a
 * relay dials the broker's own address again and moves there (as the page does when its first,
 * slow, WebRTC Direct dial sent it to the relay). Real relay, broker and client on 127.0.0.1.
 */
import { join } from 'node:path'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { noise } from '@chainsafe/libp2p-noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { describe, expect, it } from 'vitest'
import { directUpgrade } from '../src/direct-upgrade.js'
import { createBroker, createRelay, localAddresses } from '../src/index.js'
import { onCleanup, sleep, tempDir, until } from './helpers.js'

async function relayAndBroker (): Promise<{ relayed: string, own: string[] }> {
  const dir = await tempDir()
  const relay = await createRelay({ dataDir: join(dir, 'relay'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  onCleanup(async () => { await relay.stop() })
  const broker = await createBroker({ home: dir, dataDir: join(dir, 'broker'), memory: true, acl: 'open', relays: [relay.getMultiaddrs()[0].toString()] })
  onCleanup(async () => { await broker.stop() })
  await until(() => broker.getMultiaddrs().some((m) => m.toString().includes('/p2p-circuit')), 15_000, 'the relayed address')
  const relayed = broker.getMultiaddrs().find((m) => m.toString().includes('/p2p-circuit'))?.toString() as string
  // (A broker with relays announces only its relayed addresses; it knows its own.)
  const own = localAddresses(broker).map(String).filter((a) => !a.includes('/p2p-circuit'))
  expect(own).toEqual([expect.stringMatching(/^\/ip4\/127\.0\.0\.1\/tcp\//)])
  return { relayed, own }
}

async function client (addresses: (peer: string) => Promise<string[]>): Promise<Awaited<ReturnType<typeof createLibp2p>>> {
  const node = await createLibp2p({
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), directUpgrade: directUpgrade({ addresses, punch: false }) }
  })
  onCleanup(async () => { await node.stop() })
  return node
}

describe('direct upgrade to the peer\'s own addresses', () => {
  it('moves a relayed connection to the broker\'s own address, and aborts the relayed one', async () => {
    const { relayed, own } = await relayAndBroker()
    const asked: string[] = []
    const node = await client(async (peer) => { asked.push(peer); return own })
    const conn = await node.dial(multiaddr(relayed))
    expect(conn.remoteAddr.toString()).toContain('/p2p-circuit')
    await until(() => conn.status !== 'open', 10_000, 'the relayed connection to end')
    const now = node.getConnections(conn.remotePeer)
    expect(now.map((c) => c.remoteAddr.toString())).toEqual([expect.stringMatching(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/)])
    expect(asked).toEqual([conn.remotePeer.toString()])
  })

  it('stays relayed when the peer\'s own addresses cannot be dialed, or cannot be had', async () => {
    const { relayed } = await relayAndBroker()
    for (const addresses of [async () => ['/ip4/127.0.0.1/tcp/9'], async () => { throw new Error('no lookup') }]) {
      const node = await client(addresses)
      const conn = await node.dial(multiaddr(relayed))
      await sleep(1_000)
      expect(conn.status).toBe('open')
      expect(node.getConnections(conn.remotePeer)).toEqual([conn])
    }
  })
})
