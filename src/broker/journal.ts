/**
 * The journal writes the broker's state to its store as the engine changes it, and reads it back
 * when the broker starts: every message not yet completed (delivered again after a restart), the
 * groups' bindings, and answers kept for disconnected producers. Writes go through a group commit;
 * `whenDurable` tells when what was written so far is on disk, which is when the broker confirms a
 * publish or relays an answer.
 */
import { GroupCommit, type Durable } from '../store/group-commit.js'
import {
  ANSWER_PREFIX, BINDING_PREFIX, COMPLETED_PREFIX, CompletedLog, DELAYED_PREFIX, FAILED_PREFIX, MESSAGE_PREFIX, MessageState,
  PRODUCER_SEQ_PREFIX, QUEUE_PREFIX, SCHEDULE_PREFIX, SEEN_ID_PREFIX, decodeSchedule, encodeSchedule, scheduleKey, answerKey, decodeTime, encodeTime, seenIdKey, bindingKey, completedBound, completedLogKey, decodeAnswer,
  decodeMessage, decodeQueue, decodeSeq, encodeAnswer, encodeMessage, encodeQueue, encodeSeq, failedKey,
  failedQueueId, messageKey, parseAnswerKey, parseMessageKey, parsePairKey, producerSeqKey, queueKey,
  readCompletedLog, type MessageRecord, GROUP_PREFIX, groupKey, parseGroupKey, queueRange
} from './records.js'
import { groupError } from '../names.js'
import type { Store } from '../store/store.js'
import type { QueueEngine } from './engine.js'
import type { KeptResult } from './mailbox.js'
import type { Queue, QueuedMessage } from './queue.js'
import type { Schedule } from './schedules.js'

/** Queue id 0 holds messages that no group wants yet. */
const UNROUTED = 0

export interface Recovered {
  messages: number
  answers: number
}

/** What the broker holds besides queues, handed back on recovery. */
export interface RecoverInto {
  keepAnswer: (producer: string, answer: KeptResult) => void
  producerSeq: (peer: string, session: string, lastSeq: number) => void
  seenId: (command: string, id: string, until: number) => void
  schedule: (s: Schedule) => void
  /** Something stored was skipped (a name an older version let in). */
  warn?: (message: string) => void
}

/** A finished message as the store has it, with the queue it was in. */
export interface FinishedRecord extends MessageRecord {
  command: string
  group: string
}

export class Journal {
  private readonly commit: GroupCommit
  private readonly queueIds = new WeakMap<Queue, number>()
  /** Queue ids to names, for reading finished records back. */
  private readonly queueNames = new Map<number, { command: string, group: string }>()
  private nextQueueId = 1
  private nextMessage = 1
  private nextAnswer = 1
  private readonly completedLog = new CompletedLog()
  private nextLog = 1

  /**
   * @param completedRetention ms a completed message's record is kept (0: deleted at once)
   * @param pageSize ready messages of a queue read back at a time (the engine's page size)
   */
  constructor (readonly store: Store, private readonly completedRetention: number, private readonly pageSize: number, onError: (err: Error) => void, onRecover?: () => void) {
    this.commit = new GroupCommit(store, onError, () => {
      const log = this.completedLog.take()
      if (log != null) this.commit.put(completedLogKey(Date.now(), this.nextLog++), log)
    }, onRecover)
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
    for await (const [key] of this.store.entries(BINDING_PREFIX)) {
      const [group, pattern] = parsePairKey(key)
      try {
        engine.bind(group, pattern)
      } catch (err) {
        // A binding holds no messages: one that breaks today's name rules is dropped.
        into.warn?.(`dropped a stored binding: ${(err as Error).message}`)
        this.commit.del(key)
      }
    }
    for await (const [key, value] of this.store.entries(GROUP_PREFIX)) {
      const group = parseGroupKey(key)
      if (groupError(group) == null) engine.restoreGroupExpiry(group, decodeTime(value))
    }
    for await (const [key, value] of this.store.entries(PRODUCER_SEQ_PREFIX)) {
      const [peer, session] = parsePairKey(key)
      into.producerSeq(peer, session, decodeSeq(value))
    }
    for await (const [, value] of this.store.entries(SCHEDULE_PREFIX)) into.schedule(decodeSchedule(value))
    const seen: Array<[string, string, number]> = []
    for await (const [key, value] of this.store.entries(SEEN_ID_PREFIX)) {
      const [command, id] = parsePairKey(key)
      seen.push([command, id, decodeTime(value)])
    }
    // In expiry order, as they were added: the sweep and the count cap drop the oldest first.
    for (const [command, id, until] of seen.sort((a, b) => a[2] - b[2])) into.seenId(command, id, until)
    const queues = new Map<number, { command: string, group: string }>()
    /** Queues whose names break today's rules: their records stay in the store, unread. */
    const skipped = new Set<number>()
    for await (const [key, value] of this.store.entries(QUEUE_PREFIX)) {
      const id = new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(1)
      const q = decodeQueue(value)
      const invalid = groupError(q.group)
      if (invalid != null) {
        skipped.add(id)
        this.nextQueueId = Math.max(this.nextQueueId, id + 1)
        into.warn?.(`skipped stored queue ${id} and its messages: ${invalid}`)
        continue
      }
      queues.set(id, q)
      this.queueNames.set(id, decodeQueue(value))
      this.nextQueueId = Math.max(this.nextQueueId, id + 1)
    }
    let messages = 0
    // Delayed ones all come back to memory; of the others, each queue's first page (the engine
    // keeps the rest on disk and counts them, read back a page at a time).
    for await (const [key, value] of this.store.entries(DELAYED_PREFIX)) {
      const { queueId, n } = parseMessageKey(key)
      this.nextMessage = Math.max(this.nextMessage, n + 1)
      if (skipped.has(queueId)) continue
      const { message } = decodeMessage(value)
      message.key = key
      engine.restore(message, queues.get(queueId)?.group ?? '')
      messages++
    }
    let run: { queueId: number, restored: number, counted: number } | undefined
    const endRun = (): void => {
      const q = run != null ? queues.get(run.queueId) : undefined
      if (run != null && q != null && run.counted > 0) engine.restoreOnDisk(q.command, q.group, run.counted)
    }
    for await (const [key, value] of this.store.entries(MESSAGE_PREFIX)) {
      const { queueId, n } = parseMessageKey(key)
      this.nextMessage = Math.max(this.nextMessage, n + 1)
      if (skipped.has(queueId)) continue
      if (run?.queueId !== queueId) {
        endRun()
        run = { queueId, restored: 0, counted: 0 }
      }
      messages++
      const queue = queueId === UNROUTED ? undefined : queues.get(queueId)
      if (queue != null && run.restored >= this.pageSize) {
        run.counted++
        continue
      }
      const { message } = decodeMessage(value)
      message.key = key
      if (queue != null) message.pageOrder = n
      engine.restore(message, queue?.group ?? '')
      run.restored++
    }
    endRun()
    // Recovered queues keep their ids, so their messages keep their keys.
    for (const [id, q] of queues) {
      const queue = engine.queue(q.command, q.group)
      if (queue != null) this.queueIds.set(queue, id)
    }
    let answers = 0
    for await (const [key, value] of this.store.entries(ANSWER_PREFIX)) {
      this.nextAnswer = Math.max(this.nextAnswer, parseAnswerKey(key) + 1)
      const { producer, answer } = decodeAnswer(value)
      answer.key = key
      into.keepAnswer(producer, answer)
      answers++
    }
    return { messages, answers }
  }

