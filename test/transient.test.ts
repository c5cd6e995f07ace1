/**
 * Transient messages: kept in memory only by a broker with a store (LevelDB on disk here), by the
 * message's own choice (a send's default) or by its queue's policy. Nothing of them is written; a
 * restart loses them, and a producer's resends bring its unanswered sends back.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { LevelStore, broker, createNode, type StoreOp } from '../src/index.js'
import { consumer, onCleanup, producer, restartableBroker, sleep, tempDir, until } from './helpers.js'

/** The real LevelDB store, counting what it is given to write. */
class CountedStore extends LevelStore {
  readonly ops: StoreOp[] = []
  override async write (ops: StoreOp[]): Promise<void> {
    this.ops.push(...ops)
    await super.write(ops)
  }
}

async function countedBroker (): Promise<{ store: CountedStore, ref: { address: string, home: string } }> {
  const home = await tempDir()
  const store = new CountedStore(join(home, 'store'))
  const node = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], services: { mq: broker({ store }) } })
  onCleanup(async () => { await node.stop() })
  return { store, ref: { address: node.getMultiaddrs()[0].toString(), home } }
}

describe('transient messages', () => {
  it('a broker with a store writes nothing for sends (transient by default) and transient publishes; a durable one is written', async () => {
    const { store, ref } = await countedBroker()
    const c = await consumer(ref)
    await c.subscribe('work', (m) => `done ${m.payload as string}`)
    const p = await producer(ref)
    await p.publish('work', 'durable first')
    await sleep(100) // its ack's delete, and the binding, written
    const before = store.ops.length
    for (let i = 0; i < 20; i++) expect(await p.send('work', `s${i}`)).toBe(`done s${i}`)
    for (let i = 0; i < 20; i++) await p.publish('work', `t${i}`, { transient: true })
    await sleep(100)
    expect(store.ops.slice(before)).toEqual([])
    await p.publish('work', 'durable')
    expect(await p.send('work', 'durable send', { transient: false })).toBe('done durable send')
    await until(() => store.ops.length > before, 2000, 'the durable messages written')
  })

  it('a restart loses transient messages (their own choice, or their queue\'s policy) and keeps durable ones', async () => {
    const b = await restartableBroker({ queues: [{ pattern: 'metrics.#', transient: true }] })
    const p = await producer(b.ref)
    await p.publish('jobs', 'durable')
    await p.publish('jobs', 'transient', { transient: true })
    await p.publish('metrics.cpu', 'transient by policy')
    await p.publish('jobs', 'durable too', { delay: 60_000 })
    await p.publish('jobs', 'transient delayed', { delay: 60_000, transient: true })
    expect(b.node.services.mq.stats().messages).toBe(5)
    await b.restart()
    expect(b.node.services.mq.stats().messages).toBe(2)
    const got: string[] = []
    const c = await consumer(b.ref)
    await c.subscribe(['jobs', 'metrics.#'], (m) => { got.push(m.payload as string) })
    await until(() => got.length >= 1, 5000, 'the durable message')
    await sleep(200)
    expect(got).toEqual(['durable'])
  })

  it('an unanswered transient send comes back with its producer\'s resend after a restart, even behind durable publishes of the same session', async () => {
    const b = await restartableBroker()
    const p = await producer(b.ref, { name: 'mixed' })
    await p.publish('jobs', 'durable 1')
    const sent = p.send('work', 'transient send', { timeout: 20_000 })
    await p.publish('jobs', 'durable 2') // its seq, above the send's, is written
    await until(() => b.node.services.mq.stats().messages === 3, 5000, '3 messages at the broker')
    await b.restart()
    await p.ready()
    // The resend is taken again (the broker lost it), once, however often the producer reconnects.
    await until(() => b.node.services.mq.stats().messages === 3, 5000, 'the send back at the broker')
    const c = await consumer(b.ref)
    const jobs: string[] = []
    await c.subscribe('jobs', (m) => { jobs.push(m.payload as string) })
    await c.subscribe('work', (m) => `done ${m.payload as string}`)
    expect(await sent).toBe('done transient send')
    await until(() => jobs.length >= 2, 5000, 'the durable publishes')
    await sleep(200)
    expect(jobs.sort()).toEqual(['durable 1', 'durable 2'])
  })
})
