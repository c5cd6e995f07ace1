/** Periodic messages: the pure schedule book, and a broker publishing them, also across a restart. */
import { describe, expect, it } from 'vitest'
import { Schedules, nextRun, timingError, type Schedule } from '../src/broker/schedules.js'
import { consumer, producer, restartableBroker, sleep, until } from './helpers.js'
import type { Message } from '../src/index.js'

function schedule (id: string, t: { every?: number, cron?: string }, nextAt: number): Schedule {
  return { id, command: 'tick', kind: 2, payload: new Uint8Array(0), producer: 'p', ...t, nextAt, createdAt: 0 }
}

describe('Schedules', () => {
  it('gives what is due and moves it to its next run; a run missed is made once', () => {
    const book = new Schedules()
    book.add(schedule('a', { every: 100 }, 1_000))
    book.add(schedule('b', { every: 1_000 }, 1_500))
    expect(book.nextDue).toBe(1_000)
    expect(book.due(999)).toEqual([])
    expect(book.due(1_000).map((s) => s.id)).toEqual(['a'])
    expect(book.nextDue).toBe(1_100)
    // The broker was away until 5,000: each fires once, then runs from now.
    expect(book.due(5_000).map((s) => s.id).sort()).toEqual(['a', 'b'])
    expect(book.list().map((s) => [s.id, s.nextAt])).toEqual([['a', 5_100], ['b', 6_000]])
    expect(book.remove('a')).toBe(true)
    expect(book.nextDue).toBe(6_000)
    // Replacing by id: the old entry never fires.
    book.add(schedule('b', { every: 50 }, 5_050))
    expect(book.due(6_000).map((s) => [s.id, s.every])).toEqual([['b', 50]])
  })

  it('reads cron expressions, with seconds, and refuses bad timings clearly', () => {
    const at = new Date(2026, 0, 1, 10, 0, 0).getTime() // cron runs in local time
    expect(nextRun({ cron: '*/15 * * * * *' }, at)).toBe(at + 15_000)
    expect(nextRun({ cron: '0 11 * * *' }, at)).toBe(new Date(2026, 0, 1, 11, 0, 0).getTime())
    expect(timingError({ cron: 'nonsense' })).toMatch(/Not a cron expression/)
    expect(timingError({ every: 5 })).toMatch(/at least 10 ms/)
    expect(timingError({})).toMatch(/either every \(ms\) or cron/)
    expect(timingError({ every: 100, cron: '* * * * *' })).toMatch(/either/)
  })
})

describe('periodic messages', () => {
  it('are published by the broker until removed, and their schedules survive a restart', async () => {
    const broker = await restartableBroker()
    const p = await producer(broker.ref)
    const got: Message[] = []
    const c = await consumer(broker.ref)
    await c.subscribe('tick', (m) => { got.push(m) })
    const s = await p.schedule('tick', { n: 1 }, { every: 100, id: 'ticker' })
    expect(s).toMatchObject({ id: 'ticker', command: 'tick', every: 100, producer: p.peerId })
    await until(() => got.length >= 3, 5000, 'three ticks')
    expect(got[0]).toMatchObject({ payload: { n: 1 }, producer: p.peerId, headers: { 'x-schedule': 'ticker' } })
    await expect(p.schedule('tick', 'x', { cron: 'every day' })).rejects.toThrow(/Not a cron expression/)

    await broker.restart()
    expect((await p.schedules()).map((x) => x.id)).toEqual(['ticker'])
    const before = got.length
    await until(() => got.length >= before + 3, 5000, 'ticks after the restart')

    expect(await p.unschedule('ticker')).toBe(true)
    expect(await p.unschedule('ticker')).toBe(false)
    await sleep(150)
    const stopped = got.length
    await sleep(300)
    expect(got.length).toBe(stopped)
    expect(await p.schedules()).toEqual([])
  })
})
