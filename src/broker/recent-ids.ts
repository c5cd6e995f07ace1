/**
 * The ids of the last N messages one producer published, to drop the duplicates a reconnecting
 * producer resends. A producer resends only what was unconfirmed, which is at most its window of
 * the most recent messages, so remembering the last `capacity >= window` ids per producer is exact.
 */
import { Deque } from './deque.js'

export class RecentIds {
  private readonly ids = new Set<string>()
  private readonly order = new Deque<string>()
  lastSeen = 0

  constructor (private readonly capacity: number) {}

  /** Records `id`; returns true if it was already there (a duplicate). */
  seen (id: string, now: number): boolean {
    this.lastSeen = now
    if (this.ids.has(id)) return true
    this.ids.add(id)
    this.order.push(id)
    if (this.order.length > this.capacity) this.ids.delete(this.order.shift() as string)
    return false
  }
}
