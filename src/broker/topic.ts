/**
 * Matching commands against AMQP-style topic patterns. A command is words separated by dots
 * (`users.created`); a pattern may use `*` for exactly one word and `#` for zero or more words.
 * The rules for valid names and patterns are in src/names.ts.
 */

export function isWildcard (pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('#')
}

/** Compiles a valid pattern into a predicate on command names. */
export function compilePattern (pattern: string): (command: string) => boolean {
  if (!isWildcard(pattern)) return (command) => command === pattern
  const words = pattern.split('.')
  if (words.every((w) => w === '#')) return () => true
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
