/**
 * The user's identity (`<home>/identity/peer.key`), shared by processes, and what sharing a peer
 * ID must not cost: each producer process gets its own answers, also across a reconnect.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'
import { readFile, stat, writeFile, mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { userIdentity, userIdentityPath } from '../src/index.js'
import { decodeAnswer, encodeAnswer } from '../src/broker/records.js'
import { loadIdentity } from '../src/home.js'
import { consumer, onCleanup, producer, restartableBroker, sleep, startBroker, tempDir, until } from './helpers.js'

describe('the user identity', () => {
  it('is made once, mode 0600, and every concurrent caller gets the same key', async () => {
    const home = await tempDir()
    const keys = await Promise.all(Array.from({ length: 8 }, async () => await userIdentity(home)))
    const ids = new Set(keys.map((k) => peerIdFromPrivateKey(k).toString()))
    expect(ids.size).toBe(1)
    expect((await stat(userIdentityPath(home))).mode & 0o777).toBe(0o600)
    expect(peerIdFromPrivateKey(await userIdentity(home)).toString()).toBe([...ids][0])
  })

  it('refuses a bad key file, naming it', async () => {
    const home = await tempDir()
    await mkdir(dirname(userIdentityPath(home)), { recursive: true })
    await writeFile(userIdentityPath(home), 'not a key')
    await expect(userIdentity(home)).rejects.toThrow(userIdentityPath(home))
    expect(await readFile(userIdentityPath(home), 'utf8')).toBe('not a key') // left for the user to restore
  })

  it('is not given with a name or data directory', async () => {
    const broker = await startBroker()
    await expect(producer(broker, { privateKey: await userIdentity(broker.home), name: 'x' })).rejects.toThrow(/not both/)
  })
})

/** A TCP forwarder to `port` on 127.0.0.1 that can be cut (every connection dropped, new ones refused) and restored. */
async function cuttableProxy (port: number): Promise<{ port: number, cut: () => Promise<void>, restore: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  let server: Server
  const listen = async (at: number): Promise<number> => {
    server = createServer((client) => {
      const upstream = connect(port, '127.0.0.1')
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.on('close', () => sockets.delete(s))
        s.on('error', () => {})
      }
      client.pipe(upstream).pipe(client)
    })
    return await new Promise((resolve) => server.listen(at, '127.0.0.1', () => { resolve((server.address() as { port: number }).port) }))
  }
  const cut = async (): Promise<void> => {
    const closed = new Promise((resolve) => server.close(resolve))
    for (const s of sockets) s.destroy()
    await closed
  }
  const proxyPort = await listen(0)
  onCleanup(cut)
  return { port: proxyPort, cut, restore: async () => { await listen(proxyPort) } }
}

describe('data directories made at once', () => {
  it('are all made when their parent is new: one call makes it, the others find it made', async () => {
    // (A broker failed to start in CI with "cannot be made: its file system refuses it (ENOENT)":
    // its parent appeared between its mkdir and its check of the parent. Before the fix this test
    // failed in about 1 run of 3.)
    const parent = join(await tempDir(), 'new', 'home')
    const ids = await Promise.all(Array.from({ length: 64 }, async (_, i) => await loadIdentity(join(parent, `d${i % 8}`, `e${i}`))))
    await Promise.all(ids.map(async (id) => { await id.release() }))
    expect(ids).toHaveLength(64)
  })
})

describe('producers sharing a peer ID', () => {
  it('hands an answer to the process that asked, also when it was away as it came, never to the other', async () => {
    const broker = await startBroker()
    const privateKey = await generateKeyPair('Ed25519')
    const c = await consumer(broker)
    let release = (): void => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    let got = 0
    await c.subscribe('work', async (m) => { got++; await gate; return `answer to ${m.payload as string}` })

    const brokerPort = Number(multiaddr(broker.address).getComponents().find((x) => x.name === 'tcp')?.value)
    const proxy = await cuttableProxy(brokerPort)
    const away = await producer(broker, { broker: `/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${broker.peerId}`, privateKey })
    const other = await producer(broker, { privateKey })
    expect(other.peerId).toBe(away.peerId)
    const othersResults: unknown[] = []
    other.events.addEventListener('result', (e) => { othersResults.push(e.detail) })
    await other.publish('warm-up', 'x') // its stream has said Hello

    const answer = away.send('work', 'from away', { timeout: 10_000 })
    await until(() => got === 1, 10_000, 'the consumer to get the request')
    let disconnected = false
    away.events.addEventListener('disconnected', () => { disconnected = true })
    await proxy.cut()
    await until(() => disconnected, 10_000, 'the producer to see its connection lost')
    release()
    await until(() => broker.node.services.mq.stats().keptAnswers === 1, 5_000, 'the answer kept for the producer that is away').catch(() => {})
    await sleep(300)
    await proxy.restore()

    expect(await answer).toBe('answer to from away')
    expect(othersResults).toEqual([])
    expect(await other.send('work', 'from the other')).toBe('answer to from the other')
    expect(othersResults).toEqual([])
  })
})

describe('producers sharing a peer ID, across a broker restart', () => {
  it('the answer to a request the broker kept on disk goes to the process that sent it', async () => {
    const broker = await restartableBroker()
    const privateKey = await generateKeyPair('Ed25519')
    const asker = await producer(broker.ref, { privateKey })
    const answer = asker.send('work', 'from the asker', { timeout: 15_000 })
    await until(() => broker.node.services.mq.stats().messages === 1, 10_000, 'the request at the broker')
    await broker.restart()
    await asker.ready()
    // Another process of the same peer ID, connected after it: the newest stream of that peer.
    const other = await producer(broker.ref, { privateKey })
    const othersResults: unknown[] = []
    other.events.addEventListener('result', (e) => { othersResults.push(e.detail) })
    await other.publish('warm-up', 'x')
    const c = await consumer(broker.ref)
    await c.subscribe('work', (m) => `answer to ${m.payload as string}`)
    expect(await answer).toBe('answer to from the asker')
    expect(othersResults).toEqual([])
  })
})

describe('a kept answer in the store', () => {
  it('keeps the producer session it is for, and reads an older record (without one) as for any session', () => {
    const answer = { id: 'a1', consumer: 'c', status: 0, attempts: 1, kind: 1, keptAt: 5, payload: new Uint8Array([1, 2]) }
    expect(decodeAnswer(encodeAnswer('peer', { ...answer, session: 's1' })).answer.session).toBe('s1')
    const older = encodeAnswer('peer', answer)
    // The record as it was before sessions were kept: without the last (empty) string.
    const decoded = decodeAnswer(older.subarray(0, older.byteLength - 2).slice())
    expect(decoded.answer.session).toBeUndefined()
    expect(decoded.answer.payload).toEqual(new Uint8Array([1, 2]))
  })
})
