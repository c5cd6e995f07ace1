/**
 * Access control on a real broker (libp2p on 127.0.0.1, library clients with kept identities):
 * each permission for an allowed and a refused peer, the connection gater, protected mode against
 * a relayed client, a permission withdrawn at run time, the ACL kept across a restart, and hostile
 * ACL files refused with a line naming the file and the key.
 */
import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { AclFileError, ErrorCode, PermissionDeniedError, createAdmin, createBroker, createRelay, type AclFile, type Admin, type DeniedEvent } from '../src/index.js'
import { loadIdentity } from '../src/home.js'
import { consumer, onCleanup, producer, sleep, startBroker, tempDir, until, type TestBroker } from './helpers.js'
import { run } from './cli-helpers.js'

/**
 * A client identity: its peer ID, and its key as `dataDir` of each client using it (a directory
 * each, as one process locks a data directory per node).
 */
class Identity {
  private constructor (readonly peer: string, private readonly key: Buffer) {}

  static async make (): Promise<Identity> {
    const dataDir = join(await tempDir('p2pmq-acl-id-'), 'id')
    const id = await loadIdentity(dataDir)
    await id.release()
    return new Identity(peerIdFromPrivateKey(id.privateKey).toString(), await readFile(join(dataDir, 'peer.key')))
  }

  get dataDir (): string {
    const dir = join(tmpdir(), `p2pmq-acl-use-${process.pid}-${uses++}`)
    mkdirSync(dir)
    writeFileSync(join(dir, 'peer.key'), this.key, { mode: 0o600 })
    onCleanup(async () => { await rm(dir, { recursive: true, force: true }) })
    return dir
  }
}
let uses = 0
const identity = Identity.make

async function admin (broker: TestBroker, dataDir: string): Promise<Admin> {
  const a = await createAdmin({ broker: broker.address, home: broker.home, dataDir })
  onCleanup(async () => { await a.stop() })
  return a
}

async function refusedWith<T> (p: Promise<T>): Promise<PermissionDeniedError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(PermissionDeniedError)
  expect((err as PermissionDeniedError).code).toBe(ErrorCode.PermissionDenied)
  return err as PermissionDeniedError
}

function denials (broker: TestBroker): DeniedEvent[] {
  const told: DeniedEvent[] = []
  broker.node.services.mq.addEventListener('client:denied', (e) => { told.push(e.detail) })
  return told
}

