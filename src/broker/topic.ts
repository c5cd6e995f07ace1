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
  return (command) => matchWords(words, command.split('.'))
}

/**
 * Whether pattern words `p` match command words `c`. A table over (pattern word, command word)
 * rather than backtracking, so many `#` words cost O(|p|·|c|), never exponential time.
 */
function matchWords (p: string[], c: string[]): boolean {
  let ok = new Array<boolean>(c.length + 1).fill(false)
  ok[0] = true
  for (const w of p) {
    const next = new Array<boolean>(c.length + 1).fill(false)
    for (let j = 0; j <= c.length; j++) {
      next[j] = w === '#'
        ? ok[j] || (j > 0 && next[j - 1])
        : j > 0 && ok[j - 1] && (w === '*' || w === c[j - 1])
    }
    ok = next
  }
  return ok[c.length]
}
