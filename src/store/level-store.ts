/** The broker's store in LevelDB (classic-level, prebuilt binaries shipped in the npm package). */
import { ClassicLevel } from 'classic-level'
import { prefixEnd, type Store, type StoreOp } from './store.js'

/** Entries read from LevelDB per call while iterating. */
const READ_BATCH = 1000

export class LevelStore implements Store {
  private readonly db: ClassicLevel<Uint8Array, Uint8Array>

  constructor (readonly location: string) {
    this.db = new ClassicLevel<Uint8Array, Uint8Array>(location, { keyEncoding: 'view', valueEncoding: 'view' })
  }

  async open (): Promise<void> {
    try {
      await this.db.open()
    } catch (err) {
      const cause = (err as { cause?: Error }).cause ?? err as Error
      throw new Error(`Cannot open the message store in ${this.location}: ${cause.message}`, { cause: err })
    }
  }

  async close (): Promise<void> {
    await this.db.close()
  }

  async write (ops: StoreOp[]): Promise<void> {
    // A chained batch, not db.batch(array): measured 4x less CPU per op (the array form copies and
    // checks each op with its options in JS).
    const batch = this.db.batch()
    for (const op of ops) {
      if (op.type === 'put') batch.put(op.key, op.value)
      else batch.del(op.key)
    }
    await batch.write({ sync: true })
  }

  async clear (from: Uint8Array, to: Uint8Array): Promise<void> {
    await this.db.clear({ gte: from, lt: to })
  }

  async * keys (prefix: Uint8Array): AsyncIterable<Uint8Array> {
    const end = prefixEnd(prefix)
    const it = this.db.keys({ gte: prefix, ...(end != null ? { lt: end } : {}) })
    try {
      while (true) {
        const batch = await it.nextv(READ_BATCH)
        if (batch.length === 0) return
        yield * batch
      }
    } finally {
      await it.close()
    }
  }

  async * entries (prefix: Uint8Array, after?: Uint8Array, limit = Infinity): AsyncIterable<[Uint8Array, Uint8Array]> {
    const end = prefixEnd(prefix)
    const it = this.db.iterator({
      ...(after != null ? { gt: after } : { gte: prefix }),
      ...(end != null ? { lt: end } : {}),
      limit: Number.isFinite(limit) ? limit : -1
    })
    try {
      while (true) {
        const batch = await it.nextv(READ_BATCH)
        if (batch.length === 0) return
        for (const entry of batch) yield entry as [Uint8Array, Uint8Array]
      }
    } finally {
      await it.close()
    }
  }
}
