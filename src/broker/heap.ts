/** A binary min-heap: the smallest item (by `less`) first; O(log n) push and pop. */
export class Heap<T> {
  private readonly items: T[] = []

  constructor (private readonly less: (a: T, b: T) => boolean) {}

  get length (): number {
    return this.items.length
  }

  peek (): T | undefined {
    return this.items[0]
  }

  push (item: T): void {
    const a = this.items
    a.push(item)
    let i = a.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.less(a[i], a[parent])) break
      ;[a[i], a[parent]] = [a[parent], a[i]]
      i = parent
    }
  }

  pop (): T | undefined {
    const a = this.items
    if (a.length === 0) return undefined
    const top = a[0]
    const last = a.pop() as T
    if (a.length > 0) {
      a[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let min = i
        if (l < a.length && this.less(a[l], a[min])) min = l
        if (r < a.length && this.less(a[r], a[min])) min = r
        if (min === i) break
        ;[a[i], a[min]] = [a[min], a[i]]
        i = min
      }
    }
    return top
  }

  /** Removes the items `drop` says to, and returns them. */
  remove (drop: (item: T) => boolean): T[] {
    const removed = this.items.filter(drop)
    if (removed.length === 0) return removed
    const kept = this.items.filter((item) => !drop(item))
    this.items.length = 0
    for (const item of kept) this.push(item)
    return removed
  }

  /** Every item, in no particular order. */
  [Symbol.iterator] (): Iterator<T> {
    return this.items[Symbol.iterator]()
  }
}
