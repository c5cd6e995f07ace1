/**
 * The journal writes the broker's state to its store as the engine changes it, and reads it back
 * when the broker starts (see journal-recovery.ts): every message not yet completed (delivered
 * again after a restart), the groups' bindings, and answers kept for disconnected producers. Writes go through a group commit;
 * `whenDurable` tells when what was written so far is on disk, which is when the broker confirms a
 * publish or relays an answer.
 */
import { GroupCommit, type Durable } from '../store/group-commit.js'
import {
  COMPLETED_PREFIX, CompletedLog, DELAYED_PREFIX, FAILED_PREFIX, MessageState, answerKey, bindingKey, completedBound, completedLogKey,
  decodeMessage, delayedKey, delayedKeyAfter, encodeAnswer, encodeMessage, encodeQueue, encodeQueueId, encodeSchedule, encodeSeq, encodeTime,
  failedKey, failedQueueId, groupKey, messageKey, parseDelayedKey, parseMessageKey, producerSeqKey, queueKey, queueRange, readCompletedLog,
  scheduleKey, seenIdKey, NEXT_QUEUE_ID_KEY, type MessageRecord
} from './records.js'
import { Recovery, clearDelayedOf, type RecoverInto, type Recovered } from './journal-recovery.js'
import type { Store } from '../store/store.js'
import type { DueOrder, QueueEngine } from './engine.js'
import type { KeptResult } from './mailbox.js'
import type { Persistence } from './persistence.js'
import type { Queue, QueuedMessage } from './queue.js'
import type { Schedule } from './schedules.js'

/** The key under which clears of delayed records are waited for (queue ids are u32). */
const DELAYED_CLEAR = -1

/** How much a page of messages read back holds at most: messages, and payload bytes. */
export interface PageBounds {
  size: number
  bytes: number
}

/** A finished message as the store has it, with the queue it was in. */
export interface FinishedRecord extends MessageRecord {
  command: string
  group: string
}

export class Journal implements Persistence {
  private readonly commit: GroupCommit
  private readonly queueIds = new WeakMap<Queue, number>()
  private readonly queuesById = new Map<number, Queue>()
  /** Clears of deleted or purged messages, one after another: the last one, and the last one of each queue id (or DELAYED_CLEAR). */
  private clears: Promise<void> = Promise.resolve()
  private readonly clearing = new Map<number, Promise<void>>()
  /** Queue ids to names, for reading finished records back. */
  private readonly queueNames = new Map<number, { command: string, group: string }>()
  private nextQueueId = 1
  /** Every message stored so far has an order (the engine's) below it. */
  private ordersBelow = 1
  private nextAnswer = 1
  private readonly completedLog = new CompletedLog()
  private nextLog = 1

  /**
   * @param completedRetention ms a completed message's record is kept (0: deleted at once)
   * @param page ready messages of a queue (and delayed ones) restored at a start (the engine's page bounds)
   */
  constructor (readonly store: Store, private readonly completedRetention: number, private readonly page: PageBounds, onError: (err: Error) => void, onRecover?: () => void) {
    this.commit = new GroupCommit(store, onError, () => {
      const log = this.completedLog.take()
      if (log != null) this.commit.put(completedLogKey(Date.now(), this.nextLog++), log)
    }, onRecover)
  }

  /** Calls `observer` with the seconds each batch took to write and sync. */
  observeWrites (observer: (seconds: number) => void): void {
    this.commit.onWritten = observer
  }

  /** Why the store is not writing now (a full disk), or undefined. */
  get failure (): Error | undefined {
    return this.commit.failure
  }

  /**
   * Reads the store into `engine` (bindings, then messages in publish order per queue), and kept
   * answers and producer seqs into `into`. Call once, before any client is served.
   */
  async recover (engine: QueueEngine<any>, into: RecoverInto): Promise<Recovered> {
    const r = new Recovery(this.store, this.commit, this.page)
    const recovered = await r.run(engine, into)
    this.nextQueueId = r.nextQueueId
    this.ordersBelow = r.ordersBelow
    this.nextAnswer = r.nextAnswer
    for (const [id, q] of r.queueNames) this.queueNames.set(id, q)
    for (const [id, queue] of r.queues) {
      this.queueIds.set(queue, id)
      this.queuesById.set(id, queue)
    }
    return recovered
  }

