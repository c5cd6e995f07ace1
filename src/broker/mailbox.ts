/**
 * Results kept for producers that are not connected, each for its producer session (or any of
 * its peer's, when that is unknown), handed over when a stream of it says Hello. Bounded in count
 * per producer peer and in time.
 */
import { Deque } from '../deque.js'
import type { Result } from '../protocol/frames.js'

/** A Result frame's fields, kept until its producer comes back. */
export interface KeptResult extends Omit<Result, 'type'> {
  keptAt: number
  /** The producer session (named in its Hello) it is for; undefined: any session of the peer (its origin was not known). */
  session?: string
  /** Where the store keeps it (set by the journal). */
  key?: Uint8Array
}

export class Mailbox {
  private readonly boxes = new Map<string, Deque<KeptResult>>()
  dropped = 0

  /** @param removed called for every result that leaves the mailbox: taken, expired or pushed out */
  constructor (private readonly retention: number, private readonly maxPerProducer: number, private readonly removed: (r: KeptResult) => void = () => {}) {}

  keep (producer: string, result: KeptResult): void {
    let box = this.boxes.get(producer)
    if (box == null) {
      box = new Deque()
      this.boxes.set(producer, box)
    }
    box.push(result)
    if (box.length > this.maxPerProducer) {
      this.removed(box.shift() as KeptResult)
      this.dropped++
    }
  }

  /**
   * Removes and returns what is kept for `producer` that `wanted` says is for the taker, and is
   * still within the retention time; the rest stays, in order.
   */
  take (producer: string, now: number, wanted: (r: KeptResult) => boolean = () => true): KeptResult[] {
    const box = this.boxes.get(producer)
    if (box == null) return []
    const taken: KeptResult[] = []
    const left = new Deque<KeptResult>()
    for (const r of box.drain()) {
      if (wanted(r)) {
        this.removed(r)
        taken.push(r)
      } else {
        left.push(r)
      }
    }
    if (left.length > 0) this.boxes.set(producer, left)
    else this.boxes.delete(producer)
    return taken.filter((r) => now - r.keptAt <= this.retention)
  }

  /** Drops results older than the retention time. */
  sweep (now: number): void {
    for (const [producer, box] of this.boxes) {
      while (box.length > 0 && now - (box.peek() as KeptResult).keptAt > this.retention) {
        this.removed(box.shift() as KeptResult)
        this.dropped++
      }
      if (box.length === 0) this.boxes.delete(producer)
    }
  }

  get size (): number {
    let n = 0
    for (const box of this.boxes.values()) n += box.length
    return n
  }
}
