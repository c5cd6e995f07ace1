/**
 * A client's link to its broker: finds the broker from a peer ID (through the address book on this
 * host) or a multiaddr ending in /p2p/<peerId>, opens one stream of the given protocol, and when
 * that stream ends, dials again with backoff until stopped. Producer and consumer see only
 * "here is a new stream" and "the stream ended" (nats.js keeps reconnects behind one object too).
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { RECONNECT_FACTOR, RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY } from '../constants.js'
import { BrokerAddressError, PermissionDeniedError } from '../errors.js'
import { closedAfterHandshake } from './refusal.js'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'

/**
 * Where a broker given by peer ID listens: its addresses, or a BrokerAddressError saying why they
 * are not known. On Node, the address book under the p2pmq home (`addressBook` in home.ts).
 */
export type BrokerLookup = (peerId: string) => Promise<string[]>

/** A broker as `parseBrokerAddress` gives it: its peer ID, and its addresses when given. */
export interface BrokerAddress {
  peerId: PeerId
  /** Set when given as a multiaddr; otherwise the address book is read at each dial. */
  addrs?: Multiaddr[]
}

/** Parses `-broker=<peerId>` or `-broker=<multiaddr>/p2p/<peerId>`. Throws BrokerAddressError. */
export function parseBrokerAddress (spec: string): BrokerAddress {
  const text = spec.trim()
  if (text.startsWith('/')) {
    let ma: Multiaddr
    try {
      ma = multiaddr(text)
    } catch (err) {
      throw new BrokerAddressError(`"${text}" is not a valid multiaddr: ${(err as Error).message}`, { cause: err })
    }
    const id = ma.getComponents().findLast((c) => c.name === 'p2p')?.value
    if (id == null) throw new BrokerAddressError(`The broker address ${text} has no /p2p/<peerId> part`)
    return { peerId: peerIdFromString(id), addrs: [ma] }
  }
  try {
    return { peerId: peerIdFromString(text) }
  } catch (err) {
    throw new BrokerAddressError(`"${text}" is neither a peer ID nor a multiaddr ending in /p2p/<peerId>`, { cause: err })
  }
}

/** Throws BrokerAddressError if the broker's peer ID is one of the relays' (dialing a relay through itself only times out, again and again). */
export function checkNotRelay (broker: BrokerAddress, relays: string[]): void {
  const id = broker.peerId.toString()
  const relay = relays.find((r) => multiaddr(r).getComponents().findLast((c) => c.name === 'p2p')?.value === id)
  if (relay != null) throw new BrokerAddressError(`${id} is the peer ID of the relay ${relay}, not of a broker: give the broker's (it prints "Broker peer ID: …")`)
}

export interface BrokerLinkInit {
  node: Libp2p
  broker: BrokerAddress
  protocol: string
  /** Finds a broker given by peer ID only (the address book of this host). */
  lookup?: BrokerLookup
  /** Relays a broker given by peer ID is dialed through, then looked up in (their DHT). */
  relays?: string[]
  /** A new stream to the broker is open. */
  onStream: (stream: Stream) => void
  /**
   * Dialing failed; the link will try again after `retryIn` ms. A PermissionDeniedError: the
   * broker closed the connection right after the handshake, as its ACL does to a peer it grants
   * nothing, and its maxConnectionsPerPeer to one more connection of a peer (it is tried again every
   * RECONNECT_MAX_DELAY ms: the operator may allow it meanwhile).
   */
  onRetry?: (err: Error, retryIn: number) => void
  /** ms to wait for one dial. */
  dialTimeout?: number
}

/** Longest wait between two dials while the relays say the broker holds no reservation, in ms. */
const AWAY_RETRY_MAX_DELAY = 1_000
/**
 * ms the relays are asked at that pace once the broker is away: a broker restarting is back
 * within seconds; one away longer is asked at the usual backoff (RECONNECT_MAX_DELAY), so that
 * clients waiting for a broker that is gone cost its relays one request per 5 s each, not per second.
 */
