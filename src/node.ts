/**
 * Builds the libp2p node every p2pmq program runs on: TCP, noise, yamux, identify and ping, with a
 * kept identity when given a data directory. libp2p details stay here, in protocol/ and in the
 * client connection.
 */
import './polyfill.js'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify, identifyPush } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { createLibp2p, type Libp2p } from 'libp2p'
import { CLIENT_ADDRESS_DIAL_TIMEOUT, DHT_PROTOCOL } from './constants.js'
import { loadIdentity, type Identity } from './home.js'
import { corkedTcp } from './tcp-cork.js'
import { halfWindowYamux } from './yamux-window.js'
import { quietNoise } from './noise-reader.js'
import { directUpgrade } from './direct-upgrade.js'
import { parseStunServer } from './stun.js'
import { listenAddresses, reachableOnly, type ListenAddresses } from './reachable-addresses.js'
import { join } from 'node:path'
import type { LevelDatastore } from 'datastore-level'
import type { ConnectionManagerInit, Libp2pInit, ServiceFactoryMap } from 'libp2p'
import type { YamuxMuxerInit } from '@libp2p/yamux'
import type { Identify, IdentifyPush } from '@libp2p/identify'
import type { Ping } from '@libp2p/ping'
import type { ConnectionGater, PrivateKey, Startable } from '@libp2p/interface'

const DAY = 24 * 60 * 60 * 1000

/**
 * WebRTC Direct, kept on this machine: no STUN servers (nothing leaves loopback or the LAN), and
 * a certificate lifespan under Node's 24.8-day timer limit (the default, 30 days, overflows it
 * and renews the certificate without end).
 */
const WEBRTC_DIRECT = {
  rtcConfiguration: { iceServers: [] },
  certificateLifespan: 14 * DAY,
  certificateRenewalThreshold: DAY
}

/**
 * WebRTC (with node-datachannel's native library), the keychain and the node's datastore are
 * loaded only by a node that speaks WebRTC Direct: they cost most of a client's startup.
 */
async function loadWebRTC (dataDir: string | undefined): Promise<{ transport: ReturnType<typeof import('@libp2p/webrtc').webRTCDirect>, datastore?: LevelDatastore, keychain?: ReturnType<typeof import('@libp2p/keychain').keychain> } | undefined> {
  const transport = await loadWebRTCDirect()
  if (transport == null) return undefined
  if (dataDir == null) return { transport }
  // The WebRTC Direct certificate is kept in the keychain, in a datastore in the data directory.
  const [{ keychain }, { nodeDatastore }] = await Promise.all([import('@libp2p/keychain'), import('./node-datastore.js')])
  return { transport, datastore: await nodeDatastore(join(dataDir, 'datastore')), keychain: keychain() }
}

/**
 * @libp2p/webrtc is an optional peer dependency (it brings react-native through its own peers):
 * loaded only by a node that speaks WebRTC, undefined where it is not installed.
 */
async function loadWebRTCDirect (): Promise<ReturnType<typeof import('@libp2p/webrtc').webRTCDirect> | undefined> {
  try {
    const { webRTCDirect } = await import('@libp2p/webrtc')
    return webRTCDirect(WEBRTC_DIRECT)
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && String(err).includes('@libp2p/webrtc')) return undefined
    throw err
  }
}

/**
 * WebRTC between two peers that reach each other through a relay (`/webrtc`: SDP over the relay,
 * ICE with the STUN servers given), and the service that upgrades a relayed connection to it.
 * Only with STUN servers given: without one, ICE offers only this host's own addresses, and two
 * peers behind different NATs never get through.
 */
async function loadWebRTCOverRelay (stun: string[]): Promise<{ transport: ReturnType<typeof import('@libp2p/webrtc').webRTC> } | undefined> {
  try {
    const { webRTC } = await import('@libp2p/webrtc')
    return { transport: webRTC({ rtcConfiguration: { iceServers: stun.map((urls) => ({ urls })) } }) }
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && String(err).includes('@libp2p/webrtc')) return undefined
    throw err
  }
}

const WEBRTC_MISSING = 'WebRTC Direct (what browsers dial) needs the optional package @libp2p/webrtc: npm install @libp2p/webrtc'

/** Without WebRTC installed, a node listens on its other addresses (with a warning), or fails. */
function webrtcListenable (listen: string[], missing: boolean): string[] {
  if (!missing) return listen
  const others = listen.filter((a) => !a.includes('/webrtc-direct'))
  if (others.length === 0) throw new Error(WEBRTC_MISSING)
  if (others.length < listen.length) process.emitWarning(`${WEBRTC_MISSING}; listening on ${others.join(', ')} only`)
  return others
}

