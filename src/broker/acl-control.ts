/**
 * The broker's access control at run time: the ACL in force (acl.ts), where it is kept (acl-file.ts),
 * its changes (serialised, written to disk before they take effect, then told to the broker so it
 * re-checks its sessions), the connection gater that refuses peers with no right at all, and the
 * refusals told at most once per peer per minute.
 */
import { networkInterfaces } from 'node:os'
import { PermissionDeniedError } from '../errors.js'
import { Acl, parseChange, type Rights } from './acl.js'
import { AclFileError, aclOf, readAclFile, writeAclFile } from './acl-file.js'
import type { AclFile, AclInfo, AclMode, ClientRole, DeniedEvent } from './api.js'
import type { ConnectionGater, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { OnceAMinute } from './once-a-minute.js'

export interface AccessControlInit {
  /**
   * `'open'`: any peer may do everything (the kept ACL is left as it is, unused; changes are
   * refused with ConflictError); the path of a
   * JSON ACL file, or an ACL: it replaces the kept one. Undefined: the kept one, else protected mode.
   * @default undefined
   */
  acl?: 'open' | string | AclFile
  /**
   * Where the ACL is kept (`<dataDir>/acl.json`), read at start and written on each change.
   * @default undefined (changes last until the broker stops)
   */
  path?: string
}

export class AccessControl {
  private current: Acl
  private changing: Promise<unknown> = Promise.resolve()
  /** An ACL given at load, not written to `path` yet. */
  private unkept = false
  private readonly listeners = new Set<(acl: Acl) => void>()
  private readonly toldDenied = new OnceAMinute()
  /** Where refusals are told (the broker's log and `client:denied` event). */
  onDenied?: (denied: DeniedEvent) => void

  constructor (acl: Acl, readonly path?: string) {
    this.current = acl
  }

  /** The access control of a library `acl` option: open, the ACL given, else protected mode (kept nowhere). */
  static of (acl?: 'open' | AclFile): AccessControl {
    return new AccessControl(acl === 'open' ? Acl.open() : acl != null ? aclOf(JSON.stringify(acl), 'the acl option') : Acl.protected())
  }

  /**
   * The ACL `init` says, read from `init.path` unless given. A given ACL replaces the kept one at
   * `keep()` (the broker service calls it as it starts). Throws AclFileError naming the file and the key.
   */
  static async load (init: AccessControlInit = {}): Promise<AccessControl> {
    const { acl, path } = init
    if (acl === 'open') return new AccessControl(Acl.open(), path)
    let given: Acl | undefined
    if (typeof acl === 'string') {
      given = await readAclFile(acl)
      if (given == null) throw new AclFileError(`${acl}: no such ACL file`)
    } else if (acl != null) {
      given = aclOf(JSON.stringify(acl), 'the acl option')
    }
    if (given == null) return new AccessControl((path != null ? await readAclFile(path) : undefined) ?? Acl.protected(), path)
    const access = new AccessControl(given, path)
    access.unkept = true
    return access
  }

  /** Writes an ACL given at `load` to its path (once its directory exists), replacing the kept one. */
  async keep (): Promise<void> {
    if (!this.unkept || this.path == null) return
    await writeAclFile(this.path, this.current.toFile())
    this.unkept = false
  }

  get acl (): Acl {
    return this.current
  }

  get mode (): AclMode {
    return this.current.mode
  }

  /** What `peer`, connected from `remoteAddr`, may do now. */
  rights (peer: string, remoteAddr: Multiaddr): Rights {
    return this.current.rights(peer, isLocalAddress(remoteAddr))
  }

  /** Calls `listener` with the new ACL after each change; returns what stops it. */
  onChange (listener: (acl: Acl) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /**
   * Applies an `acl-allow` or `acl-deny` request of `asker` (its parameters still unchecked): one
   * change at a time, kept on disk before it takes effect. Throws InvalidArgumentError,
   * NotFoundError (no such grant to withdraw) or ConflictError (it would leave no admin writer).
   */
  async change (kind: 'allow' | 'deny', raw: unknown, asker: string): Promise<AclInfo> {
    const run = this.changing.then(async () => {
      // A change waiting behind another is decided by the ACL that one made: its asker may have lost
      // admin write meanwhile. (The mode never goes back to protected or open: before any change,
      // the asker's rights were checked against this very ACL.)
      if (this.current.mode === 'acl' && !this.current.rights(asker, false).mayAdmin('write')) {
        throw new PermissionDeniedError(`${asker} may not call acl-${kind}: it needs admin write in the broker's ACL (it changed meanwhile)`)
      }
      const { peer, grant } = parseChange(raw, kind === 'allow')
      const { acl, note } = kind === 'allow' && grant != null ? this.current.allow(peer, grant, asker) : this.current.deny(peer, grant, asker)
      if (this.path != null) await writeAclFile(this.path, acl.toFile())
      this.unkept = false
      this.current = acl
      for (const listener of this.listeners) listener(acl)
      return note != null ? { ...acl.info(), note } : acl.info()
    })
    this.changing = run.catch(() => {})
    return await run
  }

  /** Resolves once the changes asked for so far are kept on disk (or failed). */
  async settled (): Promise<void> {
    await this.changing
  }

  /** Tells a refusal, unless this peer's was told less than a minute ago (then it is counted). */
  denied (peer: string, reason: string, role?: ClientRole, now = Date.now()): void {
    const suppressed = this.toldDenied.tell(peer, now)
    if (suppressed != null) this.onDenied?.({ peer, role, reason, suppressed })
  }

  /**
   * The connection gater (give it as libp2p's `connectionGater`, or compose it): refuses, right
   * after the handshake, a peer with no right at all or blocked, and in protected mode a peer
   * that is not on this host.
   */
  gater (): Required<Pick<ConnectionGater, 'denyInboundEncryptedConnection'>> {
    return {
      denyInboundEncryptedConnection: (peerId: PeerId, maConn: { remoteAddr: Multiaddr }): boolean => {
        const peer = peerId.toString()
        const rights = this.rights(peer, maConn.remoteAddr)
        if (!rights.none) return false
        this.denied(peer, connectionRefusal(this.mode, rights, maConn.remoteAddr))
        return true
      }
    }
  }
}

/** Why a connection was refused, and what fixes it. */
export function connectionRefusal (mode: AclMode, rights: Rights, remoteAddr: Multiaddr): string {
  if (mode === 'protected') {
    return `connection from ${remoteAddr.toString()} refused: the broker has no ACL (protected mode) and lets in only peers on this host; ` +
      'give it an ACL (-acl=<file>, or `p2pmq acl allow` from this host) or -acl=open'
  }
  if (rights.blocked) return 'connection refused: this peer is blocked by the broker\'s ACL'
  return `connection refused: the broker's ACL grants this peer nothing; allow it with \`p2pmq acl allow ${rights.peer} <produce|consume|admin> …\``
}

let interfaceAddresses: { at: number, addrs: Set<string> } | undefined

/** This host's own IP addresses (read again at most once a second). */
function ownAddresses (): Set<string> {
  const now = Date.now()
  if (interfaceAddresses == null || now - interfaceAddresses.at > 1_000) {
    const addrs = new Set<string>()
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) addrs.add(a.address)
    interfaceAddresses = { at: now, addrs }
  }
  return interfaceAddresses.addrs
}

/**
 * Whether a connection from `remoteAddr` comes from this host: a loopback address or one of this
 * host's own, never through a relay (`/p2p-circuit`: the relay may be on this host, its peer not).
 */
export function isLocalAddress (remoteAddr: Multiaddr): boolean {
  const components = remoteAddr.getComponents()
  if (components.some((c) => c.name === 'p2p-circuit')) return false
  const ip = components[0]
  if (ip == null || (ip.name !== 'ip4' && ip.name !== 'ip6') || ip.value == null) return false
  const v = ipv4Unmapped(ip.value.toLowerCase())
  if (v.startsWith('127.') || v === '::1') return true
  return ownAddresses().has(v)
}

/**
 * An IPv4-mapped IPv6 address as its IPv4 one (a dual-stack socket sees IPv4 peers so); others as
 * they are. Multiaddr writes `::ffff:127.0.0.1` as `::ffff:7f00:1`.
 */
function ipv4Unmapped (v: string): string {
  if (!v.startsWith('::ffff:')) return v
  const rest = v.slice('::ffff:'.length)
  if (rest.includes('.')) return rest
  const groups = rest.split(':')
  if (groups.length !== 2 || !groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return v
  const [high, low] = groups.map((g) => parseInt(g, 16))
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.')
}
