/**
 * Builds the libp2p node every p2pmq program runs on: TCP, noise, yamux, identify and ping, with a
 * kept identity when given a data directory. libp2p details stay here, in protocol/ and in the
 * client connection.
 */
import './polyfill.js'
import { noise } from '@chainsafe/libp2p-noise'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createLibp2p, type Libp2p } from 'libp2p'
import { loadIdentity } from './home.js'
import type { ServiceFactoryMap } from 'libp2p'
import type { Identify } from '@libp2p/identify'
import type { Ping } from '@libp2p/ping'

export interface NodeOptions<S extends Record<string, unknown> = Record<string, unknown>> {
  /** Keep the identity here (created the first time); locked while the node runs. */
  dataDir?: string
  /** Multiaddrs to listen on. Clients need none. */
  listen?: string[]
  /** Extra services, e.g. `{ mq: broker() }`. */
  services?: ServiceFactoryMap<S>
}

export type BaseServices = { identify: Identify, ping: Ping }
export type P2PMQNode<S extends Record<string, unknown> = Record<string, unknown>> = Libp2p<BaseServices & S>

export async function createNode<S extends Record<string, unknown> = Record<string, unknown>> (options: NodeOptions<S> = {}): Promise<P2PMQNode<S>> {
  const identity = options.dataDir != null ? await loadIdentity(options.dataDir) : undefined
  try {
    const node = await createLibp2p({
      privateKey: identity?.privateKey,
      addresses: { listen: options.listen ?? [] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: {
        identify: identify(),
        ping: ping(),
        ...options.services
      } as ServiceFactoryMap<BaseServices & S>
    })
    // A lock that cannot be removed (a read-only disk) is left for the next start to find stale.
    if (identity != null) node.addEventListener('stop', () => { identity.release().catch(() => {}) }, { once: true })
    return node
  } catch (err) {
    await identity?.release()
    throw err
  }
}
