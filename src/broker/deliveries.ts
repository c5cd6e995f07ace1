/**
 * The engine's deliveries in flight: by tag (a u32 the consumer settles with), and in deadline
 * order. Pure state, part of the engine; a delivery counts against its subscription's credit and
 * in its queue until it is released.
 */
import { Deque } from '../deque.js'
import type { InFlight } from './engine-types.js'
import type { Queue, QueuedMessage, Subscription } from './queue.js'

export class Deliveries<Owner> {
  private readonly byTag = new Map<number, InFlight<Owner>>()
  /** In the order they were made, which is deadline order; settled ones are skipped. */
  private readonly deadlines = new Deque<InFlight<Owner>>()
  private nextTag = 0
  private tagsWrapped = false

  /** A new delivery of `message` (its attempts count it) to `sub`, due back by `deadline`. */
  start (sub: Subscription<Owner>, queue: Queue, message: QueuedMessage, deadline: number): InFlight<Owner> {
    this.nextTag = (this.nextTag + 1) >>> 0
    if (this.nextTag === 0) this.tagsWrapped = true
    // Until the u32 tags wrap around, a new one cannot be in use.
    while (this.tagsWrapped && (this.nextTag === 0 || this.byTag.has(this.nextTag))) this.nextTag = (this.nextTag + 1) >>> 0
    message.attempts++
    const d: InFlight<Owner> = { tag: this.nextTag, sub, queue, message, deadline, settled: false }
    this.byTag.set(d.tag, d)
    this.deadlines.push(d)
    sub.unacked++
    queue.inFlight++
    queue.delivered++
    return d
  }

  /** Deliveries kept in deadline order: those in flight, and settled ones not dropped yet. */
  get tracked (): number {
    return this.deadlines.length
  }

  /** Releases `owner`'s delivery `tag`: undefined when the tag is unknown or not the owner's. */
  settle (owner: Owner, tag: number): InFlight<Owner> | undefined {
    const d = this.byTag.get(tag)
    if (d == null || d.sub.owner !== owner) return undefined
    this.release(d)
    d.sub.timedOut = false
    // Settled deliveries at the front are dropped now, so the deadline list stays short.
    while (this.deadlines.peek()?.settled === true) this.deadlines.shift()
    // Behind one held for long (a slow or hostile consumer's) they would stay, each with its
    // message, for a visibility timeout: at 400,000 acks a second a consumer that never acked grew
    // the broker by 90 MB a second. Once they are most of the list, it is rebuilt without them.
    if (this.deadlines.length > 2 * this.byTag.size + 1024) {
      for (const kept of this.deadlines.drain()) if (!kept.settled) this.deadlines.push(kept)
    }
    return d
  }

  /** Ends a delivery: no longer in flight, its credit back. */
  release (d: InFlight<Owner>): void {
    this.byTag.delete(d.tag)
    d.settled = true
    d.sub.unacked--
    d.queue.inFlight--
  }

  /** The next unsettled delivery whose deadline passed by `now`, taken out of the deadline order (not released), or undefined. */
  nextExpired (now: number): InFlight<Owner> | undefined {
    for (let d = this.deadlines.peek(); d != null; d = this.deadlines.peek()) {
      if (d.settled) {
        this.deadlines.shift()
        continue
      }
      if (d.deadline > now) return undefined
      this.deadlines.shift()
      return d
    }
    return undefined
  }

  /** Every delivery in flight, in no particular order. */
  values (): Iterable<InFlight<Owner>> {
    return this.byTag.values()
  }

  /** The deliveries in flight that match `test`, as a list (to release them while going through it). */
  where (test: (d: InFlight<Owner>) => boolean): Array<InFlight<Owner>> {
    const out: Array<InFlight<Owner>> = []
    for (const d of this.byTag.values()) {
      if (test(d)) out.push(d)
    }
    return out
  }
}
