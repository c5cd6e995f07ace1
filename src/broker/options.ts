/**
 * The broker's options: what `broker(init)` takes, and the settings it runs with (each option
 * given or its default).
 */
import {
  DEFAULT_ANSWER_RETENTION, DEFAULT_COMPLETED_RETENTION, DEFAULT_DEAD_LETTER_SUFFIX, DEFAULT_DEDUP_WINDOW, DEFAULT_HIGH_WATER, DEFAULT_MAX_ATTEMPTS,
  DEFAULT_MAX_KEPT_ANSWERS, DEFAULT_MAX_MESSAGES, DEFAULT_MAX_STORED_MESSAGES, DEFAULT_PAGE_SIZE, DEFAULT_PAGE_BYTES, DEFAULT_MAX_PAYLOAD, DEFAULT_VISIBILITY_TIMEOUT,
  DEFAULT_RETRY_DELAY, DEFAULT_RETRY_FACTOR, DEFAULT_RETRY_MAX_DELAY, DEFAULT_MAX_GROUPS, DEFAULT_STALL_TIMEOUT, DEFAULT_QUEUE_SWEEP_INTERVAL,
  DEFAULT_MAX_CONNECTIONS_PER_PEER, DEFAULT_MAX_SUBSCRIPTIONS_PER_PEER, DEFAULT_MAX_PREFETCH_PER_PEER, DEFAULT_MAX_WATCHES_PER_PEER,
  DEFAULT_MAX_KEPT_ANSWER_BYTES, DEFAULT_MAX_PARTIAL_FRAME_BYTES, DEFAULT_MAX_IN_FLIGHT_PER_PEER, DEFAULT_MAX_IN_FLIGHT_BYTES_PER_PEER
} from '../constants.js'
import type { QueuePolicy, RetryBackoff } from './engine.js'
import type { Store } from '../store/store.js'
import type { AccessControl } from './acl-control.js'
import type { AclFile } from './api.js'
import type { Registry } from 'prom-client'