  /** A message entered a queue (a copy at publish, or taken from the unrouted ones). */
  enqueued (m: QueuedMessage, queue: Queue): void {
    if (m.key != null) this.commit.del(m.key)
    const n = this.nextMessage++
    m.key = messageKey(this.queueId(queue), n, m.dueAt != null)
    m.pageOrder = m.dueAt != null ? undefined : n
    this.commit.put(m.key, encodeMessage(m, MessageState.Pending, Date.now()))
  }

  unrouted (m: QueuedMessage): void {
    m.key = messageKey(UNROUTED, this.nextMessage++, m.dueAt != null)
    this.commit.put(m.key, encodeMessage(m, MessageState.Pending, Date.now()))
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
   * A queue was deleted: its record and every stored message of it go (waiting, delayed, paged
   * out, in flight), once what was written before is on disk. Its finished records stay listed.
   */
  async deletedQueue (queue: Queue): Promise<void> {
    const id = this.queueIds.get(queue)
    if (id == null) return
    // Its id stays mapped: a page read finishing late reads the cleared range, and makes no new record.
    await new Promise<void>((resolve) => { this.commit.whenDurable(() => { resolve() }) })
    for (const delayed of [false, true]) await this.store.clear(...queueRange(id, delayed))
    // Last: messages whose queue record is gone would come back as unrouted after a crash.
    this.commit.del(queueKey(id))
  }

  /**
   * The next page of a paged queue: up to `limit` of its messages after `after` (all of them when
   * there is no `after`), with the writes not yet on disk: right while they are being written, and
   * while the store cannot write (consumers drain a backlog even from a full disk).
   */
  async readPage (queue: Queue, after: number, limit: number): Promise<QueuedMessage[]> {
    const id = this.queueId(queue)
    const page: QueuedMessage[] = []
    for await (const [key, value] of this.commit.entries(messageKey(id, 0).subarray(0, 5), messageKey(id, after), limit)) {
      const { message } = decodeMessage(value)
      message.key = key
      message.pageOrder = parseMessageKey(key).n
      page.push(message)
    }
    return page
  }

  /**
   * Deletes a queue's stored messages after `pageOrder` `after`, up to those stored from now on: a
   * purge of what was paged out, which leaves what is published after it.
   */
  async clearAfter (queue: Queue, after: number): Promise<void> {
    const id = this.queueId(queue)
    const below = this.nextMessage
    await new Promise<void>((resolve) => { this.commit.whenDurable(() => { resolve() }) })
    await this.store.clear(messageKey(id, after + 1), messageKey(id, below))
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
    await this.commit.close()
    await this.store.close()
  }

  private queueId (queue: Queue): number {
    let id = this.queueIds.get(queue)
    if (id == null) {
      id = this.nextQueueId++
      this.queueIds.set(queue, id)
      this.queueNames.set(id, { command: queue.command, group: queue.group })
      this.commit.put(queueKey(id), encodeQueue(queue.command, queue.group))
    }
    return id
  }
}