const AWAY_FAST_RETRY_WINDOW = 20_000
/** Addresses dialed from one DHT answer, at most (each may cost a 3 s dial timeout). */
const MAX_LOOKUP_ADDRS = 4
/** ms a lookup in the relays' DHT may take (one takes ~0.1 s). */
const LOOKUP_TIMEOUT = 2_000
/** ms an address from the DHT that could not be dialed is not dialed again (the relays' DHT keeps a broker's old addresses while it is away). */
const DEAD_ADDRESS_TTL = 30_000

/** Whether every dial of `err` failed because the relay holds no reservation for the peer. */
function awayFromRelays (err: unknown): boolean {
  const reasons = err instanceof AggregateError ? err.errors : [err]
  return reasons.length > 0 && reasons.every((e) => /NO_RESERVATION/.test(String((e as Error)?.message)))
}

export class BrokerLink {
  /** Addresses from the DHT whose dial failed, and when. */
  private readonly deadAddrs = new Map<string, number>()
  private stopped = false
  private stream?: Stream
  private wake?: () => void
  private readonly dialTimeout: number

  constructor (private readonly init: BrokerLinkInit) {
    checkNotRelay(init.broker, init.relays ?? [])
    this.dialTimeout = init.dialTimeout ?? 5_000
    void this.run()
  }

  get connected (): boolean {
    return this.stream?.status === 'open'
  }

  stop (): void {
    this.stopped = true
    this.wake?.()
  }