export interface BrokerInit {
  /**
   * Largest payload accepted, in bytes. Larger publishes are rejected with a clear error.
   * @default 1048576 (1 MiB)
   */
  maxPayload?: number
  /**
   * ms a consumer may hold a delivery before it is given to another consumer.
   * @default 30000
   */
  visibilityTimeout?: number
  /**
   * Deliveries of a message before it fails and its producer is told.
   * @default 10
   */
  maxAttempts?: number
  /**
   * Messages held at once; past it, publishes are rejected ("broker full").
   * @default 100000000 with a store (mostly on disk), 2000000 without
   */
  maxMessages?: number
  /**
   * Ready messages in a queue with consumers past which producers' confirms are held until the
   * queue is down to half (publisher flow control). Infinity turns it off.
   * @default 5000
   */
  highWater?: number
  /**
   * ms a congested queue's consumers may complete nothing before it stops holding confirms (it is
   * stalled: one stuck consumer must not stall every producer).
   * @default 2000
   */
  stallTimeout?: number
  /**
   * ms an answer waits for its disconnected producer to reconnect.
   * @default 300000 (5 minutes)
   */
  answerRetention?: number
  /**
   * Answers kept per producer peer that is not connected, or does not read its stream; past it
   * the oldest are dropped (and logged).
   * @default 100000
   */
  maxKeptAnswers?: number
  /**
   * Payload bytes of the answers kept per producer peer (as `maxKeptAnswers`).
   * @default 67108864 (64 MiB)
   */
  maxKeptAnswerBytes?: number
  /**
   * Connections one peer may hold at once; more are refused at connection time. (Read by
   * `createBroker`, which builds the node's connection gater.)
   * @default 64
   */
  maxConnectionsPerPeer?: number
  /**
   * Subscriptions one peer may hold at once, across its consumer streams; more are refused
   * (LimitReachedError).
   * @default 1024
   */
  maxSubscriptionsPerPeer?: number
  /**
   * The sum of the prefetch of one peer's subscriptions (deliveries it may hold unacknowledged);
   * a subscription that would pass it is refused (LimitReachedError).
   * @default 65535
   */
  maxPrefetchPerPeer?: number
  /**
   * Standing `watch` requests one peer may hold at once, across its admin streams.
   * @default 16
   */
  maxWatchesPerPeer?: number
  /**
   * Messages one peer may have in flight over all its producer streams: publishes taken and not
   * yet confirmed, and requests (a copy per group) in memory and not yet answered, failed or deleted
   * (with a store, one that waits on disk behind a full page no longer counts). At it the broker
   * stops reading the peer's producer streams until it is under 90% (backpressure: nothing is dropped).
   * @default 100000
   */
  maxInFlightPerPeer?: number
  /**
   * Payload bytes of those (as `maxInFlightPerPeer`).
   * @default 67108864 (64 MiB)
   */
  maxInFlightBytesPerPeer?: number
  /**
   * Messages a second one peer may publish, over all its producer streams; past it the broker reads
   * its streams slower (backpressure: nothing is dropped). 0 for no limit.
   * @default 0 (no limit)
   */
  publishRate?: number
  /**
   * Bytes of partly received frames the broker holds at once over all streams (a peer sending large
   * frames but for their last bytes); a stream that would pass it is ended with LimitReachedError.
   * At least one largest frame.
   * @default 67108864 (64 MiB)
   */
  maxPartialFrameBytes?: number
  /**
   * ms a disconnected producer session, and a producer-supplied message id, are remembered to drop duplicates.
   * @default 300000 (5 minutes)
   */
  dedupWindow?: number
  /**
   * Where messages, bindings and kept answers are kept; the broker starts from what it holds. A
   * publish is confirmed, and an answer relayed, once the store has synced it. Without one, the
   * messages live in memory only (nothing survives a restart, finished messages are not listed).
   * @default undefined (in memory; `createBroker` gives a LevelStore in its data directory)
   */
  store?: Store
  /**
   * ms the record of a completed message is kept, to be listed; 0 deletes it at once.
   * @default 600000 (10 minutes)
   */
  completedRetention?: number
  /**
   * Backoff before a nacked message is retried; `{ delay: 0 }` retries at once.
   * @default { delay: 100, factor: 2, maxDelay: 30000 }
   */
  retry?: RetryBackoff
  /**
   * Per-queue settings (retry backoff, TTL) for the commands a pattern matches; the first match applies.
   * @default [] (every queue takes the broker's settings)
   */
  queues?: QueuePolicy[]
  /**
   * A failed message is republished to `<command><suffix>`; false drops it (its record stays).
   * @default '.dlq'
   */
  deadLetter?: string | false
  /**
   * With a store: ready messages a queue keeps in memory; the rest wait only in the store and are
   * read back a page at a time, so a backlog larger than memory fits. Delayed messages page the
   * same way (the soonest-due page in memory), and so do those no group wants yet.
   * @default 5000 (with a store; without one, no paging)
   */
  pageSize?: number
  /**
   * Groups the broker holds before it refuses a subscription to a new group: every group gets a
   * copy of each message its patterns match, and its bindings are stored.
   * @default 10000
   */
  maxGroups?: number
  /**
   * With a store: the payload bytes a page holds at most (a queue's ready messages, or the delayed ones in memory).
   * @default 8388608 (8 MiB; without a store, no paging)
   */
  pageBytes?: number
  /**
   * ms between sweeps of idle queues: a queue that holds nothing and did nothing between two
   * sweeps is removed (its counters too), so it goes after one to two intervals.
   * @default 30000
   */
  queueSweepInterval?: number
  /**
   * Who may do what, by peer ID: `'open'` (any peer, everything), an ACL, or an `AccessControl`
   * (`AccessControl.load`: kept in a file and changed at run time; give its `gater()` to libp2p
   * as well, to refuse peers with no right at connection time). Without it, protected mode: peers
   * on this host may do everything, others nothing (changes, `acl-allow`, last until it stops).
   * @default undefined (protected mode)
   */
  acl?: 'open' | AclFile | AccessControl
  /**
   * A prom-client registry the broker puts its metrics in when it starts (queues, clients, store:
   * see the README's Metrics). `createBroker` gives one, which its web server's `GET /metrics` serves.
   * @default undefined (no metrics)
   */
  metrics?: Registry
}

