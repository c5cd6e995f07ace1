/**
 * The access control list on its own (pure): the file's checks, a peer's rights (its own and `*`'s,
 * blocked), pattern containment, allow/deny, protected and open modes; and the run-time part's
 * rate limit and notion of "this host".
 */
import { networkInterfaces } from 'node:os'
import { describe, expect, it } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { Acl, covers } from '../src/broker/acl.js'
import { AccessControl, isLocalAddress } from '../src/broker/acl-control.js'
import { aclOf } from '../src/broker/acl-file.js'
import { compilePattern } from '../src/broker/topic.js'
import { ConflictError, InvalidArgumentError, NotFoundError } from '../src/errors.js'
import type { DeniedEvent } from '../src/broker/api.js'

const A = '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf'
const B = '12D3KooWAXBbkpsbaaYjb4jBMWm5rDjZqUnhCxZbNQVqrVJKJFZt'
const C = '12D3KooWRBhwfeP2Y9CDkFRBAZ1pmxUadH36TKuk3KtKm5XXP8mA'

function refusal (raw: unknown): string {
  try {
    Acl.of(raw)
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError)
    return (err as Error).message
  }
  throw new Error('accepted')
}

describe('ACL file', () => {
  it('refuses what is not an ACL, naming the entry and the key', () => {
    expect(refusal([])).toMatch(/JSON object/)
    expect(refusal({ peer: {} })).toMatch(/unknown key "peer"/)
    expect(refusal({ peers: [] })).toMatch(/^peers: must be an object/)
    expect(refusal({ peers: { nobody: {} } })).toMatch(/^peers\["nobody"\]: "nobody" is neither a peer ID nor "\*"/)
    expect(refusal({ peers: { [A]: { produce: 'orders.*' } } })).toBe(`peers["${A}"].produce: must be an array`)
    expect(refusal({ peers: { [A]: { consume: [{ pattern: '#' }, { pattern: 'a..b' }] } } })).toMatch(new RegExp(`^peers\\["${A}"\\]\\.consume\\[1\\]\\.pattern: "a\\.\\.b" is not a pattern \\(`))
    expect(refusal({ peers: { [A]: { consume: ['#'] } } })).toMatch(/consume\[0\]: must be an object/)
    expect(refusal({ peers: { [A]: { consume: [{ pattern: '#', group: '' }] } } })).toMatch(/consume\[0\]\.group: "" is not a group name/)
    expect(refusal({ peers: { [A]: { admin: 'root' } } })).toBe(`peers["${A}"].admin: "root" is not "read" or "write"`)
    expect(refusal({ peers: { [A]: { consumer: [] } } })).toMatch(/unknown key "consumer"/)
    expect(refusal({ peers: { [A]: { blocked: 'yes' } } })).toMatch(/blocked: must be true or false/)
    expect(refusal({ peers: { '*': { blocked: true } } })).toMatch(/"\*" cannot be blocked/)
    expect(refusal({ peers: { [A]: { produce: Array(1001).fill('a') } } })).toMatch(/at most 1000/)
    // A hostile key is shortened in the message.
    expect(refusal({ peers: { ['x'.repeat(100_000)]: {} } }).length).toBeLessThan(300)
  })

  it('names the file: not JSON, and a bad entry', () => {
    expect(() => aclOf('{"peers": ', '/etc/acl.json')).toThrow(/^\/etc\/acl\.json: not JSON/)
    expect(() => aclOf('{"peers": {"*": {"admin": 1}}}', '/etc/acl.json')).toThrow('/etc/acl.json: peers["*"].admin: 1 is not "read" or "write"')
  })

  it('refuses a key given twice in one object (JSON.parse kept the last: a peer\'s "blocked": true undone further down)', () => {
    const dupPeer = `{"peers": {"${A}": {"blocked": true}, "*": {"produce": ["#"]}, "${A}": {"produce": ["#"]}}}`
    expect(() => aclOf(dupPeer, '/etc/acl.json')).toThrow(`/etc/acl.json: peers: the key "${A}" is given twice`)
    const dupKey = '{"peers": {"*": {"consume": [{"pattern": "a", "group": "g"}], "admin": "read", "admin": "write"}}}'
    expect(() => aclOf(dupKey, 'f')).toThrow('f: peers.*: the key "admin" is given twice')
    expect(() => aclOf('{"peers": {}, "peers": {"*": {"admin": "write"}}}', 'f')).toThrow('f: the key "peers" is given twice')
    // The same key in different objects, and strings holding quotes, backslashes and braces, are fine.
    const fine = JSON.stringify({ peers: { '*': { produce: ['a\\"}{,"admin"\\', '#'], consume: [{ pattern: 'x' }, { pattern: 'y', group: '\\' }] }, [A]: { produce: ['#'] } } })
    expect(aclOf(fine, 'f').toFile().peers['*'].consume).toEqual([{ pattern: 'x' }, { pattern: 'y', group: '\\' }])
  })

  it('keeps what it read', () => {
    const file = { peers: { '*': { produce: ['#'], consume: [{ pattern: 'orders.#', group: 'billing' }] }, [A]: { admin: 'write' as const }, [B]: { blocked: true } } }
    expect(Acl.of(file).toFile()).toEqual(file)
    expect(Acl.of(file).info()).toEqual({ mode: 'acl', ...file })
  })
})

