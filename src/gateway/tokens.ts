/**
 * The HTTP gateway's tokens. Each is a bearer secret bound to a peer ID of its own, so the broker's
 * ACL grants a token's HTTP requests rights as it grants any peer's (`p2pmq acl allow <peer> …`).
 *
 * The token's key pair is derived from the token and the gateway's secret (`gateway.key`, 32 random
 * bytes in the broker's data directory): HMAC-SHA256(secret, token) is the Ed25519 seed. The file
 * of tokens keeps only each token's SHA-256, its name and its peer ID, so a copy of it lets no one
 * in; and without the secret, a token's holder cannot act as its peer over libp2p either, so
 * removing the token ends its access.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { statSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { NotSmallFileError, jsonObject, readSmallFile, writePrivateFile } from '../small-file.js'
import { IdentityInUseError, P2PMQError } from '../errors.js'
import { lockIdentityDir } from '../identity-lock.js'

export const TOKENS_FILE = 'gateway-tokens.json'
export const GATEWAY_SECRET_FILE = 'gateway.key'
/** What every token starts with, so secret scanners and people recognise one. */
export const TOKEN_PREFIX = 'p2pmq_'
const SECRET_BYTES = 32
/** The directory of the lock `p2pmq token add|remove` hold, and how long one waits for another's. */
const LOCK_DIR = 'gateway-tokens.lock'
const LOCK_WAIT = 10_000
/** ms between two checks of the file. */
const RECHECK = 1_000
const MAX_TOKENS_FILE_BYTES = 4 * 1024 * 1024
/** A token's name: what `p2pmq token remove` takes. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export interface TokenEntry {
  name: string
  /** The peer ID the token acts as: grant it rights with `p2pmq acl allow`. */
  peer: string
  /** The token's SHA-256, hex. */
  sha256: string
  /** When it was made (ISO 8601). */
  created: string
}

/** The tokens file or the gateway's secret cannot be used; the message names the file. */
export class TokenFileError extends P2PMQError {
  static name = 'TokenFileError'
}

