import { describe, expect, it } from 'vitest'
import { ClosedError, createAdmin, createConsumer, createProducer } from '../src/index.js'
import { consumer, onCleanup, producer, restartableBroker, startBroker } from './helpers.js'

describe('ready()', () => {
  it('resolves once the broker has greeted the stream: its limit is known and the client is connected', async () => {
    const broker = await startBroker({ maxPayload: 1000 })
    const p = await producer(broker)
    await p.ready()
    expect(p.connected).toBe(true)
    expect(p.maxPayload).toBe(1000)
    await p.ready() // at once while connected

    const admin = await createAdmin({ broker: broker.address, home: broker.home })
    onCleanup(async () => { await admin.stop() })
    await admin.ready()
    expect(admin.connected).toBe(true)
  })

  it("waits for the consumer's subscriptions to be answered", async () => {
    const broker = await startBroker()
    const c = await consumer(broker)
    const subscribed = c.subscribe('jobs', () => 'ok', { group: 'workers' })
    await c.ready()
    const clients = broker.node.services.mq.stats().clients
    expect(clients.find((x) => x.role === 'consumer')?.subscriptions?.map((s) => s.group)).toEqual(['workers'])
    await subscribed
  })

  it('waits for a broker that is not up yet, and for the reconnect after it restarts', async () => {
    const broker = await restartableBroker()
    await broker.node.stop()
    const p = await producer(broker.ref)
    const c = await consumer(broker.ref)
    let ready = false
    const both = Promise.all([p.ready(), c.ready()]).then(() => { ready = true })
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(ready).toBe(false)
    await broker.restart()
    await both
    expect(p.connected && c.connected).toBe(true)

    await broker.restart()
    await p.ready()
    await c.ready()
    expect(p.connected && c.connected).toBe(true)
  })

  it('rejects when the client stops or the signal aborts before the broker is reached', async () => {
    // A broker that has stopped: nothing answers at its address.
    const gone = await startBroker()
    const nobody = gone.address
    const home = gone.home
    await gone.node.stop()
    const p = await createProducer({ broker: nobody, home })
    const c = await createConsumer({ broker: nobody, home })
    onCleanup(async () => { await p.stop(); await c.stop() })
    await expect(p.ready({ signal: AbortSignal.timeout(200) })).rejects.toThrow(/timed out|aborted/i)
    const waiting = c.ready()
    await c.stop()
    await expect(waiting).rejects.toBeInstanceOf(ClosedError)
    await expect(c.ready()).rejects.toBeInstanceOf(ClosedError)
  })
})
