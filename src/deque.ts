/** A double-ended queue on a growable ring buffer: O(1) at both ends (Array#shift is not). */
export class Deque<T> {
  private items: Array<T | undefined> = new Array(16)
  private head = 0
  private count = 0

  get length (): number {
    return this.count
  }

  push (item: T): void {
    if (this.count === this.items.length) this.grow()
    this.items[(this.head + this.count) & (this.items.length - 1)] = item
    this.count++
  }

  unshift (item: T): void {
    if (this.count === this.items.length) this.grow()
    this.head = (this.head - 1) & (this.items.length - 1)
    this.items[this.head] = item
    this.count++
  }

  shift (): T | undefined {
    if (this.count === 0) return undefined
    const item = this.items[this.head]
    this.items[this.head] = undefined
    this.head = (this.head + 1) & (this.items.length - 1)
    this.count--
    return item
  }

  peek (): T | undefined {
    return this.count === 0 ? undefined : this.items[this.head]
  }

  /** Oldest first, without removing them. */
  * [Symbol.iterator] (): Iterator<T> {
    for (let i = 0; i < this.count; i++) yield this.items[(this.head + i) & (this.items.length - 1)] as T
  }

  /** Removes and returns every item, oldest first. */
  drain (): T[] {
    const out: T[] = []
    for (let item = this.shift(); item !== undefined; item = this.shift()) out.push(item)
    return out
  }

  private grow (): void {
    const next = new Array<T | undefined>(this.items.length * 2)
    for (let i = 0; i < this.count; i++) next[i] = this.items[(this.head + i) & (this.items.length - 1)]
    this.items = next
    this.head = 0
  }
}
