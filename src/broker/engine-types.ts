/**
 * The queue engine's contract with its owner (the broker service): what it tells the owner
 * (`EngineEvents`), its settings (`EngineOptions`, `QueuePolicy`), and what it hands back.
 */
import type { DueOrder } from './delayed-messages.js'
import type { Queue, QueuedMessage, Subscription } from './queue.js'

export interface InFlight<Owner = unknown> {
  readonly tag: number
  readonly sub: Subscription<Owner>
  readonly queue: Queue
  readonly message: QueuedMessage
  readonly deadline: number
  settled: boolean
}

export interface EngineEvents<Owner> {
  /** Send this delivery to its subscription's owner. */
  deliver: (delivery: InFlight<Owner>) => void
  /** The message is done. `answer` is set when the consumer answered and the producer wants it. */
  completed: (message: QueuedMessage, by: Owner, answer?: { kind: number, payload: Uint8Array }) => void
  /** The message will not be attempted again; `by` is the owner of its last delivery, if any. */
  failed: (message: QueuedMessage, error: string, by: Owner | undefined) => void
  /** A delivery's deadline passed; it has been taken back. */
  expired?: (delivery: InFlight<Owner>) => void
  /** A congested queue is no longer congested: confirms held for it may go. */
  relieved?: (queue: Queue) => void
  /** A message went to the store only (a page is full): it no longer takes memory. */
  pagedOut?: (message: QueuedMessage) => void
  /** A message is delayed until `at`: call `promote()` then. */
  delayedUntil?: (at: number) => void
  /** A paged queue is running low: read the page after `queue.tail` and call `loadPage`. */
  pageNeeded?: (queue: Queue) => void
  /** Few delayed messages are left in memory: read the delayed messages stored after `after` and call `loadDelayedPage`. */
  delayedPageNeeded?: (after: DueOrder, generation: number) => void
  /** The broker ended a subscription (its group was deleted): tell its owner. */
  ended?: (sub: Subscription<Owner>, reason: string) => void
}

/** What a deletion took out of the engine; the owner clears the store. */
export interface Deleted<Owner> {
  group: string
  /** The whole group went (its bindings and settings too), not just one queue. */
  wholeGroup: boolean
  queues: Queue[]
  /** Patterns unbound (a whole group's deletion). */
  patterns: string[]
  /** Messages dropped: waiting, delayed, paged out and in flight. */
  messages: number
  /** Those of them that were in memory. */
  dropped: QueuedMessage[]
  ended: Array<Subscription<Owner>>
}

/** What a queue does differently from the broker's defaults. */
export interface QueuePolicy {
  /** The commands it applies to: a name or an AMQP-style pattern. */
  pattern: string
  /**
   * Backoff after a nack in these queues.
   * @default the broker's `retry`
   */
  retry?: RetryBackoff
  /**
   * ms a message may wait before it expires, unless it names its own expiry.
   * @default undefined (no expiry)
   */
  ttl?: number
  /**
   * One consumer at a time, one message at a time, in order (see Queue.singleActive).
   * @default false
   */
  singleActive?: boolean
  /**
   * Only the queues of this group.
   * @default undefined (every group's)
   */
  group?: string
  /**
   * ms a group holding a queue this policy matches may stay idle (no subscriptions, no admin
   * use) before it is deleted with its queues and bindings (RabbitMQ's x-expires). A policy for
   * `#` applies to every group. A group's own expiry (set by a subscription) comes first.
   * @default undefined (never deleted for idleness)
   */
  expires?: number
  /**
   * Its messages are transient: kept in memory only, even by a broker with a store (see
   * QueuedMessage.transient), as if each were published with `transient: true`.
   * @default false (each message's own choice)
   */
  transient?: boolean
}

/** How long a nacked message waits before its next attempt: delay × factor^(failures − 1), at most maxDelay. */
export interface RetryBackoff {
  /** ms before the first retry; 0 retries at once, at the head of the queue. */
  delay: number
  /** 1 for a fixed delay, 2 to double it each time. */
  factor: number
  maxDelay: number
}

export interface EngineOptions {
  /** ms a delivery may stay unsettled before it is taken back. */
  visibilityTimeout: number
  /** Deliveries of one message before it fails (Infinity: never). */
  maxAttempts: number
  /** Messages held (waiting, delayed, paged out and in flight) before publishes are refused. */
  maxMessages: number
  /** Ready messages in a queue with consumers at which it becomes congested (Infinity: never). */
  highWater: number
  /** Backoff after a nack. Default: none (retried at once, at the head of the queue). */
  retry?: RetryBackoff
  /** Settings for the queues of the commands a pattern matches; the first match applies. */
  policies?: QueuePolicy[]
  /**
   * Ready messages a queue keeps in memory; the rest stay only in the store and are read back a
   * page at a time (`pageNeeded`, `loadPage`). Infinity (the default) keeps all in memory: so it
   * does without persistence, whatever this says.
   */
  pageSize?: number
  /** Payload bytes of ready messages a queue keeps in memory, and of delayed ones the engine does (Infinity: no bound). */
  pageBytes?: number
  /** Groups held before a subscription to a new one is refused (default 10,000). */
  maxGroups?: number
  /** ms a congested queue's consumers may complete nothing before it is stalled: no longer congested (default 2,000). */
  stallTimeout?: number
  /** ms between sweeps of idle queues (`sweepQueues`, default 30,000). */
  queueSweepInterval?: number
  clock?: () => number
}

export interface QueueStats {
  command: string
  group: string
  depth: number
  inFlight: number
  /** Waiting for their due time (delayed, or backing off before a retry). */
  delayed: number
  consumers: number
  published: number
  delivered: number
  acked: number
  nacked: number
  /** Expired ones included. */
  failed: number
  /** Failed because their time to live ran out before a delivery. */
  expired: number
}
