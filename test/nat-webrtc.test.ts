/**
 * The direct upgrade across NATs: a relay and a STUN server on the public segment, a broker behind
 * NAT A reserved on the relay, a consumer behind NAT B that finds the broker by peer ID through the
 * relay. With `-stun` on both, the consumer moves from the relayed connection to a direct WebRTC
 * one (ICE punches both MASQUERADE NATs); with `--random-fully` on NAT B it cannot, and stays
 * relayed. Either way every answer arrives. Needs root, `ip`, `iptables` and coturn's `turnserver`
 * (as in this project's CI; elsewhere skipped, saying why).
 */
import { spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { logged, runIn } from './cli-helpers.js'
import { until } from './helpers.js'
import { createNetwork, netnsUnavailable, punchedFlows, startStun, turnserverUnavailable, type Host, type Network, type NetworkOptions } from './netns.js'

const BIN = fileURLToPath(new URL('../dist/cmd/p2pmq.js', import.meta.url))
const unavailable = netnsUnavailable() ?? turnserverUnavailable()
if (unavailable != null) console.warn(`NAT WebRTC tests skipped: ${unavailable}`)

/** A `p2pmq` process in a namespace, its output as lines. */
interface Cli { child: ChildProcess, out: string[], outAt: number[], err: string[], exited: Promise<number | null> }
interface Answer { n: number, answer?: string }
interface ClientStats { role: string, via: string }

/** The whole scene, built per test and torn down after it. */
interface Scene {
  net: Network
  run: (host: Host, args: string[], env?: Record<string, string>) => Cli
  relayAddr: string
  stunUrl: string
  brokerId: string
  /** The broker's address on LAN A, for the producer and stats beside it. */
  brokerLan: string
  broker: Cli
}

let teardown: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const step of teardown.reverse()) await step()
  teardown = []
})

async function scene (options: NetworkOptions): Promise<Scene> {
  const net = await createNetwork({ publicHosts: ['relay', 'stun'], lans: { a: ['a1', 'a2'], b: ['b1'] }, dropUnsolicited: true, ...options })
  teardown.push(async () => { await net.teardown() })
  const dir = mkdtempSync(join(tmpdir(), 'p2pmq-nat-webrtc-'))
  teardown.push(() => { rmSync(dir, { recursive: true, force: true }) })
  let homes = 0
  const run = (host: Host, args: string[], env: Record<string, string> = {}): Cli =>
    runIn(net, host, process.execPath, [BIN, ...args], join(dir, `home-${homes++}`), env)
  const { hosts } = net
  const stun = await startStun(net, hosts.stun, dir)
  const stunUrl = `stun:${stun.ip}:${stun.port}`
  const relay = run(hosts.relay, ['relay', `-listen=/ip4/${hosts.relay.ip}/tcp/4001`])
  await until(() => relay.out.some((l) => l.startsWith('Listening on ')), 20_000, `the relay to listen (${relay.err.join(' ')})`)
  const relayAddr = (relay.out.find((l) => l.startsWith('Listening on ')) as string).slice('Listening on '.length)
  const broker = run(hosts.a1, ['broker', '-acl=open', `-listen=/ip4/${hosts.a1.ip}/tcp/4002`, '-http=off', '-memory', `-relay=${relayAddr}`, `-stun=${stunUrl}`])
  await until(() => logged(broker.out, 'INFO').some((l) => l.startsWith('Reachable through a relay at ')), 20_000, `the broker's reservation (${broker.err.join(' ')})`)
  const brokerLan = (broker.out.find((l) => l.startsWith('Listening on ')) as string).slice('Listening on '.length)
  const brokerId = brokerLan.split('/p2p/')[1]
  return { net, run, relayAddr, stunUrl, brokerId, brokerLan, broker }
}

/** How the broker sees its consumers connected (`p2pmq stats` run beside it, on LAN A). */
async function consumerVias (s: Scene): Promise<string[]> {
  const stats = s.run(s.net.hosts.a2, ['stats', `-broker=${s.brokerLan}`, '-json'])
  expect(await stats.exited).toBe(0)
  const clients = (JSON.parse(stats.out.join('\n')) as { clients: ClientStats[] }).clients
  return clients.filter((c) => c.role === 'consumer').map((c) => c.via)
}

/**
 * A producer beside the broker sends `count` requests, one every 25 ms, before and while the
 * consumer behind NAT B connects (through the relay, then maybe directly): every one is answered,
 * each once.
 */
async function answersWhileConsumerConnects (s: Scene, count: number): Promise<{ consumer: Cli, started: number, answers: Answer[] }> {
  const producer = s.run(s.net.hosts.a2, ['producer', `-broker=${s.brokerLan}`, '-command=nat', `-count=${count}`, '-interval=25', '-timeout=40000', '-json'])
  const started = performance.now()
  const consumer = s.run(s.net.hosts.b1, ['consumer', `-broker=${s.brokerId}`, `-relay=${s.relayAddr}`, `-stun=${s.stunUrl}`, '-command=nat'])
  teardown.push(async () => { consumer.child.kill('SIGTERM'); await consumer.exited })
  expect(await producer.exited, producer.err.join('\n')).toBe(0)
  const answers = producer.out.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Answer)
  return { consumer, started, answers }
}

