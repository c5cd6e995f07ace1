/**
 * One queue: the messages of one command waiting for one group, and the group's subscriptions that
 * can take them. Pure state; the engine moves messages in and out.
 */
import { Deque } from '../deque.js'
import type { MessageFields } from '../protocol/frames.js'
import type { QueuePolicy } from './engine-types.js'
import type { SubscriptionTerms } from '../subscription.js'

/** A message as the broker keeps it: one copy per group it was routed to. */
export interface QueuedMessage extends MessageFields {
  /** The producer's peer ID, from its authenticated connection. */
  producer: string
  /**
   * The producer session (its Hello's name) it came from: its result goes to that session's
   * streams only, never to another process sharing the peer ID. Kept in the store.
   */
  session?: string
  /** When the broker took it (ms since the epoch). */
  timestamp: number
  wantsAnswer: boolean
  /**
   * Kept in memory only, never written to the store nor paged out (the publish said so, or its
   * queue's policy does): lost if the broker stops.
   */
  transient?: boolean
  /** Deliveries so far. */
  attempts: number
  lastError?: string
  /** Where the store keeps it (set by the journal, from the queue and the order the engine gave). */
  key?: Uint8Array
  /** Not delivered before this time (ms since the epoch): a delayed message, or a retry's backoff. */
  dueAt?: number
  /** Never delivered after this time: it fails as "expired" instead. */
  expiresAt?: number
  /**
   * Its place in its queue's order (set by the engine as it enters it; the store keys it by this):
   * the engine may keep it on disk only, and read it back in this order.
   */
  pageOrder?: number
  /**
   * For a delayed message: its place among the delayed messages with the same due time (set by the
   * engine, from the same counter as `pageOrder`). Delayed messages are read back in (dueAt, dueOrder) order.
   */
  dueOrder?: number
}

/** A subscription as the engine sees it: a competing consumer with prefetch credit. */
export interface Subscription<Owner = unknown> extends SubscriptionTerms {
  readonly owner: Owner
  readonly subId: number
  readonly group: string
  readonly patterns: readonly string[]
  readonly matches: (command: string) => boolean
  readonly prefetch: number
  /** Deliveries out and not yet settled. */
  unacked: number
  /** The queues this subscription takes from, and where the round robin over them stands. */
  readonly queues: Queue[]
  nextQueue: number
  /** Asked for single-active queues. */
  readonly singleActive: boolean
  /**
   * A delivery to it passed its visibility timeout: it takes nothing new until it settles
   * something, so a stuck or half-open consumer does not take message after message until each fails.
   */
  timedOut: boolean
  /**
   * Its consumer's stream is not taking bytes (it waits for `drain`): it takes nothing new until
   * the stream drains, so a consumer that does not read cannot pull its queues into the broker's
   * memory (up to prefetch × payload).
   */
  paused: boolean
}

/** Whether `sub` can take one more message now. */
function hasCredit (sub: Subscription): boolean {
  return sub.unacked < sub.prefetch && !sub.timedOut && !sub.paused
}

export class Queue {
  /** Ready messages in memory, in delivery order; change them through the methods below, which count their bytes. */
  readonly ready = new Deque<QueuedMessage>()
  private _readyBytes = 0
  readonly consumers: Subscription[] = []
  private nextConsumer = 0
  inFlight = 0
  private _delayed = 0
  private _onDisk = 0
  private _tail = 0
  private _loading = false
  private _generation = 0
  /** Its settings, when a queue policy matches its command. */
  policy?: QueuePolicy
  /**
   * One consumer at a time, one message at a time, in order: the longest-attached subscription
   * gets every message; the next takes over when it leaves.
   */
  singleActive = false
  private _congested = false
  private _stalled = false
  private ackedMark = 0
  private movedAt = 0
  /** Its activity (see `activity`) at the last sweep that found it empty, or -1: two such sweeps in a row with no change remove it. */
  private sweepMark = -1
  published = 0
  delivered = 0
  acked = 0
  nacked = 0
  /** Failed ones, expired among them. */
  failed = 0
  /** Failed because their time to live ran out before a delivery. */
  expired = 0

  /** `group` is '' for the messages of a command no group wants yet; the first group that does takes the queue. */
  constructor (readonly command: string, public group: string) {}

  /** Payload bytes in `ready`. */
  get readyBytes (): number { return this._readyBytes }
  /** Messages waiting for their due time: among the delayed messages in memory, or only on disk. */
  get delayed (): number { return this._delayed }
  /**
   * Paging: ready messages kept only in the store, after those in `ready` (which holds at most a
   * page, by count and by bytes).
   */
  get onDisk (): number { return this._onDisk }
  /** The highest `pageOrder` in memory, after which the next page starts. */
  get tail (): number { return this._tail }
  /** Set while a page is being read. */
  get loading (): boolean { return this._loading }
  /** Changes on a purge: a page read before it is stale. */
  get generation (): number { return this._generation }
  /** Set while `ready` is past the high-water mark with consumers attached (see QueueEngine). */
  get congested (): boolean { return this._congested }
  /**
   * Set when its consumers completed nothing for the stall timeout while it was congested; then it
   * does not hold producers' confirms until one of its deliveries completes.
   */
  get stalled (): boolean { return this._stalled }

