/**
 * Limits per peer, so one peer cannot starve the others: its connections (refused at connection
 * time by a connection gater), its subscriptions across its consumer streams, its standing
 * `watch` requests across its admin streams, the messages and bytes it has in flight (sent and not
 * yet confirmed or answered), and an optional publish rate (a token bucket). Past the last two the
 * broker stops reading the peer's producer streams for a while, so nothing is dropped. Every limit
 * reached is logged, once per peer and limit per minute. Each check is one Map lookup.
 */
import type { ConnectionGater, PeerId } from '@libp2p/interface'
import { OnceAMinute } from './once-a-minute.js'

export interface PeerLimitsInit {
  /** Subscriptions one peer holds at once, across its consumer streams. */
  maxSubscriptionsPerPeer: number
  /** The sum of the prefetch of one peer's subscriptions. */
  maxPrefetchPerPeer: number
  /** Standing `watch` requests one peer holds at once, across its admin streams. */
  maxWatchesPerPeer: number
  /** Messages per second one peer may publish; 0 (or Infinity) for no limit. */
  publishRate: number
  /** Messages one peer may have in flight: publishes not yet confirmed, requests not yet answered. */
  maxInFlightPerPeer: number
  /** Payload bytes of those. */
  maxInFlightBytesPerPeer: number
}

/** A producer stream that stops reading while its peer is over its in-flight limits. */
export interface FlightHolder {
  holdForFlight: () => void
  resumeForFlight: () => void
}

/**
 * What one peer has in flight over all its producer streams: publishes the broker took and has
 * not confirmed, and the copies of requests it took that are in its memory, not yet answered
 * (an answer, a failure, a deletion ends one; so does its going to the store only, behind a full
 * page: it then takes no memory, and the store's size is bounded by maxMessages). Kept while a
 * stream of the peer is open or something is in flight.
 */
export class PeerFlight {
  messages = 0
  bytes = 0
  /** Producer streams of the peer open now. */
  streams = 0
  /** Those not read until the peer is under its limits again. */
  readonly held = new Set<FlightHolder>()
}

/** Logs `message` about `peer` unless the same limit was logged for it within the last minute. */
export class LimitLog {
  private readonly told = new OnceAMinute()

  constructor (private readonly log: (peer: string, limit: string, message: string) => void, private readonly now: () => number = Date.now) {}

  reached (peer: string, limit: string, message: string): void {
    if (this.told.tell(`${limit} ${peer}`, this.now()) != null) this.log(peer, limit, message)
  }
}

/** A count per peer; a peer at zero is forgotten. */
class PeerCount {
  private readonly counts = new Map<string, number>()

  get (peer: string): number {
    return this.counts.get(peer) ?? 0
  }

  add (peer: string, n: number): void {
    const next = this.get(peer) + n
    if (next > 0) this.counts.set(peer, next)
    else this.counts.delete(peer)
  }
}

/** A token bucket: `rate` tokens a second, up to one second's worth saved. */
class TokenBucket {
  private tokens: number
  private at: number

  constructor (private readonly rate: number, now: number) {
    this.tokens = rate
    this.at = now
  }

  /** Takes one token; false when there is none (the caller waits `waitMs()`). */
  take (now: number): boolean {
    this.tokens = Math.min(this.rate, this.tokens + (now - this.at) * this.rate / 1000)
    this.at = now
    if (this.tokens < 1) return false
    this.tokens--
    return true
  }

  /** ms until a token is there. */
  waitMs (): number {
    return Math.max(1, Math.ceil((1 - this.tokens) * 1000 / this.rate))
  }
}

export class PeerLimits {
  private readonly subscriptions = new PeerCount()
  private readonly prefetch = new PeerCount()
  private readonly watches = new PeerCount()
  private readonly buckets = new Map<string, { bucket: TokenBucket, users: number }>()
  private readonly flights = new Map<string, PeerFlight>()

  constructor (readonly init: PeerLimitsInit, readonly log: LimitLog, private readonly now: () => number = Date.now) {}

  /** Why `peer` may not add a subscription with this prefetch, or undefined (and it is counted). */
  takeSubscription (peer: string, prefetch: number): string | undefined {
    const max = this.init.maxSubscriptionsPerPeer
    if (this.subscriptions.get(peer) >= max) return this.refuse(peer, 'subscriptions', `A peer holds at most ${max} subscriptions (maxSubscriptionsPerPeer)`)
    const held = this.prefetch.get(peer)
    const maxPrefetch = this.init.maxPrefetchPerPeer
    if (held + prefetch > maxPrefetch) {
      return this.refuse(peer, 'prefetch', `A peer's subscriptions hold at most ${maxPrefetch} deliveries unacknowledged in all (maxPrefetchPerPeer): ${held} are taken, ask a prefetch of at most ${maxPrefetch - held}`)
    }
    this.subscriptions.add(peer, 1)
    this.prefetch.add(peer, prefetch)
    return undefined
  }

  releaseSubscription (peer: string, prefetch: number): void {
    this.subscriptions.add(peer, -1)
    this.prefetch.add(peer, -prefetch)
  }

