/**
 * What the engine tells the store as its state changes, so that a restart finds it again. The
 * journal implements it over a store; a broker without a store passes none. Calls are synchronous
 * and only record: they never call back into the engine.
 */
import type { Queue, QueuedMessage } from './queue.js'

export interface Persistence {
  /**
   * A message entered a queue's order (a group's copy made at publish, an unrouted one, or a
   * delayed one that came due): keep it there, at its `pageOrder`.
   */
  enqueued: (message: QueuedMessage, queue: Queue) => void
  /** A message waits for its due time (a delayed publish, or a retry's backoff): keep it in due order, at (`dueAt`, `dueOrder`). */
  delayed: (message: QueuedMessage, queue: Queue) => void
  /** A message goes back to wait after a failed delivery: its attempts, last error and due time changed. */
  requeued: (message: QueuedMessage, queue: Queue) => void
  /** The unrouted queue of a command (group '') now belongs to `queue.group`, with its messages. */
  adopted: (queue: Queue) => void
  /** A group bound a pattern for the first time. */
  bound: (group: string, pattern: string) => void
  /** A subscription set its group's expiry (ms idle before the group is deleted). */
  groupExpiry: (group: string, expires: number) => void
}
