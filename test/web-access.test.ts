/**
 * The page's allow lines (web/access.ts) with hostile command and group names: pasted into a shell,
 * each line gives p2pmq exactly the peer, right and name it was made for (no expansion, no command
 * run, no name taken for a flag).
 */
import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { allowLine } from '../web/access.js'
import { parseFlags } from '../cmd/flags.js'
import type { Grant } from '../src/broker/api.js'

const PEER = '12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN'
const HOSTILE = ['orders.*', '#', "it's", '$(touch pwned)', '`id`', 'a;b', 'a|b&c', '<b>x</b>', '"q"', '~root', '-group=evil', '--help', '-x', '!!', 'a\\b', 'é.ü']

/** The arguments bash gives `p2pmq` when `line` is pasted (p2pmq is a function printing them). */
function argvOf (line: string): string[] {
  const out = execFileSync('bash', ['-c', `p2pmq () { printf '%s\\0' "$@"; }\n${line}`], { encoding: 'utf8' })
  return out.split('\0').slice(0, -1)
}

describe('the page\'s allow lines', () => {
  it('give p2pmq acl exactly the name asked for, whatever it holds', () => {
    for (const name of HOSTILE) {
      const grants: Grant[] = [{ produce: name }, { consume: name }, { consume: name, group: name }]
      for (const grant of grants) {
        const argv = argvOf(allowLine(PEER, grant))
        expect(argv.slice(0, 2), name).toEqual(['acl', 'allow'])
        const positional: string[] = []
        const flags = parseFlags(argv.slice(1), { group: { type: 'string', value: '<g>', help: '', default: '' } }, positional)
        expect(positional, name).toEqual(['allow', PEER, 'produce' in grant ? 'produce' : 'consume', 'produce' in grant ? grant.produce : (grant as { consume: string }).consume])
        expect(flags.group, name).toBe('consume' in grant ? grant.group ?? '' : '')
      }
    }
  })
})
