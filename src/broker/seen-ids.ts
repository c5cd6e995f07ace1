/**
 * Producer-supplied message ids seen within the dedup window, per command: a message whose id is
 * here is a duplicate, whichever producer sent it. Bounded in time (the window) and in count (the
 * oldest go first).
 */
import { Deque } from '../deque.js'

export class SeenIds {
  private readonly until = new Map<string, number>()
  /** In the order they were added, which is expiry order. */
  private readonly order = new Deque<{ key: string, command: string, id: string, until: number }>()

  constructor (private readonly max: number) {}

  has (command: string, id: string, now: number): boolean {
    return (this.until.get(`${command}\n${id}`) ?? 0) > now
  }

  add (command: string, id: string, until: number): void {
    const key = `${command}\n${id}`
    this.until.set(key, until)
    this.order.push({ key, command, id, until })
    while (this.order.length > this.max) this.drop()
  }

  /** Forgets ids whose time has passed; calls `forgotten` for each. */
  sweep (now: number, forgotten: (command: string, id: string) => void): void {
    for (let e = this.order.peek(); e != null && e.until <= now; e = this.order.peek()) {
      const dropped = this.drop()
      if (dropped != null) forgotten(dropped.command, dropped.id)
    }
  }

  private drop (): { command: string, id: string } | undefined {
    const e = this.order.shift()
    if (e == null) return undefined
    // A later add of the same id set a later time: that one stays.
    if (this.until.get(e.key) !== e.until) return undefined
    this.until.delete(e.key)
    return e
  }
}
