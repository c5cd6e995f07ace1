/** A careless publish: one the client cannot encode fails alone; the stream and the publishes around it go on. */
import { describe, expect, it } from 'vitest'
import { MessageTooLargeError } from '../src/index.js'
import { consumer, producer, startBroker, until } from './helpers.js'

describe('a publish too large to encode', () => {
  it('fails with MessageTooLargeError, and the publishes before and after it are delivered', async () => {
    const broker = await startBroker({ memory: true })
    const p = await producer(broker)
    const c = await consumer(broker)
    const got: unknown[] = []
    await c.subscribe('work', (m) => { got.push(m.payload) })
    // In one tick, so the three share one write: the bad one's bytes used to go out as a broken frame.
    const before = p.publish('work', 'before')
    const bad = p.publish('work', 'bad', { headers: { big: 'x'.repeat(70_000) } })
    const after = p.publish('work', 'after')
    await expect(bad).rejects.toBeInstanceOf(MessageTooLargeError)
    await until(() => got.length >= 2, 5_000, 'the two good messages')
    await Promise.all([before, after])
    expect(got).toEqual(['before', 'after'])
  }, 20_000)
})
