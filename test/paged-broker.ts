/**
 * A broker's engine and journal in one test, without the network: the engine keeps its state in a
 * journal on a LevelDB store, and reads its pages from it, as the broker service does.
 */
import { QueueEngine, type InFlight, type RetryBackoff } from '../src/broker/engine.js'
import { Journal, type PageBounds } from '../src/broker/journal.js'
import { LevelStore } from '../src/store/level-store.js'

type Owner = string

/**
 * An engine and its journal on the store in `dir` (or `store`), recovered from it; `clock` is the
 * engine's.
 */
export async function pagedBroker (dir: string, page: PageBounds, clock: () => number, retry?: RetryBackoff, store = new LevelStore(dir)) {
  await store.open()
  // (A store that cannot write is retried by the journal; its error is for the test to read.)
  const journal = new Journal(store, 0, page, () => {})
  const deliveries: Array<InFlight<Owner>> = []
  let reading = 0
  const engine: QueueEngine<Owner> = new QueueEngine<Owner>({
    deliver: (d) => deliveries.push(d),
    completed: (m, by) => { journal.completed(m, by) },
    failed: (m, _error, by) => { journal.failed(m, by ?? '') },
    pageNeeded: (q) => {
      reading++
      const generation = q.generation
      void journal.readPage(q, q.tail, page.size, page.bytes).then((messages) => { reading--; engine.loadPage(q, generation, messages) })
    },
    delayedPageNeeded: (after, generation) => {
      reading++
      void journal.readDelayedPage(after, page.size, page.bytes).then((messages) => { reading--; engine.loadDelayedPage(generation, messages) })
    }
  }, { visibilityTimeout: 600_000, maxAttempts: 10, maxMessages: 10_000_000, highWater: Infinity, pageSize: page.size, pageBytes: page.bytes, retry, clock }, journal)
  await journal.recover(engine, { keepAnswer: () => {}, producerSeq: () => {}, seenId: () => {}, schedule: () => {} })
  engine.promote() // as the service does at a start: what came due meanwhile
  const durable = async (): Promise<void> => { await new Promise<void>((resolve, reject) => { journal.whenDurable((err) => { if (err != null) reject(err); else resolve() }) }) }
  return {
    engine,
    journal,
    store,
    deliveries,
    /** Waits until every page asked for is read and loaded (a loaded page may ask for the next). */
    settle: async (): Promise<void> => {
      for (let i = 0; i < 10_000; i++) {
        await durable()
        await new Promise((resolve) => setImmediate(resolve))
        if (reading === 0) return
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
      throw new Error('pages were still being read')
    },
    /** Waiting messages in memory (not those in flight). */
    inMemory: (): number => [...engine.live()].filter((x) => x.delivery == null).length,
    payloads: (): string[] => deliveries.map((d) => new TextDecoder().decode(d.message.payload)),
    close: async (): Promise<void> => { await journal.close() }
  }
}
