/**
 * The access control list (pure: no I/O, no clock): what each peer ID, or `*` (any peer), may do.
 * `produce`: command patterns it may publish and send to; `consume`: patterns (and optionally a
 * group) whose subscriptions it may make; `admin`: `read` or `write`. A peer's rights are the union
 * of its own grants and `*`'s, unless it is blocked. An `Acl` never changes: `allow`/`deny` return
 * a new one, so a session's cached decisions (`Rights`) stay right until it is given new ones.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js'
import { groupError, patternError } from '../names.js'
import { compilePattern, isWildcard } from './topic.js'
import type { AclFile, AclInfo, AclMode, AdminLevel, ConsumeGrant, Grant, PeerGrants } from './api.js'

/** The ACL's key for any peer. */
export const ANY_PEER = '*'
/** Peers an ACL names at most, and grants of one kind one peer holds at most (a file and a change are refused past them). */
export const MAX_ACL_PEERS = 10_000
export const MAX_GRANTS = 1_000
/** Decisions a `Rights` caches of each kind before it starts over (a hostile peer naming new commands cannot grow it). */
const MAX_CACHED = 4_096
/**
 * Work (automaton states stepped) spent deciding whether one pattern covers another; past it the
 * answer is "no" (refused, never wrongly allowed). Real grants and patterns take tens; hostile
 * 255-byte patterns of 40-60 wildcards on both sides took at most 0.3 ms (warm, 2-core machine).
 */
const MAX_COVER_WORK = 2_000

const ENTRY_KEYS = new Set(['produce', 'consume', 'admin', 'blocked'])

/** What a peer may do, with its decisions cached: sessions ask this per frame. */
export class Rights {
  private readonly produced = new Map<string, boolean>()
  private readonly consumed = new Map<string, boolean>()
  private readonly producers: Array<(command: string) => boolean>

  /**
   * @param grants its own grants and `*`'s (empty when blocked)
   * @param everything open mode, or protected mode from this host: every check passes
   */
  constructor (readonly peer: string, readonly grants: PeerGrants, readonly blocked = false, readonly everything = false) {
    this.producers = (grants.produce ?? []).map(compilePattern)
  }

  /** Every right: open mode, or protected mode from this host. */
  static everything (peer: string): Rights {
    return new Rights(peer, EVERYTHING, false, true)
  }

  /** No right at all: refused at connection time. */
  get none (): boolean {
    return !this.everything && (this.blocked || (this.producers.length === 0 && (this.grants.consume ?? []).length === 0 && this.grants.admin == null))
  }

  mayProduce (command: string): boolean {
    if (this.everything) return true
    let ok = this.produced.get(command)
    if (ok == null) {
      ok = this.producers.some((m) => m(command))
      if (this.produced.size >= MAX_CACHED) this.produced.clear()
      this.produced.set(command, ok)
    }
    return ok
  }

  /** Whether a subscription of `group` to `patterns` is allowed: each pattern covered by a grant for that group (or any group). */
  mayConsume (patterns: readonly string[], group: string): boolean {
    if (this.everything) return true
    const key = `${group}\n${patterns.join('\n')}`
    let ok = this.consumed.get(key)
    if (ok == null) {
      const grants = (this.grants.consume ?? []).filter((g) => g.group == null || g.group === group)
      ok = patterns.every((p) => grants.some((g) => covers(g.pattern, p)))
      if (this.consumed.size >= MAX_CACHED) this.consumed.clear()
      this.consumed.set(key, ok)
    }
    return ok
  }

  mayAdmin (level: AdminLevel): boolean {
    if (this.everything) return true
    const has = this.grants.admin
    return has === 'write' || (has === 'read' && level === 'read')
  }
}

/** The rights of open mode (and of this host's peers in protected mode). */
const EVERYTHING: PeerGrants = { produce: ['#'], consume: [{ pattern: '#' }], admin: 'write' }

export class Acl {
  private constructor (readonly mode: AclMode, private readonly peers: ReadonlyMap<string, Readonly<PeerGrants>>) {}

  /** Any peer may do everything. */
  static open (): Acl {
    return new Acl('open', new Map())
  }

  /** No ACL yet: this host's peers may do everything, the others nothing. */
  static protected (): Acl {
    return new Acl('protected', new Map())
  }

  /** An ACL from its file's parsed JSON; throws InvalidArgumentError naming the entry and key at fault. */
  static of (raw: unknown): Acl {
    return new Acl('acl', parseAcl(raw))
  }

