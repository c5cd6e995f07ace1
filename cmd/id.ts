/** `p2pmq id`: the peer ID the client commands run as, and with -broker what that broker lets it do. */
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { clientDataDir, loadIdentity, readKeyFile, userIdentity, userIdentityPath } from '../src/home.js'
import { parseFlags, usage, type FlagSpecs } from './flags.js'
import { adminSpecs, withAdmin } from './admin-client.js'
import { describeGrants } from '../src/broker/acl.js'
import type { PeerRights } from '../src/index.js'
import type { PrivateKey } from '@libp2p/interface'

const specs = {
  ...adminSpecs,
  broker: { ...adminSpecs.broker, help: 'Also ask this broker (peer ID or multiaddr) what this peer may do there' }
} satisfies FlagSpecs

export const summary = 'Print the peer ID this user\'s commands run as (or -name\'s); with -broker, what that broker lets it do.'

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('id', summary, specs))
    return 0
  }
  const { key, file } = flags.name !== '' ? await namedKey(flags.name) : { key: await userIdentity(), file: userIdentityPath() }
  const peerId = peerIdFromPrivateKey(key).toString()
  let rights: PeerRights | undefined
  if (flags.broker !== '') rights = await withAdmin(flags, async (admin) => await admin.whoami(flags.timeout))
  if (flags.json) {
    console.log(JSON.stringify({ peerId, file, ...(rights != null ? { broker: rights } : {}) }))
    return 0
  }
  console.log(peerId)
  if (rights != null) console.log(rightsText(rights))
  return 0
}

/** The key of `-name`, read without taking its lock (a consumer may be running as it); made (locked meanwhile) the first time. */
async function namedKey (name: string): Promise<{ key: PrivateKey, file: string }> {
  const dir = clientDataDir(name)
  const file = join(dir, 'peer.key')
  const kept = await readKeyFile(file)
  if (kept != null) return { key: kept, file }
  const identity = await loadIdentity(dir)
  await identity.release()
  return { key: identity.privateKey, file }
}

function rightsText (r: PeerRights): string {
  if (r.mode === 'protected') return 'The broker has no ACL yet (protected mode): this peer, on its host, may do everything; peers on other hosts are refused.'
  if (r.mode === 'open') return 'The broker is open: any peer may do everything.'
  const what = describeGrants(r.rights)
  return what === '' ? 'The broker lets this peer do nothing.' : `The broker lets this peer: ${what}`
}