  /** Why `peer` may not add a watch, or undefined (and it is counted). */
  takeWatch (peer: string): string | undefined {
    const max = this.init.maxWatchesPerPeer
    if (this.watches.get(peer) >= max) return this.refuse(peer, 'watches', `A peer holds at most ${max} watches (maxWatchesPerPeer)`)
    this.watches.add(peer, 1)
    return undefined
  }

  releaseWatches (peer: string, n = 1): void {
    this.watches.add(peer, -n)
  }

  /** Whether a publish rate applies at all (checked once per stream). */
  get rateLimited (): boolean {
    return this.init.publishRate > 0 && Number.isFinite(this.init.publishRate)
  }

  /** The publish rate's bucket of `peer`, shared by its producer streams; `release` when a stream closes. */
  publishBucket (peer: string): { take: () => number, release: () => void } {
    let entry = this.buckets.get(peer)
    if (entry == null) {
      entry = { bucket: new TokenBucket(this.init.publishRate, this.now()), users: 0 }
      this.buckets.set(peer, entry)
    }
    entry.users++
    const held = entry
    let released = false
    return {
      /** 0 when a publish may go now, else the ms to wait (and the limit is logged). */
      take: () => {
        if (held.bucket.take(this.now())) return 0
        this.log.reached(peer, 'rate', `publishes over ${this.init.publishRate}/s (publishRate): its producer streams are read slower`)
        return held.bucket.waitMs()
      },
      release: () => {
        if (released) return
        released = true
        if (--held.users === 0) this.buckets.delete(peer)
      }
    }
  }

  /**
   * The in-flight count of `peer`, shared by its producer streams; `closeFlight` when the stream
   * closes. A stream opened while the peer is at its limits is not read until it is under them.
   */
  openFlight (peer: string, holder: FlightHolder): PeerFlight {
    let flight = this.flights.get(peer)
    if (flight == null) {
      flight = new PeerFlight()
      this.flights.set(peer, flight)
    }
    flight.streams++
    this.holdIfOver(peer, flight, holder)
    return flight
  }

  closeFlight (peer: string, flight: PeerFlight, holder: FlightHolder): void {
    flight.streams--
    flight.held.delete(holder)
    this.forgetIdle(peer, flight)
  }

  /** Counts `messages` taken from `peer` (with `bytes` of payload); `holdIfOver` once they are taken. */
  addInFlight (flight: PeerFlight, messages: number, bytes: number): void {
    flight.messages += messages
    flight.bytes += bytes
  }

  /** At one of its limits, `peer`'s stream `holder` stops reading until enough of its messages are released. */
  holdIfOver (peer: string, flight: PeerFlight, holder: FlightHolder): void {
    const { maxInFlightPerPeer: max, maxInFlightBytesPerPeer: maxBytes } = this.init
    if ((flight.messages < max && flight.bytes < maxBytes) || flight.held.has(holder)) return
    flight.held.add(holder)
    holder.holdForFlight()
    this.log.reached(peer, 'in-flight', `${flight.messages} messages (${flight.bytes} bytes) sent and not yet confirmed or answered (maxInFlightPerPeer ${max}, maxInFlightBytesPerPeer ${maxBytes}): its producer streams are not read until some are`)
  }

  /**
   * `messages` of `peer` (with `bytes` of payload) were confirmed, answered, deleted or stored
   * only: its held streams read again once it is under 90% of its limits (not on every answer
   * while it sits at one).
   */
  releaseInFlight (peer: string, messages: number, bytes: number): void {
    const flight = this.flights.get(peer)
    if (flight == null) return
    // Never below 0: what was taken before a restart is released too, and was never counted.
    flight.messages = Math.max(0, flight.messages - messages)
    flight.bytes = Math.max(0, flight.bytes - bytes)
    if (flight.held.size > 0 && flight.messages < this.init.maxInFlightPerPeer * 0.9 && flight.bytes < this.init.maxInFlightBytesPerPeer * 0.9) {
      const held = [...flight.held]
      flight.held.clear()
      for (const holder of held) holder.resumeForFlight()
    }
    this.forgetIdle(peer, flight)
  }

  private forgetIdle (peer: string, flight: PeerFlight): void {
    if (flight.streams === 0 && flight.messages === 0) this.flights.delete(peer)
  }

  private refuse (peer: string, limit: string, message: string): string {
    this.log.reached(peer, limit, message)
    return message
  }
}

/**
 * A connection gater refusing a peer's connection beyond `max` open ones (checked once the peer
 * is authenticated). `connections` counts a peer's open connections (the node's connection
 * manager, known only once the node is built).
 */
export function connectionsPerPeerGater (max: number, connections: (peer: PeerId) => number, log: LimitLog): ConnectionGater {
  return {
    denyInboundEncryptedConnection: (peer) => {
      if (connections(peer) < max) return false
      log.reached(peer.toString(), 'connections', `connection refused: a peer holds at most ${max} connections (maxConnectionsPerPeer)`)
      return true
    }
  }
}