describe('rights', () => {
  const acl = Acl.of({
    peers: {
      '*': { consume: [{ pattern: 'public.#' }] },
      [A]: { produce: ['orders.*'], consume: [{ pattern: 'orders.#', group: 'billing' }], admin: 'read' },
      [B]: { blocked: true, produce: ['#'] }
    }
  })

  it('are a peer\'s own grants and "*"\'s', () => {
    const a = acl.rights(A, false)
    expect(a.mayProduce('orders.new')).toBe(true)
    expect(a.mayProduce('orders.new.eu')).toBe(false)
    expect(a.mayProduce('public.news')).toBe(false)
    expect(a.mayConsume(['orders.*.eu'], 'billing')).toBe(true)
    expect(a.mayConsume(['orders.new'], 'shipping')).toBe(false) // the grant is for billing only
    expect(a.mayConsume(['public.x', 'orders.new'], 'billing')).toBe(true) // one from "*", one its own
    expect(a.mayConsume(['public.x', 'orders.new'], 'other')).toBe(false)
    expect(a.mayAdmin('read')).toBe(true)
    expect(a.mayAdmin('write')).toBe(false)
    expect(a.none).toBe(false)
    const stranger = acl.rights(C, false)
    expect(stranger.mayConsume(['public.#'], 'any')).toBe(true)
    expect(stranger.mayProduce('public.x')).toBe(false)
    expect(stranger.none).toBe(false)
  })

  it('are none for a blocked peer, whatever it and "*" grant; and for an unknown one without "*"', () => {
    const b = acl.rights(B, true)
    expect(b.none).toBe(true)
    expect(b.blocked).toBe(true)
    expect(b.mayProduce('orders.new')).toBe(false)
    expect(b.mayConsume(['public.x'], 'g')).toBe(false)
    expect(Acl.of({ peers: { [A]: { admin: 'write' } } }).rights(B, true).none).toBe(true)
  })

  it('answer the same from the cache, and hold a bounded cache', () => {
    const a = acl.rights(A, false)
    for (let i = 0; i < 10_000; i++) expect(a.mayProduce(`orders.${i}`)).toBe(true)
    expect(a.mayProduce('orders.x.y')).toBe(false)
    expect((a as unknown as { produced: Map<string, boolean> }).produced.size).toBeLessThanOrEqual(4096)
  })

  it('in protected mode are everything on this host and nothing elsewhere; in open mode, everything', () => {
    const p = Acl.protected()
    expect(p.rights(A, true).mayAdmin('write')).toBe(true)
    expect(p.rights(A, false).none).toBe(true)
    expect(Acl.open().rights(A, false).mayConsume(['#'], 'g')).toBe(true)
    expect(Acl.open().rights(A, false).mayAdmin('write')).toBe(true)
  })
})