function sha256 (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

/** The key pair `token` acts as, given the gateway's secret. */
export async function tokenKey (secret: Uint8Array, token: string): Promise<PrivateKey> {
  const seed = createHmac('sha256', secret).update(token).digest()
  return await generateKeyPairFromSeed('Ed25519', seed)
}

/** Why `name` cannot name a token, or undefined. */
export function tokenNameError (name: string): string | undefined {
  return NAME.test(name) ? undefined : `A token's name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, not ${JSON.stringify(name)}`
}

/**
 * The tokens of one data directory. Read again whenever the file changed (its size, time or inode),
 * checked at a lookup at most every RECHECK ms: `p2pmq token add` and `remove` take effect within
 * that. (A stat per request took ~40 µs, a tenth of a publish's HTTP side.)
 */
export class TokenFile {
  readonly path: string
  readonly secretPath: string
  private entries = new Map<string, TokenEntry>()
  private secret?: Uint8Array
  /** Why the secret cannot be used (it is read with the tokens, and only lookups need it). */
  private secretError?: TokenFileError
  private version = ''
  /** The version of the file last reported to `onStale`. */
  private staleVersion = ''
  private checkedAt = -Infinity

  /**
   * @param onStale the broker's side: a file that cannot be read once one was is reported here (once
   * per change) and the tokens read last are kept, not refused a request at a time. Without it
   * (the CLI), it is thrown.
   */
  constructor (readonly dir: string, private readonly onStale?: (err: TokenFileError, kept: boolean) => void) {
    this.path = join(dir, TOKENS_FILE)
    this.secretPath = join(dir, GATEWAY_SECRET_FILE)
  }

  /** The entry of `token`, or undefined for an unknown token. Throws TokenFileError when the files cannot be read. */
  lookup (token: string): TokenEntry | undefined {
    this.reload()
    // Looked up by the token's hash: what an attacker could time is the comparison of hashes, not of tokens.
    const entry = this.entries.get(sha256(token))
    if (entry == null) return undefined
    if (this.secret == null) throw this.secretError ?? new TokenFileError(`${this.secretPath} is missing`)
    return entry
  }

  /** The key pair a known `token` acts as (derived: ~1 ms, so the caller keeps it). */
  async key (token: string): Promise<PrivateKey> {
    this.reload()
    if (this.secret == null) throw this.secretError ?? new TokenFileError(`${this.secretPath} is missing`)
    return await tokenKey(this.secret, token)
  }

  list (): TokenEntry[] {
    this.checkedAt = -Infinity
    this.reload()
    return [...this.entries.values()].sort((a, b) => a.created.localeCompare(b.created))
  }

  /** Makes a token named `name` (making the gateway's secret if there is none); the token is in the result only. */
  async add (name: string): Promise<{ token: string, entry: TokenEntry }> {
    const bad = tokenNameError(name)
    if (bad != null) throw new TypeError(bad)
    return await this.locked(async () => {
      const entries = this.list()
      if (entries.some((e) => e.name === name)) throw new TokenFileError(`A token named "${name}" exists; remove it first (p2pmq token remove ${name})`)
      if (this.secret == null) {
        if (this.secretError != null) throw this.secretError
        // A new secret would make every kept token act as another peer than the one listed (and granted).
        if (entries.length > 0) throw new TokenFileError(`${this.secretPath} is missing, and ${entries.length} token(s) need it: put it back, or remove them first (p2pmq token remove <name>)`)
        this.secret = randomBytes(SECRET_BYTES)
        // 'wx': never over a secret another process just made (its tokens would stop working).
        await writeFile(this.secretPath, this.secret, { flag: 'wx', mode: 0o600 })
      }
      const token = TOKEN_PREFIX + randomBytes(32).toString('base64url')
      const key = await tokenKey(this.secret, token)
      const entry: TokenEntry = { name, peer: peerIdFromPrivateKey(key).toString(), sha256: sha256(token), created: new Date().toISOString() }
      await this.write([...entries, entry])
      return { token, entry }
    })
  }

  /** Removes the token named `name`; its entry, or undefined when there is none. */
  async remove (name: string): Promise<TokenEntry | undefined> {
    return await this.locked(async () => {
      const entries = this.list()
      const entry = entries.find((e) => e.name === name)
      if (entry != null) await this.write(entries.filter((e) => e !== entry))
      return entry
    })
  }

  /**
   * Runs a read-change-write of the file with its lock held, so two `p2pmq token` at once do not
   * write over each other's change (a removed token back, an added one lost). The lock is LevelDB's
   * (identity-lock.ts): the kernel drops it when its holder dies.
   */
  private async locked<T> (change: () => Promise<T>): Promise<T> {
    const dir = join(this.dir, LOCK_DIR)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const deadline = Date.now() + LOCK_WAIT
    let release: (() => Promise<void>) | undefined
    while (release == null) {
      try {
        release = await lockIdentityDir(dir)
      } catch (err) {
        if (!(err instanceof IdentityInUseError) || Date.now() > deadline) throw new TokenFileError(`Cannot lock ${dir}: another p2pmq token has held it for ${LOCK_WAIT} ms`, { cause: err })
        await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80))
      }
    }
    try {
      return await change()
    } finally {
      await release()
    }
  }

  private async write (entries: TokenEntry[]): Promise<void> {
    await writePrivateFile(this.path, `${JSON.stringify({ tokens: entries }, null, 2)}\n`)
    this.version = ''
    this.checkedAt = -Infinity
    this.reload()
  }

  private reload (): void {
    const now = performance.now()
    if (now - this.checkedAt < RECHECK) return
    this.checkedAt = now
    let version: string
    try {
      const s = statSync(this.path)
      version = `${s.ino}:${s.size}:${s.mtimeMs}`
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new TokenFileError(`${this.path}: ${(err as Error).message}`)
      version = 'none'
    }
    if (version === this.version) return
    let entries: Map<string, TokenEntry>
    try {
      entries = version === 'none' ? new Map() : this.read()
    } catch (err) {
      if (this.onStale == null || !(err instanceof TokenFileError)) throw err
      // The broker says so once for this version of the file, and keeps the tokens it read last (if any).
      if (this.staleVersion !== version) this.onStale(err, this.version !== '')
      this.staleVersion = version
      if (this.version === '') throw err
      return
    }
    this.entries = entries
    try {
      this.secret = this.readSecret()
      this.secretError = undefined
    } catch (err) {
      if (!(err instanceof TokenFileError)) throw err
      this.secret = undefined
      this.secretError = err
    }
    this.version = version
  }

  private read (): Map<string, TokenEntry> {
    const fail = (why: string): never => { throw new TokenFileError(`${this.path} ${why}`) }
    let text: string
    try {
      text = readSmallFile(this.path, MAX_TOKENS_FILE_BYTES).bytes.toString('utf8')
    } catch (err) {
      return fail(err instanceof NotSmallFileError ? err.reason : `cannot be read: ${(err as Error).message}`)
    }
    const tokens = jsonObject(text, '{ "tokens": [] }', fail).tokens
    if (!Array.isArray(tokens)) return fail('must hold { "tokens": [ … ] }')
    const entries = new Map<string, TokenEntry>()
    const names = new Set<string>()
    for (const [i, t] of tokens.entries()) {
      const e = t as Partial<TokenEntry> | null
      // (What it prints is checked first: a name or peer of a hand-edited file may hold terminal escapes.)
      if (typeof e?.name !== 'string' || tokenNameError(e.name) != null || typeof e.peer !== 'string' || !validPeer(e.peer) ||
          typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256) || typeof e.created !== 'string' || !/^[0-9T:.Z-]{1,40}$/.test(e.created)) {
        return fail(`has a token (tokens[${i}]) that is not { "name", "peer", "sha256", "created" } as p2pmq token add writes them`)
      }
      if (names.has(e.name) || entries.has(e.sha256)) return fail(`has two tokens named "${e.name}" or of one hash (tokens[${i}])`)
      names.add(e.name)
      entries.set(e.sha256, { name: e.name, peer: e.peer, sha256: e.sha256, created: e.created })
    }
    return entries
  }

  private readSecret (): Uint8Array | undefined {
    try {
      const { bytes } = readSmallFile(this.secretPath, SECRET_BYTES)
      if (bytes.length !== SECRET_BYTES) throw new TokenFileError(`${this.secretPath} is not ${SECRET_BYTES} bytes: remove it and every token, and make new ones`)
      return bytes
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      if (err instanceof TokenFileError) throw err
      throw new TokenFileError(`${this.secretPath} ${err instanceof NotSmallFileError ? err.reason : `cannot be read: ${(err as Error).message}`}`)
    }
  }
}

function validPeer (peer: string): boolean {
  try {
    return peerIdFromString(peer).toString() === peer
  } catch {
    return false
  }
}
