/** The store behind the broker (LevelDB on disk, and in memory) and its group commit. */
import { existsSync, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { GroupCommit } from '../src/store/group-commit.js'
import { LevelStore } from '../src/store/level-store.js'
import { MemoryStore, prefixEnd, type Store } from '../src/store/store.js'
import { onCleanup, tempDir } from './helpers.js'

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b)

async function all (store: Store, prefix: Uint8Array): Promise<Array<[number[], number[]]>> {
  const out: Array<[number[], number[]]> = []
  for await (const [k, v] of store.entries(prefix)) out.push([[...k], [...v]])
  return out
}

/** The resident KB of this process's mappings of files under `dir`. */
function mappedKB (dir: string): number {
  let kb = 0
  let inside = false
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s+(.*)$/.exec(line)
    if (mapping != null) inside = mapping[1].startsWith(dir + '/')
    else if (inside && line.startsWith('Rss:')) kb += Number(line.split(/\s+/)[1])
  }
  return kb
}

async function levelStore (dir?: string): Promise<LevelStore> {
  const store = new LevelStore(join(dir ?? await tempDir(), 'store'))
  await store.open()
  onCleanup(async () => { await store.close().catch(() => {}) })
  return store
}

describe.each([
  ['LevelStore', async () => await levelStore()],
  ['MemoryStore', async () => new MemoryStore()]
])('%s', (_name, make) => {
  it('applies a batch of puts and deletes, and reads a prefix in key order', async () => {
    const store = await make()
    await store.write([
      { type: 'put', key: bytes(2, 1), value: bytes(21) },
      { type: 'put', key: bytes(1, 9), value: bytes(19) },
      { type: 'put', key: bytes(1, 0xff, 0xff), value: bytes(1) },
      { type: 'put', key: bytes(1, 2), value: bytes(12) },
      { type: 'put', key: bytes(0xff), value: bytes(0) }
    ])
    await store.write([{ type: 'del', key: bytes(1, 9) }, { type: 'put', key: bytes(1, 3), value: bytes(13) }])
    expect(await all(store, bytes(1))).toEqual([[[1, 2], [12]], [[1, 3], [13]], [[1, 0xff, 0xff], [1]]])
    expect(await all(store, bytes(0xff))).toEqual([[[0xff], [0]]])
    expect(await all(store, bytes(3))).toEqual([])
  })
})

describe('LevelStore', () => {
  it('keeps what was written across a close and reopen', async () => {
    const dir = await tempDir()
    const first = await levelStore(dir)
    await first.write([{ type: 'put', key: bytes(7), value: bytes(1, 2, 3) }])
    await first.close()
    expect(await all(await levelStore(dir), bytes(7))).toEqual([[[7], [1, 2, 3]]])
  })

  it('keeps a bounded part of its tables mapped while everything is read, however large the store', async (ctx) => {
    if (!existsSync('/proc/self/smaps')) ctx.skip() // Linux only: the mapped pages are counted from /proc
    const dir = await tempDir()
    const location = join(dir, 'store')
    let store = await levelStore(dir)
    // 256 MiB of random values (no compression): as many messages of 1 MiB waiting.
    const value = (): Uint8Array => {
      const v = new Uint8Array(1024 * 1024)
      for (let at = 0; at < v.length; at += 65536) crypto.getRandomValues(v.subarray(at, at + 65536))
      return v
    }
    // Keys in mixed order, as many queues' messages are: LevelDB compacts them into small tables.
    for (let i = 0; i < 256; i++) await store.write([{ type: 'put', key: bytes(5, (i * 97) % 256), value: value() }])
    await store.close()
    store = await levelStore(dir)
    let read = 0
    for await (const [, v] of store.entries(bytes(5))) read += v.byteLength
    expect(read).toBe(256 * 1024 * 1024)
    const mappedMB = mappedKB(location) / 1024
    // With LevelDB's default of 1,000 open tables, every table read stays mapped: ~256 MB here;
    // with 64 open, ~90 MB.
    expect(mappedMB).toBeLessThan(150)
  }, 120_000)

  it('says clearly when it cannot open its directory', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'store'), 'a file where the store directory should be')
    await expect(new LevelStore(join(dir, 'store')).open()).rejects.toThrow(/Cannot open the message store in .*store/)
  })
})

describe('prefixEnd', () => {
  it('is the first key after the prefix range', () => {
    expect([...prefixEnd(bytes(1, 2)) ?? []]).toEqual([1, 3])
    expect([...prefixEnd(bytes(1, 0xff)) ?? []]).toEqual([2])
    expect(prefixEnd(bytes(0xff, 0xff))).toBeUndefined()
  })
})