  /** A message entered a queue's order (a copy at publish, or a delayed one that came due): kept at its `pageOrder`. */
  enqueued (m: QueuedMessage, queue: Queue): void {
    if (m.key != null) this.commit.del(m.key)
    const n = m.pageOrder as number
    if (n >= this.ordersBelow) this.ordersBelow = n + 1
    m.key = messageKey(this.queueId(queue), n)
    this.commit.put(m.key, encodeMessage(m, MessageState.Pending, Date.now()))
  }

  /** A message waits for its due time (a delayed publish, or a retry's backoff): kept in due order, at its `dueOrder`. */
  delayed (m: QueuedMessage, queue: Queue): void {
    if (m.key != null) this.commit.del(m.key)
    const n = m.dueOrder as number
    if (n >= this.ordersBelow) this.ordersBelow = n + 1
    m.key = delayedKey(m.dueAt as number, n, this.queueId(queue))
    this.commit.put(m.key, encodeMessage(m, MessageState.Pending, Date.now()))
  }

  /** A command's unrouted queue went to a group: its record says so; its messages keep their keys. */
  adopted (queue: Queue): void {
    const id = this.queueId(queue)
    this.queueNames.set(id, { command: queue.command, group: queue.group })
    this.commit.put(queueKey(id), encodeQueue(queue.command, queue.group))
  }

  /** A failed delivery sent the message back to wait: its attempts, last error and due time are rewritten. */
  requeued (m: QueuedMessage): void {
    if (m.key != null) this.commit.put(m.key, encodeMessage(m, MessageState.Pending, Date.now()))
  }

  bound (group: string, pattern: string): void {
    this.commit.put(bindingKey(group, pattern), new Uint8Array(0))
  }

  /** A group's expiry (ms idle before it is deleted), set by a subscription. */
  groupExpiry (group: string, expires: number): void {
    this.commit.put(groupKey(group), encodeTime(expires))
  }

  /** A group was deleted: its bindings and settings go (its queues go with deletedQueue). */
  deletedGroup (group: string, patterns: string[]): void {
    for (const pattern of patterns) this.commit.del(bindingKey(group, pattern))
    this.commit.del(groupKey(group))
  }

  /**
   * Queues were deleted: their records and every stored message of them go (waiting, delayed,
   * paged out, in flight). The queue records go first: should the broker stop before the messages
   * are cleared, the next start deletes them as orphans. Finished records stay listed.
   */
  async deletedQueues (queues: Queue[]): Promise<void> {
    const ids = new Set<number>()
    for (const queue of queues) {
      const id = this.queueIds.get(queue)
      if (id == null) continue
      ids.add(id)
      // A page read finishing late reads a cleared range; a delayed page read skips its records.
      this.queuesById.delete(id)
      this.commit.del(queueKey(id))
    }
    if (ids.size === 0) return
    await this.whileClearing([...ids, DELAYED_CLEAR], async () => {
      for (const id of ids) await this.store.clear(...queueRange(id))
      await clearDelayedOf(this.store, ids, undefined, Infinity)
    })
  }

  /**
   * Idle empty queues were removed (the engine's sweep): their records go, after the deletions
   * under way (a purge's), and the next queue id is kept so theirs is never given again.
   * Finished records that name them fall back to their message's command.
   */
  async removedQueues (queues: Queue[]): Promise<void> {
    const ids: number[] = []
    for (const queue of queues) {
      const id = this.queueIds.get(queue)
      if (id == null) continue
      this.queueIds.delete(queue)
      this.queuesById.delete(id)
      this.queueNames.delete(id)
      ids.push(id)
    }
    if (ids.length === 0) return
    await this.whileClearing([], async () => {
      this.commit.put(NEXT_QUEUE_ID_KEY, encodeQueueId(this.nextQueueId))
      for (const id of ids) this.commit.del(queueKey(id))
    })
  }

