/**
 * The journal's start: reads a store back into a new engine (bindings, groups' expiries, the first
 * page of each queue and of the delayed messages, counting the rest), and what the broker holds
 * besides queues into a `RecoverInto`. Brings a store written by an older version up to date first.
 */
import type { GroupCommit } from '../store/group-commit.js'
import {
  ANSWER_PREFIX, BINDING_PREFIX, DELAYED_PREFIX, MESSAGE_PREFIX, PRODUCER_SEQ_PREFIX, QUEUE_PREFIX, SCHEDULE_PREFIX, SEEN_ID_PREFIX,
  DELAYED_KEY_LENGTH, GROUP_PREFIX, NEXT_QUEUE_ID_KEY, decodeAnswer, decodeMessage, decodeQueue, decodeQueueId, decodeSchedule, decodeSeq, decodeTime,
  delayedKey, encodeQueue, encodeQueueId, messageKey, parseAnswerKey, parseDelayedKey, parseGroupKey, parseMessageKey, parsePairKey, queueKey, queueRange
} from './records.js'
import { groupError } from '../names.js'
import type { Store, StoreOp } from '../store/store.js'
import type { QueueEngine } from './engine.js'
import type { PageBounds } from './journal.js'
import type { KeptResult } from './mailbox.js'
import type { Queue } from './queue.js'
import type { Schedule } from './schedules.js'

/** Before paging, queue id 0 held every message no group wanted yet (now each command has an unrouted queue). */
const OLD_UNROUTED = 0
/** Writes gathered by a rewrite at start before they are flushed, so a large one stays small in memory. */
const REWRITE_BATCH = 5_000

/** What a start read back: messages, and answers kept for producers. */
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

/** One start: `run` it once, then the journal takes over the numbering and the queue ids it found. */
export class Recovery {
  nextQueueId = 1
  /** Every stored message has an order below it. */
  ordersBelow = 1
  nextAnswer = 1
  /** Stored queue ids to names (finished records name them). */
  readonly queueNames = new Map<number, { command: string, group: string }>()
  /** The stored queues the engine holds now, by id. */
  readonly queues = new Map<number, Queue>()

  constructor (private readonly store: Store, private readonly commit: GroupCommit, private readonly page: PageBounds) {}