  /** The ACL as its file holds it (a copy). */
  toFile (): AclFile {
    const peers: Record<string, PeerGrants> = {}
    for (const [peer, g] of this.peers) peers[peer] = copyGrants(g)
    return { peers }
  }

  info (): AclInfo {
    return { mode: this.mode, ...this.toFile() }
  }

  /** What `peer` may do; `local` says it connected from this host (what protected mode lets do everything). */
  rights (peer: string, local: boolean): Rights {
    if (this.mode === 'open' || (this.mode === 'protected' && local)) return Rights.everything(peer)
    if (this.mode === 'protected') return new Rights(peer, {})
    const own = this.peers.get(peer)
    if (own?.blocked === true) return new Rights(peer, {}, true)
    return new Rights(peer, union(own, this.peers.get(ANY_PEER)))
  }

  /**
   * Adds `grant` to `peer`'s entry (unblocking it); returns the ACL after. The first change of a
   * protected ACL starts from an empty ACL in which the asking peer gets admin write (the result's
   * `note` says so); an open one is not changed (ConflictError): it would be kept as `*` allowed
   * everything, an open broker nobody is warned about.
   */
  allow (peer: string, grant: Grant, asker: string): { acl: Acl, note?: string } {
    const { peers, note } = this.start(asker)
    const entry: PeerGrants = peers.get(peer)?.blocked === true ? {} : copyGrants(peers.get(peer) ?? {})
    if ('produce' in grant) {
      entry.produce = addOnce(entry.produce ?? [], grant.produce)
    } else if ('consume' in grant) {
      const has = (entry.consume ?? []).some((c) => c.pattern === grant.consume && c.group === grant.group)
      if (!has) entry.consume = [...(entry.consume ?? []), grant.group == null ? { pattern: grant.consume } : { pattern: grant.consume, group: grant.group }]
    } else {
      if (entry.admin !== 'write') entry.admin = grant.admin
    }
    if ((entry.produce?.length ?? 0) > MAX_GRANTS || (entry.consume?.length ?? 0) > MAX_GRANTS) throw new InvalidArgumentError(`A peer holds at most ${MAX_GRANTS} grants of a kind`)
    peers.set(peer, entry)
    if (peers.size > MAX_ACL_PEERS) throw new InvalidArgumentError(`An ACL names at most ${MAX_ACL_PEERS} peers`)
    return { acl: Acl.checked(peers), note }
  }

  /** Withdraws `grant` from `peer`'s entry, or with no grant blocks `peer`; returns the ACL after. */
  deny (peer: string, grant: Grant | undefined, asker: string): { acl: Acl, note?: string } {
    const { peers, note } = this.start(asker)
    if (grant == null) {
      if (peer === ANY_PEER) throw new InvalidArgumentError('"*" cannot be blocked: withdraw its grants one by one instead')
      peers.set(peer, { blocked: true })
      return { acl: Acl.checked(peers), note }
    }
    const entry = copyGrants(peers.get(peer) ?? {})
    const missing = (): NotFoundError => new NotFoundError(`${peer} has no grant ${describeGrant(grant)} of its own${peer !== ANY_PEER ? ' (a grant of "*" is withdrawn from "*")' : ''}`)
    if ('produce' in grant) {
      if (!(entry.produce ?? []).includes(grant.produce)) throw missing()
      entry.produce = entry.produce?.filter((p) => p !== grant.produce)
    } else if ('consume' in grant) {
      const kept = (entry.consume ?? []).filter((c) => !(c.pattern === grant.consume && c.group === grant.group))
      if (kept.length === (entry.consume ?? []).length) throw missing()
      entry.consume = kept
    } else {
      if (entry.admin == null) throw missing()
      // Withdrawing write leaves read; withdrawing read leaves nothing (write includes it).
      if (grant.admin === 'write' && entry.admin === 'write') entry.admin = 'read'
      else if (grant.admin === 'read') delete entry.admin
      else throw missing()
    }
    if (entry.produce?.length === 0) delete entry.produce
    if (entry.consume?.length === 0) delete entry.consume
    if (Object.keys(entry).length === 0) peers.delete(peer)
    else peers.set(peer, entry)
    return { acl: Acl.checked(peers), note }
  }

