/**
 * A p2pmq relay: a libp2p node on a public address that brokers behind NAT reserve a slot on
 * (circuit relay v2), and that serves p2pmq's own DHT, where clients find a broker by peer ID.
 * Node peers reach it over TCP, browsers over WebRTC Direct (its certificate, and so the
 * `/certhash/` of its address, is kept in the data directory). It keeps no messages: it only
 * carries streams between peers that cannot dial each other.
 */
import { circuitRelayServer, type CircuitRelayService } from '@libp2p/circuit-relay-v2'
import { multiaddr } from '@multiformats/multiaddr'
import { DEFAULT_RELAY_LISTEN, DEFAULT_RELAY_MAX_RESERVATIONS, RELAY_CONNECTIONS_PER_RESERVATION, RELAY_MAX_INBOUND_STREAMS, RELAY_MIN_MAX_CONNECTIONS, RELAY_MAX_STREAM_WINDOW, RELAY_PROTOCOL_NEGOTIATION_TIMEOUT } from './constants.js'
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
   * Multiaddrs to listen on: TCP, and WebRTC Direct (`/udp/<port>/webrtc-direct`) for browsers.
   * @default ['/ip4/0.0.0.0/tcp/4001', '/ip4/0.0.0.0/udp/4001/webrtc-direct']
   */
  listen?: string[]
  /**
   * Addresses to announce instead of the listen addresses, e.g. the public address of a host
   * whose interface has a private one. Brokers hand them to clients in their relayed addresses.
   * A WebRTC Direct one needs no certhash (the relay adds its own); when only TCP ones are given,
   * each IP one is announced over WebRTC Direct too, at the port of the WebRTC Direct listen address.
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
 * brokers, and its slots are bounded by `maxReservations`. Any peer may dial a relay, so its streams
 * are bounded too (RELAY_MAX_INBOUND_STREAMS and the rest): a flood of streams costs it bounded
 * memory and CPU, and leaves it taking new connections.
 */
export async function createRelay (options: CreateRelayOptions = {}): Promise<RelayNode> {
  const listen = options.listen ?? DEFAULT_RELAY_LISTEN.split(',')
  const maxReservations = options.maxReservations ?? DEFAULT_RELAY_MAX_RESERVATIONS
  const node = await createNode({
    dataDir: options.dataDir ?? defaultRelayDataDir(options.home),
    webrtc: listen.some(isWebRTCDirect),
    listen,
    announce: options.announce != null ? relayAnnounce(options.announce, listen) : undefined,
    muxer: { maxInboundStreams: RELAY_MAX_INBOUND_STREAMS, streamOptions: { maxStreamWindowSize: RELAY_MAX_STREAM_WINDOW } },
    connectionManager: {
      inboundStreamProtocolNegotiationTimeout: RELAY_PROTOCOL_NEGOTIATION_TIMEOUT,
      maxConnections: Math.max(RELAY_MIN_MAX_CONNECTIONS, maxReservations * RELAY_CONNECTIONS_PER_RESERVATION)
    },
    services: {
      relay: circuitRelayServer({
        reservations: { applyDefaultLimit: false, maxReservations }
      }),
      dht: p2pmqDHT('server')
    }
  })
  await node.start()
  return node
}

const isWebRTCDirect = (addr: string): boolean => addr.includes('/webrtc-direct')

/**
 * The announce list: as given, plus, when it names no WebRTC Direct address but the relay listens
 * on one at a fixed port, `/ip4|ip6/<host>/udp/<port>/webrtc-direct` for each announced IP (libp2p
 * adds the certhash). The port must be fixed: an address announced for port 0 would be useless.
 */
function relayAnnounce (announce: string[], listen: string[]): string[] {
  if (announce.some(isWebRTCDirect)) return announce
  const udp = listen.filter(isWebRTCDirect).map((a) => multiaddr(a).getComponents().find((c) => c.name === 'udp')?.value).find((port) => port != null && port !== '0')
  if (udp == null) return announce
  const webrtc = announce.flatMap((a) => {
    const host = multiaddr(a).getComponents()[0]
    return host.name === 'ip4' || host.name === 'ip6' ? [`/${host.name}/${host.value ?? ''}/udp/${udp}/webrtc-direct`] : []
  })
  return [...announce, ...webrtc]
}

export { parseRelayAddress } from './relay-address.js'
