/**
 * The messages waiting for their due time (a delayed publish, or a nacked one backing off before
 * its retry), soonest first. Pure state, part of the engine: with a store only the soonest-due
 * page is in memory (bounded by count and payload bytes); the rest are only in the store, counted,
 * and read back in (due time, `dueOrder`) order as the page runs low.
 */
import { Heap } from './heap.js'
import type { EngineEvents } from './engine-types.js'
import type { Queue, QueuedMessage } from './queue.js'

/** A place in the order of stored delayed messages: due time, then `dueOrder`. */
export interface DueOrder { at: number, order: number }

/** A delayed message in memory, with its queue. */
export interface DelayedEntry { at: number, order: number, message: QueuedMessage, queue: Queue }

const earlier = (a: DueOrder, b: DueOrder): boolean => a.at < b.at || (a.at === b.at && a.order < b.order)

export class DelayedMessages {
  private readonly heap = new Heap<DelayedEntry>(earlier)
  /** Payload bytes in `heap`. */
  private bytes = 0
  /** Every stored delayed message up to `tail` is in `heap` (or gone); those after it are only in the store, `onDisk` of them. */
  private tail: DueOrder = { at: -Infinity, order: -Infinity }
  private onDisk = 0
  private loading = false
  /** Changes when a page being read may be stale: a purge, or a trim that moved the tail back. */
  private generation = 0
  /** Delayed messages that went only to the store while a page was being read: the page may lack them. */
  private storedWhileLoading: DueOrder[] = []

  constructor (private readonly pageSize: number, private readonly pageBytes: number, private readonly events: Pick<EngineEvents<unknown>, 'delayedUntil' | 'delayedPageNeeded' | 'pagedOut'>) {}

  /** When the next one in memory is due, if any. */
  get nextDue (): number | undefined {
    return this.heap.peek()?.at
  }

  /** Where the stored ones only on disk start after (for a purge to clear them). */
  get after (): DueOrder {
    return { ...this.tail }
  }

  /** Those in memory. */
  * [Symbol.iterator] (): Iterator<DelayedEntry> {
    yield * this.heap
  }

  /**
   * Adds a message of `queue` (counted there by the caller): to the heap, or (stored in due order
   * after the page the heap holds) only to the store, read back when the heap runs low.
   * `announce`: tell the owner when it is due (not while restoring: the owner asks once the start is done).
   */
  add (queue: Queue, message: QueuedMessage, announce: boolean): void {
    const at = message.dueAt as number
    const order = message.dueOrder
    if (order != null && earlier(this.tail, { at, order })) {
      if (this.onDisk > 0 || this.heap.length >= this.pageSize || this.bytes >= this.pageBytes) {
        this.onDisk++
        if (this.loading) this.storedWhileLoading.push({ at, order })
        this.events.pagedOut?.(message)
        return
      }
      this.tail = { at, order }
    }
    this.push({ at, order: order ?? 0, message, queue }, announce)
    // Messages due before the page's end join it (retries, shorter delays): past two pages, the
    // latest go back to being only in the store.
    if (this.heap.length > 2 * this.pageSize || this.bytes > 2 * this.pageBytes) this.trim()
  }

  /** Counts `count` more that are only in the store (at a start, after those restored). */
  restoreOnDisk (count: number): void {
    this.onDisk += count
  }

  /** Takes out the next one due by `now` (uncounted from its queue), or undefined. */
  takeDue (now: number): DelayedEntry | undefined {
    const next = this.heap.peek()
    if (next == null || next.at > now) return undefined
    this.heap.pop()
    this.bytes -= next.message.payload.byteLength
    next.queue.removeDelayed()
    return next
  }

