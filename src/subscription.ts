/**
 * What a subscription asks for, the same on both sides: the consumer client's `Subscription` and
 * its own record of it, and the broker engine's `Subscription` (src/broker/queue.ts).
 */
export interface SubscriptionTerms {
  /** Its id on its consumer stream. */
  readonly subId: number
  /** Consumers in the same group share the messages; each group gets its own copy. */
  readonly group: string
  /** Command names or patterns (`users.*`, `users.#`). */
  readonly patterns: readonly string[]
  /** Deliveries it holds unsettled at most. */
  readonly prefetch: number
  /** Single-active: one consumer of the group at a time, one message at a time, in order. */
  readonly singleActive: boolean
}
