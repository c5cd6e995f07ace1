/**
 * Group commit: writes gathered during one turn of the event loop go to the store as one synced
 * batch, and while that batch is being written the next one gathers. Many concurrent publishes
 * share one sync, so durability does not cost a sync per message.
 */
import type { Store, StoreOp } from './store.js'

export type Durable = (err?: Error) => void

export class GroupCommit {
  private ops: StoreOp[] = []
  /** Callbacks for the ops gathered now, and for the batch being written. */
  private waiting: Durable[] = []
  private writing: Durable[] | undefined
  private scheduled = false
  private idle: Array<() => void> = []
  /** Batches written, and ops in them, since the start. */
  batches = 0
  written = 0

  /**
   * @param beforeWrite called as each batch is taken, to add what the caller gathers per batch
   */
  constructor (private readonly store: Store, private readonly onError: (err: Error) => void, private readonly beforeWrite?: () => void) {}

  put (key: Uint8Array, value: Uint8Array): void {
    this.ops.push({ type: 'put', key, value })
    this.schedule()
  }

  del (key: Uint8Array): void {
    this.ops.push({ type: 'del', key })
    this.schedule()
  }

  /** Calls `done` once everything put or deleted so far is on disk, or with the error that kept it off. */
  whenDurable (done: Durable): void {
    if (this.ops.length > 0) this.waiting.push(done)
    else if (this.writing != null) this.writing.push(done)
    else queueMicrotask(done)
  }

  /** Resolves when nothing is waiting to be written. */
  async flush (): Promise<void> {
    if (this.ops.length === 0 && this.writing == null) return
    await new Promise<void>((resolve) => { this.idle.push(resolve) })
  }

  private schedule (): void {
    if (this.scheduled || this.writing != null) return
    this.scheduled = true
    // After this turn's I/O callbacks, so everything they wrote goes in one batch.
    setImmediate(() => { void this.commit() })
  }

  private async commit (): Promise<void> {
    this.scheduled = false
    // One batch at a time: a commit scheduled while one is written leaves its ops to that one's
    // end. (Two at once let the second, empty, batch clear `writing` while the first was still
    // on its way, so whenDurable answered before that first batch was on disk.)
    if (this.writing != null) return
    this.beforeWrite?.()
    const ops = this.ops
    const callbacks = this.waiting
    this.ops = []
    this.waiting = []
    this.writing = callbacks
    let error: Error | undefined
    try {
      await this.store.write(ops)
      this.batches++
      this.written += ops.length
    } catch (err) {
      error = err as Error
      this.onError(error)
    }
    this.writing = undefined
    for (const done of callbacks) {
      try {
        done(error)
      } catch (err) {
        this.onError(err as Error)
      }
    }
    if (this.ops.length > 0) {
      this.scheduled = true
      void this.commit()
    } else {
      for (const resolve of this.idle.splice(0)) resolve()
    }
  }
}