  /**
   * The next page of a paged queue: up to `limit` of its messages after `after` (all of them when
   * there is no `after`), with the writes not yet on disk: right while they are being written, and
   * while the store cannot write (consumers drain a backlog even from a full disk).
   */
  async readPage (queue: Queue, after: number, limit: number, maxBytes = Infinity): Promise<QueuedMessage[]> {
    const id = this.queueIds.get(queue)
    if (id == null) return [] // never stored, or removed meanwhile
    await this.clearing.get(id)
    const page: QueuedMessage[] = []
    let bytes = 0
    for await (const [key, value] of this.commit.entries(messageKey(id, 0).subarray(0, 5), messageKey(id, after), limit)) {
      const { message } = decodeMessage(value)
      message.key = key
      message.pageOrder = parseMessageKey(key).n
      page.push(message)
      bytes += message.payload.byteLength
      if (bytes >= maxBytes) break
    }
    return page
  }

  /**
   * The next page of delayed messages, in due order: up to `limit` (and about `maxBytes` of
   * payload) of those stored after `after`, with their queues, and with the writes not yet on disk.
   */
  async readDelayedPage (after: DueOrder, limit: number, maxBytes = Infinity): Promise<Array<{ message: QueuedMessage, queue: Queue }>> {
    await this.clearing.get(DELAYED_CLEAR)
    const page: Array<{ message: QueuedMessage, queue: Queue }> = []
    let bytes = 0
    // Not limited in the store: records of deleted (or skipped) queues are passed over, so a page
    // is only empty at the end of what is stored.
    for await (const [key, value] of this.commit.entries(DELAYED_PREFIX, delayedAfter(after))) {
      if (page.length >= limit) break
      const { n, queueId } = parseDelayedKey(key)
      const queue = this.queuesById.get(queueId)
      if (queue == null) continue
      const { message } = decodeMessage(value)
      message.key = key
      message.dueOrder = n
      page.push({ message, queue })
      bytes += message.payload.byteLength
      if (bytes >= maxBytes) break
    }
    return page
  }

  /**
   * Deletes a queue's stored messages after `pageOrder` `after`, up to those stored from now on: a
   * purge of what was paged out, which leaves what is published after it.
   */
  async clearAfter (queue: Queue, after: number): Promise<void> {
    const id = this.queueIds.get(queue)
    if (id == null) return
    const below = this.ordersBelow
    await this.whileClearing([id], async () => { await this.store.clear(messageKey(id, after + 1), messageKey(id, below)) })
  }

  /** Deletes the delayed messages of `queues` stored after `after`, up to those stored from now on (a purge of those only on disk). */
  async clearDelayed (queues: Queue[], after: DueOrder): Promise<void> {
    const ids = new Set(queues.map((q) => this.queueIds.get(q)).filter((id) => id != null))
    const below = this.ordersBelow
    await this.whileClearing([DELAYED_CLEAR], async () => { await clearDelayedOf(this.store, ids, delayedAfter(after), below) })
  }

  /**
   * Runs `work` after the clears under way, once everything written before is on disk (however
   * many retries a full disk takes: a batch written after the clear would bring back what it
   * cleared). Reads of what it clears (`on`: queue ids, or DELAYED_CLEAR) wait for it; others do not,
   * so consumers drain other queues from a full disk meanwhile.
   */
  private async whileClearing (on: number[], work: () => Promise<void>): Promise<void> {
    const stored = new Promise<void>((resolve) => { this.commit.whenStored(() => { resolve() }) })
    const done = this.clears.then(async () => { await stored; await work() })
    const settled = done.catch(() => {})
    this.clears = settled
    for (const key of on) {
      this.clearing.set(key, settled)
      void settled.then(() => { if (this.clearing.get(key) === settled) this.clearing.delete(key) })
    }
    await done
  }

  /** The message was purged: its record goes, nothing stays. */
  purged (m: QueuedMessage): void {
    if (m.key != null) this.commit.del(m.key)
  }

