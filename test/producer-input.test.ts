/**
 * A careless publish: one the client cannot encode fails alone; the stream and the publishes around
 * it go on. One past the broker's limit, sent before the broker said its limit, fails too.
 */
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

  it('past the broker\'s limit as the first publish (before its Welcome), fails with MessageTooLargeError and is not sent again', async () => {
    const broker = await startBroker({ memory: true })
    const c = await consumer(broker)
    const got: unknown[] = []
    await c.subscribe('work', (m) => { got.push(m.payload) })
    const p = await producer(broker)
    // At once: the broker's Welcome with its limit is not in yet. The broker ends the stream such a
    // frame arrives on; sent again on each new stream, it used to hang for ever.
    const started = Date.now()
    await expect(p.publish('work', new Uint8Array(2_000_000))).rejects.toBeInstanceOf(MessageTooLargeError)
    expect(Date.now() - started).toBeLessThan(10_000)
    await p.publish('work', 'next')
    await until(() => got.length >= 1, 5_000, 'the next message')
    expect(got).toEqual(['next'])
  }, 20_000)
})