describe('access control', () => {
  it('allows and refuses each permission by peer ID: produce, send, consume (pattern, group), admin read and write, acl changes, whoami', async () => {
    const [root, worker, reader, stranger] = await Promise.all([identity(), identity(), identity(), identity()])
    const acl: AclFile = {
      peers: {
        [root.peer]: { admin: 'write' },
        [worker.peer]: { produce: ['orders.*'], consume: [{ pattern: 'orders.#', group: 'billing' }] },
        [reader.peer]: { admin: 'read' },
        '*': { consume: [{ pattern: 'public.#' }] }
      }
    }
    const broker = await startBroker({ memory: true, acl })
    const told = denials(broker)
    expect(broker.node.services.mq.aclMode).toBe('acl')

    // produce: publish and send, allowed by pattern, refused outside it (the seq counts: the next one works).
    const p = await producer(broker, { dataDir: worker.dataDir })
    await p.publish('orders.new', 'x')
    const refused = await refusedWith(p.publish('invoices.new', 'x'))
    expect(refused.message).toContain(`${worker.peer} may not publish to "invoices.new"`)
    await refusedWith(p.send('orders.new.eu', 'x', { timeout: 5_000 }))
    await p.publish('orders.paid', 'y')

    // consume: the pattern must be covered, in the granted group; "*"'s grants add to the peer's own.
    const c = await consumer(broker, { dataDir: worker.dataDir })
    const got: string[] = []
    await c.subscribe('orders.*', async (m) => { got.push(m.command) }, { group: 'billing' })
    await until(() => got.length === 2, 10_000, 'the two orders')
    const wider = await refusedWith(c.subscribe('orders.#.x', async () => {}, { group: 'shipping' }))
    expect(wider.message).toContain('no consume grant')
    await refusedWith(c.subscribe('#', async () => {}, { group: 'billing' }))
    await c.subscribe(['orders.*', 'public.news'], async () => {}, { group: 'billing' })
    const s = await consumer(broker, { dataDir: stranger.dataDir })
    await s.subscribe('public.#', async () => {}, { group: 'anyone' })
    await refusedWith(s.subscribe('orders.new', async () => {}, { group: 'billing' }))

    // A producer session opened by a peer that may consume only is refused per publish, not dropped.
    const sp = await producer(broker, { dataDir: stranger.dataDir })
    await refusedWith(sp.publish('public.news', 'x'))

    // admin read and write.
    const r = await admin(broker, reader.dataDir)
    expect((await r.stats()).clients.length).toBeGreaterThan(0)
    await r.messages({ state: 'pending' })
    expect((await r.acl()).peers[reader.peer]).toEqual({ admin: 'read' })
    const purge = await refusedWith(r.request('purge', { command: 'orders.new' }))
    expect(purge.message).toContain('needs admin write')
    await refusedWith(r.allow(stranger.peer, { produce: '#' }))
    const sa = await admin(broker, stranger.dataDir)
    await refusedWith(sa.stats())
    await refusedWith(sa.acl())
    await refusedWith(sa.request('watch', { interval: 250 }))
    // whoami needs no right.
    expect(await sa.whoami()).toEqual({ peer: stranger.peer, mode: 'acl', rights: { produce: [], consume: [{ pattern: 'public.#' }] } })
    expect((await r.whoami()).rights.admin).toBe('read')

    const w = await admin(broker, root.dataDir)
    expect(await w.request('purge', { command: 'orders.new' })).toEqual({ purged: 0 })
    const after = await w.allow(stranger.peer, { produce: 'public.*' })
    expect(after.peers[stranger.peer]).toEqual({ produce: ['public.*'] })
    await sp.publish('public.news', 'now allowed')

    // Each refusal told once per peer per minute, naming the peer.
    expect(told.some((d) => d.peer === worker.peer && d.role === 'producer' && d.reason.includes('invoices.new'))).toBe(true)
    expect(told.filter((d) => d.peer === worker.peer)).toHaveLength(1)
    expect(told.some((d) => d.peer === reader.peer && d.role === 'admin')).toBe(true)
  })

  it('refuses at connection time a peer with no right (an ACL without "*") and a blocked one, and the client says so', async () => {
    const [root, blocked, unknown] = await Promise.all([identity(), identity(), identity()])
    const broker = await startBroker({ memory: true, acl: { peers: { [root.peer]: { admin: 'write' }, [blocked.peer]: { blocked: true, produce: ['#'] } } } })
    const told = denials(broker)
    for (const who of [unknown, blocked]) {
      const retries: Error[] = []
      const p = await producer(broker, { dataDir: who.dataDir, onRetry: (err) => { retries.push(err) } })
      const err = await refusedWith(p.ready())
      expect(err.message).toContain(`ask its operator to allow ${who.peer}`)
      expect(retries[0]).toBeInstanceOf(PermissionDeniedError)
      expect(broker.node.getConnections().filter((c) => c.remotePeer.toString() === who.peer)).toHaveLength(0)
      await p.stop()
    }
    // An admin request of a refused peer fails at once, not at its timeout.
    const refusedAdmin = await admin(broker, unknown.dataDir)
    const started = Date.now()
    await refusedWith(refusedAdmin.stats(30_000))
    expect(Date.now() - started).toBeLessThan(5_000)
    await refusedAdmin.stop()
    expect(told.map((d) => [d.peer, d.role])).toEqual([[unknown.peer, undefined], [blocked.peer, undefined]])
    expect(told[0].reason).toContain(`p2pmq acl allow ${unknown.peer}`)
    expect(told[1].reason).toContain('blocked')
    // Allowed at run time: the next dial gets in.
    const w = await admin(broker, root.dataDir)
    await w.allow(unknown.peer, { produce: 'x' })
    const p = await producer(broker, { dataDir: unknown.dataDir })
    await p.ready()
    await p.publish('x', 1)
  })

  it('a peer refused for holding too many connections is not told that the ACL refuses it', async () => {
    // The CLI's commands share the user's identity: one more running than maxConnectionsPerPeer is
    // refused by the same gater hook as a peer the ACL grants nothing, and the client cannot tell them apart.
    const user = await identity()
    const broker = await startBroker({ memory: true, acl: 'open', maxConnectionsPerPeer: 1 })
    const first = await producer(broker, { dataDir: user.dataDir })
    await first.ready()
    const second = await producer(broker, { dataDir: user.dataDir })
    const err = await refusedWith(second.ready())
    expect(err.message).toContain('maxConnectionsPerPeer')
    await second.stop()
  })

  it('protected mode (no ACL): a client on this host may do everything, a relayed one is refused at connection time', async () => {
    const dir = await tempDir()
    const relay = await createRelay({ dataDir: join(dir, 'relay'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    onCleanup(async () => { await relay.stop() })
    const relayAddr = relay.getMultiaddrs()[0].toString()
    const node = await createBroker({ home: dir, dataDir: join(dir, 'broker'), memory: true, relays: [relayAddr] })
    onCleanup(async () => { await node.stop() })
    const broker = { node, home: dir, dataDir: join(dir, 'broker'), address: node.peerId.toString(), peerId: node.peerId.toString() }
    expect(broker.node.services.mq.aclMode).toBe('protected')
    const told = denials(broker)
    const local = await producer(broker)
    const c = await consumer(broker)
    await c.subscribe('jobs', async () => 'done')
    expect(await local.send('jobs', 1)).toBe('done')
    const a = await admin(broker, join(dir, 'local-admin'))
    expect((await a.whoami()).mode).toBe('protected')

    await until(() => broker.node.getMultiaddrs().some((m) => m.toString().includes('/p2p-circuit')), 15_000, 'the relayed address')
    // A client with no address book entry for the broker: it dials <relay>/p2p-circuit/p2p/<broker>.
    const far = await producer({ address: broker.peerId, home: await tempDir() }, { relays: [relayAddr] })
    const err = await refusedWith(far.ready())
    expect(err.message).toContain('ask its operator to allow')
    await until(() => told.length > 0, 5_000, 'the refusal told')
    expect(told[0].reason).toMatch(/\/p2p-circuit.* refused: the broker has no ACL \(protected mode\).*-acl=<file>/)
  })

  it('a permission withdrawn at run time ends the subscription; its messages go to another allowed consumer, none lost', async () => {
    const [root, a, b] = await Promise.all([identity(), identity(), identity()])
    const broker = await startBroker({
      memory: true,
      visibilityTimeout: 60_000,
      acl: { peers: { [root.peer]: { admin: 'write', produce: ['#'] }, [a.peer]: { consume: [{ pattern: 'jobs' }] }, [b.peer]: { consume: [{ pattern: 'jobs' }] } } }
    })
    const p = await producer(broker, { dataDir: root.dataDir })
    const ca = await consumer(broker, { dataDir: a.dataDir })
    const ended: Error[] = []
    ca.events.addEventListener('subscription:ended', (e) => { ended.push(e.detail.error) })
    // A holds its deliveries without settling them.
    const held: string[] = []
    await ca.subscribe('jobs', async (m) => { held.push(m.id); await new Promise(() => {}) }, { prefetch: 5 })
    for (let i = 0; i < 20; i++) await p.publish('jobs', i)
    await until(() => held.length === 5, 10_000, 'A holding 5')
    const w = await admin(broker, root.dataDir)
    await w.deny(a.peer, { consume: 'jobs' })
    await until(() => ended.length === 1, 5_000, 'the subscription ended')
    expect(ended[0]).toBeInstanceOf(PermissionDeniedError)
    // A has no right left: disconnected.
    await until(() => broker.node.getConnections().every((c) => c.remotePeer.toString() !== a.peer), 5_000, 'A disconnected')
    // A watch of a peer that loses admin read stops; the peer keeps its other rights and its connection.
    await w.allow(b.peer, { admin: 'read' })
    const watcher = await admin(broker, b.dataDir)
    let ticks = 0
    const stop = watcher.watch(() => { ticks++ }, 250)
    onCleanup(stop)
    await until(() => ticks >= 2, 5_000, 'the watch to tick')
    await w.deny(b.peer, { admin: 'read' })
    await sleep(300)
    const stoppedAt = ticks
    await sleep(1_000)
    expect(ticks).toBe(stoppedAt)
    await refusedWith(watcher.stats())
    const cb = await consumer(broker, { dataDir: b.dataDir })
    const got = new Set<number>()
    await cb.subscribe('jobs', async (m) => { got.add(m.payload as number) })
    await until(() => got.size === 20, 10_000, 'B gets all 20')
    // B's last acks may still be on their way when its handler has run: the broker empties within a moment.
    let waiting = -1
    for (let i = 0; i < 50 && waiting !== 0; i++) {
      if (i > 0) await sleep(100)
      waiting = (await w.stats()).messages
    }
    expect(waiting).toBe(0)
  })

  it('two changes at once: the second is decided by the ACL the first made, not by the rights its asker had before', async () => {
    const [a, b, x, y] = await Promise.all([identity(), identity(), identity(), identity()])
    // Protected mode: both admins, on this host, may change it; the first change makes an ACL naming only its asker.
    const broker = await startBroker({ memory: true })
    const [wa, wb] = await Promise.all([admin(broker, a.dataDir), admin(broker, b.dataDir)])
    await Promise.all([wa.whoami(), wb.whoami()])
    const results = await Promise.allSettled([wa.allow(x.peer, { produce: 'jobs' }), wb.allow(y.peer, { produce: 'jobs' })])
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected'])
    const winner = results[0].status === 'fulfilled' ? a : b
    const granted = results[0].status === 'fulfilled' ? x : y
    expect((await (winner === a ? wa : wb).acl()).peers).toEqual({ [winner.peer]: { admin: 'write' }, [granted.peer]: { produce: ['jobs'] } })
    expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(PermissionDeniedError)
  })

  it('keeps the ACL and its changes in <dataDir>/acl.json across a restart; acl: a file path replaces it', async () => {
    const [root, x] = await Promise.all([identity(), identity()])
    const home = await tempDir()
    const dataDir = join(home, 'broker')
    const start = async (acl?: 'open' | string | AclFile): Promise<TestBroker> => await startBroker({ home, dataDir, memory: true, acl })
    let broker = await start({ peers: { [root.peer]: { admin: 'write' } } })
    const kept = join(dataDir, 'acl.json')
    expect((await stat(kept)).mode & 0o777).toBe(0o600)
    let w = await admin(broker, root.dataDir)
    await w.allow(x.peer, { consume: 'jobs.#', group: 'g' })
    await w.stop()
    await broker.node.stop()
    broker = await start()
    expect(broker.node.services.mq.aclMode).toBe('acl')
    w = await admin(broker, root.dataDir)
    expect((await w.acl()).peers).toEqual({ [root.peer]: { admin: 'write' }, [x.peer]: { consume: [{ pattern: 'jobs.#', group: 'g' }] } })
    await w.stop()
    await broker.node.stop()
    // open: the kept file is left as it is.
    broker = await start('open')
    expect(broker.node.services.mq.aclMode).toBe('open')
    await broker.node.stop()
    const file = join(home, 'other.json')
    await writeFile(file, JSON.stringify({ peers: { '*': { admin: 'write' } } }))
    broker = await start(file)
    expect(JSON.parse(await readFile(kept, 'utf8'))).toEqual({ peers: { '*': { admin: 'write' } } })
  })

  it('in protected mode, the first change makes an ACL in which the asking peer may administer it', async () => {
    const [root, x] = await Promise.all([identity(), identity()])
    const broker = await startBroker({ memory: true })
    const w = await admin(broker, root.dataDir)
    const info = await w.allow(x.peer, { produce: 'jobs' })
    expect(info.mode).toBe('acl')
    expect(info.note).toContain(root.peer)
    expect(info.peers).toEqual({ [root.peer]: { admin: 'write' }, [x.peer]: { produce: ['jobs'] } })
    // The ACL decides now: a peer on this host it does not name is refused.
    const other = await producer(broker)
    await refusedWith(other.ready())
    expect(await w.whoami()).toMatchObject({ mode: 'acl', rights: { admin: 'write' } })
  })

  it('refuses a hostile ACL file at start with one line naming the file and the key', async () => {
    const dir = await tempDir()
    const cases: Array<[string, string | Buffer, RegExp]> = [
      ['bad-json', '{"peers": {', /bad-json\.json: not JSON/],
      ['bad-peer', JSON.stringify({ peers: { bob: { admin: 'write' } } }), /bad-peer\.json: peers\["bob"\]: "bob" is neither a peer ID nor "\*"/],
      ['bad-pattern', JSON.stringify({ peers: { '*': { consume: [{ pattern: 'a..b' }] } } }), /bad-pattern\.json: peers\["\*"\]\.consume\[0\]\.pattern: "a\.\.b" is not a pattern/],
      ['wrong-types', JSON.stringify({ peers: { '*': { produce: 'x', admin: true } } }), /wrong-types\.json: peers\["\*"\]\.produce: must be an array/],
      ['not-object', '[1,2]', /not-object\.json: the ACL is a JSON object/],
      ['huge', Buffer.alloc(2 * 1024 * 1024, 0x20), /huge\.json: the ACL file is 2097152 bytes, at most 1048576/],
      ['missing', '', /missing\.json: no such ACL file/]
    ]
    for (const [name, content, why] of cases) {
      const file = join(dir, `${name}.json`)
      if (name !== 'missing') await writeFile(file, content)
      const err = await createBroker({ home: dir, dataDir: join(dir, `broker-${name}`), memory: true, acl: file }).then(async (b) => { await b.stop() }, (e: unknown) => e)
      expect(err, name).toBeInstanceOf(AclFileError)
      expect((err as Error).message, name).toMatch(why)
      expect((err as Error).message, name).not.toContain('\n')
    }
    // An unreadable kept one stops the broker too.
    const dataDir = join(dir, 'kept')
    const b = await createBroker({ home: dir, dataDir, memory: true, acl: { peers: { '*': { admin: 'write' } } } })
    await b.stop()
    await writeFile(join(dataDir, 'acl.json'), '{"peers": {"*": {"admin": "root"}}}')
    await expect(createBroker({ home: dir, dataDir, memory: true })).rejects.toThrow(`${join(dataDir, 'acl.json')}: peers["*"].admin: "root" is not "read" or "write"`)
    if (process.getuid?.() !== 0) {
      await chmod(join(dataDir, 'acl.json'), 0)
      await expect(createBroker({ home: dir, dataDir, memory: true })).rejects.toThrow(/cannot read the ACL file/)
    }
  })

  it('p2pmq broker -acl=<FIFO or symlink to /dev/zero> exits at once: not a regular file (no hang, no memory filled)', async () => {
    const home = await tempDir()
    const fifo = join(home, 'fifo.json')
    execFileSync('mkfifo', [fifo])
    const zero = join(home, 'zero.json')
    symlinkSync('/dev/zero', zero)
    for (const file of [fifo, zero]) {
      const p = run(['broker', '-memory', '-http=off', `-acl=${file}`], home)
      // On a FIFO the broker hung in open() for good; /dev/zero filled 600+ MB before failing.
      const code = await Promise.race([p.exited, sleep(10_000).then(() => 'still running')])
      expect(code, file).toBe(2)
      expect(p.err.filter((l) => l !== ''), file).toEqual([`p2pmq: ${file}: the ACL file is not a regular file`])
    }
  })

  it('p2pmq broker -acl=<bad file> does not start: one line naming the file and the key', async () => {
    const home = await tempDir()
    const file = join(home, 'acl.json')
    await writeFile(file, JSON.stringify({ peers: { '*': { consume: [{ pattern: 'orders..x' }] } } }))
    const p = run(['broker', '-memory', '-http=off', `-acl=${file}`], home)
    expect(await p.exited).toBe(2) // usage: another -acl (or the file) fixes it
    expect(p.out.some((l) => l.startsWith('Broker peer ID'))).toBe(false)
    expect(p.err.filter((l) => l !== '')).toEqual([expect.stringMatching(new RegExp(`^p2pmq: ${file.replaceAll('.', '\\.')}: peers\\["\\*"\\]\\.consume\\[0\\]\\.pattern: "orders\\.\\.x" is not a pattern`))])
  })
})