describe('GroupCommit', () => {
  it('writes what one turn gathered in one batch, and calls back in order once it is on disk', async () => {
    const store = await levelStore()
    const commit = new GroupCommit(store, (err) => { throw err })
    const order: string[] = []
    for (let i = 0; i < 100; i++) commit.put(bytes(1, i), bytes(i))
    commit.whenDurable((err) => { order.push(`first ${String(err)}`) })
    commit.put(bytes(2), bytes(2))
    commit.whenDurable(() => { order.push('second') })
    await commit.flush()
    expect(order).toEqual(['first undefined', 'second'])
    expect(commit.batches).toBe(1)
    expect(commit.written).toBe(101)
    expect(await all(store, bytes(1))).toHaveLength(100)
    // While a batch is being written, the next gathers; callbacks wait for their own batch.
    commit.put(bytes(3, 1), bytes(1))
    await new Promise((resolve) => setImmediate(resolve))
    commit.put(bytes(3, 2), bytes(2))
    let seen = 0
    commit.whenDurable(() => { seen = commit.batches })
    await commit.flush()
    expect(seen).toBe(3)
    // Nothing outstanding: called back at once (in a microtask).
    await new Promise<void>((resolve) => { commit.whenDurable(() => { resolve() }) })
  })

  it('writes one batch at a time: a write made in a callback is on disk before the next whenDurable answers', async () => {
    const level = await levelStore()
    // The real store, with the batch holding key 2 slow to write (as a big batch is).
    const store: Store = Object.assign(Object.create(level) as LevelStore, {
      write: async (ops: Parameters<Store['write']>[0]) => {
        if (ops.some((op) => op.key[0] === 2)) await new Promise((resolve) => setTimeout(resolve, 200))
        await level.write(ops)
      }
    })
    const commit = new GroupCommit(store, (err) => { throw err })
    commit.put(bytes(1), bytes(1))
    await new Promise<void>((resolve) => {
      commit.whenDurable(() => {
        commit.put(bytes(2), bytes(2)) // gathered while the callbacks of the first batch run
        resolve()
      })
    })
    await new Promise((resolve) => setTimeout(resolve, 50))
    const onDisk = await new Promise<number>((resolve) => { commit.whenDurable(() => { void all(level, bytes(2)).then((e) => { resolve(e.length) }) }) })
    expect(onDisk).toBe(1)
  })

  it('hands the store error to every waiting callback and to onError', async () => {
    const store = await levelStore()
    const errors: Error[] = []
    const commit = new GroupCommit(store, (err) => errors.push(err))
    await store.close() // a store that can no longer write, for real
    commit.put(bytes(1), bytes(1))
    const got = await new Promise<Error | undefined>((resolve) => { commit.whenDurable(resolve) })
    expect(got).toBeInstanceOf(Error)
    expect(errors).toEqual([got])
  })

  it('keeps a batch the store could not write and writes it once the store can; reads see it meanwhile', async () => {
    // A store in memory whose writes fail while `full` is set (a full disk is tested for real in full-disk.test.ts).
    let full = false
    const store = new class extends MemoryStore {
      async write (ops: Parameters<MemoryStore['write']>[0]): Promise<void> {
        if (full) throw new Error('No space left on device')
        await super.write(ops)
      }
    }()
    const errors: Error[] = []
    let recovered = 0
    const commit = new GroupCommit(store, (err) => errors.push(err), undefined, () => { recovered++ })
    commit.put(bytes(1, 1), bytes(11))
    commit.put(bytes(1, 2), bytes(12))
    await commit.flush()
    full = true
    commit.put(bytes(1, 3), bytes(13))
    commit.del(bytes(1, 1))
    const durable = await new Promise<Error | undefined>((resolve) => { commit.whenDurable(resolve) })
    expect(durable?.message).toBe('No space left on device')
    let stored: Error | undefined | null = null
    commit.whenStored((err) => { stored = err })
    // While failing: refused at once, one error reported, and reads see the store as it will be.
    expect(commit.failure?.message).toBe('No space left on device')
    expect(await new Promise((resolve) => { commit.whenDurable(resolve) })).toBe(commit.failure)
    commit.put(bytes(1, 0), bytes(10))
    commit.del(bytes(1, 2))
    commit.put(bytes(1, 2), bytes(22))
    const read = async (after?: Uint8Array, limit?: number): Promise<number[][]> => {
      const out: number[][] = []
      for await (const [k, v] of commit.entries(bytes(1), after, limit)) out.push([...k, ...v])
      return out
    }
    expect(await read()).toEqual([[1, 0, 10], [1, 2, 22], [1, 3, 13]])
    expect(await read(bytes(1, 0), 2)).toEqual([[1, 2, 22], [1, 3, 13]])
    expect(await all(store, bytes(1))).toEqual([[[1, 1], [11]], [[1, 2], [12]]])
    await new Promise((resolve) => setTimeout(resolve, 350))
    expect(errors).toHaveLength(1)
    expect(stored).toBeNull()

    full = false
    await commit.flush()
    expect(stored).toBeUndefined()
    expect(recovered).toBe(1)
    expect(commit.failure).toBeUndefined()
    expect(await all(store, bytes(1))).toEqual([[[1, 0], [10]], [[1, 2], [22]], [[1, 3], [13]]])
  })

  it('closes promptly while the store fails, giving up on what it could not write', async () => {
    let full = true
    const store = new class extends MemoryStore {
      async write (ops: Parameters<MemoryStore['write']>[0]): Promise<void> {
        if (full) throw new Error('No space left on device')
        await super.write(ops)
      }
    }()
    const commit = new GroupCommit(store, () => {})
    commit.put(bytes(1), bytes(1))
    let stored: Error | undefined
    commit.whenStored((err) => { stored = err })
    await new Promise((resolve) => setTimeout(resolve, 50))
    const started = Date.now()
    await commit.close()
    expect(Date.now() - started).toBeLessThan(100)
    expect(stored?.message).toMatch(/Closed with 1 unwritten store operations: No space left/)
    full = false
    expect(await all(store, bytes(1))).toEqual([])
  })
})
