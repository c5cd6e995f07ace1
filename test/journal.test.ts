/** The journal: the broker's state written as the engine changes it, and read back into a new engine. */
import { describe, expect, it } from 'vitest'
import { QueueEngine } from '../src/broker/engine.js'
import { Journal } from '../src/broker/journal.js'
import { MessageState } from '../src/broker/records.js'
import { MemoryStore, type Store } from '../src/store/store.js'
import type { InFlight } from '../src/broker/engine.js'
import type { KeptResult } from '../src/broker/mailbox.js'
import type { QueuedMessage } from '../src/broker/queue.js'

type Owner = string

/** An engine whose changes go to a journal on `store`, wired as the broker service wires them. */
function broker (store: Store) {
  const journal = new Journal(store, 60_000, (err) => { throw err })
  const deliveries: Array<InFlight<Owner>> = []
  const engine = new QueueEngine<Owner>({
    deliver: (d) => deliveries.push(d),
    completed: (m, by) => { journal.completed(m, by) },
    failed: (m, _error, by) => { journal.failed(m, by ?? '') },
    enqueued: (m, q) => { journal.enqueued(m, q) },
    unrouted: (m) => { journal.unrouted(m) },
    bound: (g, p) => { journal.bound(g, p) }
  }, { visibilityTimeout: 60_000, maxAttempts: 2, maxMessages: 1_000, highWater: Infinity })
  const durable = async (): Promise<void> => { await new Promise<void>((resolve, reject) => { journal.whenDurable((err) => { if (err != null) reject(err); else resolve() }) }) }
  return { journal, engine, deliveries, durable }
}

let n = 0
function msg (command: string, payload = `p${n}`): QueuedMessage {
  return { command, id: `id-${n++}`, headers: { h: 'v' }, kind: 2, payload: new TextEncoder().encode(payload), producer: 'peer-a', timestamp: 1_700_000_000_000, wantsAnswer: true, attempts: 0 }
}

describe('journal', () => {
  it('restores bindings, unfinished messages in order, kept answers and producer seqs, and nothing finished', async () => {
    const store = new MemoryStore()
    const before = broker(store)
    const sub = before.engine.subscribe('c1', 1, 'g', ['jobs.*'], 2)
    const jobs = ['a', 'b', 'c', 'd', 'e'].map((p) => msg('jobs.x', p))
    for (const m of jobs) before.engine.publish(m)
    before.engine.publish(msg('nobody.wants', 'waiting'))
    // a is acked; b fails for good (after 2 attempts); c, d, e stay.
    before.engine.ack('c1', before.deliveries[0].tag)
    before.engine.nack('c1', before.deliveries[1].tag, true, 'boom')
    const again = before.deliveries.findLast((d) => d.message.id === jobs[1].id) as InFlight<Owner>
    expect(again.message.attempts).toBe(2)
    before.engine.nack('c1', again.tag, true, 'boom again')
    const answer: KeptResult = { id: 'id-x', consumer: 'c1', status: 0, attempts: 1, kind: 2, payload: new Uint8Array([1]), keptAt: 5 }
    before.journal.keepAnswer('peer-b', answer)
    before.journal.producerSeq('peer-a', 'session-1', 42)
    before.engine.unsubscribe(sub) // c, d go back to the head of the queue
    await before.durable()

    // The failed message is kept as an Error record with its last error, the acked one as Completed.
    const finished: unknown[] = []
    for (const state of [MessageState.Completed, MessageState.Error] as const) {
      for await (const r of before.journal.finished(state)) finished.push([r.state, r.message.id, r.consumer, r.message.lastError, r.group, r.message.payload.byteLength])
    }
    expect(finished).toEqual([
      [MessageState.Completed, jobs[0].id, 'c1', undefined, 'g', 0],
      [MessageState.Error, jobs[1].id, 'c1', 'boom again', 'g', 1]
    ])

    const after = broker(store)
    const answers: Array<[string, KeptResult]> = []
    const seqs: Array<[string, string, number]> = []
    const recovered = await after.journal.recover(after.engine, {
      keepAnswer: (producer, a) => answers.push([producer, a]),
      producerSeq: (peer, session, seq) => seqs.push([peer, session, seq]),
      seenId: () => {}
    })
    expect(recovered).toEqual({ messages: 4, answers: 1 })
    expect(answers.map(([p, a]) => [p, a.id, a.keptAt])).toEqual([['peer-b', 'id-x', 5]])
    expect(seqs).toEqual([['peer-a', 'session-1', 42]])
    const stats = after.engine.stats()
    expect(stats.find((q) => q.group === 'g')).toMatchObject({ command: 'jobs.x', depth: 3, consumers: 0 })
    expect(stats.find((q) => q.group === '')).toMatchObject({ command: 'nobody.wants', depth: 1 })

    // The binding survived: a new message is routed to g, and a consumer gets them in order.
    after.engine.publish(msg('jobs.x', 'f'))
    after.engine.subscribe('c2', 1, 'g', ['jobs.*'], 10)
    const got = after.deliveries.map((d) => new TextDecoder().decode(d.message.payload))
    expect(got).toEqual(['c', 'd', 'e', 'f'])
    // Deliveries are not written, so attempts count from the last write (here: the publish).
    expect(after.deliveries[0].message).toMatchObject({ id: jobs[2].id, headers: { h: 'v' }, kind: 2, producer: 'peer-a', wantsAnswer: true, attempts: 1 })

    // Settling a recovered message deletes its record: a third start finds only what is left.
    for (const d of after.deliveries) after.engine.ack('c2', d.tag)
    await after.durable()
    const third = broker(store)
    expect((await third.journal.recover(third.engine, { keepAnswer: () => {}, producerSeq: () => {}, seenId: () => {} })).messages).toBe(1)
  })
})
