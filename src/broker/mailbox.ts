/**
 * Results kept for producers that are not connected, delivered when the same peer ID comes back.
 * Bounded in count per producer and in time.
 */
import { Deque } from '../deque.js'
import type { Result } from '../protocol/frames.js'

/** A Result frame's fields, kept until its producer comes back. */
export interface KeptResult extends Omit<Result, 'type'> {
  keptAt: number
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

  /** Removes and returns what is kept for `producer` and still within the retention time. */
  take (producer: string, now: number): KeptResult[] {
    const box = this.boxes.get(producer)
    if (box == null) return []
    this.boxes.delete(producer)
    const results = box.drain()
    for (const r of results) this.removed(r)
    return results.filter((r) => now - r.keptAt <= this.retention)
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