  /** An ACL of `peers`, refused (ConflictError) when no peer could change it any more. */
  private static checked (peers: Map<string, PeerGrants>): Acl {
    const writer = [...peers.values()].some((g) => g.admin === 'write' && g.blocked !== true)
    if (!writer) throw new ConflictError('This change would leave no peer with admin write, so the ACL could never change again: allow another peer admin write first')
    return new Acl('acl', peers)
  }

  /** The entries a change starts from. */
  private start (asker: string): { peers: Map<string, PeerGrants>, note?: string } {
    if (this.mode === 'acl') return { peers: new Map([...this.peers].map(([p, g]) => [p, copyGrants(g)])) }
    if (this.mode === 'open') {
      throw new ConflictError('The broker runs open (-acl=open: any peer may do everything), so it has no ACL to change: restart it with -acl=<file>, or without -acl to use the ACL it keeps')
    }
    return { peers: new Map([[asker, { admin: 'write' }]]), note: `The broker had no ACL (protected mode): it has one now, in which ${asker} (this client) may administer it (admin write); peers on this host no longer get every right` }
  }
}

function union (own: Readonly<PeerGrants> | undefined, any: Readonly<PeerGrants> | undefined): PeerGrants {
  const admin = own?.admin === 'write' || any?.admin === 'write' ? 'write' : own?.admin ?? any?.admin
  return {
    produce: [...(own?.produce ?? []), ...(any?.produce ?? [])],
    consume: [...(own?.consume ?? []), ...(any?.consume ?? [])],
    ...(admin != null ? { admin } : {})
  }
}

function copyGrants (g: Readonly<PeerGrants>): PeerGrants {
  const copy: PeerGrants = {}
  if (g.produce != null) copy.produce = [...g.produce]
  if (g.consume != null) copy.consume = g.consume.map((c) => ({ ...c }))
  if (g.admin != null) copy.admin = g.admin
  if (g.blocked === true) copy.blocked = true
  return copy
}

function addOnce (list: string[], item: string): string[] {
  return list.includes(item) ? list : [...list, item]
}

export function describeGrant (grant: Grant): string {
  if ('produce' in grant) return `produce "${grant.produce}"`
  if ('consume' in grant) return `consume "${grant.consume}"${grant.group != null ? ` in group "${grant.group}"` : ''}`
  return `admin ${grant.admin}`
}

/** What `g` lets a peer do, in a few words: `produce orders.*; consume jobs.# in group w; admin read` ('' for nothing). */
export function describeGrants (g: PeerGrants): string {
  if (g.blocked === true) return 'blocked (refused everything)'
  const parts: string[] = []
  if ((g.produce ?? []).length > 0) parts.push(`produce ${(g.produce ?? []).join(', ')}`)
  if ((g.consume ?? []).length > 0) parts.push(`consume ${(g.consume ?? []).map((c) => c.group != null ? `${c.pattern} in group ${c.group}` : c.pattern).join(', ')}`)
  if (g.admin != null) parts.push(`admin ${g.admin}`)
  return parts.join('; ')
}

/** Why `peer` is not a peer ID nor `*`, or undefined. */
export function peerKeyError (peer: string): string | undefined {
  if (peer === ANY_PEER) return undefined
  try {
    if (peerIdFromString(peer).toString() === peer) return undefined
    return `"${peer}" is not a peer ID as libp2p writes it`
  } catch (err) {
    return `"${short(peer)}" is neither a peer ID nor "*" (${(err as Error).message})`
  }
}

