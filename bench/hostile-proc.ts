/**
 * Benchmark child for scenario i: hostile peers against the broker, with raw TCP sockets and raw
 * libp2p streams (no p2pmq client code), all at once and held until told to exit:
 * - 40 TCP sockets from 127.0.0.2-9 that never start their handshake (opened again as they close);
 * - 8 peers whose 24 streams each send a largest frame but its last byte;
 * - an admin stream that never reads, with 1,500 `messages` requests;
 * - 8 admin streams of 1,500 `watch` requests each (every 250 ms);
 * - 8 consumer streams of 256 subscriptions to the bench's command and group, prefetch 4,294,967,295,
 *   that never settle what they get;
 * - a producer stream that never reads, with 60,000 requests of 2 KB for a command nobody consumes;
 * - random and mutated frames on every protocol, on new streams without pause.
 * argv: <broker multiaddr> [attacks]. Reports 'ready' once every attack is under way. The attacks
 * (a comma list of sockets, partial, admin, watch, hog, flight, fuzz; default all, or
 * BENCH_HOSTILE's) run only those. All but watch and fuzz send what they send, then only hold it.
 */
import { connect, type Socket } from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { createNode, type P2PMQNode } from '../src/node.js'
import { ADMIN_PROTOCOL, CONSUMER_PROTOCOL, DEFAULT_GROUP, DEFAULT_MAX_PAYLOAD, FRAME_OVERHEAD_LIMIT, PRODUCER_PROTOCOL } from '../src/constants.js'
import { frames, sendAll } from '../test/raw-frames.js'
import { FrameType, PublishFlags, writeHello, writePublish, writeRequest, writeSubscribe } from '../src/protocol/frames.js'
import { BENCH_COMMAND, die, onCommand, report, sleep } from './common.js'

const nodes: P2PMQNode[] = []
const sockets = new Set<Socket>()
let stopped = false
const ATTACKS = new Set((process.argv[3] ?? process.env.BENCH_HOSTILE ?? 'sockets,partial,admin,watch,hog,flight,fuzz').split(',').map((s) => s.trim()))

async function node (): Promise<P2PMQNode> {
  const n = await createNode({})
  await n.start()
  nodes.push(n)
  return n
}

async function open (n: P2PMQNode, broker: string, protocol: string): Promise<Stream | undefined> {
  try {
    return await n.dialProtocol(multiaddr(broker), protocol, { signal: AbortSignal.timeout(5_000) })
  } catch {
    return undefined
  }
}

function send (s: Stream | undefined, bytes: Uint8Array): void {
  try { s?.send(bytes) } catch {}
}

/** Idle sockets that never start the handshake; one is opened again when the broker closes one. */
function slowSockets (port: number): void {
  const idle = (host: number): void => {
    if (stopped) return
    const s = connect({ host: '127.0.0.1', port, localAddress: `127.0.0.${host}` })
    sockets.add(s)
    s.on('error', () => {})
    s.on('close', () => { sockets.delete(s); setTimeout(() => { idle(host) }, 1_000) })
  }
  for (let host = 2; host <= 9; host++) for (let i = 0; i < 5; i++) idle(host)
}

async function main (): Promise<void> {
  const [broker] = process.argv.slice(2)
  if (broker == null) throw new Error('usage: hostile-proc <broker multiaddr>')
  if (ATTACKS.has('sockets')) slowSockets(Number(broker.split('/')[4]))

  const frameLength = DEFAULT_MAX_PAYLOAD + FRAME_OVERHEAD_LIMIT
  const partial = new Uint8Array(frameLength + 3)
  new DataView(partial.buffer).setUint32(0, frameLength)
  partial[4] = FrameType.Publish
  for (let i = 0; i < (ATTACKS.has('partial') ? 8 : 0); i++) {
    await sleep(250) // libp2p takes 5 new connections a second from one host
    const n = await node()
    await Promise.all([PRODUCER_PROTOCOL, CONSUMER_PROTOCOL, ADMIN_PROTOCOL].flatMap((p) => Array.from({ length: 8 }, async () => { send(await open(n, broker, p), partial) })))
  }

  await sleep(250)
  const admin = await node()
  const reader = ATTACKS.has('admin') ? await open(admin, broker, ADMIN_PROTOCOL) : undefined
  reader?.pause()
  send(reader, frames((w) => { for (let i = 1; i <= 1_500; i++) writeRequest(w, i, 'messages', new TextEncoder().encode('{"limit":100000}')) }))
  const watch = frames((w) => { for (let i = 1; i <= 1_500; i++) writeRequest(w, i, 'watch', new TextEncoder().encode('{"interval":0}')) })
  await Promise.all(Array.from({ length: ATTACKS.has('watch') ? 8 : 0 }, async () => {
    const s = await open(admin, broker, ADMIN_PROTOCOL)
    s?.addEventListener('message', () => {})
    send(s, watch)
  }))

  await sleep(250)
  const hog = await node()
  await Promise.all(Array.from({ length: ATTACKS.has('hog') ? 8 : 0 }, async (_, k) => {
    const s = await open(hog, broker, CONSUMER_PROTOCOL)
    s?.addEventListener('message', () => {}) // takes deliveries, never settles them
    send(s, frames((w) => { for (let i = 1; i <= 256; i++) writeSubscribe(w, k * 1000 + i, 0xffffffff, 0, DEFAULT_GROUP, [BENCH_COMMAND]) }))
  }))

  if (ATTACKS.has('flight')) {
    await sleep(250)
    const s = await open(await node(), broker, PRODUCER_PROTOCOL)
    s?.pause()
    const payload = new Uint8Array(2_048)
    for (let batch = 0; batch < 60 && s != null; batch++) {
      const bytes = frames((w) => {
        if (batch === 0) writeHello(w, 'attacker')
        for (let seq = batch * 1_000 + 1; seq <= (batch + 1) * 1_000; seq++) {
          writePublish(w, seq, PublishFlags.WantsAnswer, { command: 'attack.sink', id: `m${seq}`, headers: undefined, kind: 0, payload })
        }
      })
      // The broker stops reading it past its in-flight limit: send what fits, then hold.
      if (!await sendAll(s, bytes, 2_000)) break
    }
  }

  await sleep(250)
  const fuzz = await node()
  void (async () => {
    let seed = 12
    const random = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n }
    const protocols = [PRODUCER_PROTOCOL, CONSUMER_PROTOCOL, ADMIN_PROTOCOL]
    while (!stopped && ATTACKS.has('fuzz')) {
      const s = await open(fuzz, broker, protocols[random(3)])
      const chunks = Array.from({ length: 100 }, () => {
        const body = new Uint8Array(1 + random(64)).map(() => random(256))
        const f = new Uint8Array(4 + body.byteLength)
        new DataView(f.buffer).setUint32(0, random(8) === 0 ? random(2 ** 32) : body.byteLength)
        f.set(body, 4)
        return f
      })
      send(s, Buffer.concat(chunks))
      await sleep(10)
      s?.abort(new Error('done'))
    }
  })()

  onCommand(() => {}, async () => {
    stopped = true
    for (const s of sockets) s.destroy()
    await Promise.all(nodes.map(async (n) => { await n.stop() }))
  })
  report({ type: 'ready' })
}

main().catch(die)
