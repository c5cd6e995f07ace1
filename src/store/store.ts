/**
 * The broker's embedded store, behind a small interface: ordered binary keys, atomic batches that
 * are on disk when they resolve, and ordered reads by key prefix. `LevelStore` keeps it in LevelDB
 * (classic-level) in the broker's data directory; `MemoryStore` keeps it in this process, for tests
 * and for a broker run with `-memory`.
 */
export type StoreOp =
  | { type: 'put', key: Uint8Array, value: Uint8Array }
  | { type: 'del', key: Uint8Array }

export interface Store {
  open: () => Promise<void>
  close: () => Promise<void>
  /** Applies `ops` atomically; they are synced to disk when the promise resolves. */
  write: (ops: StoreOp[]) => Promise<void>
  /** Every entry whose key begins with `prefix` (and sorts after `after`, if given), in key order, at most `limit`. */
  entries: (prefix: Uint8Array, after?: Uint8Array, limit?: number) => AsyncIterable<[key: Uint8Array, value: Uint8Array]>
  /** The keys of `entries(prefix)`, without reading their values (to count what is stored). */
  keys: (prefix: Uint8Array) => AsyncIterable<Uint8Array>
  /** Deletes every key from `from` (inclusive) to `to` (exclusive). */
  clear: (from: Uint8Array, to: Uint8Array) => Promise<void>
  /** Bytes the store takes on disk; absent for a store that keeps nothing on disk. */
  diskBytes?: () => Promise<number>
}

/** The first key after every key that begins with `prefix` (for a range's upper bound). */
export function prefixEnd (prefix: Uint8Array): Uint8Array | undefined {
  const end = prefix.slice()
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++
      return end.subarray(0, i + 1)
    }
  }
  return undefined
}

/** A store in this process's memory: the same behaviour, nothing kept after the process ends. */
export class MemoryStore implements Store {
  private readonly data = new Map<string, [Uint8Array, Uint8Array]>()

  async open (): Promise<void> {}
  async close (): Promise<void> {}

  async write (ops: StoreOp[]): Promise<void> {
    for (const op of ops) {
      const k = keyString(op.key)
      if (op.type === 'put') this.data.set(k, [op.key.slice(), op.value.slice()])
      else this.data.delete(k)
    }
  }

  async clear (from: Uint8Array, to: Uint8Array): Promise<void> {
    const [f, t] = [keyString(from), keyString(to)]
    for (const k of [...this.data.keys()]) {
      if (k >= f && k < t) this.data.delete(k)
    }
  }

  async * keys (prefix: Uint8Array): AsyncIterable<Uint8Array> {
    for await (const [key] of this.entries(prefix)) yield key
  }

  async * entries (prefix: Uint8Array, after?: Uint8Array, limit = Infinity): AsyncIterable<[Uint8Array, Uint8Array]> {
    const p = keyString(prefix)
    const a = after != null ? keyString(after) : undefined
    const keys = [...this.data.keys()].filter((k) => k.startsWith(p) && (a == null || k > a)).sort().slice(0, limit)
    for (const k of keys) {
      const entry = this.data.get(k)
      if (entry != null) yield entry
    }
  }
}

/** Latin-1 maps each byte to one UTF-16 unit, so these strings sort as the bytes do. */
export function keyString (key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1')
}
