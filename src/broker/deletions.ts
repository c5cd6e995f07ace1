/**
 * Taking messages out on request: purging a command's waiting messages, deleting a group's queue
 * or a whole group; each clears from the store what it took out of the engine.
 */
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js'
import { commandError, groupError } from '../names.js'
import type { Logger } from '@libp2p/interface'
import type { DeleteOptions } from './api.js'
import type { Deleted, QueueEngine } from './engine.js'
import type { Journal } from './journal.js'
import type { QueuedMessage } from './queue.js'

export class Deletions {
  constructor (
    private readonly engine: QueueEngine<any>,
    private readonly journal: Journal | undefined,
    private readonly log: Logger,
    /** Messages taken out (those that were in memory): their producers no longer wait for them. */
    private readonly dropped: (messages: QueuedMessage[]) => void
  ) {}

  /** Removes the waiting (and delayed) messages of `command`, in one group or all; returns how many. */
  purge (command: string, group?: string): number {
    const held = this.engine.size
    const { messages, paged, delayed } = this.engine.purge(command, group)
    for (const m of messages) this.journal?.purged(m)
    for (const { queue, after } of paged) {
      this.journal?.clearAfter(queue, after).catch((err: Error) => { this.log.error('purging %s from the store failed: %s', queue.name, err.message) })
    }
    if (delayed != null) {
      this.journal?.clearDelayed(delayed.queues, delayed.after).catch((err: Error) => { this.log.error('purging delayed messages of %s from the store failed: %s', command, err.message) })
    }
    const purged = held - this.engine.size
    // Last: releasing them may let a held producer publish again, and the store is cleared above only up to now.
    this.dropped(messages)
    this.log('purged %d messages of %s%s', purged, command, group != null ? `@${group}` : '')
    return purged
  }

  /**
   * Deletes `group`'s queue of `command` with every message in it (waiting, delayed, paged out,
   * in flight: a consumer's later settle of one does nothing). The group keeps its bindings, so a
   * later message they match makes the queue again; delete the group to stop the copies. Throws
   * when there is no such queue, or it has consumers and `force` is not set. Returns the messages
   * deleted.
   */
  deleteQueue (command: string, group: string, options: DeleteOptions = {}): number {
    const invalid = commandError(command) ?? groupError(group)
    if (invalid != null) throw new InvalidArgumentError(invalid)
    const deleted = conflict(() => this.engine.deleteQueue(command, group, options.force === true))
    if (deleted == null) throw new NotFoundError(`No queue of ${command} in group "${group}"`)
    this.cleared(deleted)
    return deleted.messages
  }

  /**
   * Deletes a group: its bindings, all its queues and their messages. Throws when there is no such
   * group, or it has subscriptions and `force` is not set; with `force` they are ended (the
   * consumer gets a SubscriptionError through its `subscription:ended` event).
   */
  deleteGroup (group: string, options: DeleteOptions = {}): { queues: number, messages: number } {
    const invalid = groupError(group)
    if (invalid != null) throw new InvalidArgumentError(invalid)
    const deleted = conflict(() => this.engine.deleteGroup(group, options.force === true))
    if (deleted == null) throw new NotFoundError(`No group "${group}"`)
    this.cleared(deleted)
    return { queues: deleted.queues.length, messages: deleted.messages }
  }

  /** Clears from the store what a deletion (or an expired group) took out of the engine. */
  cleared (d: Deleted<unknown>): void {
    this.journal?.deletedQueues(d.queues).catch((err: Error) => { this.log.error('deleting the queues of group %s from the store failed: %s', d.group, err.message) })
    if (d.wholeGroup) this.journal?.deletedGroup(d.group, d.patterns)
    this.dropped(d.dropped)
    this.log('deleted %d queue(s) and %d message(s) of group %s', d.queues.length, d.messages, d.group)
  }
}

/** The engine refuses (TypeError) to delete what has consumers without `force`: a conflict. */
function conflict<T> (remove: () => T): T {
  try {
    return remove()
  } catch (err) {
    if (err instanceof TypeError) throw new ConflictError(err.message, { cause: err })
    throw err
  }
}
