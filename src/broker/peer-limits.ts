/**
 * Limits per peer, so one peer cannot starve the others: its connections (refused at connection
 * time by a connection gater), its subscriptions across its consumer streams, its standing
 * `watch` requests across its admin streams, and an optional publish rate (a token bucket: the
 * broker stops reading a producer stream that is over it, so nothing is dropped). Every limit
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
