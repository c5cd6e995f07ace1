/**
 * The rules for names: commands (`users.created`), subscription patterns (`users.*`, `users.#`) and
 * group names. Shared by the broker, which refuses what breaks them, and the clients, which say so
 * before sending. Each check costs O(length), and lengths are bounded (MAX_NAME_BYTES).
 */
import { MAX_NAME_BYTES } from './constants.js'

const WORD = /^[^.*#\s]+$/
/** Control characters, the line and paragraph separators, and the bidi controls (they reorder what is shown). */
const CONTROL = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u

/** Why `name` is too long or holds a control character, or undefined; `what` names it in the message. */
export function lengthOrControl (name: string, what: string): string | undefined {
  if (name.length === 0) return `A ${what} cannot be empty`
  if (name.length > MAX_NAME_BYTES || utf8Length(name) > MAX_NAME_BYTES) return `A ${what} is at most ${MAX_NAME_BYTES} bytes (UTF-8); this one is ${utf8Length(name)}`
  if (CONTROL.test(name)) return `A ${what} cannot hold control characters (nor bidi controls)`
  return undefined
}

/** Returns why `command` is not a valid command name, or undefined if it is. */
export function commandError (command: string): string | undefined {
  const bad = lengthOrControl(command, 'command name')
  if (bad != null) return bad
  for (const word of command.split('.')) {
    if (!WORD.test(word)) return `Invalid command "${command}": words are non-empty and hold no '*', '#' or spaces`
  }
  return undefined
}

/** Returns why `pattern` is not a valid subscription pattern, or undefined if it is. */
export function patternError (pattern: string): string | undefined {
  const bad = lengthOrControl(pattern, 'pattern')
  if (bad != null) return bad
  for (const word of pattern.split('.')) {
    if (word !== '*' && word !== '#' && !WORD.test(word)) {
      return `Invalid pattern "${pattern}": each word is a name, '*' or '#'`
    }
  }
  return undefined
}

/** Returns why `group` is not a valid group name, or undefined if it is. */
export function groupError (group: string): string | undefined {
  return lengthOrControl(group, 'group name')
}

/** UTF-8 bytes of `s`, counted without encoding it. */
export function utf8Length (s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c < 0xdc00) {
      n += 4 // a surrogate pair
      i++
    } else {
      n += c < 0x80 ? 1 : c < 0x800 ? 2 : 3
    }
  }
  return n
}
