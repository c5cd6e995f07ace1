/**
 * A p2pmq relay: a libp2p node on a public address that brokers behind NAT reserve a slot on
 * (circuit relay v2), and that serves p2pmq's own DHT, where clients find a broker by peer ID.
 * It keeps no messages: it only carries streams between peers that cannot dial each other.
 */
import { circuitRelayServer, type CircuitRelayService } from '@libp2p/circuit-relay-v2'
import { multiaddr } from '@multiformats/multiaddr'
import { DEFAULT_RELAY_LISTEN, DEFAULT_RELAY_MAX_RESERVATIONS } from './constants.js'
import { defaultRelayDataDir } from './home.js'
import { createNode, p2pmqDHT, type KadDHT, type P2PMQNode } from './node.js'

export interface CreateRelayOptions {
  /**
   * Where the relay keeps its identity (peer ID), locked while it runs.
   * @default `<home>/relay`
   */
  dataDir?: string
  /**
   * The p2pmq home, for the default `dataDir`.
   * @default P2PMQ_HOME, else `~/.p2pmq`
   */
  home?: string
  /**
   * Multiaddrs to listen on.
   * @default ['/ip4/0.0.0.0/tcp/4001']
   */
  listen?: string[]
  /**
   * Addresses to announce instead of the listen addresses, e.g. the public address of a host
   * whose interface has a private one. Brokers hand them to clients in their relayed addresses.
   * @default undefined (the listen addresses)
   */
  announce?: string[]
  /**
   * Peers holding a reservation at once.
   * @default 1024
   */
  maxReservations?: number
}

export type RelayNode = P2PMQNode<{ relay: CircuitRelayService, dht: KadDHT }>

/**
 * Builds and starts a relay. Relayed connections have no data or time limit: libp2p's defaults
 * (128 KiB and 2 minutes per connection) would cut a consumer's stream, which lives as long as
 * the consumer; the cost is the relay's bandwidth, which is why a relay is run for one's own
 * brokers, and its slots are bounded by `maxReservations`.
 */
export async function createRelay (options: CreateRelayOptions = {}): Promise<RelayNode> {
  const node = await createNode({
    dataDir: options.dataDir ?? defaultRelayDataDir(options.home),
    listen: options.listen ?? [DEFAULT_RELAY_LISTEN],
    announce: options.announce,
    services: {
      relay: circuitRelayServer({
        reservations: { applyDefaultLimit: false, maxReservations: options.maxReservations ?? DEFAULT_RELAY_MAX_RESERVATIONS }
      }),
      dht: p2pmqDHT('server')
    }
  })
  await node.start()
  return node
}

/** Checks that `addr` names a relay: a multiaddr ending in /p2p/<peerId>, without /p2p-circuit. Throws TypeError. */
export function parseRelayAddress (addr: string): string {
  const text = addr.trim()
  let names: string[]
  try {
    names = multiaddr(text).getComponents().map((c) => c.name)
  } catch (err) {
    throw new TypeError(`The relay address "${text}" is not a multiaddr (${(err as Error).message})`)
  }
  if (names.includes('p2p-circuit')) throw new TypeError(`The relay address ${text} must be the relay's own address, not one through it (/p2p-circuit)`)
  if (names.at(-1) !== 'p2p') throw new TypeError(`The relay address ${text} must end in /p2p/<relay peer ID> (p2pmq relay prints it)`)
  return text
}
