/** The admin protocol: a broker's messages by state and its stats, as `p2pmq messages` and `p2pmq stats` see them. */
import { describe, expect, it } from 'vitest'
import { createAdmin, RejectMessage, type Admin } from '../src/index.js'
import { consumer, onCleanup, producer, sleep, startBroker, until, type BrokerRef } from './helpers.js'

async function admin (broker: BrokerRef): Promise<Admin> {
  const a = await createAdmin({ broker: broker.address, home: broker.home })
  onCleanup(async () => { await a.stop() })
  return a
}

describe('admin', () => {
  it('lists messages pending, in process, completed and failed, and shows queue stats with rates', async () => {
    const broker = await startBroker()
    const p = await producer(broker)
    await p.publish('nobody.yet', 'waits')
    const c = await consumer(broker)
    const gate = Promise.withResolvers<void>()
    await c.subscribe('work', async (m) => {
      if (m.payload === 'reject') throw new RejectMessage('not this one')
      if (m.payload === 'hold') await gate.promise
      return 'ok'
    }, { group: 'workers' })
    // Finished messages are listed from the store: durable ones only (a send is transient by default).
    expect(await p.send('work', 'quick', { transient: false })).toBe('ok')
    expect(await p.send('work', 'transient')).toBe('ok')
    await expect(p.send('work', 'reject', { transient: false })).rejects.toThrow(/not this one/)
    const held = p.send('work', 'hold')
    const a = await admin(broker)
    await until(() => broker.node.services.mq.stats().queues.some((q) => q.inFlight === 1), 5000, 'the held message in flight')

    const all = await a.messages()
    const byState = (state: string): unknown[] => all.filter((m) => m.state === state).map((m) => [m.command, m.group, m.producer === p.peerId])
    // The rejected message waits in its dead-letter queue, which no group reads yet.
    expect(byState('pending')).toEqual([['nobody.yet', '', true], ['work.dlq', '', true]])
    expect(byState('in process')).toEqual([['work', 'workers', true]])
    expect(all.find((m) => m.state === 'in process')?.consumer).toBe(c.peerId)
    expect((await a.messages({ state: 'completed' })).map((m) => [m.command, m.consumer === c.peerId, m.attempts])).toEqual([['work', true, 1]])
    const failed = await a.messages({ state: 'error', command: 'work' })
    expect(failed.map((m) => [m.lastError, m.consumer === c.peerId])).toEqual([['not this one', true]])
    expect(await a.messages({ limit: 1 })).toHaveLength(1)
    expect(await a.messages({ command: 'other' })).toEqual([])
    // Paged, and with bodies: headers and the first 4 KiB of each payload, from memory and from the store.
    expect((await a.messages({ offset: 1, limit: 1 }))[0]).toEqual(all[1])
    expect(await a.messages({ offset: all.length })).toEqual([])
    expect(all[0].payload).toBeUndefined()
    await p.publish('nobody.yet', 'x'.repeat(5000), { headers: { lang: 'en' } })
    const [first, big] = await a.messages({ command: 'nobody.yet', bodies: true })
    expect(first.payload).toEqual({ kind: 2, size: 5, data: Buffer.from('waits').toString('base64') })
    expect(big.headers).toEqual({ lang: 'en' })
    expect(big.payload).toEqual({ kind: 2, size: 5000, data: Buffer.from('x'.repeat(4096)).toString('base64') })
    const [finished] = await a.messages({ state: 'error', bodies: true })
    expect(Buffer.from(finished.payload?.data ?? '', 'base64').toString()).toBe('reject')

    gate.resolve()
    expect(await held).toBe('ok')
    await sleep(1_100) // a rate sample
    const stats = await a.stats()
    const work = stats.queues.find((q) => q.command === 'work')
    expect(work).toMatchObject({ group: 'workers', depth: 0, inFlight: 0, consumers: 1, published: 4, acked: 3, failed: 1 })
    expect(work?.rates.published).toBeGreaterThanOrEqual(0)
    expect(stats.clients.map((x) => x.role).sort()).toEqual(['admin', 'consumer', 'producer'])
  })

  it('purges the waiting and delayed messages of a command, in one group or all', async () => {
    const broker = await startBroker()
    const p = await producer(broker)
    const c = await consumer(broker)
    const sub = await c.subscribe('work', () => {}, { group: 'a' })
    await sub.unsubscribe() // group a's queue now keeps receiving copies with no one to take them
    for (let i = 0; i < 5; i++) await p.publish('work', i)
    await p.publish('work', 'later', { delay: 60_000 })
    const a = await admin(broker)
    expect(await a.request('purge', { command: 'work', group: 'nobody' })).toEqual({ purged: 0 })
    expect(await a.request('purge', { command: 'work' })).toEqual({ purged: 6 })
    expect((await a.stats()).queues.find((q) => q.command === 'work')).toMatchObject({ depth: 0, delayed: 0 })
    await expect(a.request('purge', {})).rejects.toThrow(/purge needs a command/)
  })

  it('refuses an unknown method or bad parameters with a clear error, and keeps serving', async () => {
    const broker = await startBroker()
    const a = await admin(broker)
    await expect(a.request('drop-everything')).rejects.toThrow(/refused "drop-everything": Unknown admin method/)
    await expect(a.messages({ state: 'lost' as any })).rejects.toThrow(/state must be one of/)
    await expect(a.messages({ limit: -1 })).rejects.toThrow(/limit must be a positive integer/)
    await expect(a.messages({ offset: -1 })).rejects.toThrow(/offset must be an integer from 0 to 10000/)
    await expect(a.messages({ offset: 1e9 })).rejects.toThrow(/offset must be/)
    await expect(a.messages({ bodies: 'yes' as any })).rejects.toThrow(/bodies must be true or false/)
    await expect(a.messages({ bodies: true, limit: 5000 })).rejects.toThrow(/with bodies, limit is at most 1000/)
    expect((await a.stats()).messages).toBe(0)
  })
})