/** The settings a broker runs with: every option of `BrokerInit` but the store, policies, ACL and metrics, resolved. */
export type BrokerOptions = Required<Omit<BrokerInit, 'store' | 'queues' | 'acl' | 'metrics'>>

/** Each option given, or its default (paging only with a store). Throws RangeError on an in-flight limit under 1 (no producer could send). */
export function brokerOptions (init: BrokerInit): BrokerOptions {
  for (const key of ['maxInFlightPerPeer', 'maxInFlightBytesPerPeer'] as const) {
    const value = init[key]
    if (value != null && !(value >= 1)) throw new RangeError(`${key} must be at least 1 (it is ${value})`)
  }
  return {
    maxPayload: init.maxPayload ?? DEFAULT_MAX_PAYLOAD,
    visibilityTimeout: init.visibilityTimeout ?? DEFAULT_VISIBILITY_TIMEOUT,
    maxAttempts: init.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    maxMessages: init.maxMessages ?? (init.store != null ? DEFAULT_MAX_STORED_MESSAGES : DEFAULT_MAX_MESSAGES),
    pageSize: init.store != null ? init.pageSize ?? DEFAULT_PAGE_SIZE : Infinity,
    pageBytes: init.store != null ? init.pageBytes ?? DEFAULT_PAGE_BYTES : Infinity,
    highWater: init.highWater ?? DEFAULT_HIGH_WATER,
    answerRetention: init.answerRetention ?? DEFAULT_ANSWER_RETENTION,
    maxKeptAnswers: init.maxKeptAnswers ?? DEFAULT_MAX_KEPT_ANSWERS,
    maxKeptAnswerBytes: init.maxKeptAnswerBytes ?? DEFAULT_MAX_KEPT_ANSWER_BYTES,
    maxConnectionsPerPeer: init.maxConnectionsPerPeer ?? DEFAULT_MAX_CONNECTIONS_PER_PEER,
    maxSubscriptionsPerPeer: init.maxSubscriptionsPerPeer ?? DEFAULT_MAX_SUBSCRIPTIONS_PER_PEER,
    maxPrefetchPerPeer: init.maxPrefetchPerPeer ?? DEFAULT_MAX_PREFETCH_PER_PEER,
    maxWatchesPerPeer: init.maxWatchesPerPeer ?? DEFAULT_MAX_WATCHES_PER_PEER,
    publishRate: init.publishRate ?? 0,
    maxInFlightPerPeer: init.maxInFlightPerPeer ?? DEFAULT_MAX_IN_FLIGHT_PER_PEER,
    maxInFlightBytesPerPeer: init.maxInFlightBytesPerPeer ?? DEFAULT_MAX_IN_FLIGHT_BYTES_PER_PEER,
    maxPartialFrameBytes: init.maxPartialFrameBytes ?? DEFAULT_MAX_PARTIAL_FRAME_BYTES,
    dedupWindow: init.dedupWindow ?? DEFAULT_DEDUP_WINDOW,
    completedRetention: init.completedRetention ?? DEFAULT_COMPLETED_RETENTION,
    retry: init.retry ?? { delay: DEFAULT_RETRY_DELAY, factor: DEFAULT_RETRY_FACTOR, maxDelay: DEFAULT_RETRY_MAX_DELAY },
    deadLetter: init.deadLetter ?? DEFAULT_DEAD_LETTER_SUFFIX,
    maxGroups: init.maxGroups ?? DEFAULT_MAX_GROUPS,
    stallTimeout: init.stallTimeout ?? DEFAULT_STALL_TIMEOUT,
    queueSweepInterval: init.queueSweepInterval ?? DEFAULT_QUEUE_SWEEP_INTERVAL
  }
}