  /** The message was acked or answered: its record goes, a line in this batch's completed log stays. */
  completed (m: QueuedMessage, consumer: string): void {
    if (m.key == null) return
    this.commit.del(m.key)
    if (this.completedRetention > 0) this.completedLog.add(parseMessageKey(m.key).queueId, m, Date.now(), consumer)
  }

  /** The message will not be attempted again: kept with its payload and last error (state Error). */
  failed (m: QueuedMessage, consumer: string): void {
    if (m.key == null) return
    this.commit.del(m.key)
    const now = Date.now()
    this.commit.put(failedKey(now, m.key), encodeMessage(m, MessageState.Error, now, consumer))
  }

  /** Deletes completed records older than the retention. */
  async sweep (now: number): Promise<void> {
    if (this.completedRetention <= 0) return
    await this.store.clear(COMPLETED_PREFIX, completedBound(now - this.completedRetention))
  }

  /** Completed or failed messages, oldest first. */
  async * finished (state: MessageState.Completed | MessageState.Error): AsyncIterable<FinishedRecord> {
    if (state === MessageState.Completed) {
      for await (const [, value] of this.store.entries(COMPLETED_PREFIX)) {
        for (const r of readCompletedLog(value)) yield this.named(r.queueId, r)
      }
      return
    }
    for await (const [key, value] of this.store.entries(FAILED_PREFIX)) yield this.named(failedQueueId(key), decodeMessage(value))
  }

  private named (queueId: number, record: MessageRecord): FinishedRecord {
    const q = this.queueNames.get(queueId)
    return { ...record, command: q?.command ?? record.message.command, group: q?.group ?? '' }
  }

  keepAnswer (producer: string, a: KeptResult): void {
    a.key = answerKey(this.nextAnswer++)
    this.commit.put(a.key, encodeAnswer(producer, a))
  }

  forgetAnswer (a: KeptResult): void {
    if (a.key != null) this.commit.del(a.key)
  }

  /** The highest seq taken from a producer session, so its resends are still dropped after a restart. */
  producerSeq (peer: string, session: string, lastSeq: number): void {
    this.commit.put(producerSeqKey(peer, session), encodeSeq(lastSeq))
  }

  forgetProducerSeq (peer: string, session: string): void {
    this.commit.del(producerSeqKey(peer, session))
  }

  /** A producer-supplied id of a command, remembered until `until` to drop its duplicates. */
  seenId (command: string, id: string, until: number): void {
    this.commit.put(seenIdKey(command, id), encodeTime(until))
  }

  forgetSeenId (command: string, id: string): void {
    this.commit.del(seenIdKey(command, id))
  }

  /** Writes a schedule (added, or moved to its next run). */
  schedule (s: Schedule): void {
    this.commit.put(scheduleKey(s.id), encodeSchedule(s))
  }

  unschedule (id: string): void {
    this.commit.del(scheduleKey(id))
  }

  whenDurable (done: Durable): void {
    this.commit.whenDurable(done)
  }

  /** Calls `done` once what was written so far is on disk, waiting out a store that fails for now. */
  whenStored (done: Durable): void {
    this.commit.whenStored(done)
  }

  /** Writes what is pending (one try if the store is failing) and closes the store. */
  async close (): Promise<void> {
    // The commit first: on a failing store its last try ends the clears' wait for it.
    await this.commit.close()
    await this.clears
    await this.store.close()
  }

  private queueId (queue: Queue): number {
    let id = this.queueIds.get(queue)
    if (id == null) {
      id = this.nextQueueId++
      this.queueIds.set(queue, id)
      this.queuesById.set(id, queue)
      this.queueNames.set(id, { command: queue.command, group: queue.group })
      this.commit.put(queueKey(id), encodeQueue(queue.command, queue.group))
    }
    return id
  }
}

/** The key to read delayed messages after `after` from (undefined: from the first). */
function delayedAfter (after: DueOrder): Uint8Array | undefined {
  return after.at === -Infinity ? undefined : delayedKeyAfter(after.at, after.order)
}
