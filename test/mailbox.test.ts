import { describe, expect, it } from 'vitest'
import { Mailbox, type KeptResult } from '../src/broker/mailbox.js'

describe('Mailbox', () => {
  const result = (id: string, keptAt: number): KeptResult =>
    ({ id, consumer: 'c', status: 0, attempts: 1, kind: 1, payload: new Uint8Array([1]), keptAt })

  it('caps results per producer, dropping the oldest', () => {
    const box = new Mailbox(1_000, 2)
    for (const id of ['r1', 'r2', 'r3']) box.keep('p1', result(id, 0))
    box.keep('p2', result('q1', 0))
    expect(box.size).toBe(3)
    expect(box.dropped).toBe(1)
    expect(box.take('p1', 10).map((r) => r.id)).toEqual(['r2', 'r3'])
    expect(box.take('p1', 10)).toEqual([])
    expect(box.size).toBe(1)
  })

  it('take() returns only results within the retention time', () => {
    const box = new Mailbox(1_000, 10)
    box.keep('p', result('old', 0))
    box.keep('p', result('new', 500))
    expect(box.take('p', 1_200).map((r) => r.id)).toEqual(['new'])
    expect(box.size).toBe(0)
  })

  it('sweep() drops expired results and empty boxes', () => {
    const box = new Mailbox(1_000, 10)
    box.keep('p1', result('a', 0))
    box.keep('p1', result('b', 600))
    box.keep('p2', result('c', 100))
    box.sweep(1_000)
    expect(box.size).toBe(3)
    box.sweep(1_200)
    expect(box.size).toBe(1)
    expect(box.dropped).toBe(2)
    expect(box.take('p2', 1_200)).toEqual([])
    expect(box.take('p1', 1_200).map((r) => r.id)).toEqual(['b'])
  })
})
