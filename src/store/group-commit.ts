/**
 * Group commit: writes gathered during one turn of the event loop go to the store as one synced
 * batch, and while that batch is being written the next one gathers. Many concurrent publishes
 * share one sync, so durability does not cost a sync per message.
 *
 * A batch the store could not write (a full disk) is not dropped: it goes in front of the next
 * one, which is tried again after a backoff (100 ms doubling to 2 s) until the store takes it.
 * Meanwhile `failure` is set and `whenDurable` answers with it at once, while `whenStored`
 * waits for the retry that succeeds.
 */
import { keyString, type Store, type StoreOp } from './store.js'

export type Durable = (err?: Error) => void

const RETRY_FIRST = 100
const RETRY_MAX = 2_000

interface Batch {
  ops: StoreOp[]
  /** Called when this batch is written, or with the error that kept it off. */
  durable: Durable[]
  /** Called when these ops are written, in this batch or a retry. */
  stored: Durable[]
}

const empty = (): Batch => ({ ops: [], durable: [], stored: [] })

export class GroupCommit {
  private gathering: Batch = empty()
  private writing: Batch | undefined
  private scheduled = false
  private idle: Array<() => void> = []
  private retryDelay = RETRY_FIRST
  private retry?: ReturnType<typeof setTimeout>
  private closing = false
  /** Why the last write failed, while the store is not writing. */
  failure: Error | undefined
  /** Batches written, and ops in them, since the start. */
  batches = 0
  written = 0
  /** Told how long each batch took to write and sync, in seconds (for the store's metrics). */
  onWritten?: (seconds: number) => void

  /**
   * @param onError called when the store stops writing (not again for each retry)
   * @param beforeWrite called as each batch is taken, to add what the caller gathers per batch
   * @param onRecover called when the store writes again after a failure
   */
  constructor (private readonly store: Store, private readonly onError: (err: Error) => void, private readonly beforeWrite?: () => void, private readonly onRecover?: () => void) {}

  put (key: Uint8Array, value: Uint8Array): void {
    this.gathering.ops.push({ type: 'put', key, value })
    this.schedule()
  }

  del (key: Uint8Array): void {
    this.gathering.ops.push({ type: 'del', key })
    this.schedule()
  }

  /**
   * Calls `done` once everything put or deleted so far is on disk, or with the error that kept
   * it off (at once while the store is failing).
   */
  whenDurable (done: Durable): void {
    const failure = this.failure
    if (failure != null) queueMicrotask(() => { done(failure) })
    else if (this.gathering.ops.length > 0) this.gathering.durable.push(done)
    else if (this.writing != null) this.writing.durable.push(done)
    else queueMicrotask(done)
  }

  /**
   * Calls `done` once everything put or deleted so far is on disk, however many retries that
   * takes; with an error only if the commit is closed before.
   */
  whenStored (done: Durable): void {
    if (this.gathering.ops.length > 0) this.gathering.stored.push(done)
    else if (this.writing != null) this.writing.stored.push(done)
    else queueMicrotask(done)
  }

  /**
   * The store's entries as they will be once everything pending is written (`Store.entries` with
   * the puts and deletes not yet on disk laid over it), so a read is right while a batch is being
   * written, and while the store cannot write at all.
   */
  async * entries (prefix: Uint8Array, after?: Uint8Array, limit = Infinity): AsyncIterable<[Uint8Array, Uint8Array]> {
    const from = keyString(prefix)
    const above = after != null ? keyString(after) : undefined
    const latest = new Map<string, StoreOp>()
    for (const ops of [this.writing?.ops ?? [], this.gathering.ops]) {
      for (const op of ops) {
        const k = keyString(op.key)
        if (k.startsWith(from) && (above == null || k > above)) latest.set(k, op)
      }
    }
    if (latest.size === 0) {
      yield * this.store.entries(prefix, after, limit)
      return
    }
    const pending = [...latest].sort((a, b) => a[0] < b[0] ? -1 : 1)
    let i = 0
    let n = 0
    // Pending puts before `key` (all when there is none), then the pending op on `key` itself if any.
    const before = function * (key?: string): Generator<[Uint8Array, Uint8Array]> {
      for (; i < pending.length && (key == null || pending[i][0] < key) && n < limit; i++) {
        const op = pending[i][1]
        if (op.type === 'put') { n++; yield [op.key, op.value] }
      }
    }
    // Not limited: pending deletes may drop some of what the store has.
    for await (const [key, value] of this.store.entries(prefix, after)) {
      const k = keyString(key)
      yield * before(k)
      if (n >= limit) return
      if (i < pending.length && pending[i][0] === k) {
        const op = pending[i++][1]
        if (op.type === 'put') { n++; yield [op.key, op.value] }
      } else {
        n++
        yield [key, value]
      }
      if (n >= limit) return
    }
    yield * before()
  }