describe('pattern containment (covers)', () => {
  it('decides the usual cases', () => {
    const yes: Array<[string, string]> = [
      ['orders.#', 'orders.*.eu'], ['orders.#', 'orders.#'], ['orders.#', 'orders'], ['#', 'a.#.b'], ['orders.*', 'orders.new'],
      ['*.#', '#'], ['#.*', '*.#'], ['*.#.*', 'a.#.b'], ['#.a.#', 'x.a.#'], ['a.*.#', 'a.b.c'], ['#.#', '#'], ['*.*', '*.*']
    ]
    const no: Array<[string, string]> = [
      ['orders.*', 'orders.#'], ['orders.*', 'orders.*.eu'], ['orders.new', 'orders.*'], ['a.#', '#.a'], ['*', '#'],
      ['*.*.#', '*.#'], ['orders.#', 'ordersx.#'], ['a.#.b', 'a.#'], ['#.a', 'a.#.b']
    ]
    for (const [g, p] of yes) expect(covers(g, p), `${g} covers ${p}`).toBe(true)
    for (const [g, p] of no) expect(covers(g, p), `${g} does not cover ${p}`).toBe(false)
  })

  it('agrees with matching every command of up to 6 words over a small alphabet', () => {
    const tokens = ['a', 'b', '*', '#']
    const patterns: string[] = []
    const build = (prefix: string[]): void => {
      if (prefix.length > 0) patterns.push(prefix.join('.'))
      if (prefix.length < 3) for (const t of tokens) build([...prefix, t])
    }
    build([])
    const commands: string[] = []
    const words = (prefix: string[]): void => {
      if (prefix.length > 0) commands.push(prefix.join('.'))
      if (prefix.length < 6) for (const w of ['a', 'b', 'c']) words([...prefix, w])
    }
    words([])
    const matched = new Map(patterns.map((p) => [p, commands.filter(compilePattern(p))]))
    for (const g of patterns) {
      const gm = compilePattern(g)
      for (const p of patterns) {
        const truth = (matched.get(p) ?? []).every(gm)
        expect(covers(g, p), `${g} covers ${p}`).toBe(truth)
      }
    }
  })

  it('answers fast for long hostile patterns', () => {
    const grant = Array(60).fill('#.a').join('.')
    const pattern = Array(60).fill('*.#').join('.')
    const started = performance.now()
    covers(grant, pattern)
    expect(performance.now() - started).toBeLessThan(2_000)
  })
})

describe('changes', () => {
  const base = Acl.of({ peers: { [A]: { admin: 'write' }, '*': { produce: ['public.#'] } } })

  it('allow adds a grant once; deny withdraws it; an emptied entry goes', () => {
    let acl = base.allow(B, { produce: 'orders.*' }, A).acl
    acl = acl.allow(B, { produce: 'orders.*' }, A).acl
    acl = acl.allow(B, { consume: 'orders.#', group: 'billing' }, A).acl
    expect(acl.toFile().peers[B]).toEqual({ produce: ['orders.*'], consume: [{ pattern: 'orders.#', group: 'billing' }] })
    expect(() => acl.deny(B, { consume: 'orders.#' }, A)).toThrow(NotFoundError) // the grant is billing's
    acl = acl.deny(B, { consume: 'orders.#', group: 'billing' }, A).acl
    acl = acl.deny(B, { produce: 'orders.*' }, A).acl
    expect(acl.toFile().peers[B]).toBeUndefined()
    expect(() => acl.deny(B, { produce: 'public.#' }, A)).toThrow(/grant of "\*" is withdrawn from "\*"/)
  })

  it('deny with no grant blocks; allow unblocks', () => {
    let acl = base.allow(B, { produce: 'x' }, A).acl.deny(B, undefined, A).acl
    expect(acl.rights(B, false).none).toBe(true)
    acl = acl.allow(B, { consume: 'x' }, A).acl
    expect(acl.toFile().peers[B]).toEqual({ consume: [{ pattern: 'x' }] })
    expect(() => acl.deny('*', undefined, A)).toThrow(InvalidArgumentError)
  })

  it('admin: write withdrawn leaves read, read withdrawn leaves none', () => {
    let acl = base.allow(B, { admin: 'write' }, A).acl
    acl = acl.deny(B, { admin: 'write' }, A).acl
    expect(acl.toFile().peers[B]).toEqual({ admin: 'read' })
    acl = acl.deny(B, { admin: 'read' }, A).acl
    expect(acl.toFile().peers[B]).toBeUndefined()
  })

  it('refuses a change that leaves no peer with admin write', () => {
    expect(() => base.deny(A, { admin: 'write' }, A)).toThrow(ConflictError)
    expect(() => base.deny(A, undefined, A)).toThrow(ConflictError)
    // Once another peer may write, the first may go.
    expect(base.allow(B, { admin: 'write' }, A).acl.deny(A, undefined, B).acl.rights(A, true).none).toBe(true)
  })

  it('in protected mode, the first change makes an ACL in which the asking peer may administer it', () => {
    const { acl, note } = Acl.protected().allow(B, { produce: 'orders.*' }, A)
    expect(acl.mode).toBe('acl')
    expect(acl.toFile()).toEqual({ peers: { [A]: { admin: 'write' }, [B]: { produce: ['orders.*'] } } })
    expect(note).toContain(A)
    expect(() => Acl.protected().deny(A, undefined, A)).toThrow(ConflictError)
  })

  it('in open mode, refuses changes: kept, they would make an open broker that warns nobody', () => {
    expect(() => Acl.open().deny(B, undefined, A)).toThrow(ConflictError)
    expect(() => Acl.open().allow(B, { produce: '#' }, A)).toThrow(/-acl=<file>/)
  })

  it('checks the parameters of a change (AccessControl.change)', async () => {
    const access = new AccessControl(base)
    for (const raw of [undefined, [], { peer: 7 }, { peer: 'nobody', produce: '#' }, { peer: B }, { peer: B, produce: 'a..b' },
      { peer: B, produce: '#', admin: 'read' }, { peer: B, admin: 'root' }, { peer: B, produce: '#', group: 'g' }, { peer: B, consume: '#', group: 3 }, { peer: B, extra: 1, produce: '#' }]) {
      await expect(access.change('allow', raw, A), JSON.stringify(raw)).rejects.toBeInstanceOf(InvalidArgumentError)
    }
    const after = await access.change('allow', { peer: B, consume: 'orders.#', group: 'billing' }, A)
    expect(after.peers[B]).toEqual({ consume: [{ pattern: 'orders.#', group: 'billing' }] })
    expect(access.acl.rights(B, false).mayConsume(['orders.new'], 'billing')).toBe(true)
  })
})