  private async run (): Promise<void> {
    let delay = RECONNECT_MIN_DELAY
    /** When the relays first said the broker holds no reservation, since the last stream. */
    let awaySince: number | undefined
    while (!this.stopped) {
      try {
        const stream = await this.dial()
        if (this.stopped) {
          stream.abort(new Error('stopped'))
          return
        }
        this.stream = stream
        delay = RECONNECT_MIN_DELAY
        awaySince = undefined
        const ended = new Promise<void>((resolve) => {
          stream.addEventListener('close', () => { resolve() }, { once: true })
          this.wake = resolve
        })
        this.init.onStream(stream)
        await ended
        this.stream = undefined
        if (this.stopped) return
      } catch (err) {
        if (this.stopped) return
        // A broker away from its relays is back once it reserves again: asking a relay is cheap (one
        // stream on a connection already open), so ask at least once a second, for a while.
        const away = awayFromRelays(err)
        if (away) awaySince ??= Date.now()
        const wait = err instanceof PermissionDeniedError
          ? RECONNECT_MAX_DELAY
          : away && Date.now() - (awaySince ?? 0) < AWAY_FAST_RETRY_WINDOW ? Math.min(delay, AWAY_RETRY_MAX_DELAY) : delay
        this.init.onRetry?.(err as Error, wait)
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, wait)
          this.wake = () => { clearTimeout(t); resolve() }
        })
        delay = Math.min(RECONNECT_MAX_DELAY, delay * RECONNECT_FACTOR)
      }
    }
  }

  /**
   * A stream to the broker: over an open connection if there is one; else at the multiaddr given;
   * else, for a broker given by peer ID, at the addresses of the address book (same host) and
   * through each relay (`<relay>/p2p-circuit/p2p/<id>`) in one dial (libp2p tries the direct ones
   * first, each for 3 s at most); else, unless every relay said the broker holds no reservation
   * (it is away), at the addresses a new lookup in the relays' DHT gives (not this node's cached
   * ones, which go stale when the broker moves), at most MAX_LOOKUP_ADDRS of them, skipping those
   * that failed in the last DEAD_ADDRESS_TTL ms.
   */
  private async dial (): Promise<Stream> {
    // A connection this dial opened that ended before its first stream was negotiated: the broker
    // closed it right after the handshake (its connection gater: its ACL, or its connections per
    // peer). All libp2p tells the dialer is that the stream closed (closedAfterHandshake), so the
    // progress events tell it apart from a failed dial; nothing tells which of the two refused.
    // (Other errors after a connection opened are not taken as a refusal: a relayed dial opens the
    // relay's connection first, and a circuit that fails then is no refusal.)
    let opened = false
    try {
      return await this.dialOnce((e) => { if (e.type === 'connection:opened') opened = true })
    } catch (err) {
      if (opened && !this.stopped && closedAfterHandshake(err)) {
        const self = this.init.node.peerId.toString()
        throw new PermissionDeniedError(`The broker ${this.init.broker.peerId.toString()} closed the connection right after the handshake: it refuses this peer ID (${self}), ` +
          'as a broker does to a peer its ACL grants nothing (or, without an ACL, to a peer not on its host), and to one that holds ' +
          `as many connections as it allows already (maxConnectionsPerPeer; each process sharing this identity holds one): ask its operator to allow ${self}`, { cause: err })
      }
      throw err
    }
  }

  private async dialOnce (onProgress: (e: { type: string }) => void): Promise<Stream> {
    const { peerId, addrs } = this.init.broker
    const { node, protocol } = this.init
    const options = (): { signal: AbortSignal, runOnLimitedConnection: boolean, onProgress: (e: { type: string }) => void } => ({ signal: AbortSignal.timeout(this.dialTimeout), runOnLimitedConnection: true, onProgress })
    if (node.getConnections(peerId).length > 0) return await node.dialProtocol(peerId, protocol, options())
    if (addrs != null) return await node.dialProtocol(addrs, protocol, options())
    const relays = this.init.relays ?? []
    let known: Multiaddr[] = []
    if (this.init.lookup != null) {
      try {
        known = (await this.init.lookup(peerId.toString())).map((a) => multiaddr(a))
      } catch (err) {
        if (relays.length === 0) throw err
      }
    } else if (relays.length === 0) {
      throw new BrokerAddressError(`Broker ${peerId.toString()} is given by peer ID only, and there is no address book or relay here: give its multiaddr ending in /p2p/<peerId>, or -relay`)
    }
    const candidates = [...known, ...relays.map((r) => multiaddr(`${r}/p2p-circuit/p2p/${peerId.toString()}`))]
    try {
      return await node.dialProtocol(candidates, protocol, options())
    } catch (err) {
      // Every relay answered that the broker holds no reservation: it is away (restarting). The
      // relays' DHT would give only its old addresses, and its query would dial them, holding up
      // the next dial through the relays (libp2p joins dials to one peer) by a timeout each.
      if (relays.length === 0 || (known.length === 0 && awayFromRelays(err))) throw err
      const tried = new Set(candidates.map(String))
      const found = await this.lookupFresh(peerId)
      const now = Date.now()
      for (const [addr, at] of this.deadAddrs) if (now - at > DEAD_ADDRESS_TTL) this.deadAddrs.delete(addr)
      const fresh = found.filter((a) => !tried.has(a.toString()) && !this.deadAddrs.has(a.toString())).slice(0, MAX_LOOKUP_ADDRS)
      if (fresh.length === 0) throw err
      try {
        return await node.dialProtocol(fresh, protocol, options())
      } catch (again) {
        for (const a of fresh) this.deadAddrs.set(a.toString(), Date.now())
        throw again
      }
    }
  }

  /** The broker's addresses as the relays' DHT has them now (never this node's peer store), each ending in /p2p/<id>; [] when not found. */
  private async lookupFresh (peerId: PeerId): Promise<Multiaddr[]> {
    try {
      const found = await this.init.node.peerRouting.findPeer(peerId, { useCache: false, signal: AbortSignal.timeout(LOOKUP_TIMEOUT) })
      return found.multiaddrs.map((a) => a.getComponents().at(-1)?.name === 'p2p' ? a : a.encapsulate(`/p2p/${peerId.toString()}`))
    } catch {
      return []
    }
  }
}
