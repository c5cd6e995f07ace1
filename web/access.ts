/**
 * What the broker lets this page do, and what to ask its operator for the rest. The broker's
 * access control list is by peer ID (the page's is kept in IndexedDB: identity.ts), so the page
 * shows its rights (the admin protocol's `whoami`) and, for each thing it was refused, the one
 * line the operator runs to allow it.
 */
import { describeGrants } from '../src/broker/acl.js'
import { grantArgs } from '../src/acl-line.js'
import type { Grant, PeerGrants, PeerRights } from '../src/broker/api.js'

/** The command that lets `peer` do what `grant` says. */
export function allowLine (peer: string, grant: Grant): string {
  return `p2pmq acl allow ${peer} ${grantArgs(grant)}`
}

/** The rights of `whoami` in a few words: "produce orders.*; consume #; admin read", or "nothing". */
export function rightsText (rights: PeerGrants): string {
  const text = describeGrants(rights)
  return text !== '' ? text : 'nothing'
}

/** The rights of a broker that predates access control (it has no `whoami`): any peer may do everything, as in open mode. */
export function unrestricted (peer: string): PeerRights {
  return { peer, mode: 'open', rights: { produce: ['#'], consume: [{ pattern: '#' }], admin: 'write' } }
}