/** Checks an `acl-allow`/`acl-deny` request: `{ peer, produce } | { peer, consume, group? } | { peer, admin }`, or `{ peer }` alone for a deny. */
export function parseChange (raw: unknown, needsGrant: boolean): { peer: string, grant?: Grant } {
  if (raw == null || typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidArgumentError('An ACL change is an object: { peer, produce | consume (and group) | admin }')
  const r = raw as Record<string, unknown>
  if (typeof r.peer !== 'string') throw new InvalidArgumentError('An ACL change needs a peer: a peer ID, or "*" for any peer')
  const badPeer = peerKeyError(r.peer)
  if (badPeer != null) throw new InvalidArgumentError(badPeer)
  const kinds = ['produce', 'consume', 'admin'].filter((k) => r[k] != null)
  for (const key of Object.keys(r)) if (!['peer', 'produce', 'consume', 'group', 'admin'].includes(key)) throw new InvalidArgumentError(`An ACL change has no key "${short(key)}"`)
  if (kinds.length > 1) throw new InvalidArgumentError('An ACL change names one grant: produce, consume or admin')
  if (kinds.length === 0) {
    if (needsGrant) throw new InvalidArgumentError('acl-allow needs a grant: produce, consume (and group) or admin')
    if (r.group != null) throw new InvalidArgumentError('group goes with consume')
    return { peer: r.peer }
  }
  if (r.group != null && kinds[0] !== 'consume') throw new InvalidArgumentError('group goes with consume')
  if (kinds[0] === 'produce') return { peer: r.peer, grant: { produce: pattern(r.produce, 'produce') } }
  if (kinds[0] === 'consume') {
    const group = r.group == null ? undefined : groupName(r.group, 'group')
    return { peer: r.peer, grant: group == null ? { consume: pattern(r.consume, 'consume') } : { consume: pattern(r.consume, 'consume'), group } }
  }
  if (r.admin !== 'read' && r.admin !== 'write') throw new InvalidArgumentError('admin is "read" or "write"')
  return { peer: r.peer, grant: { admin: r.admin } }
}

/** The entries of an ACL file's parsed JSON; throws InvalidArgumentError naming the entry and key at fault. */
export function parseAcl (raw: unknown): Map<string, PeerGrants> {
  if (raw == null || typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidArgumentError('the ACL is a JSON object: { "peers": { "<peer ID or *>": { "produce": [...], "consume": [...], "admin": "read" | "write" } } }')
  for (const key of Object.keys(raw)) if (key !== 'peers') throw new InvalidArgumentError(`unknown key "${short(key)}" (the ACL holds only "peers")`)
  const peers = (raw as { peers?: unknown }).peers
  if (peers == null || typeof peers !== 'object' || Array.isArray(peers)) throw new InvalidArgumentError('peers: must be an object of peer ID (or "*") → grants')
  const entries = Object.entries(peers)
  if (entries.length > MAX_ACL_PEERS) throw new InvalidArgumentError(`peers: names ${entries.length} peers, at most ${MAX_ACL_PEERS}`)
  const out = new Map<string, PeerGrants>()
  for (const [peer, value] of entries) {
    const at = `peers[${JSON.stringify(short(peer))}]`
    const badPeer = peerKeyError(peer)
    if (badPeer != null) throw new InvalidArgumentError(`${at}: ${badPeer}`)
    out.set(peer, parseEntry(value, at, peer === ANY_PEER))
  }
  return out
}

function parseEntry (value: unknown, at: string, any: boolean): PeerGrants {
  if (value == null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidArgumentError(`${at}: must be an object with produce, consume, admin or blocked`)
  const v = value as Record<string, unknown>
  for (const key of Object.keys(v)) if (!ENTRY_KEYS.has(key)) throw new InvalidArgumentError(`${at}: unknown key "${short(key)}" (one of produce, consume, admin, blocked)`)
  const g: PeerGrants = {}
  if (v.produce != null) {
    g.produce = list(v.produce, `${at}.produce`).map((p, i) => pattern(p, `${at}.produce[${i}]`))
  }
  if (v.consume != null) {
    g.consume = list(v.consume, `${at}.consume`).map((c, i): ConsumeGrant => {
      const where = `${at}.consume[${i}]`
      if (c == null || typeof c !== 'object' || Array.isArray(c)) throw new InvalidArgumentError(`${where}: must be an object { "pattern": "...", "group": "..." (optional) }`)
      const r = c as Record<string, unknown>
      for (const key of Object.keys(r)) if (key !== 'pattern' && key !== 'group') throw new InvalidArgumentError(`${where}: unknown key "${short(key)}" (pattern, group)`)
      const p = pattern(r.pattern, `${where}.pattern`)
      return r.group == null ? { pattern: p } : { pattern: p, group: groupName(r.group, `${where}.group`) }
    })
  }
  if (v.admin != null) {
    if (v.admin !== 'read' && v.admin !== 'write') throw new InvalidArgumentError(`${at}.admin: ${JSON.stringify(v.admin)?.slice(0, 40)} is not "read" or "write"`)
    g.admin = v.admin
  }
  if (v.blocked != null) {
    if (typeof v.blocked !== 'boolean') throw new InvalidArgumentError(`${at}.blocked: must be true or false`)
    if (any && v.blocked) throw new InvalidArgumentError(`${at}.blocked: "*" cannot be blocked (list the peers allowed instead, without "*")`)
    if (v.blocked) g.blocked = true
  }
  return g
}

function list (value: unknown, at: string): unknown[] {
  if (!Array.isArray(value)) throw new InvalidArgumentError(`${at}: must be an array`)
  if (value.length > MAX_GRANTS) throw new InvalidArgumentError(`${at}: holds ${value.length} grants, at most ${MAX_GRANTS}`)
  return value
}

function pattern (value: unknown, at: string): string {
  if (typeof value !== 'string') throw new InvalidArgumentError(`${at}: must be a pattern (a string such as "orders.*")`)
  const why = patternError(value)
  if (why != null) throw new InvalidArgumentError(`${at}: ${JSON.stringify(short(value))} is not a pattern (${why})`)
  return value
}

function groupName (value: unknown, at: string): string {
  if (typeof value !== 'string') throw new InvalidArgumentError(`${at}: must be a group name (a string)`)
  const why = groupError(value)
  if (why != null) throw new InvalidArgumentError(`${at}: ${JSON.stringify(short(value))} is not a group name (${why})`)
  return value
}

/** A name shortened for an error message (a hostile file may hold megabytes in one key). */
function short (s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s
}

/**
 * Whether every command `pattern` matches, `grant` matches too (both valid patterns: `*` one
 * word, `#` zero or more). E.g. `orders.#` covers `orders.*.eu`; `orders.*` does not cover
 * `orders.#`. Decided exactly by walking `pattern`'s automaton against the subset automaton of
 * `grant`'s, looking for a command the first accepts and the second does not.
 */
export function covers (grant: string, pattern: string): boolean {
  if (grant === pattern) return true
  if (!isWildcard(grant)) return false
  if (!isWildcard(pattern)) return compilePattern(grant)(pattern)
  const g = canonical(grant.split('.'))
  if (g.every((w) => w === '#')) return true
  return contained(canonical(pattern.split('.')), g)
}

/** A run of wildcards holding k `*` and some `#` matches "at least k words": written as k `*` then one `#`. */
function canonical (words: string[]): string[] {
  const out: string[] = []
  let stars = 0
  let hash = false
  const flush = (): void => {
    for (let i = 0; i < stars; i++) out.push('*')
    if (hash) out.push('#')
    stars = 0
    hash = false
  }
  for (const w of words) {
    if (w === '*') stars++
    else if (w === '#') hash = true
    else {
      flush()
      out.push(w)
    }
  }
  flush()
  return out
}

/** Whether every word sequence `p` matches, `g` matches (both canonical). */
function contained (p: string[], g: string[]): boolean {
  const n = g.length
  const literals = new Set(g.filter((w) => w !== '*' && w !== '#'))
  // A word `g` does not name behaves like any other such word: '' stands for them all.
  const alphabet = [...literals, '']
  const symbol = (w: string): string => literals.has(w) ? w : ''
  const closure = (states: Set<number>): number[] => {
    for (const i of states) if (i < n && g[i] === '#') states.add(i + 1) // (a Set iterates what is added)
    return [...states].sort((a, b) => a - b)
  }
  let work = 0
  const step = (states: number[], w: string): number[] => {
    work += states.length + 1
    const next = new Set<number>()
    for (const i of states) {
      if (i >= n) continue
      if (g[i] === '#') next.add(i)
      else if (g[i] === '*' || g[i] === w) next.add(i + 1)
    }
    return closure(next)
  }
  // A state: p's position, g's states, and whether a word was read (a command has at least one).
  const seen = new Set<string>()
  const todo: Array<[number, number[], boolean]> = [[0, closure(new Set([0])), false]]
  while (todo.length > 0) {
    const [j, states, read] = todo.pop() as [number, number[], boolean]
    const key = `${j}:${read ? 1 : 0}:${states.join(',')}`
    if (seen.has(key)) continue
    if (work > MAX_COVER_WORK) return false
    seen.add(key)
    if (j === p.length) {
      if (read && !states.includes(n)) return false
      continue
    }
    const w = p[j]
    if (w === '#') {
      todo.push([j + 1, states, read])
      for (const s of alphabet) todo.push([j, step(states, s), true])
    } else if (w === '*') {
      for (const s of alphabet) todo.push([j + 1, step(states, s), true])
    } else {
      todo.push([j + 1, step(states, symbol(w)), true])
    }
  }
  return true
}