export interface NodeOptions<S extends Record<string, unknown> = Record<string, unknown>> {
  /**
   * Also speak WebRTC Direct (UDP), the transport browsers can dial: listen on it when `listen`
   * has a `/webrtc-direct` address, dial it when a peer's address is one. With `dataDir`, the
   * listener's certificate is kept there, so its certhash (and address) survive restarts.
   * @default false
   */
  webrtc?: boolean
  /**
   * Keep the identity here (created the first time); locked while the node runs.
   * @default undefined (a new identity each start)
   */
  dataDir?: string
  /**
   * Run as this identity (e.g. `userIdentity()`), not locked; not with `dataDir`.
   * @default undefined (the identity of `dataDir`, else a new one)
   */
  privateKey?: PrivateKey
  /**
   * Multiaddrs to listen on. Clients need none.
   * @default [] (listens on nothing)
   */
  listen?: string[]
  /**
   * Addresses to announce instead of the listen addresses (e.g. a relay's public address).
   * @default undefined (the listen addresses)
   */
  announce?: string[]
  /**
   * Addresses to announce beside the node's own, e.g. a public address this host cannot see on
   * its interfaces, or a port forwarded to it (unlike `announce`, relayed addresses stay).
   * @default [] (none)
   */
  appendAnnounce?: string[]
  /**
   * Announce (identify, the relays' DHT) only the addresses a peer on another network can reach:
   * relayed ones, `appendAnnounce` and public ones, never loopback or private (LAN) ones. The
   * listen addresses stay known to this host (`localAddresses`). For a node behind NAT with relays.
   * @default false (every listen address is announced)
   */
  reachableOnly?: boolean
  /**
   * Dial and listen through circuit relays (`/p2p-circuit`): a broker behind NAT, or a client
   * reaching it. Such a node also gives up on one address of a peer after 3 s, not 6.
   * @default false
   */
  circuitRelay?: boolean
  /**
   * STUN servers (`stun:<host>:<port>`) for WebRTC through a relay: with `circuitRelay`, a node
   * given them dials a peer it reached through a relay again over WebRTC, signalled through that
   * relay, and once that direct connection is up closes the relayed one; a node listening through
   * relays also listens on `/webrtc`. Never a public server unless given.
   * @default [] (no direct upgrade: relayed connections stay relayed)
   */
  stun?: string[]
  /**
   * yamux settings, e.g. a public node's bounds on inbound streams per connection and windows.
   * @default undefined (@libp2p/yamux's defaults)
   */
  muxer?: YamuxMuxerInit
  /**
   * Connection manager settings (limits, timeouts), over p2pmq's own.
   * @default undefined (libp2p's defaults)
   */
  connectionManager?: ConnectionManagerInit
  /**
   * Connection gaters (e.g. the broker's access list, its connections per peer): a connection,
   * dial or address is refused when any of them refuses it.
   * @default [] (libp2p's default gater)
   */
  connectionGater?: ConnectionGater | ConnectionGater[]
  /**
   * libp2p's metrics (e.g. `prometheusMetrics()` of @libp2p/prometheus-metrics).
   * @default undefined (none)
   */
  metrics?: Libp2pInit['metrics']
  /**
   * Extra services, e.g. `{ mq: broker() }`.
   * @default {} (identify, identify-push and ping only)
   */
  services?: ServiceFactoryMap<S>
}

/** The services every p2pmq node runs, beside those given in `services`. */
export type BaseServices = { identify: Identify, identifyPush: IdentifyPush, ping: Ping, listenAddresses: ListenAddresses }

/**
 * The DHT p2pmq peers share: its own protocol id (never the public IPFS DHT), relays as its
 * servers, brokers and clients as clients. Every address is passed on (the default mapper drops
 * private ones, which on a LAN are the reachable ones); the first self-query runs at once, so a
 * lookup does not wait a second for it.
 */
export function p2pmqDHT (mode: 'server' | 'client'): (components: any) => KadDHT {
  // (kad-dht's components include `ping`, which ServiceFactoryMap's typing cannot see.)
  return kadDHT({ protocol: DHT_PROTOCOL, clientMode: mode === 'client', peerInfoMapper: passthroughMapper, initialQuerySelfInterval: 0 })
}
export type { KadDHT }
export type P2PMQNode<S extends Record<string, unknown> = Record<string, unknown>> = Libp2p<BaseServices & S>

