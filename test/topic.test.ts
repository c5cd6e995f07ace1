import { describe, expect, it } from 'vitest'
import { commandError, groupError, patternError } from '../src/names.js'
import { compilePattern } from '../src/broker/topic.js'

describe('commandError', () => {
  it('accepts dotted names', () => {
    for (const c of ['users', 'users.created', 'a.b.c', 'x'.repeat(255), 'v1-2_x:y']) expect(commandError(c)).toBeUndefined()
  })

  it('rejects empty, too long and malformed names', () => {
    expect(commandError('')).toBe('A command name cannot be empty')
    expect(commandError('x'.repeat(256))).toMatch(/at most 255/)
    for (const c of ['a..b', '.a', 'a.', 'a b', 'users.*', 'users.#', 'a*', 'a#b']) {
      expect(commandError(c), c).toMatch(/^Invalid command/)
    }
    for (const c of ['\t', 'a\u0000b', 'a\u007fb', 'a\u2028b']) expect(commandError(c), c).toMatch(/control characters/)
  })

  it('counts UTF-8 bytes, not characters', () => {
    expect(commandError('é'.repeat(127))).toBeUndefined() // 254 bytes
    expect(commandError('é'.repeat(128))).toMatch(/at most 255 bytes \(UTF-8\); this one is 256/)
    expect(commandError('😀'.repeat(63))).toBeUndefined() // 252 bytes
    expect(commandError('😀'.repeat(64))).toMatch(/this one is 256/)
  })
})

describe('groupError', () => {
  it('takes any printable name up to 255 bytes', () => {
    for (const g of ['default', 'a b', 'dash-board.1', 'ü'.repeat(127), '*#']) expect(groupError(g), g).toBeUndefined()
    expect(groupError('')).toMatch(/cannot be empty/)
    expect(groupError('x'.repeat(65_000))).toMatch(/at most 255 bytes/)
    expect(groupError('a\nb')).toMatch(/control characters/)
  })

  it('refuses the Unicode bidi controls in names, which reorder what a terminal or page shows', () => {
    for (const c of ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069']) {
      expect(groupError(`a${c}b`), c).toMatch(/bidi controls/)
      expect(commandError(`a${c}b`), c).toMatch(/bidi controls/)
      expect(patternError(`a${c}b.#`), c).toMatch(/bidi controls/)
    }
  })
})

describe('patternError', () => {
  it('accepts names, * and # words', () => {
    for (const p of ['users', 'users.*', 'users.#', '#', '*', '#.created', 'a.#.b', '*.*.#']) expect(patternError(p), p).toBeUndefined()
  })

  it('rejects empty, too long and malformed patterns', () => {
    expect(patternError('')).toBe('A pattern cannot be empty')
    expect(patternError('x'.repeat(256))).toMatch(/at most 255/)
    for (const p of ['a..b', '.a', 'a.', 'a*', 'users.a#', '**', '##', 'a b', '#.']) {
      expect(patternError(p), p).toMatch(/^Invalid pattern/)
    }
  })
})

describe('compilePattern', () => {
  const check = (pattern: string, yes: string[], no: string[]): void => {
    const m = compilePattern(pattern)
    for (const c of yes) expect(m(c), `${pattern} ~ ${c}`).toBe(true)
    for (const c of no) expect(m(c), `${pattern} !~ ${c}`).toBe(false)
  }

  it('matches an exact name only', () => {
    check('users.created', ['users.created'], ['users', 'users.created.x', 'users.createdx', 'x.users.created'])
  })

  it('* matches exactly one word', () => {
    check('users.*', ['users.a', 'users.created'], ['users', 'users.a.b', 'other.a'])
    check('*', ['a'], ['a.b'])
    check('*.created', ['users.created'], ['created', 'a.b.created'])
    check('*.*', ['a.b'], ['a', 'a.b.c'])
  })

  it('# at the end matches zero or more words', () => {
    check('users.#', ['users', 'users.a', 'users.a.b.c'], ['user', 'usersx', 'other.users'])
    check('#', ['a', 'a.b', 'a.b.c.d'], [])
  })

  it('# at the start matches zero or more words', () => {
    check('#.created', ['created', 'users.created', 'a.b.created'], ['created.a', 'users.createdx'])
  })

  it('# in the middle matches zero or more words', () => {
    check('a.#.b', ['a.b', 'a.x.b', 'a.x.y.b', 'a.b.b'], ['a', 'b', 'a.b.c', 'x.a.b'])
    check('a.#.*', ['a.b', 'a.b.c'], ['a', 'b.c'])
    check('#.a.#', ['a', 'x.a', 'a.x', 'x.a.y'], ['x', 'x.y'])
  })

  // A consumer chooses its patterns; a pattern with many '#' must not make matching exponential,
  // or one subscription freezes the broker on the next publish of a long command.
  it('matches patterns with many # in polynomial time', () => {
    // Backtracking would take hours here; the table takes microseconds. The bound is generous
    // so a busy machine cannot fail it.
    const m = compilePattern('#.#.#.#.#.#.#.#.#.#.#.#.#.#.z')
    const command = Array(30).fill('a').join('.')
    const started = performance.now()
    expect(m(command)).toBe(false)
    expect(performance.now() - started).toBeLessThan(1000)
  })
})
