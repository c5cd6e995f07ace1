/** BrokerInit's `@default` tags say what `brokerOptions` does: the documented defaults are the real ones. */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { brokerOptions } from '../src/broker/options.js'
import { MemoryStore } from '../src/store/store.js'

/** Each option of BrokerInit with the text of its @default tag. */
function documentedDefaults (): Map<string, string> {
  const source = readFileSync(new URL('../src/broker/options.ts', import.meta.url), 'utf8')
  const init = source.slice(source.indexOf('export interface BrokerInit {'), source.indexOf('\n}\n'))
  const out = new Map<string, string>()
  for (const m of init.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*(\w+)\?:/g)) {
    out.set(m[2], /@default (.*)/.exec(m[1])?.[1] ?? '')
  }
  return out
}

describe('BrokerInit defaults', () => {
  it('documents a @default for every option, and the numbers are those a broker with a store runs with', () => {
    const documented = documentedDefaults()
    expect(documented.size).toBeGreaterThanOrEqual(18)
    for (const [name, text] of documented) expect(text, name).not.toBe('')
    const actual = brokerOptions({ store: new MemoryStore() }) as unknown as Record<string, unknown>
    for (const [name, text] of documented) {
      const value = actual[name]
      if (typeof value === 'number') expect(Number(/^\d+/.exec(text)?.[0]), name).toBe(value)
    }
    expect(documented.get('deadLetter')).toBe(`'${String(actual.deadLetter)}'`)
    expect(documented.get('retry')).toBe(`{ delay: ${(actual.retry as { delay: number }).delay}, factor: ${(actual.retry as { factor: number }).factor}, maxDelay: ${(actual.retry as { maxDelay: number }).maxDelay} }`)
    // Without a store: no paging, and the in-memory message limit.
    const memory = brokerOptions({})
    expect(memory.pageSize).toBe(Infinity)
    expect(memory.maxMessages).toBe(Number(/, (\d+) without/.exec(documented.get('maxMessages') ?? '')?.[1]))
  })

  it('refuses an in-flight limit under 1: no producer could send', () => {
    expect(() => brokerOptions({ maxInFlightPerPeer: 0 })).toThrow(/maxInFlightPerPeer must be at least 1 \(it is 0\)/)
    expect(() => brokerOptions({ maxInFlightBytesPerPeer: Number.NaN })).toThrow(RangeError)
    expect(brokerOptions({ maxInFlightPerPeer: 1 }).maxInFlightPerPeer).toBe(1)
  })
})
