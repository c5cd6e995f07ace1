/**
 * The p2pmq home (`~/.p2pmq`, or `P2PMQ_HOME`): identities kept in data directories, each locked
 * while a process uses it, and the broker address book that lets a client on the same host find a
 * broker by its peer ID alone.
 */
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { DEFAULT_HOME_DIRNAME } from './constants.js'
import { BrokerAddressError, DataDirError } from './errors.js'
import { lockIdentityDir } from './identity-lock.js'
import type { PrivateKey } from '@libp2p/interface'

export function p2pmqHome (): string {
  return process.env.P2PMQ_HOME ?? join(homedir(), DEFAULT_HOME_DIRNAME)
}

/** The data directory of a named client identity (`-name=X`). */
export function clientDataDir (name: string, home = p2pmqHome()): string {
  if (!/^[\w.-]+$/.test(name) || /^\.+$/.test(name)) throw new TypeError(`Invalid name "${name}": use letters, digits, '.', '_' and '-' (not only dots)`)
  return join(home, 'clients', name)
}

export function defaultBrokerDataDir (home = p2pmqHome()): string {
  return join(home, 'broker')
}

/** The data directory of `p2pmq relay`: its identity. */
export function defaultRelayDataDir (home = p2pmqHome()): string {
  return join(home, 'relay')
}

const KEY_FILE = 'peer.key'

export interface Identity {
  privateKey: PrivateKey
  /**
   * Releases the data directory's lock; once it resolves, a node started in this process (a
   * restart right after a stop) finds the directory free. A process that dies releases it too.
   */
  release: () => Promise<void>
}

/**
 * `mkdir -p`, a level at a time: Node's recursive mkdir never returns for a path under /proc
 * (Node 20 and 24), where mkdir fails with ENOENT although the parent exists.
 */
async function makeDirectory (dir: string): Promise<void> {
  try {
    await mkdir(dir)
  } catch (err: any) {
    if (err.code === 'EEXIST' && (await stat(dir)).isDirectory()) return
    const parent = dirname(dir)
    if (err.code !== 'ENOENT' || parent === dir || await exists(parent)) throw err
    await makeDirectory(parent)
    await mkdir(dir).catch((again) => { if (again.code !== 'EEXIST') throw again })
  }
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}

/**
 * Loads the private key kept in `dir` (creating one the first time) and locks `dir` so no second
 * running process takes the same identity (see identity-lock.ts).
 */
export async function loadIdentity (dir: string): Promise<Identity> {
  try {
    await makeDirectory(dir)
  } catch (err: any) {
    if (err.code === 'EEXIST' || err.code === 'ENOTDIR') throw new DataDirError(`The data directory ${dir} cannot be made: a file is in its way (${err.code as string})`)
    if (err.code === 'ENOENT') throw new DataDirError(`The data directory ${dir} cannot be made: its file system refuses it (ENOENT)`)
    throw err
  }
  const release = await lockIdentityDir(dir)
  try {
    const keyPath = join(dir, KEY_FILE)
    let privateKey: PrivateKey
    try {
      const bytes = await readFile(keyPath)
      try {
        privateKey = privateKeyFromProtobuf(bytes)
      } catch (err: any) {
        throw new Error(`${keyPath} is not a valid private key (${err.message as string}); it is this node's identity (peer ID): restore it from a backup, or remove it to start with a new peer ID`, { cause: err })
      }
    } catch (err: any) {
      if (err.code !== 'ENOENT') throw err
      privateKey = await generateKeyPair('Ed25519')
      await writeAtomic(keyPath, privateKeyToProtobuf(privateKey), 0o600)
    }
    return { privateKey, release }
  } catch (err) {
    await release()
    throw err
  }
}

let tmpCounter = 0

async function writeAtomic (path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const tmp = `${path}.${process.pid}.${tmpCounter++}.tmp`
  await writeFile(tmp, data, { mode })
  await rename(tmp, path)
}

function addressBookPath (peerId: string, home: string): string {
  return join(home, 'brokers', `${peerId}.json`)
}

/** Records where a broker listens, so clients on this host can dial it by peer ID. */
export async function recordBrokerAddresses (peerId: string, addrs: string[], home = p2pmqHome()): Promise<void> {
  await makeDirectory(join(home, 'brokers'))
  await writeAtomic(addressBookPath(peerId, home), JSON.stringify({ peerId, addrs, pid: process.pid, updated: new Date().toISOString() }, null, 2))
}

/** The address book of this host as a client's BrokerLookup. */
export function addressBook (home = p2pmqHome()): (peerId: string) => Promise<string[]> {
  return async (peerId) => {
    const recorded = await lookupBrokerAddresses(peerId, home)
    if (recorded == null || recorded.length === 0) {
      throw new BrokerAddressError(`Broker ${peerId} is not in the address book of this host (${home}/brokers): is it running here? Otherwise give its full multiaddr ending in /p2p/<peerId>`)
    }
    return recorded
  }
}

/** The addresses a broker on this host recorded, or undefined if it never ran here. */
export async function lookupBrokerAddresses (peerId: string, home = p2pmqHome()): Promise<string[] | undefined> {
  try {
    const entry = JSON.parse(await readFile(addressBookPath(peerId, home), 'utf8'))
    return Array.isArray(entry.addrs) ? entry.addrs : undefined
  } catch {
    return undefined
  }
}
