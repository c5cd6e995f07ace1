/**
 * Results kept for producers that are not connected, delivered when the same peer ID comes back.
 * Bounded in count and payload bytes per producer, and in time: past a bound the oldest go.
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
  private readonly boxes = new Map<string, { results: Deque<KeptResult>, bytes: number }>()
  dropped = 0

  /**
   * @param removed called for every result that leaves the mailbox: taken, expired or pushed out
   * @param pushedOut called when results of `producer` are pushed out by the bounds
   */
  constructor (
    private readonly retention: number,
    private readonly maxPerProducer: number,
    private readonly removed: (r: KeptResult) => void = () => {},
    private readonly maxBytesPerProducer = Infinity,
    private readonly pushedOut: (producer: string) => void = () => {}
  ) {}

  keep (producer: string, result: KeptResult): void {
    let box = this.boxes.get(producer)
    if (box == null) {
      box = { results: new Deque(), bytes: 0 }
      this.boxes.set(producer, box)
    }
    box.results.push(result)
    box.bytes += result.payload.byteLength
    let pushed = false
    while (box.results.length > this.maxPerProducer || (box.bytes > this.maxBytesPerProducer && box.results.length > 1)) {
      const r = box.results.shift() as KeptResult
      box.bytes -= r.payload.byteLength
      this.removed(r)
      this.dropped++
      pushed = true
    }
    if (pushed) this.pushedOut(producer)
  }

  /** Whether results are kept for `producer`. */
  holds (producer: string): boolean {
    return this.boxes.has(producer)
  }

  /** Removes and returns what is kept for `producer` and still within the retention time. */
  take (producer: string, now: number): KeptResult[] {
    const box = this.boxes.get(producer)
    if (box == null) return []
    this.boxes.delete(producer)
    const results = box.results.drain()
    for (const r of results) this.removed(r)
    return results.filter((r) => now - r.keptAt <= this.retention)
  }

  /** Drops results older than the retention time. */
  sweep (now: number): void {
    for (const [producer, box] of this.boxes) {
      while (box.results.length > 0 && now - (box.results.peek() as KeptResult).keptAt > this.retention) {
        const r = box.results.shift() as KeptResult
        box.bytes -= r.payload.byteLength
        this.removed(r)
        this.dropped++
      }
      if (box.results.length === 0) this.boxes.delete(producer)
    }
  }

  get size (): number {
    let n = 0
    for (const box of this.boxes.values()) n += box.results.length
    return n
  }
}
