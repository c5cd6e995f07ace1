/**
 * Which identity a CLI client runs as: the user's (`<home>/identity/peer.key`, shared by every
 * client command this user runs), or with -name the one kept in `<home>/clients/<name>` (locked
 * while in use), or with -data the one kept in that directory.
 */
import { userIdentity } from '../src/home.js'
import { PermissionDeniedError } from '../src/errors.js'
import type { PrivateKey } from '@libp2p/interface'
import type { FlagSpec } from './flags.js'

export const nameSpec = { type: 'string', value: '<name>', help: 'Run as the identity kept under <home>/clients/<name> (default: this user\'s, <home>/identity)', default: '' } satisfies FlagSpec

/** The client options of an identity chosen by -name or -data, else the user's identity. */
export async function clientIdentity (flags: { name: string, data?: string }): Promise<{ name?: string, dataDir?: string, privateKey?: PrivateKey }> {
  if (flags.name !== '') return { name: flags.name, ...(flags.data != null && flags.data !== '' ? { dataDir: flags.data } : {}) }
  if (flags.data != null && flags.data !== '') return { dataDir: flags.data }
  return { privateKey: await userIdentity() }
}

/**
 * A refusal by the broker's ACL as the one line the CLI prints: what the broker said, and the
 * command its operator runs to allow this peer (`fix`: the grant, e.g. `produce 'orders.*'`).
 */
export function refusal (err: PermissionDeniedError, peer: string, fix: string): PermissionDeniedError {
  // (The consumer's errors say already what the broker did: "The broker ended the subscription: …".)
  const what = err.message.startsWith('The broker ') ? err.message : `The broker refused: ${err.message}`
  return new PermissionDeniedError(`${what}; ask its operator to allow ${peer}: p2pmq acl allow ${peer} ${fix}`, { cause: err })
}
