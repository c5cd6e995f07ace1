/**
 * `p2pmq acl list|allow|deny`: the broker's access control list, changed through the admin protocol
 * (as this user's identity, or -name's) and taking effect at once.
 *
 *   p2pmq acl allow <peer|*> produce '<pattern>'
 *   p2pmq acl allow <peer|*> consume '<pattern>' [-group=<g>]
 *   p2pmq acl allow <peer|*> admin read|write
 *   p2pmq acl deny  <peer|*> produce|consume '<pattern>' [-group=<g>] | admin [write]   (admin write: down to read)
 *   p2pmq acl deny  <peer>                       (blocks the peer)
 *   p2pmq acl list
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { groupError, patternError } from '../src/names.js'
import { parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { adminSpecs, table, withAdmin } from './admin-client.js'
import type { AclInfo, Grant } from '../src/index.js'

const specs = {
  ...adminSpecs,
  group: { type: 'string', value: '<name>', help: 'consume: only in this consumer group (default: any group)', default: '' }
} satisfies FlagSpecs

export const summary = 'Who may do what on a broker, by peer ID: acl list, acl allow <peer|*> <right>, acl deny <peer|*> [<right>].'

const SYNOPSIS = [
  'p2pmq acl allow <peer|*> produce \'<pattern>\'',
  'p2pmq acl allow <peer|*> consume \'<pattern>\' [-group=<g>]',
  'p2pmq acl allow <peer|*> admin read|write',
  'p2pmq acl deny <peer|*> produce|consume \'<pattern>\' [-group=<g>] | admin [write]',
  'p2pmq acl deny <peer>   (blocks the peer: refused everything)',
  'p2pmq acl list'
]

export async function run (args: string[]): Promise<number> {
  const positional: string[] = []
  const flags = parseFlags(args, specs, positional)
  const [action, ...rest] = positional
  if (flags.help) {
    console.log([usage('acl <list|allow|deny>', summary, specs), '', 'Usage:', ...SYNOPSIS.map((l) => `  ${l}`),
      '', 'Patterns as in subscriptions: * is one word, # any words (\'orders.*\', \'#\'). * as the peer is any peer.'].join('\n'))
    return 0
  }
  switch (action) {
    case 'list': {
      if (rest.length > 0) throw new UsageError(`acl list takes no arguments, not "${rest[0]}"`)
      if (flags.group !== '') throw new UsageError('acl list takes no -group')
      const acl = await withAdmin(flags, async (admin) => await admin.acl(flags.timeout))
      console.log(flags.json ? JSON.stringify(acl) : aclText(acl))
      return 0
    }
    case 'allow':
    case 'deny': {
      const change = parseChange(action, rest, flags.group)
      const acl = await withAdmin(flags, async (admin) => action === 'allow'
        ? await admin.allow(change.peer, change.grant as Grant, flags.timeout)
        : await admin.deny(change.peer, change.grant, flags.timeout), 'write')
      if (flags.json) {
        console.log(JSON.stringify(acl))
        return 0
      }
      console.log(`${action === 'allow' ? 'Allowed' : change.grant != null ? 'Denied' : 'Blocked'} ${change.peer === '*' ? 'any peer' : change.peer}${change.grant != null ? ` ${grantText(change.grant)}` : ''}`)
      const note = acl.note
      if (note != null) console.log(note)
      return 0
    }
    case undefined: throw new UsageError(`give an action: ${SYNOPSIS.join(' | ')}`)
    default: throw new UsageError(`Unknown acl action "${action}": list, allow or deny`)
  }
}

/** `<peer|*> [<right> [<pattern|level>]]` of allow or deny, checked before anything is sent. */
function parseChange (action: 'allow' | 'deny', args: string[], group: string): { peer: string, grant?: Grant } {
  const [peer, right, value, ...extra] = args
  if (peer == null) throw new UsageError(`acl ${action} needs a peer ID (or * for any peer): ${SYNOPSIS.find((l) => l.includes(action)) as string}`)
  if (peer !== '*') {
    try {
      peerIdFromString(peer)
    } catch {
      throw new UsageError(`"${peer}" is not a peer ID (p2pmq id prints one, e.g. 12D3KooW…); * is any peer`)
    }
  }
  if (extra.length > 0) throw new UsageError(`Unexpected argument "${extra[0]}" (quote a pattern: '${value ?? ''}')`)
  if (group !== '' && right !== 'consume') throw new UsageError('-group goes with consume only')
  if (right == null) {
    if (action === 'allow') throw new UsageError('acl allow needs a right: produce \'<pattern>\', consume \'<pattern>\' or admin read|write')
    if (peer === '*') throw new UsageError('acl deny * needs a right to withdraw (blocking is for one peer ID)')
    return { peer }
  }
  switch (right) {
    case 'produce':
    case 'consume': {
      if (value == null || value === '') throw new UsageError(`${right} needs a pattern, e.g. acl ${action} ${peer} ${right} 'orders.*'`)
      const bad = patternError(value)
      if (bad != null) throw new UsageError(bad)
      if (right === 'produce') return { peer, grant: { produce: value } }
      if (group !== '') {
        const badGroup = groupError(group)
        if (badGroup != null) throw new UsageError(`-group: ${badGroup}`)
      }
      return { peer, grant: { consume: value, ...(group !== '' ? { group } : {}) } }
    }
    case 'admin': {
      // deny admin: withdraws it; deny admin write: leaves read.
      if (action === 'deny' && value == null) return { peer, grant: { admin: 'read' } }
      if (value !== 'read' && value !== 'write') throw new UsageError(`admin takes read or write, not ${value == null ? 'nothing' : `"${value}"`}`)
      return { peer, grant: { admin: value } }
    }
    default: throw new UsageError(`Unknown right "${right}": produce, consume or admin`)
  }
}

function grantText (g: Grant): string {
  if ('produce' in g) return `to produce ${g.produce}`
  if ('consume' in g) return `to consume ${g.consume}${g.group != null ? ` in group ${g.group}` : ''}`
  return `admin ${g.admin}`
}

function aclText (acl: AclInfo): string {
  const mode = acl.mode === 'protected'
    ? 'Protected mode (no ACL yet): peers on the broker\'s host may do everything, others are refused.'
    : acl.mode === 'open' ? 'Open: any peer may do everything.' : `ACL: ${Object.keys(acl.peers).length} peer${Object.keys(acl.peers).length === 1 ? '' : 's'}`
  const rows = Object.entries(acl.peers).map(([peer, g]) => [peer === '*' ? '* (any peer)' : peer, g.blocked === true ? 'blocked' : '',
    (g.produce ?? []).join(', '), (g.consume ?? []).map((c) => c.group != null ? `${c.pattern}@${c.group}` : c.pattern).join(', '), g.admin ?? ''])
  return rows.length === 0 ? mode : `${mode}\n${table(['PEER', 'BLOCKED', 'PRODUCE', 'CONSUME', 'ADMIN'], rows)}`
}
