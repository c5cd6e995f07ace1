/**
 * What the broker lets this page do, and what to ask its operator for the rest. The broker's
 * access control list is by peer ID (the page's is kept in IndexedDB: identity.ts), so the page
 * shows its rights (the admin protocol's `whoami`) and, for each thing it was refused, the one
 * line the operator runs to allow it.
 */
import type { Grant, PeerGrants, PeerRights } from '../src/broker/api.js'

/** `s` quoted for a POSIX shell: names may hold spaces, quotes and `*`. */
function shellQuote (s: string): string {
  return /^[\w.@%+=:,/-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`
}

/** A pattern as the last argument: after `--` when it starts with `-`, so p2pmq does not read it as a flag. */
function patternArg (pattern: string): string {
  return `${pattern.startsWith('-') ? '-- ' : ''}${shellQuote(pattern)}`
}

/** The command that lets `peer` do what `grant` says. */
export function allowLine (peer: string, grant: Grant): string {
  if ('produce' in grant) return `p2pmq acl allow ${peer} produce ${patternArg(grant.produce)}`
  if ('consume' in grant) return `p2pmq acl allow ${peer} consume ${grant.group != null ? `-group=${shellQuote(grant.group)} ` : ''}${patternArg(grant.consume)}`
  return `p2pmq acl allow ${peer} admin ${grant.admin}`
}

/** The rights of `whoami` in a few words: "produce orders.*; consume #; admin read", or "nothing". */
export function rightsText (rights: PeerGrants): string {
  const parts: string[] = []
  if ((rights.produce ?? []).length > 0) parts.push(`produce ${(rights.produce ?? []).join(', ')}`)
  if ((rights.consume ?? []).length > 0) parts.push(`consume ${(rights.consume ?? []).map((c) => c.group != null ? `${c.pattern} in ${c.group}` : c.pattern).join(', ')}`)
  if (rights.admin != null) parts.push(`admin ${rights.admin}`)
  return parts.length > 0 ? parts.join('; ') : 'nothing'
}

/** The rights of a broker that predates access control (it has no `whoami`): everything. */
export function unrestricted (peer: string): PeerRights {
  return { peer, mode: 'protected', rights: { produce: ['#'], consume: [{ pattern: '#' }], admin: 'write' } }
}
