/**
 * The p2pmq home (`~/.p2pmq`, or `P2PMQ_HOME`): the user's identity (`identity/peer.key`, shared by
 * the CLI clients this user runs), identities kept in data directories, each locked
 * while a process uses it, the broker address book that lets a client on the same host find a
 * broker by its peer ID alone, and the host's config (`config.json`: relays, STUN servers).
 */
import { lstatSync, readlinkSync } from 'node:fs'
import { link, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { DEFAULT_HOME_DIRNAME } from './constants.js'
import { BrokerAddressError, DataDirError, HomeConfigError } from './errors.js'
import { lockIdentityDir } from './identity-lock.js'
import { jsonObject, NotSmallFileError, readSmallFile } from './small-file.js'
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

/** Where the user's identity is kept: the key every CLI client command runs as unless given -name. */
export function userIdentityPath (home = p2pmqHome()): string {
  return join(home, 'identity', KEY_FILE)
}

/**
 * The user's identity (`<home>/identity/peer.key`), created on first use (mode 0600). Not locked:
 * processes of this user share it at once, as SSH clients share a key. Two processes creating it
 * at once end with the same key: each writes its own temporary file and links it into place
 * without overwriting, then reads back what is there.
 */
export async function userIdentity (home = p2pmqHome()): Promise<PrivateKey> {
  const keyPath = userIdentityPath(home)
  const existing = await readKeyFile(keyPath)
  if (existing != null) return existing
  await makeDirectory(dirname(keyPath)).catch((err) => { throw new DataDirError(`The identity directory ${dirname(keyPath)} cannot be made (${(err.code as string | undefined) ?? (err as Error).message})`) })
  const tmp = `${keyPath}.${process.pid}.${tmpCounter++}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(await generateKeyPair('Ed25519')), { mode: 0o600 })
  try {
    await link(tmp, keyPath)
  } catch (err: any) {
    if (err.code !== 'EEXIST') throw err
  } finally {
    await unlink(tmp).catch(() => {})
  }
  const key = await readKeyFile(keyPath)
  if (key == null) throw new DataDirError(`${keyPath} went away while it was made`)
  return key
}

/** Bytes of a key file read at most (an Ed25519 key's protobuf is 68). */
const MAX_KEY_FILE_BYTES = 4096

/**
 * The key kept at `keyPath`, or undefined if there is none (a bad file is an error naming it). As
 * SSH does, a key others may read is refused: any local user could run as this identity.
 */
export async function readKeyFile (keyPath: string): Promise<PrivateKey | undefined> {
  let file: { bytes: Uint8Array, mode: number }
  try {
    file = readSmallFile(keyPath, MAX_KEY_FILE_BYTES)
  } catch (err: any) {
    if (err.code === 'ENOENT') return undefined
    if (err instanceof NotSmallFileError) throw new Error(`${keyPath} ${err.reason}; it should hold this identity's private key`)
    throw new Error(`Cannot read the identity ${keyPath} (${(err.code as string | undefined) ?? (err as Error).message})`)
  }
  const { bytes, mode } = file
  if ((mode & 0o077) !== 0) throw new Error(`${keyPath} may be read by other users (mode ${(mode & 0o777).toString(8)}): anyone on this host could run as this identity; chmod 600 ${keyPath} if it is yours, else remove it`)
  try {
    return privateKeyFromProtobuf(bytes)
  } catch (err: any) {
    throw new Error(`${keyPath} is not a valid private key (${err.message as string}); it is an identity (peer ID): restore it from a backup, or remove it to start with a new peer ID`, { cause: err })
  }
}

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
    if (err.code !== 'ENOENT' || parent === dir) throw err
    // The parent may have been made meanwhile by another process or call (a broker and a client
    // starting at once on a new home): then only `dir` is left to make. Under /proc this mkdir
    // fails with ENOENT again, and that is the error.
    if (!(await exists(parent))) await makeDirectory(parent)
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
    let privateKey = await readKeyFile(keyPath)
    if (privateKey == null) {
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

/** The settings of `<home>/config.json`; each list is what its flag would take. */
export interface HomeConfig {
  /** Relays, as `-relay` (multiaddrs ending in /p2p/<peerId>). */
  relay?: string[]
  /** STUN servers, as `-stun` (`stun:<host>:<port>`). */
  stun?: string[]
}

const HOME_CONFIG_FILE = 'config.json'
/** A config file is a few lines; a larger one is not one (and is not read into memory). */
const MAX_CONFIG_BYTES = 64 * 1024
const CONFIG_KEYS = ['relay', 'stun'] as const

export function homeConfigPath (home = p2pmqHome()): string {
  return join(home, HOME_CONFIG_FILE)
}

/**
 * Reads `<home>/config.json` (`{ "relay": [...], "stun": [...] }`), each item checked by the
 * parser of its key (which throws naming what is wrong). A missing file is no config; anything
 * else wrong is a HomeConfigError naming the file and the key. Read at startup, before anything runs.
 */
export function readHomeConfig (parsers: Record<keyof HomeConfig, (item: string) => string>, home = p2pmqHome()): HomeConfig {
  const path = homeConfigPath(home)
  const fail = (why: string): never => { throw new HomeConfigError(`${path}: ${why}`) }
  let text: string
  try {
    text = readSmallFile(path, MAX_CONFIG_BYTES).bytes.toString('utf8')
  } catch (err: any) {
    // A symbolic link to nothing (a moved dotfile) is a config that went missing, not no config.
    if (err.code === 'ENOENT' && lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink() === true) return fail(`is a symbolic link to ${readlinkSync(path)}, which does not exist`)
    if (err.code === 'ENOENT') return {}
    if (err instanceof NotSmallFileError) return fail(err.reason)
    return fail(`cannot be read (${(err.code as string | undefined) ?? (err as Error).message})`)
  }
  const json = jsonObject(text, '{ "relay": ["/ip4/…/tcp/4001/p2p/12D3KooW…"], "stun": ["stun:…:3478"] }', fail)
  const config: HomeConfig = {}
  for (const [key, value] of Object.entries(json)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) return fail(`unknown key ${JSON.stringify(key)} (known: ${CONFIG_KEYS.map((k) => `"${k}"`).join(', ')})`)
    const name = key as keyof HomeConfig
    if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) return fail(`"${name}" must be a list of strings, e.g. "${name}": ["…"]`)
    config[name] = (value as string[]).map((item, i) => {
      try {
        return parsers[name](item)
      } catch (err) {
        return fail(`"${name}"[${i}]: ${(err as Error).message}`)
      }
    })
  }
  return config
}
