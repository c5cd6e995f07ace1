/**
 * A schedule the broker cannot store or publish is refused, and not kept: one refused for a field
 * too long to encode used to stay registered and throw from the wake timer when due (the broker
 * process died), and one with more headers than a frame can count was stored corrupt.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createAdmin, InvalidArgumentError, type Admin } from '../src/index.js'
import { encodeSchedule, scheduleKey } from '../src/broker/records.js'
import { LevelStore } from '../src/store/level-store.js'
import { onCleanup, restartableBroker, sleep, type BrokerRef } from './helpers.js'

async function adminOf (broker: BrokerRef): Promise<Admin> {
  const a = await createAdmin({ broker: broker.address, home: broker.home })
  onCleanup(async () => { await a.stop() })
  return a
}

/** Uncaught exceptions while `fn` runs and `ms` after (what would end a broker process). */
async function uncaughtDuring (ms: number, fn: () => Promise<void>): Promise<Error[]> {
  const caught: Error[] = []
  const listener = (err: Error): void => { caught.push(err) }
  const vitestListeners = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  process.on('uncaughtException', listener)
  try {
    await fn()
    await sleep(ms)
  } finally {
    process.off('uncaughtException', listener)
    for (const l of vitestListeners) process.on('uncaughtException', l)
  }
  return caught
}

describe('schedule limits', () => {
  it('refuses a schedule whose id or header is too long to encode, keeps none of it, and stays up', async () => {
    const b = await restartableBroker()
    const a = await adminOf(b.ref)
    const long = 'x'.repeat(70_000)
    const crashes = await uncaughtDuring(1_500, async () => {
      await expect(a.request('schedule', { id: long, command: 'tick', every: 100, kind: 0, data: '' })).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(a.request('schedule', { command: 'tick', every: 100, kind: 0, data: '', headers: { k: long } })).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(a.request('schedule', { id: 'x'.repeat(300), command: 'tick', every: 100, kind: 0, data: '' })).rejects.toBeInstanceOf(InvalidArgumentError)
    })
    expect(crashes.map((e) => e.message)).toEqual([])
    expect(await a.schedules()).toEqual([])
    expect((await a.stats()).messages).toBe(0)
  })

  it('refuses more headers than a frame can count, and restarts with what it kept', async () => {
    const b = await restartableBroker()
    const a = await adminOf(b.ref)
    const headers: Record<string, string> = {}
    for (let i = 0; i < 65_537; i++) headers[`h${i}`] = ''
    await expect(a.request('schedule', { id: 'many', command: 'tick', every: 60_000, kind: 0, data: '', headers })).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(a.request('schedule', { id: 'list', command: 'tick', every: 60_000, kind: 0, data: '', headers: ['x'] as any })).rejects.toBeInstanceOf(InvalidArgumentError)
    await a.schedule('tick', 'ok', { id: 'kept', every: 60_000 })
    await b.restart()
    expect((await a.schedules()).map((s) => s.id)).toEqual(['kept'])
  }, 30_000)
})

describe('a stored schedule that does not read', () => {
  it('is skipped with a warning, and the broker starts with the rest', async () => {
    const b = await restartableBroker()
    const a = await adminOf(b.ref)
    await a.schedule('tick', 'ok', { id: 'kept', every: 60_000 })
    await b.node.stop()
    // As main's build wrote a schedule with 65,537 headers: its count wrapped to 1, the rest unread.
    const store = new LevelStore(join(b.ref.home, 'broker', 'store'))
    await store.open()
    const good = encodeSchedule({ id: 'broken', command: 'tick', producer: 'p', every: 60_000, nextAt: Date.now() + 60_000, createdAt: Date.now(), kind: 0, payload: new Uint8Array(0), headers: { a: '' } })
    await store.write([{ type: 'put', key: scheduleKey('broken'), value: good.subarray(0, good.byteLength - 6) }])
    await store.close()
    await b.restart()
    expect((await a.schedules()).map((s) => s.id)).toEqual(['kept'])
  }, 30_000)
})
