import { describe, expect, it } from 'vitest'
import { Deque } from '../src/deque.js'

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
