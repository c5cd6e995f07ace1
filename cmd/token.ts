/**
 * `p2pmq token add|list|remove`: the HTTP gateway's tokens (src/gateway/tokens.ts), kept in the
 * broker's data directory on this host. A running broker takes a change at its next request.
 *
 *   p2pmq token add <name>      prints the token once, and the peer ID to grant rights to
 *   p2pmq token list
 *   p2pmq token remove <name>
 */
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { defaultBrokerDataDir } from '../src/home.js'
import { TokenFile, tokenNameError } from '../src/gateway/tokens.js'
import { parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { table } from './admin-client.js'

const specs = {
  data: { type: 'string', value: '<dir>', help: 'The broker\'s data directory (default: the broker\'s default, as p2pmq broker uses)', default: '' },
  json: { type: 'boolean', help: 'Print JSON' }
} satisfies FlagSpecs

export const summary = 'Tokens of the broker\'s HTTP gateway (-gateway): token add <name>, token list, token remove <name>.'

export async function run (args: string[]): Promise<number> {
  const positional: string[] = []
  const flags = parseFlags(args, specs, positional)
  if (flags.help) {
    console.log([usage('token <add|list|remove>', summary, specs), '',
      'A token acts as a peer ID of its own: grant it rights as any peer\'s, e.g.',
      '  p2pmq acl allow <its peer ID> produce \'orders.*\'',
      'Run on the broker\'s host (the tokens live in its data directory).'].join('\n'))
    return 0
  }
  const [action, name, ...extra] = positional
  if (extra.length > 0) throw new UsageError(`Unexpected argument "${extra[0]}"`)
  const dir = flags.data !== '' ? flags.data : defaultBrokerDataDir()
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError(`-data=${dir} is not a directory`)
  const tokens = new TokenFile(dir)
  switch (action) {
    case 'add': {
      if (name == null) throw new UsageError('token add needs a name, e.g. p2pmq token add billing')
      const bad = tokenNameError(name)
      if (bad != null) throw new UsageError(bad)
      mkdirSync(dir, { recursive: true, mode: 0o700 })
      const { token, entry } = await tokens.add(name)
      if (flags.json) {
        console.log(JSON.stringify({ token, ...entry }))
        return 0
      }
      console.log(`Token ${name}: ${token}`)
      console.log('It is shown only now; keep it secret (the broker keeps only its hash).')
      console.log(`It acts as peer ${entry.peer}: grant it rights, e.g.`)
      console.log(`  p2pmq acl allow ${entry.peer} produce '<pattern>'`)
      console.log(`  p2pmq acl allow ${entry.peer} consume '<pattern>'`)
      return 0
    }
    case 'list': {
      if (name != null) throw new UsageError(`token list takes no arguments, not "${name}"`)
      const entries = tokens.list()
      if (flags.json) console.log(JSON.stringify(entries.map(({ sha256, ...e }) => e)))
      else console.log(entries.length === 0 ? 'No tokens (p2pmq token add <name> makes one)' : table(['NAME', 'PEER', 'CREATED'], entries.map((e) => [e.name, e.peer, e.created])))
      return 0
    }
    case 'remove': {
      if (name == null) throw new UsageError('token remove needs the token\'s name (p2pmq token list)')
      const removed = await tokens.remove(name)
      if (removed == null) throw new Error(`No token named "${name}" in ${dir} (p2pmq token list)`)
      if (flags.json) console.log(JSON.stringify({ removed: name, peer: removed.peer }))
      else console.log(`Removed token ${name}: its requests are refused from now on. No one can act as its peer without it; p2pmq acl deny ${removed.peer} tidies the ACL.`)
      return 0
    }
    case undefined: throw new UsageError('give an action: token add <name> | token list | token remove <name>')
    default: throw new UsageError(`Unknown token action "${action}": add, list or remove`)
  }
}