  /** One of its deliveries completed. */
  completed (): void {
    this.acked++
    this._stalled = false
  }

  /** A message joins the delayed ones (`count` of them, restored only on disk). */
  addDelayed (count = 1): void {
    this._delayed += count
  }

  /** A delayed message came due or left. */
  removeDelayed (): void {
    this._delayed--
  }

  /** Forgets its delayed messages (those only on disk, at a purge); returns how many. */
  dropDelayed (): number {
    const count = this._delayed
    this._delayed = 0
    return count
  }

  /** `count` more of its ready messages are only in the store, after those in memory. */
  addOnDisk (count = 1): void {
    this._onDisk += count
  }

  /** A stored message with this `pageOrder` is now in memory: the next page starts after it. */
  inMemoryUpTo (order: number): void {
    if (order > this._tail) this._tail = order
  }

  /** Asks for the next page unless one is being read; true when it should be read now. */
  startLoading (): boolean {
    if (this._loading) return false
    this._loading = true
    return true
  }

  /** The page asked for was read for `generation`: true when it is still current (not purged meanwhile). */
  pageRead (generation: number): boolean {
    this._loading = false
    return generation === this._generation
  }

  /** A message of the page read is in memory now. */
  loaded (order: number | undefined): void {
    this._onDisk--
    if (order != null) this.inMemoryUpTo(order)
  }

  /** Forgets what it counts on disk (a purge, or a store that holds fewer than counted); returns how many. */
  dropOnDisk (): number {
    const count = this._onDisk
    this._onDisk = 0
    return count
  }

  /** A purge: every ready message out (returned), the paged part forgotten, a page being read made stale. */
  purge (): QueuedMessage[] {
    this._onDisk = 0
    this._generation++
    this._readyBytes = 0
    return this.ready.drain()
  }

  /** Its consumers fall behind: congested from `now`, until relieved. */
  congest (now: number): void {
    this._congested = true
    this.ackedMark = this.acked
    this.movedAt = now
  }

  /** No longer congested; false when it was not. */
  relieve (): boolean {
    const was = this._congested
    this._congested = false
    return was
  }

  /** True when its consumers completed nothing for `timeout` up to `now`: then it is stalled. */
  stallsAt (now: number, timeout: number): boolean {
    if (this.acked !== this.ackedMark) {
      this.ackedMark = this.acked
      this.movedAt = now
      return false
    }
    if (now - this.movedAt < timeout) return false
    this._stalled = true
    return true
  }

  push (m: QueuedMessage): void {
    this.ready.push(m)
    this._readyBytes += m.payload.byteLength
  }

  unshift (m: QueuedMessage): void {
    this.ready.unshift(m)
    this._readyBytes += m.payload.byteLength
  }

  shift (): QueuedMessage | undefined {
    const m = this.ready.shift()
    if (m != null) this._readyBytes -= m.payload.byteLength
    return m
  }

  /** Holds nothing: no ready message in memory or on disk, none delayed, none in flight, no page being read. */
  get empty (): boolean {
    return this.ready.length === 0 && this._onDisk === 0 && this._delayed === 0 && this.inFlight === 0 && !this._loading
  }

  /** A sweep of idle queues: true when it is empty and nothing happened to it since the previous sweep, which found it empty too. */
  idleSinceLastSweep (): boolean {
    if (!this.empty) {
      this.sweepMark = -1
      return false
    }
    if (this.sweepMark !== this.activity) {
      this.sweepMark = this.activity
      return false
    }
    return true
  }

  /** Grows with every publish, delivery and settle: unchanged means nothing happened to it. */
  get activity (): number {
    return this.published + this.delivered + this.acked + this.nacked + this.failed
  }

  get name (): string {
    return `${this.command}@${this.group}`
  }

  /** The next subscription in round-robin order that has credit, or undefined. */
  pickConsumer (): Subscription | undefined {
    if (this.singleActive) {
      const active = this.consumers[0]
      return this.inFlight === 0 && active != null && hasCredit(active) ? active : undefined
    }
    const n = this.consumers.length
    for (let i = 0; i < n; i++) {
      const idx = (this.nextConsumer + i) % n
      const sub = this.consumers[idx]
      if (hasCredit(sub)) {
        this.nextConsumer = (idx + 1) % n
        return sub
      }
    }
    return undefined
  }

  /** Whether `sub` may take a message of this queue now (it has credit, and its turn if single-active). */
  accepts (sub: Subscription): boolean {
    if (!hasCredit(sub)) return false
    return !this.singleActive || (this.consumers[0] === sub && this.inFlight === 0)
  }

  removeConsumer (sub: Subscription): void {
    const idx = this.consumers.indexOf(sub)
    if (idx < 0) return
    this.consumers.splice(idx, 1)
    if (this.nextConsumer > idx) this.nextConsumer--
    if (this.nextConsumer >= this.consumers.length) this.nextConsumer = 0
  }
}

/** Makes `sub` a consumer of `queue` (a single-active subscription makes the queue single-active). */
export function attach (sub: Subscription<any>, queue: Queue): void {
  if (sub.singleActive) queue.singleActive = true
  queue.consumers.push(sub)
  sub.queues.push(queue)
}
