/**
 * One queue: the messages of one command waiting for one group, and the group's subscriptions that
 * can take them. Pure state; the engine moves messages in and out.
 */
import { Deque } from '../deque.js'
import type { MessageFields } from '../protocol/frames.js'
import type { QueuePolicy } from './engine.js'
import type { SubscriptionTerms } from '../subscription.js'

/** A message as the broker keeps it: one copy per group it was routed to. */
export interface QueuedMessage extends MessageFields {
  /** The producer's peer ID, from its authenticated connection. */
  producer: string
  /** The session it came in on, to send its result back on the same stream while it is open. */
  origin?: unknown
  /** When the broker took it (ms since the epoch). */
  timestamp: number
  wantsAnswer: boolean
  /** Deliveries so far. */
  attempts: number
  lastError?: string
  /** Where the store keeps it (set by the journal). */
  key?: Uint8Array
  /** Not delivered before this time (ms since the epoch): a delayed message, or a retry's backoff. */
  dueAt?: number
  /** Never delivered after this time: it fails as "expired" instead. */
  expiresAt?: number
  /**
   * Its place in its queue's stored order, when the store can page it (set by the journal): the
   * engine may keep it on disk only, and read it back in this order.
   */
  pageOrder?: number
  /**
   * For a delayed message the store can page: its place among the stored delayed messages with the
   * same due time (set by the journal). Delayed messages are read back in (dueAt, dueOrder) order.
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
}

/** Whether `sub` can take one more message now. */
function hasCredit (sub: Subscription): boolean {
  return sub.unacked < sub.prefetch && !sub.timedOut
}

export class Queue {
  /** Ready messages in memory, in delivery order; change them through the methods below, which count their bytes. */
  readonly ready = new Deque<QueuedMessage>()
  /** Payload bytes in `ready`. */
  readyBytes = 0
  readonly consumers: Subscription[] = []
  private nextConsumer = 0
  inFlight = 0
  /** Messages waiting for their due time: in the schedule in memory, or only on disk. */
  delayed = 0
  /**
   * Paging: ready messages kept only in the store, after those in `ready` (which holds at most a
   * page, by count and by bytes), and the highest `pageOrder` in memory, after which the next page
   * starts. `loading` is set while a page is being read; `generation` changes on a purge.
   */
  onDisk = 0
  tail = 0
  loading = false
  generation = 0
  /** Its settings, when a queue policy matches its command. */
  policy?: QueuePolicy
  /**
   * One consumer at a time, one message at a time, in order: the longest-attached subscription
   * gets every message; the next takes over when it leaves.
   */
  singleActive = false
  /** Set while `ready` is past the high-water mark with consumers attached (see QueueEngine). */
  congested = false
  /**
   * Set when its consumers completed nothing for the stall timeout while it was congested; then it
   * does not hold producers' confirms until one of its deliveries completes. `acked` at the last
   * check, and when it last changed.
   */
  stalled = false
  ackedMark = 0
  movedAt = 0
  /** Its activity (see `activity`) at the last sweep that found it empty, or -1: two such sweeps in a row with no change remove it. */
  sweepMark = -1
  published = 0
  delivered = 0
  acked = 0
  nacked = 0
  failed = 0

  /** `group` is '' for the messages of a command no group wants yet; the first group that does takes the queue. */
  constructor (readonly command: string, public group: string) {}

  push (m: QueuedMessage): void {
    this.ready.push(m)
    this.readyBytes += m.payload.byteLength
  }

  unshift (m: QueuedMessage): void {
    this.ready.unshift(m)
    this.readyBytes += m.payload.byteLength
  }

  shift (): QueuedMessage | undefined {
    const m = this.ready.shift()
    if (m != null) this.readyBytes -= m.payload.byteLength
    return m
  }

  /** Takes every ready message out. */
  drainReady (): QueuedMessage[] {
    this.readyBytes = 0
    return this.ready.drain()
  }

  /** Holds nothing: no ready message in memory or on disk, none delayed, none in flight, no page being read. */
  get empty (): boolean {
    return this.ready.length === 0 && this.onDisk === 0 && this.delayed === 0 && this.inFlight === 0 && !this.loading
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
