/**
 * The page's libp2p node. It dials WebRTC Direct (a broker's own address, a relay's), and, given
 * relays, circuit relay v2 through them. A relayed connection moves to a direct one when it can
 * (src/direct-upgrade.ts): to the broker's own WebRTC Direct address, when the broker served the
 * page (a slow handshake may have sent the first dial to the relay), and, given STUN servers, to
 * direct WebRTC (SDP over the relay, ICE with those servers), as Node clients do. No DHT: the
 * page is told its relays, and the relay reaches the broker.
 */
import { quietNoise } from '../src/noise-reader.js'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { webRTC, webRTCDirect } from '@libp2p/webrtc'
import { yamux } from '@libp2p/yamux'
import { createLibp2p, type Libp2p } from 'libp2p'
import { CLIENT_ADDRESS_DIAL_TIMEOUT } from '../src/constants.js'
import { directUpgrade } from '../src/direct-upgrade.js'
import { connectionVia } from '../src/relay-address.js'
import { pageIdentity } from './identity.js'
import type { BrokerTarget } from './broker-target.js'

/** How the page reaches its broker, from the connection's remote address. */
export type Via = 'direct' | 'relayed'

export function viaOf (remoteAddr: string): Via {
  return connectionVia(remoteAddr) === 'relay' ? 'relayed' : 'direct'
}

export async function pageNode (target: BrokerTarget): Promise<Libp2p> {
  const relayed = target.relays.length > 0
  const punch = relayed && target.stun.length > 0
  const upgrade = punch || (relayed && target.lookup != null)
  return await createLibp2p({
    privateKey: await pageIdentity(),
    transports: [
      // Never a public STUN server: only those the URL or the broker names.
      webRTCDirect({ rtcConfiguration: { iceServers: [] } }),
      ...(relayed ? [circuitRelayTransport()] : []),
      ...(punch ? [webRTC({ rtcConfiguration: { iceServers: target.stun.map((urls) => ({ urls })) } })] : [])
    ],
    connectionEncrypters: [quietNoise()],
    streamMuxers: [yamux()],
    // An unreachable address of the broker costs 3 s, not 6, before the relay is tried.
    connectionManager: { addressDialTimeout: CLIENT_ADDRESS_DIAL_TIMEOUT },
    // Brokers and relays on a LAN or this machine have private addresses: let the page dial them.
    connectionGater: { denyDialMultiaddr: () => false },
    services: { identify: identify(), ...(upgrade ? { directUpgrade: directUpgrade({ addresses: target.lookup, punch }) } : {}) }
  })
}