  /**
   * Takes out every one of `queues` (a purge or a deletion): returns those in memory, and how many
   * were only on disk; those queues count none any more.
   */
  removeQueues (queues: Queue[]): { messages: QueuedMessage[], onDisk: Queue[], onDiskCount: number } {
    const gone = new Set(queues)
    const messages: QueuedMessage[] = []
    for (const { message, queue } of this.heap.remove((s) => gone.has(s.queue))) {
      queue.removeDelayed()
      this.bytes -= message.payload.byteLength
      messages.push(message)
    }
    // What is still counted as delayed is only in the store.
    const onDisk = queues.filter((q) => q.delayed > 0)
    let onDiskCount = 0
    for (const queue of onDisk) onDiskCount += queue.dropDelayed()
    this.onDisk -= onDiskCount
    if (onDisk.length > 0) this.generation++
    return { messages, onDisk, onDiskCount }
  }

  /**
   * The next page, read from the store after the `after` given with `delayedPageNeeded`, in due
   * order. Returns those already due (uncounted from their queues, in due order), and how many the
   * store held fewer than counted (forgotten).
   */
  load (generation: number, page: Array<{ message: QueuedMessage, queue: Queue }>, now: number): { due: Array<{ message: QueuedMessage, queue: Queue }>, lost: number } {
    this.loading = false
    const due: Array<{ message: QueuedMessage, queue: Queue }> = []
    if (generation !== this.generation) {
      this.storedWhileLoading = [] // purged or trimmed meanwhile: the page is stale
      return { due, lost: 0 }
    }
    // A message due within the page that was stored after the page was read is not in it: the page
    // is taken only up to it (the rest is read again), so the tail never passes a message on disk.
    const missed = this.storedWhileLoading
    this.storedWhileLoading = []
    if (missed.length > 0) {
      const read = new Set(page.map((p) => p.message.dueOrder))
      for (const m of missed) {
        if (read.has(m.order)) continue
        const at = page.findIndex((p) => !earlier({ at: p.message.dueAt as number, order: p.message.dueOrder as number }, m))
        if (at >= 0) page = page.slice(0, at)
      }
    }
    for (const entry of page) {
      this.onDisk--
      const at = entry.message.dueAt as number
      const order = entry.message.dueOrder as number
      if (earlier(this.tail, { at, order })) this.tail = { at, order }
      if (at <= now) {
        entry.queue.removeDelayed()
        due.push(entry)
      } else {
        this.push({ at, order, message: entry.message, queue: entry.queue }, true)
      }
    }
    // The store had fewer than counted (a read passes over what is not ours): trust the store.
    let lost = 0
    if (page.length === 0 && missed.length === 0 && this.onDisk > 0) {
      lost = this.onDisk
      this.onDisk = 0
    }
    return { due, lost }
  }

  /** Asks the owner for the next page when few are left in memory and more are on disk. */
  askPage (): void {
    if (this.onDisk > 0 && !this.loading && this.heap.length <= this.pageSize / 2 && this.bytes <= this.pageBytes / 2) {
      this.loading = true
      this.events.delayedPageNeeded?.({ ...this.tail }, this.generation)
    }
  }

  private push (entry: DelayedEntry, announce: boolean): void {
    this.heap.push(entry)
    this.bytes += entry.message.payload.byteLength
    if (announce) this.events.delayedUntil?.(entry.at)
  }

  /** Keeps the soonest page in memory; the stored ones after it are left to the store. */
  private trim (): void {
    const all = [...this.heap].sort((a, b) => earlier(a, b) ? -1 : earlier(b, a) ? 1 : 0)
    let count = 0
    let bytes = 0
    let tail: DueOrder = { at: -Infinity, order: -Infinity }
    const dropped = new Set<DelayedEntry>()
    for (const s of all) {
      if (s.message.dueOrder == null) continue // not stored in due order: stays
      if (count < this.pageSize && bytes < this.pageBytes) {
        count++
        bytes += s.message.payload.byteLength
        tail = s
      } else {
        dropped.add(s)
      }
    }
    if (dropped.size === 0) return
    this.heap.remove((s) => dropped.has(s))
    for (const s of dropped) {
      this.bytes -= s.message.payload.byteLength
      this.events.pagedOut?.(s.message)
    }
    this.onDisk += dropped.size
    this.tail = { at: tail.at, order: tail.order }
    this.generation++ // a page being read after the old tail would skip the dropped ones
  }
}