  /**
   * Reads the store into `engine` (bindings, then messages in publish order per queue), and kept
   * answers and producer seqs into `into`. Call once, before any client is served.
   */
  async run (engine: QueueEngine<any>, into: RecoverInto): Promise<Recovered> {
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
    for await (const [key, value] of this.store.entries(SCHEDULE_PREFIX)) {
      try {
        into.schedule(decodeSchedule(value))
      } catch (err) {
        // A schedule holds no messages: one that does not read (an older build wrote a header
        // count past 65,535 wrapped) stays in the store, unread, rather than refuse every start.
        into.warn?.(`skipped a stored schedule that does not read (key ${Buffer.from(key).toString('hex')}): ${(err as Error).message}`)
      }
    }
    const seen: Array<[string, string, number]> = []
    for await (const [key, value] of this.store.entries(SEEN_ID_PREFIX)) {
      const [command, id] = parsePairKey(key)
      seen.push([command, id, decodeTime(value)])
    }
    // In expiry order, as they were added: the sweep and the count cap drop the oldest first.
    for (const [command, id, until] of seen.sort((a, b) => a[2] - b[2])) into.seenId(command, id, until)
    for await (const [, value] of this.store.entries(NEXT_QUEUE_ID_KEY)) this.nextQueueId = Math.max(this.nextQueueId, decodeQueueId(value))
    const queues = new Map<number, { command: string, group: string }>()
    /** Queues whose names break today's rules: their records stay in the store, unread. */
    const skipped = new Set<number>()
    for await (const [key, value] of this.store.entries(QUEUE_PREFIX)) {
      const id = new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(1)
      const q = decodeQueue(value)
      // (Group '' is a command's unrouted queue.)
      const invalid = q.group === '' ? undefined : groupError(q.group)
      if (invalid != null) {
        skipped.add(id)
        this.nextQueueId = Math.max(this.nextQueueId, id + 1)
        into.warn?.(`skipped stored queue ${id} and its messages: ${invalid}`)
        continue
      }
      queues.set(id, q)
      this.nextQueueId = Math.max(this.nextQueueId, id + 1)
    }
    await this.upgrade(engine, queues)
    for (const [id, q] of queues) this.queueNames.set(id, q)
    let messages = 0
    // Of each queue, its first page (by count and bytes); the engine counts the rest, kept on disk
    // and read back a page at a time. Counted by key, so a large backlog is not read at a start.
    const stored = new Map<number, number>()
    for await (const key of this.store.keys(MESSAGE_PREFIX)) {
      const { queueId, n } = parseMessageKey(key)
      this.ordersBelow = Math.max(this.ordersBelow, n + 1)
      if (skipped.has(queueId)) continue
      stored.set(queueId, (stored.get(queueId) ?? 0) + 1)
      messages++
    }
    const orphans = new Set<number>()
    for (const [queueId, count] of stored) {
      const queue = queues.get(queueId)
      if (queue == null) {
        // Its queue record is gone: the queue was deleted and the broker stopped before its messages were.
        orphans.add(queueId)
        messages -= count
        continue
      }
      let restored = 0
      let bytes = 0
      for await (const [key, value] of this.store.entries(messageKey(queueId, 0).subarray(0, 5), undefined, this.page.size)) {
        const { message } = decodeMessage(value)
        message.key = key
        message.pageOrder = parseMessageKey(key).n
        engine.restore(message, queue.group)
        restored++
        bytes += message.payload.byteLength
        if (bytes >= this.page.bytes) break
      }
      if (count > restored) engine.restoreOnDisk(queue.command, queue.group, count - restored)
    }
    // Delayed ones: the soonest-due page; the rest are counted per queue.
    const delayed = new Map<number, number>()
    for await (const key of this.store.keys(DELAYED_PREFIX)) {
      const { queueId, n } = parseDelayedKey(key)
      this.ordersBelow = Math.max(this.ordersBelow, n + 1)
      if (skipped.has(queueId)) continue
      if (!queues.has(queueId)) {
        orphans.add(queueId)
        continue
      }
      delayed.set(queueId, (delayed.get(queueId) ?? 0) + 1)
      messages++
    }
    // The engine numbers new messages after every stored one (its keys derive from those numbers).
    engine.restoreOrder(this.ordersBelow - 1)
    if (orphans.size > 0) {
      into.warn?.(`deleting the stored messages of ${orphans.size} deleted queue(s)`)
      for (const id of orphans) await this.store.clear(...queueRange(id))
      await clearDelayedOf(this.store, orphans, undefined, Infinity)
    }
    let bytes = 0
    let restored = 0
    for await (const [key, value] of this.store.entries(DELAYED_PREFIX)) {
      if (restored >= this.page.size) break
      const { queueId, n } = parseDelayedKey(key)
      const queue = queues.get(queueId)
      if (queue == null) continue // a skipped queue's
      restored++
      const { message } = decodeMessage(value)
      message.key = key
      message.dueOrder = n
      engine.restoreDelayed(message, queue.group)
      delayed.set(queueId, (delayed.get(queueId) ?? 0) - 1)
      bytes += message.payload.byteLength
      if (bytes >= this.page.bytes) break
    }
    for (const [id, count] of delayed) {
      const q = queues.get(id)
      if (q != null && count > 0) engine.restoreDelayedOnDisk(q.command, q.group, count)
    }
    // Recovered queues keep their ids, so their messages keep their keys. A queue that holds
    // nothing is not made again: its record goes, as the sweep of idle queues would remove it.
    const holding = new Set([...stored.keys(), ...delayed.keys()])
    let dropped = false
    for (const [id, q] of queues) {
      if (!holding.has(id)) {
        this.queueNames.delete(id)
        this.commit.del(queueKey(id))
        dropped = true
        continue
      }
      const queue = engine.queue(q.command, q.group)
      if (queue == null) continue
      this.queues.set(id, queue)
    }
    if (dropped) this.commit.put(NEXT_QUEUE_ID_KEY, encodeQueueId(this.nextQueueId))
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

  /**
   * Brings a store written before paging up to date, and hands each unrouted queue whose command a
   * group is bound to (bound after its messages came, and the start interrupted the hand-over) to
   * that group. Rewrites run in batches, so a large store is not held in memory.
   */
  private async upgrade (engine: QueueEngine<any>, queues: Map<number, { command: string, group: string }>): Promise<void> {
    let pending = 0
    const rewrite = async (from: Uint8Array, to: Uint8Array, value: Uint8Array): Promise<void> => {
      this.commit.del(from)
      this.commit.put(to, value)
      if (++pending >= REWRITE_BATCH) {
        pending = 0
        await this.commit.flush()
      }
    }
    const unroutedIds = new Map<string, number>()
    for (const [id, q] of queues) if (q.group === '') unroutedIds.set(q.command, id)
    const unroutedId = (command: string): number => {
      let id = unroutedIds.get(command)
      if (id == null) {
        id = this.nextQueueId++
        unroutedIds.set(command, id)
        queues.set(id, { command, group: '' })
        this.commit.put(queueKey(id), encodeQueue(command, ''))
      }
      return id
    }
    // Unrouted messages of every command were in queue 0: each goes to its command's unrouted queue, same order.
    for await (const [key, value] of this.store.entries(messageKey(OLD_UNROUTED, 0).subarray(0, 5))) {
      const { n } = parseMessageKey(key)
      await rewrite(key, messageKey(unroutedId(decodeMessage(value).message.command), n), value)
    }
    // Delayed messages were keyed by queue (ids fit 30 bits, so those keys sort before every f64 due time).
    for await (const [key, value] of this.store.entries(DELAYED_PREFIX)) {
      if (key.byteLength === DELAYED_KEY_LENGTH) break
      const v = new DataView(key.buffer, key.byteOffset, key.byteLength)
      const queueId = v.getUint32(1)
      const n = parseMessageKey(key).n
      const { message } = decodeMessage(value)
      const id = queueId === OLD_UNROUTED ? unroutedId(message.command) : queueId
      await rewrite(key, message.dueAt != null ? delayedKey(message.dueAt, n, id) : messageKey(id, n), value)
    }
    await this.commit.flush()
    for (const [pid, q] of [...queues]) {
      if (q.group !== '') continue
      const group = engine.boundGroups(q.command)[0]
      if (group == null) continue
      const target = [...queues].find(([, t]) => t.command === q.command && t.group === group)?.[0]
      if (target == null) {
        queues.set(pid, { command: q.command, group })
        this.commit.put(queueKey(pid), encodeQueue(q.command, group))
        continue
      }
      // The group has a queue of that command already: the messages join it, in order (n is global).
      for await (const [key, value] of this.store.entries(messageKey(pid, 0).subarray(0, 5))) {
        await rewrite(key, messageKey(target, parseMessageKey(key).n), value)
      }
      for await (const [key, value] of this.store.entries(DELAYED_PREFIX)) {
        const d = parseDelayedKey(key)
        if (d.queueId === pid && key.byteLength === DELAYED_KEY_LENGTH) await rewrite(key, delayedKey(d.dueAt, d.n, target), value)
      }
      queues.delete(pid)
      this.commit.del(queueKey(pid))
    }
    await this.commit.flush()
  }
}

/** Deletes the stored delayed messages of the queues `ids` after `from`, numbered below `below`, in batches. */
export async function clearDelayedOf (store: Store, ids: Set<number>, from: Uint8Array | undefined, below: number): Promise<void> {
  let ops: StoreOp[] = []
  for await (const [key] of store.entries(DELAYED_PREFIX, from)) {
    const { n, queueId } = parseDelayedKey(key)
    if (ids.has(queueId) && n < below) ops.push({ type: 'del', key })
    if (ops.length >= REWRITE_BATCH) {
      await store.write(ops)
      ops = []
    }
  }
  if (ops.length > 0) await store.write(ops)
}
