import { describe, expect, it } from 'vitest'
import { Deque } from '../src/deque.js'
import { Mailbox, type KeptResult } from '../src/broker/mailbox.js'

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i)

describe('Deque', () => {
  it('is empty at first', () => {
    const d = new Deque<number>()
    expect(d.length).toBe(0)
    expect(d.peek()).toBeUndefined()
    expect(d.shift()).toBeUndefined()
    expect(d.drain()).toEqual([])
  })

  it('pushes and shifts in FIFO order past the initial 16 slots', () => {
    const d = new Deque<number>()
    for (const i of range(0, 40)) d.push(i)
    expect(d.length).toBe(40)
    expect(d.peek()).toBe(0)
    expect(d.shift()).toBe(0)
    expect(d.shift()).toBe(1)
    expect(d.drain()).toEqual(range(2, 40))
    expect(d.length).toBe(0)
  })

  it('unshifts onto the head, growing past 16', () => {
    const d = new Deque<number>()
    for (const i of range(0, 20)) d.unshift(i)
    expect(d.length).toBe(20)
    expect(d.peek()).toBe(19)
    expect(d.drain()).toEqual(range(0, 20).reverse())
  })

  it('keeps order when it wraps around and grows while wrapped', () => {
    const d = new Deque<number>()
    for (const i of range(0, 12)) d.push(i)
    for (const i of range(0, 10)) expect(d.shift()).toBe(i)
    // head is at slot 10: these wrap past the end of the 16-slot ring, then force growth
    for (const i of range(12, 40)) d.push(i)
    expect(d.length).toBe(30)
    expect(d.shift()).toBe(10)
    d.unshift(10)
    d.unshift(9)
    expect(d.drain()).toEqual(range(9, 40))
  })

  it('mixes unshift at slot 0 with push and shift', () => {
    const d = new Deque<string>()
    d.push('b')
    d.unshift('a')
    d.push('c')
    expect(d.peek()).toBe('a')
    expect(d.shift()).toBe('a')
    d.unshift('z')
    expect(d.drain()).toEqual(['z', 'b', 'c'])
  })
})

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