describe('AccessControl', () => {
  it('tells a peer\'s refusals once a minute, counting the rest', () => {
    const access = new AccessControl(Acl.protected())
    const told: DeniedEvent[] = []
    access.onDenied = (d) => { told.push(d) }
    for (let i = 0; i < 100; i++) access.denied(A, 'no', 'producer', 1_000 + i)
    access.denied(B, 'no', 'consumer', 1_000)
    access.denied(A, 'no', 'producer', 61_000)
    expect(told).toEqual([
      { peer: A, role: 'producer', reason: 'no', suppressed: 0 },
      { peer: B, role: 'consumer', reason: 'no', suppressed: 0 },
      { peer: A, role: 'producer', reason: 'no', suppressed: 99 }
    ])
  })

  it('takes loopback and this host\'s addresses as local, never a relayed one', () => {
    expect(isLocalAddress(multiaddr('/ip4/127.0.0.1/tcp/4001'))).toBe(true)
    expect(isLocalAddress(multiaddr('/ip6/::1/tcp/4001'))).toBe(true)
    expect(isLocalAddress(multiaddr('/ip4/127.0.0.1/udp/4001/webrtc-direct'))).toBe(true)
    expect(isLocalAddress(multiaddr(`/ip4/127.0.0.1/tcp/4001/p2p/${A}/p2p-circuit/p2p/${B}`))).toBe(false)
    expect(isLocalAddress(multiaddr('/ip4/203.0.113.5/tcp/4001'))).toBe(false)
    expect(isLocalAddress(multiaddr('/dns4/localhost/tcp/4001'))).toBe(false)
    // IPv4 peers of a dual-stack socket, as multiaddr writes them (::ffff:7f00:1)
    expect(isLocalAddress(multiaddr('/ip6/::ffff:127.0.0.1/tcp/4001'))).toBe(true)
    expect(isLocalAddress(multiaddr('/ip6/::ffff:203.0.113.5/tcp/4001'))).toBe(false)
    const own = Object.values(networkInterfaces()).flat().find((a) => a?.family === 'IPv4' && !a.internal)
    if (own != null) expect(isLocalAddress(multiaddr(`/ip6/::ffff:${own.address}/tcp/4001`))).toBe(true)
  })

  it('its gater refuses a peer with no right, and lets the others through', () => {
    const access = new AccessControl(Acl.of({ peers: { [A]: { admin: 'write' }, [B]: { blocked: true } } }))
    const told: DeniedEvent[] = []
    access.onDenied = (d) => { told.push(d) }
    const gate = access.gater()
    const from = { remoteAddr: multiaddr('/ip4/127.0.0.1/tcp/1') }
    const id = (s: string): any => ({ toString: () => s })
    expect(gate.denyInboundEncryptedConnection(id(A), from as any)).toBe(false)
    expect(gate.denyInboundEncryptedConnection(id(B), from as any)).toBe(true)
    expect(gate.denyInboundEncryptedConnection(id(C), from as any)).toBe(true)
    expect(told.map((d) => d.reason)).toEqual(['connection refused: this peer is blocked by the broker\'s ACL', expect.stringContaining(`p2pmq acl allow ${C}`)])
  })
})
