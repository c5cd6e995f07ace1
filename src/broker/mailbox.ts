/**
 * Results kept for producer sessions that have no stream open, or whose stream does not read its
 * answers (producers.ts: "behind"), each for its producer session (or any of its peer's, when that
 * is unknown), handed over when a stream of it says Hello or drains. Bounded in count and payload
 * bytes per producer peer, and in time: past a bound the oldest go.
 */
import { Deque } from '../deque.js'
import type { Result } from '../protocol/frames.js'

/** A Result frame's fields, kept until its producer session comes back or reads again. */
export interface KeptResult extends Omit<Result, 'type'> {
  keptAt: number
  /** The producer session (named in its Hello) it is for; undefined: any session of the peer (its origin was not known). */
  session?: string
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

  /**
   * Removes and returns what is kept for `producer` that `wanted` says is for the taker, and is
   * still within the retention time; the rest stays, in order.
   */
  take (producer: string, now: number, wanted: (r: KeptResult) => boolean = () => true): KeptResult[] {
    const box = this.boxes.get(producer)
    if (box == null) return []
    const taken: KeptResult[] = []
    const left: { results: Deque<KeptResult>, bytes: number } = { results: new Deque(), bytes: 0 }
    for (const r of box.results.drain()) {
      if (wanted(r)) {
        this.removed(r)
        taken.push(r)
      } else {
        left.results.push(r)
        left.bytes += r.payload.byteLength
      }
    }
    if (left.results.length > 0) this.boxes.set(producer, left)
    else this.boxes.delete(producer)
    return taken.filter((r) => now - r.keptAt <= this.retention)
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
