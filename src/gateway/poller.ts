/**
 * One consumption of the HTTP gateway: a subscription (a pattern, in a group) of a token's consumer,
 * whose deliveries wait here until an HTTP client polls for them. A delivery given to a poll is
 * held under a receipt until the client acks, nacks or answers it, or until the visibility timeout
 * (counted from its delivery to the gateway) passes: then it is nacked, and the broker gives it to
 * another consumer. Deliveries no poll took when the consumption goes idle go back at once.
 */
import { randomBytes } from 'node:crypto'
import type { Message } from '../client/consumer.js'

/** A delivery the gateway holds for an HTTP client. */
export interface Held {
  readonly receipt: string
  readonly message: Message
  /** ms since the epoch past which the receipt is void. */
  readonly deadline: number
  /** The delivery's handler promise: resolving it acks (or answers), rejecting it nacks. */
  readonly settle: (answer: unknown) => void
  readonly fail: (err: Error) => void
  timer?: ReturnType<typeof setTimeout>
}

/** Why a receipt's message went back to its queue. */
export class VisibilityTimeoutError extends Error {
  name = 'VisibilityTimeoutError'
}

export class Poller {
  /** Delivered to the gateway, not yet given to a poll. */
  private readonly buffer: Held[] = []
  /** Given to a poll, not yet settled. */
  private readonly given = new Set<Held>()
  /** Polls waiting for a delivery: the first to come is given to the first of them. */
  private readonly waiters = new Set<(held: Held[]) => void>()
  /** ms since the epoch of its latest poll (the gateway ends a consumption idle too long). */
  lastPolled = Date.now()
  closed = false
  /** Called once by close() (the gateway unsubscribes there). */
  onClose?: () => void

  /**
   * @param receipts the token's receipts, shared by its consumptions (a settle names only the receipt)
   * @param visibility ms a receipt lasts from delivery
   */
  constructor (private readonly receipts: Map<string, Held>, private readonly visibility: number) {}

  /** The subscription's handler: holds the delivery until it is settled through its receipt. */
  readonly handler = async (message: Message): Promise<unknown> => {
    if (this.closed) throw new Error('The gateway stopped consuming this')
    return await new Promise<unknown>((resolve, reject) => {
      const held: Held = {
        receipt: randomBytes(18).toString('base64url'),
        message,
        deadline: Date.now() + this.visibility,
        settle: (answer) => { this.forget(held); resolve(answer) },
        fail: (err) => { this.forget(held); reject(err) }
      }
      held.timer = setTimeout(() => { held.fail(new VisibilityTimeoutError(`Not settled within the gateway's visibility timeout of ${this.visibility} ms`)) }, this.visibility)
      held.timer.unref?.()
      this.receipts.set(held.receipt, held)
      const waiter = this.waiters.values().next().value
      if (waiter != null) {
        this.given.add(held)
        waiter([held])
      } else {
        this.buffer.push(held)
      }
    })
  }

  /** Up to `max` deliveries: those waiting now, else the first to come within `wait` ms (none: an empty list). */
  async poll (max: number, wait: number, signal?: AbortSignal): Promise<Held[]> {
    this.lastPolled = Date.now()
    if (this.buffer.length > 0 || wait === 0 || this.closed) return this.give(this.buffer.splice(0, max))
    return await new Promise<Held[]>((resolve) => {
      const done = (held: Held[]): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.waiters.delete(done)
        this.lastPolled = Date.now()
        resolve(held)
      }
      const onAbort = (): void => { done([]) }
      const timer = setTimeout(() => { done([]) }, wait)
      this.waiters.add(done)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Puts deliveries a poll took but could not give back at the head of the buffer, for the next poll. */
  giveBack (held: Held[]): void {
    for (const h of held) this.given.delete(h)
    this.buffer.unshift(...held.filter((h) => this.receipts.has(h.receipt)))
  }

  /** Whether an HTTP client holds one of its deliveries, or waits in a poll. */
  get busy (): boolean {
    return this.waiters.size > 0 || this.given.size > 0
  }

  private give (held: Held[]): Held[] {
    for (const h of held) this.given.add(h)
    return held
  }

  /** Ends it: deliveries no poll took go back to their queues at once, polls waiting get nothing. */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.onClose?.()
    for (const held of this.buffer.splice(0)) held.fail(new Error('The gateway stopped consuming this'))
    for (const waiter of [...this.waiters]) waiter([])
  }

  private forget (held: Held): void {
    clearTimeout(held.timer)
    this.receipts.delete(held.receipt)
    this.given.delete(held)
    const i = this.buffer.indexOf(held)
    if (i >= 0) this.buffer.splice(i, 1)
  }
}
