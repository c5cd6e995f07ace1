/**
 * The broker's options: what `broker(init)` takes, and the settings it runs with (each option
 * given or its default).
 */
import {
  DEFAULT_ANSWER_RETENTION, DEFAULT_COMPLETED_RETENTION, DEFAULT_DEAD_LETTER_SUFFIX, DEFAULT_DEDUP_WINDOW, DEFAULT_HIGH_WATER, DEFAULT_MAX_ATTEMPTS,
  DEFAULT_MAX_KEPT_ANSWERS, DEFAULT_MAX_MESSAGES, DEFAULT_MAX_STORED_MESSAGES, DEFAULT_PAGE_SIZE, DEFAULT_PAGE_BYTES, DEFAULT_MAX_PAYLOAD, DEFAULT_VISIBILITY_TIMEOUT,
  DEFAULT_RETRY_DELAY, DEFAULT_RETRY_FACTOR, DEFAULT_RETRY_MAX_DELAY, DEFAULT_MAX_GROUPS, DEFAULT_STALL_TIMEOUT, DEFAULT_QUEUE_SWEEP_INTERVAL
} from '../constants.js'
import type { QueuePolicy, RetryBackoff } from './engine.js'
import type { Store } from '../store/store.js'

export interface BrokerInit {
  /** Largest payload accepted, in bytes. Larger publishes are rejected with a clear error. */
  maxPayload?: number
  /** ms a consumer may hold a delivery before it is given to another consumer. */
  visibilityTimeout?: number
  /** Deliveries of a message before it fails and its producer is told. */
  maxAttempts?: number
  /** Messages held at once; past it, publishes are rejected ("broker full"). */
  maxMessages?: number
  /**
   * Ready messages in a queue with consumers past which producers' confirms are held until the
   * queue is down to half (publisher flow control). Infinity turns it off.
   */
  highWater?: number
  /**
   * ms a congested queue's consumers may complete nothing before it stops holding confirms (it is
   * stalled: one stuck consumer must not stall every producer). Default 2,000.
   */
  stallTimeout?: number
  /** ms an answer waits for its disconnected producer to reconnect. */
  answerRetention?: number
  /** Answers kept per disconnected producer. */
  maxKeptAnswers?: number
  /** ms a disconnected producer session, and a producer-supplied message id, are remembered to drop duplicates. */
  dedupWindow?: number
  /**
   * Where messages, bindings and kept answers are kept; the broker starts from what it holds. A
   * publish is confirmed, and an answer relayed, once the store has synced it. Default: none, the
   * messages live in memory only (nothing survives a restart, finished messages are not listed).
   */
  store?: Store
  /** ms the record of a completed message is kept, to be listed; 0 deletes it at once. */
  completedRetention?: number
  /** Backoff before a nacked message is retried. Default 100 ms doubling to 30 s; `{ delay: 0 }` retries at once. */
  retry?: RetryBackoff
  /** Per-queue settings (retry backoff, TTL) for the commands a pattern matches; the first match applies. */
  queues?: QueuePolicy[]
  /** A failed message is republished to `<command><suffix>` (default '.dlq'); false drops it (its record stays). */
  deadLetter?: string | false
  /**
   * With a store: ready messages a queue keeps in memory; the rest wait only in the store and are
   * read back a page at a time, so a backlog larger than memory fits. Default 5,000. Delayed
   * messages page the same way (the soonest-due page in memory), and so do those no group wants yet.
   */
  pageSize?: number
  /**
   * Groups the broker holds before it refuses a subscription to a new group (default 10,000):
   * every group gets a copy of each message its patterns match, and its bindings are stored.
   */
  maxGroups?: number
  /** With a store: the payload bytes a page holds at most (a queue's ready messages, or the delayed ones in memory). Default 8 MiB. */
  pageBytes?: number
  /**
   * ms between sweeps of idle queues: a queue that holds nothing and did nothing between two
   * sweeps is removed (its counters too), so it goes after one to two intervals. Default 30,000.
   */
  queueSweepInterval?: number
}

/** The settings a broker runs with: every option of `BrokerInit` but the store and policies, resolved. */
export type BrokerOptions = Required<Omit<BrokerInit, 'store' | 'queues'>>

/** Each option given, or its default (paging only with a store). */
export function brokerOptions (init: BrokerInit): BrokerOptions {
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
    dedupWindow: init.dedupWindow ?? DEFAULT_DEDUP_WINDOW,
    completedRetention: init.completedRetention ?? DEFAULT_COMPLETED_RETENTION,
    retry: init.retry ?? { delay: DEFAULT_RETRY_DELAY, factor: DEFAULT_RETRY_FACTOR, maxDelay: DEFAULT_RETRY_MAX_DELAY },
    deadLetter: init.deadLetter ?? DEFAULT_DEAD_LETTER_SUFFIX,
    maxGroups: init.maxGroups ?? DEFAULT_MAX_GROUPS,
    stallTimeout: init.stallTimeout ?? DEFAULT_STALL_TIMEOUT,
    queueSweepInterval: init.queueSweepInterval ?? DEFAULT_QUEUE_SWEEP_INTERVAL
  }
}
