/**
 * Upgrades a relayed connection to a direct one: when this node dials a peer through a relay
 * (`<relay>/p2p-circuit/p2p/<peer>`), it dials the peer's own addresses again, if it is told them
 * (the dial that ended relayed may have given up on them only because it was slow), then the
 * peer's WebRTC address through the same relay (`<relay>/p2p-circuit/webrtc/p2p/<peer>`: SDP goes
 * over the relay, ICE with STUN punches the NATs). Once a direct connection is up, it aborts the
 * relayed one. Its streams end; a broker link opens again at once, on the direct connection.
 * When no direct dial succeeds, the relayed connection stays.
 */
import { DIRECT_UPGRADE_TIMEOUT } from './constants.js'
import { connectionVia } from './relay-address.js'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { ComponentLogger, Connection, Libp2pEvents, Logger, Startable } from '@libp2p/interface'
import type { TransportManager } from '@libp2p/interface-internal'

export interface DirectUpgradeInit {
  /**
   * ms to wait for the direct connection before keeping the relayed one.
   * @default 10000
   */
  timeout?: number
  /** The peer's own addresses, dialed again first, each with the whole timeout. */
  addresses?: (peer: string) => Promise<string[]>
  /**
   * Whether to dial the peer's WebRTC address through the relay (needs the webRTC transport).
   * @default true
   */
  punch?: boolean
}

export interface DirectUpgradeComponents {
  transportManager: TransportManager
  events: {
    addEventListener: (type: 'connection:open', listener: (evt: Libp2pEvents['connection:open']) => void) => void
    removeEventListener: (type: 'connection:open', listener: (evt: Libp2pEvents['connection:open']) => void) => void
  }
  logger: ComponentLogger
}

/** A relayed connection this node dialed (the other side does not try too: one attempt per pair). */
function isOutboundRelayed (conn: Connection): boolean {
  return conn.direction === 'outbound' && connectionVia(conn.remoteAddr.toString()) === 'relay'
}

export class DirectUpgrade implements Startable {
  private readonly log: Logger
  private readonly timeout: number
  private readonly addresses?: (peer: string) => Promise<string[]>
  private readonly punch: boolean
  private readonly controller = new AbortController()
  private readonly onOpen = (evt: CustomEvent<Connection>): void => {
    if (isOutboundRelayed(evt.detail)) void this.upgrade(evt.detail)
  }

  constructor (private readonly components: DirectUpgradeComponents, init: DirectUpgradeInit = {}) {
    this.log = components.logger.forComponent('p2pmq:direct-upgrade')
    this.timeout = init.timeout ?? DIRECT_UPGRADE_TIMEOUT
    this.addresses = init.addresses
    this.punch = init.punch ?? true
  }

  readonly [Symbol.toStringTag] = 'p2pmq/direct-upgrade'

  start (): void {
    this.components.events.addEventListener('connection:open', this.onOpen)
  }

  stop (): void {
    this.components.events.removeEventListener('connection:open', this.onOpen)
    this.controller.abort()
  }

  private async upgrade (relayed: Connection): Promise<void> {
    const peer = relayed.remotePeer.toString()
    for (const addr of await this.candidates(relayed)) {
      if (relayed.status !== 'open' || this.controller.signal.aborted) return
      try {
        // Through the transport, not the connection manager: its dial queue would hand back the
        // relayed connection still being dialed to the same peer.
        const direct = await this.components.transportManager.dial(addr, {
          signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(this.timeout)])
        })
        this.log('direct connection to %s at %a', peer, direct.remoteAddr)
        // Aborted, not closed: a graceful close waits for the broker link's stream, which lasts,
        // and meanwhile new streams are refused on the closing connection.
        relayed.abort(new Error('moved to a direct connection'))
        return
      } catch (err) {
        this.log('no direct connection to %s at %a: %s', peer, addr, (err as Error).message)
      }
    }
    this.log('staying relayed to %s', peer)
  }

  /** The peer's own addresses, then (punching) `<relay>/p2p-circuit/webrtc/p2p/<peer>`. */
  private async candidates (relayed: Connection): Promise<Multiaddr[]> {
    const peer = relayed.remotePeer.toString()
    const own: Multiaddr[] = []
    try {
      for (const a of await this.addresses?.(peer) ?? []) {
        const addr = multiaddr(a)
        own.push(addr.getComponents().some((c) => c.name === 'p2p') ? addr : addr.encapsulate(`/p2p/${peer}`))
      }
    } catch (err) {
      this.log('no addresses of %s to dial again: %s', peer, (err as Error).message)
    }
    if (!this.punch) return own
    return [...own, relayed.remoteAddr.decapsulateCode(421).encapsulate(`/webrtc/p2p/${peer}`)]
  }
}

/** The service: `createLibp2p({ services: { directUpgrade: directUpgrade() } })`. */
export function directUpgrade (init: DirectUpgradeInit = {}): (components: DirectUpgradeComponents) => DirectUpgrade {
  return (components) => new DirectUpgrade(components, init)
}