function expectEveryAnswerOnce (answers: Answer[], count: number): void {
  expect(answers.map((a) => a.n).sort((x, y) => x - y)).toEqual(Array.from({ length: count }, (_, i) => i + 1))
  for (const a of answers) expect(a.answer).toBe(`Answer to Hello world #${a.n}!`)
}

describe.skipIf(unavailable != null)('a consumer behind another NAT than the broker\'s, through a relay', () => {
  it('moves to a direct WebRTC connection when both NATs allow it, and loses no answer on the way', { timeout: 90_000 }, async () => {
    const s = await scene({})
    const count = 120
    const { consumer, started, answers } = await answersWhileConsumerConnects(s, count)
    expectEveryAnswerOnce(answers, count)
    // Connected twice: through the relay, then (the relayed connection closed) directly.
    await until(() => consumer.out.filter((l) => l.startsWith('Connected to broker')).length >= 2, 15_000, `the consumer to reconnect directly (${consumer.err.join(' ')})`)
    expect(await consumerVias(s)).toEqual(['webrtc'])
    // The direct path is a UDP flow NAT B saw replies on (a punched hole), to NAT A's public address.
    expect(punchedFlows(s.net).length).toBeGreaterThan(0)
    const connectedAt = consumer.out.flatMap((l, i) => l.startsWith('Connected to broker') ? [consumer.outAt[i] - started] : [])
    console.log(`consumer connected through the relay ${connectedAt[0].toFixed(0)} ms after its start, directly over WebRTC at ${connectedAt[1].toFixed(0)} ms`)
  })
})

describe.skipIf(unavailable != null)('a producer behind another NAT than the broker\'s, through a relay', () => {
  it('sends steadily while its own connection moves to a direct WebRTC one: every request answered exactly once', { timeout: 90_000 }, async () => {
    const s = await scene({})
    // The consumer beside the broker (LAN A, direct TCP): only the producer's connection changes.
    const consumer = s.run(s.net.hosts.a2, ['consumer', `-broker=${s.brokerLan}`, '-command=nat', '-quiet'])
    teardown.push(async () => { consumer.child.kill('SIGTERM'); await consumer.exited })
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed to')), 20_000, `the consumer to subscribe (${consumer.err.join(' ')})`)
    const count = 160
    const producer = s.run(s.net.hosts.b1, ['producer', `-broker=${s.brokerId}`, `-relay=${s.relayAddr}`, `-stun=${s.stunUrl}`, '-command=nat', `-count=${count}`, '-interval=25', '-timeout=40000', '-json'])
    expect(await producer.exited, producer.err.join('\n')).toBe(0)
    const answers = producer.out.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Answer)
    expectEveryAnswerOnce(answers, count)
    // It joined through the relay, left when that connection closed, and joined again directly.
    const producerId = logged(s.broker.out, 'INFO').find((l) => l.startsWith('producer ') && l.endsWith(' joined'))?.split(' ')[1] as string
    const joins = logged(s.broker.out, 'INFO').filter((l) => l === `producer ${producerId} joined`)
    console.log(`the producer joined ${joins.length} times; ${answers.length} answers, the slowest ${Math.max(...answers.map((a) => (a as { ms?: number }).ms ?? 0)).toFixed(0)} ms`)
    expect(joins.length).toBeGreaterThanOrEqual(2)
    expect(punchedFlows(s.net).length).toBeGreaterThan(0)
  })
})

describe.skipIf(unavailable != null)('a consumer behind a NAT with --random-fully', () => {
  it('stays relayed, and every answer still arrives', { timeout: 90_000 }, async () => {
    const s = await scene({ randomFully: ['b'] })
    const count = 40
    const { consumer, answers } = await answersWhileConsumerConnects(s, count)
    expectEveryAnswerOnce(answers, count)
    // Past the WebRTC attempt's timeout, still the one relayed connection.
    await new Promise((resolve) => setTimeout(resolve, 11_000))
    expect(await consumerVias(s)).toEqual(['relay'])
    expect(consumer.out.filter((l) => l.startsWith('Connected to broker'))).toHaveLength(1)
  })
})

describe('-stun', () => {
  it('refuses what is not a STUN server URL, naming it, before starting anything', () => {
    for (const bad of ['198.51.100.11:3478', 'http://198.51.100.11:3478', 'stun:', 'stun:198.51.100.11:port']) {
      const run = spawnSync(process.execPath, [BIN, 'consumer', '-broker=12D3KooWAbc', '-relay=/ip4/127.0.0.1/tcp/1/p2p/12D3KooWFpXH3E49WgbyscAzLs41Y6WK3EKFnvHSSuUXzENFQRpZ', `-stun=${bad}`], { encoding: 'utf8', timeout: 20_000 })
      expect(run.status, run.stderr).toBe(2)
      expect(run.stderr).toContain(`-stun: not a STUN server URL (stun:<host>:<port>): ${bad}`)
    }
  })
})
