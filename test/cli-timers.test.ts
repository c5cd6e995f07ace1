/** Client flags in ms that set a timer are bounded as the broker's are: past 2^31-1 ms Node fires the timer at once. */
import { describe, expect, it } from 'vitest'
import { run } from './cli-helpers.js'
import { tempDir } from './helpers.js'

describe('p2pmq client timer flags', () => {
  it('refuses a wait longer than a timer holds, before reaching any broker', async () => {
    const home = await tempDir()
    // (Before: `stats -timeout=99999999999` said "No answer within 99999999999 ms" at once, after
    // Node's TimeoutOverflowWarning; the others set timers that fire at once just the same.)
    const bad: string[][] = [
      ['stats', '-timeout=99999999999'],
      ['messages', '-timeout=2147483648'],
      ['producer', '-timeout=99999999999'],
      ['producer', '-interval=99999999999'],
      ['consumer', '-timeout=2147483647'],
      ['consumer', '-grace=99999999999']
    ]
    for (const args of bad) {
      const p = run([...args, '-broker=12D3KooWHQC1nvoafZJAEF9t2CE7oKmwmUwz8HG4roifZWTYwhJZ'], home)
      expect(await p.exited, args.join(' ')).toBe(2)
      expect(p.err.join('\n'), args.join(' ')).toMatch(/must be at most \d+/)
    }
  }, 60_000)
})