export async function createNode<S extends Record<string, unknown> = Record<string, unknown>> (options: NodeOptions<S> = {}): Promise<P2PMQNode<S>> {
  if (options.privateKey != null && options.dataDir != null) throw new TypeError('Give a node privateKey or dataDir, not both')
  const webrtc = options.webrtc === true ? await loadWebRTC(options.dataDir) : undefined
  let listen = webrtcListenable(options.listen ?? [], options.webrtc === true && webrtc == null)
  const stun = (options.stun ?? []).map(parseStunServer)
  const overRelay = options.circuitRelay === true && stun.length > 0 ? await loadWebRTCOverRelay(stun) : undefined
  if (options.circuitRelay === true && stun.length > 0 && overRelay == null) throw new Error('WebRTC through a relay (-stun) needs the optional package @libp2p/webrtc: npm install @libp2p/webrtc')
  // A node that listens through relays listens on /webrtc beside them.
  if (overRelay != null && listen.length > 0) listen = [...listen, '/webrtc']
  const identity = options.dataDir != null ? await loadIdentity(options.dataDir) : undefined
  let datastore: LevelDatastore | undefined
  try {
    datastore = webrtc?.datastore
    await datastore?.open()
    const node = await createLibp2p({
      privateKey: identity?.privateKey ?? options.privateKey,
      datastore,
      addresses: { listen, announce: options.announce, appendAnnounce: options.appendAnnounce, ...(options.reachableOnly === true ? { announceFilter: reachableOnly(options.appendAnnounce) } : {}) },
      transports: [corkedTcp(), ...(webrtc != null ? [webrtc.transport] : []), ...(options.circuitRelay === true ? [circuitRelayTransport()] : []), ...(overRelay != null ? [overRelay.transport] : [])],
      connectionManager: { ...(options.circuitRelay === true ? { addressDialTimeout: CLIENT_ADDRESS_DIAL_TIMEOUT } : {}), ...options.connectionManager },
      ...(options.connectionGater != null ? { connectionGater: composeGaters([options.connectionGater].flat()) } : {}),
      connectionEncrypters: [quietNoise()],
      ...(options.metrics != null ? { metrics: options.metrics } : {}),
      streamMuxers: [halfWindowYamux(options.muxer)],
      services: {
        identify: identify(),
        identifyPush: identifyPush(),
        ping: ping(),
        listenAddresses: listenAddresses(),
        ...(webrtc?.keychain != null ? { keychain: webrtc.keychain } : {}),
        ...(overRelay != null ? { directUpgrade: directUpgrade() } : {}),
        ...options.services,
        ...(identity != null ? { dataDirRelease: dataDirRelease(identity, datastore) } : {})
      } as ServiceFactoryMap<BaseServices & S>
    })
    return node
  } catch (err) {
    await datastore?.close().catch(() => {})
    await identity?.release()
    throw err
  }
}

type GaterCheck = (...args: any[]) => boolean | Promise<boolean>

/** One gater that refuses what any of `gaters` refuses (each asked in turn; the first refusal ends it). */
export function composeGaters (gaters: ConnectionGater[]): ConnectionGater {
  if (gaters.length === 1) return gaters[0]
  const composed: Record<string, GaterCheck> = {}
  for (const gater of gaters) {
    for (const name of Object.keys(gater) as Array<keyof ConnectionGater>) {
      if (typeof gater[name] !== 'function' || composed[name] != null) continue
      const checks = gaters.map((g) => g[name] as GaterCheck | undefined).filter((c): c is GaterCheck => c != null)
      // filterMultiaddrForPeer says true to keep an address: kept only when every gater keeps it.
      const refusal = name !== 'filterMultiaddrForPeer'
      composed[name] = async (...args: unknown[]) => {
        for (const check of checks) if (await check(...args) === refusal) return refusal
        return !refusal
      }
    }
  }
  return composed as ConnectionGater
}

/**
 * Closes the datastore and releases the identity lock after every other part has stopped, and
 * before node.stop() resolves: a node started right after on the same directory finds it free.
 */
function dataDirRelease (identity: Identity, datastore: LevelDatastore | undefined): () => Startable {
  return () => ({
    start: () => {},
    stop: () => {},
    afterStop: async () => {
      await datastore?.close().catch(() => {})
      await identity.release()
    }
  })
}
