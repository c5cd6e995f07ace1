/**
 * A hostile peer floods `p2pmq relay` (a real child process on 127.0.0.1) with streams from real
 * libp2p nodes in the test: each stream is 64 KiB of multistream-select `ls` proposals, which the
 * relay answers one by one until the stream's protocol negotiation times out. The relay's memory
 * stays bounded, a broker reserved on it keeps serving a relayed client, and SIGTERM stops it promptly.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { createNode, type P2PMQNode } from '../src/node.js'
import { logged, type Proc, run, startBroker } from './cli-helpers.js'
import { onCleanup, sleep, tempDir, until } from './helpers.js'

/** Attacker nodes (one connection each), streams each opens at once, bytes each stream carries. */
const ATTACKERS = 12
const STREAMS = 1_000
const STREAM_BYTES = 64 * 1024
/**
 * RSS the relay may grow by under the flood, in MiB. Measured after the bounds: +52 to +79 on Node
 * 20, +168 once on Node 24 in CI under load; before them, +169 with 6 attackers and 832 MiB at the
 * peak of the adversary's flood. The bound catches that; the connections taken catch the rest.
 */
const MAX_RSS_GROWTH_MIB = 256

/** A stream's worth of `ls` requests (length 3, "ls\n"), each of which multistream-select answers with its protocol list. */
const LS_FLOOD = new Uint8Array(STREAM_BYTES).map((_, i) => [3, 0x6c, 0x73, 0x0a][i % 4])

/** A raw muxer stream, before any protocol negotiation (what a hostile peer can open). */
interface RawStream { send: (data: Uint8Array) => boolean }
interface RawMuxer { createStream: () => Promise<RawStream> | RawStream }

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024

async function startRelay (home: string): Promise<{ proc: Proc, addr: string }> {
  const proc = run(['relay', '-listen=/ip4/127.0.0.1/tcp/0'], home)
  await until(() => proc.out.some((l) => l.startsWith('Listening on ')), 15_000, 'the relay to listen')
  return { proc, addr: (proc.out.find((l) => l.startsWith('Listening on ')) as string).slice('Listening on '.length) }
}

/**
 * One attacker: a new node, one connection to the relay, `STREAMS` raw streams each sending
 * `LS_FLOOD`. Returns how many streams opened, or undefined if the relay did not take the connection.
 */
async function flood (relay: string, attackers: P2PMQNode[]): Promise<number | undefined> {
  const node = await createNode({})
  attackers.push(node)
  await node.start()
  const conn = await node.dial(multiaddr(relay)).catch(() => undefined) // a relay too busy to answer
  if (conn == null) return undefined
  const muxer = (conn as unknown as { muxer: RawMuxer }).muxer
  let opened = 0
  await Promise.all(Array.from({ length: STREAMS }, async () => {
    try {
      const stream = await muxer.createStream()
      stream.send(LS_FLOOD)
      opened++
    } catch {} // the relay may reset or close: that is its defence
  }))
  return opened
}

async function answeredThrough (brokerId: string, relay: string, home: string, count: number): Promise<void> {
  const producer = run(['producer', `-broker=${brokerId}`, `-relay=${relay}`, `-count=${count}`, '-interval=0'], home)
  expect(await producer.exited, producer.err.join('\n')).toBe(0)
  expect(producer.err).toContain(`${count} of ${count} answered`)
}

describe('p2pmq relay under a stream flood', () => {
  it('keeps its memory bounded, keeps carrying a relayed client, and stops promptly on SIGTERM', async () => {
    const dir = await tempDir()
    const relay = await startRelay(join(dir, 'relay'))
    const pid = relay.proc.child.pid as number
    const broker = await startBroker(join(dir, 'broker'), ['-memory', '-acl=open', `-relay=${relay.addr}`])
    await until(() => logged(broker.proc.out, 'INFO').some((l) => l.startsWith('Reachable through a relay at ')), 15_000, 'the broker to reserve on the relay')
    const consumer = run(['consumer', `-broker=${broker.peerId}`, `-relay=${relay.addr}`], join(dir, 'consumer'))
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed to default')), 15_000, 'the consumer to subscribe')
    await answeredThrough(broker.peerId, relay.addr, join(dir, 'producer'), 5)

    const attackers: P2PMQNode[] = []
    onCleanup(async () => { await Promise.all(attackers.map(async (a) => { await a.stop() })) })
    const before = rssMiB(pid)
    let peak = before
    const sampler = setInterval(() => { try { peak = Math.max(peak, rssMiB(pid)) } catch {} }, 100)
    onCleanup(() => { clearInterval(sampler) })

    const started = Date.now()
    // One attacker every 400 ms: libp2p refuses more than 5 connections a second from one host.
    // One whose connection the busy relay did not take tries once more, as an attacker would.
    // (With up to 4 tries a second apart, the relayed client once found no way in for 30 s in CI:
    // every peer here comes from 127.0.0.1, so all share the relay's limits on new connections.)
    const flooding = Promise.all(Array.from({ length: ATTACKERS }, async (_, i) => {
      await sleep(i * 400)
      return await flood(relay.addr, attackers) ?? await flood(relay.addr, attackers)
    }))
    // During the flood, the broker keeps serving a client through the relay.
    await answeredThrough(broker.peerId, relay.addr, join(dir, 'producer'), 5)
    const floods = await flooding
    const opened = floods.reduce<number>((a, b) => a + (b ?? 0), 0)
    await sleep(Math.max(0, 12_000 - (Date.now() - started))) // past libp2p's 10 s negotiation timeout
    clearInterval(sampler)
    const growth = peak - before
    const taken = floods.filter((f) => f != null).length
    console.log(`relay flood: ${opened} streams from ${taken} of ${ATTACKERS} peers; RSS ${before.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB (+${growth.toFixed(0)})`)
    expect(growth).toBeLessThan(MAX_RSS_GROWTH_MIB)
    // A relay busy answering the flood fails to take new peers' connections (their handshake times
    // out): measured, 1 of 12 taken before the bounds; after, 7 to 12 alone, 2 to 5 with the whole
    // suite running beside it (the attackers and other tests share the CPU), with a second try.
    expect(taken, 'attackers whose connection the relay took').toBeGreaterThanOrEqual(2)
    expect(opened).toBeGreaterThan(1.5 * STREAMS) // the flood got through to the relay

    // After the flood, too: the answers come from the consumer subscribed before it (its link may
    // have redialed once while the relay was busy).
    await answeredThrough(broker.peerId, relay.addr, join(dir, 'producer'), 5)
    expect(consumer.out.filter((l) => l.startsWith('Connected to broker')).length).toBeLessThanOrEqual(2)

    // SIGTERM while an attacker holds its streams open: the relay exits within a few seconds.
    // (A relay still busy with the first flood, or past its 5 new connections a second from this
    // host, may not take the attacker's connection at once: once in CI it did not. Up to 5 tries.)
    let held: number | undefined
    for (let i = 0; i < 5 && held == null; i++) {
      if (i > 0) await sleep(1_000)
      held = await flood(relay.addr, attackers)
    }
    expect(held).toBeGreaterThan(0) // streams held open (its node is stopped after the test)
    const stopping = Date.now()
    process.kill(pid, 'SIGTERM')
    expect(await relay.proc.exited).toBe(0)
    const stopMs = Date.now() - stopping
    console.log(`relay flood: SIGTERM to exit ${stopMs} ms`)
    // Under `docker stop`'s 10 s. Measured: ~0.3 s, and once 5.3 s in the whole suite on Node 20.
    expect(stopMs).toBeLessThan(8_000)
  }, 120_000)
})
