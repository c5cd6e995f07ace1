/**
 * Command names and AMQP-style topic patterns. A command is words separated by dots
 * (`users.created`); a pattern may use `*` for exactly one word and `#` for zero or more words.
 */

const MAX_NAME = 255
const WORD = /^[^.*#\s]+$/

/** Returns why `command` is not a valid command name, or undefined if it is. */
export function commandError (command: string): string | undefined {
  if (command.length === 0) return 'A command name cannot be empty'
  if (command.length > MAX_NAME) return `A command name is at most ${MAX_NAME} characters`
  for (const word of command.split('.')) {
    if (!WORD.test(word)) return `Invalid command "${command}": words are non-empty and hold no '*', '#' or spaces`
  }
  return undefined
}

/** Returns why `pattern` is not a valid subscription pattern, or undefined if it is. */
export function patternError (pattern: string): string | undefined {
  if (pattern.length === 0) return 'A pattern cannot be empty'
  if (pattern.length > MAX_NAME) return `A pattern is at most ${MAX_NAME} characters`
  for (const word of pattern.split('.')) {
    if (word !== '*' && word !== '#' && !WORD.test(word)) {
      return `Invalid pattern "${pattern}": each word is a name, '*' or '#'`
    }
  }
  return undefined
}

export function isWildcard (pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('#')
}

/** Compiles a valid pattern into a predicate on command names. */
export function compilePattern (pattern: string): (command: string) => boolean {
  if (!isWildcard(pattern)) return (command) => command === pattern
  const words = pattern.split('.')
  return (command) => matchWords(words, 0, command.split('.'), 0)
}

function matchWords (p: string[], i: number, c: string[], j: number): boolean {
  while (i < p.length) {
    const w = p[i]
    if (w === '#') {
      if (i === p.length - 1) return true
      for (let k = j; k <= c.length; k++) {
        if (matchWords(p, i + 1, c, k)) return true
      }
      return false
    }
    if (j >= c.length || (w !== '*' && w !== c[j])) return false
    i++
    j++
  }
  return j === c.length
}
