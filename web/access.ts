/**
 * What the broker lets this page do, and what to ask its operator for the rest. The broker's
 * access control list is by peer ID (the page's is kept in IndexedDB: identity.ts), so the page
 * shows its rights (the admin protocol's `whoami`) and, for each thing it was refused, the one
 * line the operator runs to allow it.
 */
import { grantArgs } from '../src/acl-line.js'
import type { Grant, PeerGrants, PeerRights } from '../src/broker/api.js'

/** The command that lets `peer` do what `grant` says. */
export function allowLine (peer: string, grant: Grant): string {
  return `p2pmq acl allow ${peer} ${grantArgs(grant)}`
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