  /** Resolves when nothing is waiting to be written (which, while the store fails, is once it writes again). */
  async flush (): Promise<void> {
    if (this.gathering.ops.length === 0 && this.writing == null) return
    await new Promise<void>((resolve) => { this.idle.push(resolve) })
  }

  /**
   * Writes what is gathered and stops. While the store is failing, it makes one more try and then
   * gives up on what it could not write (its `whenStored` callbacks get the error).
   */
  async close (): Promise<void> {
    this.closing = true
    clearTimeout(this.retry)
    if (this.writing != null || this.scheduled) await new Promise<void>((resolve) => { this.idle.push(resolve) })
    // Until nothing is left (a callback may write more), or one try has failed.
    while (this.gathering.ops.length > 0) {
      await this.commit()
      if (this.failure != null) break
    }
    if (this.gathering.ops.length === 0) return
    const lost = this.gathering
    this.gathering = empty()
    const err = new Error(`Closed with ${lost.ops.length} unwritten store operations: ${this.failure?.message ?? 'the store failed'}`)
    for (const done of [...lost.durable, ...lost.stored]) this.call(done, err)
  }

  private schedule (): void {
    if (this.scheduled || this.writing != null || this.failure != null || this.closing) return
    this.scheduled = true
    // After this turn's I/O callbacks, so everything they wrote goes in one batch.
    setImmediate(() => { void this.commit() })
  }

  private async commit (): Promise<void> {
    this.retry = undefined
    // One batch at a time: a commit scheduled while one is written leaves its ops to that one's
    // end. (Two at once let the second, empty, batch clear `writing` while the first was still
    // on its way, so whenDurable answered before that first batch was on disk.)
    if (this.writing != null) {
      this.scheduled = false
      return
    }
    // What it puts joins this batch (`scheduled` still set, so it does not schedule another).
    this.beforeWrite?.()
    this.scheduled = false
    const batch = this.writing = this.gathering
    this.gathering = empty()
    let error: Error | undefined
    try {
      const started = performance.now()
      await this.store.write(batch.ops)
      this.onWritten?.((performance.now() - started) / 1000)
      this.batches++
      this.written += batch.ops.length
    } catch (err) {
      error = err as Error
    }
    this.writing = undefined
    if (error == null) {
      const recovered = this.failure != null
      this.failure = undefined
      this.retryDelay = RETRY_FIRST
      if (recovered) this.onRecover?.()
      for (const done of batch.durable) this.call(done)
      for (const done of batch.stored) this.call(done)
    } else {
      if (this.failure == null) this.onError(error)
      this.failure = error
      // Kept, in front of what gathered meanwhile (so later changes to a key still win).
      const next = this.gathering
      this.gathering = { ops: batch.ops.concat(next.ops), durable: [], stored: batch.stored.concat(next.stored) }
      for (const done of [...batch.durable, ...next.durable]) this.call(done, error)
    }
    if (this.closing) {
      for (const resolve of this.idle.splice(0)) resolve()
      return
    }
    if (this.failure != null) {
      this.retry = setTimeout(() => { void this.commit() }, this.retryDelay)
      this.retry.unref?.()
      this.retryDelay = Math.min(RETRY_MAX, this.retryDelay * 2)
    } else if (this.gathering.ops.length > 0) {
      this.scheduled = true
      void this.commit()
    } else {
      for (const resolve of this.idle.splice(0)) resolve()
    }
  }

  private call (done: Durable, err?: Error): void {
    try {
      done(err)
    } catch (e) {
      this.onError(e as Error)
    }
  }
}
