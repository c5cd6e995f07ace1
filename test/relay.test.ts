/**
 * `p2pmq relay`, a broker reachable through it, and clients reaching that broker by peer ID, all
 * as real child processes on 127.0.0.1. Each process has its own p2pmq home, so the address book
 * of the host cannot help: clients find the broker only through the relay.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { killGroup, logged, type Proc, run, startBroker } from './cli-helpers.js'
import { freeUdpPort, tempDir, until } from './helpers.js'
import { loadIdentity } from '../src/home.js'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'

async function startRelay (home: string, listen = '/ip4/127.0.0.1/tcp/0'): Promise<{ proc: Proc, addr: string }> {
  const proc = run(['relay', `-listen=${listen}`], home)
  await until(() => proc.out.some((l) => l.startsWith('Listening on ')), 15_000, 'the relay to listen')
  const id = proc.out.find((l) => l.startsWith('Relay peer ID: '))?.slice('Relay peer ID: '.length)
  expect(id).toMatch(/^12D3KooW/)
  const addr = (proc.out.find((l) => l.startsWith('Listening on ')) as string).slice('Listening on '.length)
  expect(addr).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${id as string}$`))
  return { proc, addr }
}

const BIN = fileURLToPath(new URL('../dist/cmd/p2pmq.js', import.meta.url))

const relayedLines = (proc: Proc): string[] => logged(proc.out, 'INFO').filter((l) => l.startsWith('Reachable through a relay at '))

/** Runs `p2pmq <args>` with P2PMQ_RELAY set for that child only. */
function runWithRelayEnv (args: string[], home: string, relay: string): Proc {
  const before = process.env.P2PMQ_RELAY
  process.env.P2PMQ_RELAY = relay
  try {
    return run(args, home)
  } finally {
    if (before == null) delete process.env.P2PMQ_RELAY
    else process.env.P2PMQ_RELAY = before
  }
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
function cpuSeconds (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (USER_HZ 100 on Linux)
}

async function answeredThrough (brokerId: string, relay: string, home: string, count: number): Promise<void> {
  const producer = run(['producer', `-broker=${brokerId}`, `-relay=${relay}`, `-count=${count}`, '-interval=0'], home)
  expect(await producer.exited).toBe(0)
  expect(producer.err).toContain(`${count} of ${count} answered`)
  expect(producer.out.filter((l) => l.startsWith('Answer #'))).toHaveLength(count)
}

describe('p2pmq relay', () => {
  it('refuses a -relay that is not a relay\'s address, and a relay -listen that is neither TCP nor WebRTC Direct, before starting (exit 2)', async () => {
    const dir = await tempDir()
    const cases: Array<[string[], RegExp]> = [
      [['consumer', '-broker=12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz', '-relay=/ip4/127.0.0.1/tcp/1'], /-relay: The relay address \/ip4\/127\.0\.0\.1\/tcp\/1 must end in \/p2p\/<relay peer ID>/],
      [['broker', '-memory', '-http=off', '-relay=nonsense'], /-relay: The relay address "nonsense" is not a multiaddr/],
      [['stats', '-broker=x', '-relay=/ip4/127.0.0.1/tcp/1/p2p/12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz/p2p-circuit'], /must be the relay's own address, not one through it/],
      [['relay', '-listen=/ip4/127.0.0.1/udp/0'], /-listen: "\/ip4\/127\.0\.0\.1\/udp\/0" is neither a TCP address .* nor a WebRTC Direct one/],
      [['relay', '-listen=/dns/example.com/udp/1/webrtc-direct'], /-listen: "\/dns\/example\.com\/udp\/1\/webrtc-direct" is neither/]
    ]
    for (const [args, message] of cases) {
      const proc = run(args, join(dir, 'home'))
      expect(await proc.exited).toBe(2)
      expect(proc.err[0]).toMatch(message)
      expect(proc.err).toHaveLength(1)
    }
  }, 60_000)

  it('on every interface, tells the other hosts a TCP address of this host that is not loopback', async () => {
    const dir = await tempDir()
    // Listening only (nothing dials it): the addresses libp2p expands 0.0.0.0 into, loopback first.
    const proc = run(['relay', '-listen=/ip4/0.0.0.0/tcp/0'], join(dir, 'relay'))
    await until(() => proc.out.some((l) => l.startsWith('Brokers and clients: ')), 15_000, `the relay to listen (${proc.err.join(' ')})`)
    const listening = proc.out.filter((l) => l.startsWith('Listening on ')).map((l) => l.slice('Listening on '.length))
    const hint = (proc.out.find((l) => l.startsWith('Brokers and clients: ')) as string).match(/-relay=(\S+),/)?.[1]
    // A host with no interface but loopback has nothing better to tell.
    const other = listening.find((a) => !a.startsWith('/ip4/127.'))
    console.log(`listening on ${listening.join(', ')}; told ${hint ?? 'nothing'}`)
    expect(hint).toBe(other ?? listening[0])
  }, 30_000)

  it('listens on WebRTC Direct for browsers, with a certhash that survives a restart; -announce maps onto it', async () => {
    const dir = await tempDir()
    const home = join(dir, 'relay')
    const webrtcLine = async (listen: string, extra: string[] = []): Promise<string> => {
      const proc = run(['relay', `-listen=${listen}`, ...extra], home)
      await until(() => proc.out.some((l) => l.includes('/webrtc-direct/')), 15_000, `the relay to listen on WebRTC Direct (${proc.err.join(' ')})`)
      const line = proc.out.find((l) => l.includes('/webrtc-direct/')) as string
      killGroup(proc.child)
      await proc.exited
      return line.slice('Listening on '.length)
    }
    const both = '/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/webrtc-direct'
    const first = await webrtcLine(both)
    expect(first).toMatch(/^\/ip4\/127\.0\.0\.1\/udp\/\d+\/webrtc-direct\/certhash\/[\w-]+\/p2p\/12D3KooW\w+$/)
    const certhash = (addr: string): string => addr.split('/certhash/')[1].split('/')[0]
    const second = await webrtcLine(both)
    expect(certhash(second)).toBe(certhash(first))
    // A public TCP address announced: the same host is announced over WebRTC Direct at the listen port, with the certhash.
    const udpPort = await freeUdpPort()
    const announced = await webrtcLine(`/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/${udpPort}/webrtc-direct`, ['-announce=/ip4/198.51.100.7/tcp/4001'])
    expect(announced).toBe(`/ip4/198.51.100.7/udp/${udpPort}/webrtc-direct/certhash/${certhash(first)}/p2p/${first.split('/p2p/')[1]}`)
  }, 60_000)

  it('carries a consumer and a producer that know only the broker\'s peer ID and the relay', async () => {
    const dir = await tempDir()
    const relay = await startRelay(join(dir, 'relay'))
    const broker = await startBroker(join(dir, 'broker'), ['-memory', '-acl=open', `-relay=${relay.addr}`])
    await until(() => relayedLines(broker.proc).length > 0, 15_000, 'the broker to reserve on the relay')
    expect(relayedLines(broker.proc)[0]).toBe(`Reachable through a relay at ${relay.addr}/p2p-circuit/p2p/${broker.peerId}`)

    // The consumer names the relay in P2PMQ_RELAY, the producer with -relay.
    const consumer = runWithRelayEnv(['consumer', `-broker=${broker.peerId}`], join(dir, 'consumer'), relay.addr)
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed to default')), 15_000, 'the consumer to subscribe')
    await answeredThrough(broker.peerId, relay.addr, join(dir, 'producer'), 20)

    // The broker sees the consumer's connection come through the relay.
    const stats = run(['stats', `-broker=${broker.peerId}`, `-relay=${relay.addr}`, '-json'], join(dir, 'admin'))
    expect(await stats.exited).toBe(0)
    const clients = JSON.parse(stats.out.join('\n')).clients as Array<{ role: string, via: string }>
    expect(clients.find((c) => c.role === 'consumer')?.via).toBe('relay')
    expect(clients.find((c) => c.role === 'admin')?.via).toBe('relay')
  }, 90_000)

  it('a broker reserves again when its relay comes back, without spinning while it is away', async () => {
    const dir = await tempDir()
    const relayHome = join(dir, 'relay')
    const relay = await startRelay(relayHome)
    const port = /\/tcp\/(\d+)\//.exec(relay.addr)?.[1] as string
    const broker = await startBroker(join(dir, 'broker'), ['-memory', '-acl=open', `-relay=${relay.addr}`])
    await until(() => relayedLines(broker.proc).length > 0, 15_000, 'the broker to reserve on the relay')
    const early = run(['consumer', `-broker=${broker.peerId}`, `-relay=${relay.addr}`, '-command=early'], join(dir, 'early'))
    await until(() => early.out.some((l) => l.startsWith('Subscribed to early')), 15_000, 'a consumer to subscribe before the relay dies')

    // The relay dies (by PID); the broker keeps trying, with waits growing to 10 s, not in a loop.
    process.kill(relay.proc.child.pid as number, 'SIGKILL')
    await relay.proc.exited
    const pid = broker.proc.child.pid as number
    const cpuBefore = cpuSeconds(pid)
    await new Promise((resolve) => setTimeout(resolve, 10_000))
    const cpuWhileAway = cpuSeconds(pid) - cpuBefore
    expect(cpuWhileAway).toBeLessThan(0.5)

    // The same relay (identity and port) is back: the broker reserves on it again within the longest wait.
    const back = await startRelay(relayHome, `/ip4/127.0.0.1/tcp/${port}`)
    expect(back.addr).toBe(relay.addr)
    const started = Date.now()
    await until(() => relayedLines(broker.proc).length > 1, 20_000, 'the broker to reserve again')
    const reservedAgainIn = Date.now() - started
    expect(reservedAgainIn).toBeLessThan(15_000)
    console.log(`relay down 10 s: broker used ${cpuWhileAway.toFixed(2)} CPU-s; reserved again ${reservedAgainIn} ms after the relay was back`)

    const consumer = run(['consumer', `-broker=${broker.peerId}`, `-relay=${relay.addr}`], join(dir, 'consumer'))
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed to default')), 15_000, 'a new consumer to subscribe')
    await answeredThrough(broker.peerId, relay.addr, join(dir, 'producer'), 5)
    // The consumer that was connected when the relay died is back too (its link redials).
    await until(() => early.out.filter((l) => l.startsWith('Connected to broker')).length === 2, 15_000, 'the early consumer to reconnect')
  }, 120_000)

  it('a broker tells, once each, a relay it cannot reserve on (dead, or itself) and reserves on the others', { timeout: 60_000 }, async () => {
    const dir = await tempDir()
    const relay = await startRelay(join(dir, 'relay'))
    // The broker's identity, made beforehand, to give it its own address as a relay.
    const home = join(dir, 'broker')
    const identity = await loadIdentity(join(home, 'broker'))
    const own = peerIdFromPrivateKey(identity.privateKey).toString()
    await identity.release()
    const dead = '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz'
    const self = `/ip4/127.0.0.1/tcp/9/p2p/${own}`
    const broker = await startBroker(home, ['-memory', '-acl=open', `-relay=${dead},${self},${relay.addr}`])
    await until(() => relayedLines(broker.proc).length > 0, 15_000, 'the reservation on the live relay')
    // (Beside the one warning that this open broker is reachable through relays.)
    const told = (): string[] => logged(broker.proc.err, 'WARN')
    await until(() => told().length >= 2, 10_000, `the broker to tell the two bad relays (${broker.proc.err.join(' | ')})`)
    expect(told().find((l) => l.includes(dead))).toMatch(/^Cannot reserve a slot on the relay \/ip4\/127\.0\.0\.1\/tcp\/9\/p2p\/12D3KooWFew\w+: .+ \(trying again, at most 10 s apart\)$/)
    expect(told().find((l) => l.includes(own))).toBe(`Cannot reserve a slot on the relay ${self}: it is this node itself (its own peer ID), not a relay`)
    // Retries are not told again.
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    expect(told().length).toBe(2)
  })

  it('a client given the relay\'s peer ID as the broker says so, before dialing (exit 2)', async () => {
    const dir = await tempDir()
    const relayId = '12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz'
    const relay = `/ip4/127.0.0.1/tcp/9/p2p/${relayId}`
    const cli = spawnSync(process.execPath, [BIN, 'consumer', `-broker=${relayId}`, `-relay=${relay}`, '-command=x'], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, P2PMQ_HOME: dir, P2PMQ_RELAY: '' } })
    expect(cli.status, cli.stdout + cli.stderr).toBe(2)
    expect(cli.stderr).toContain(`${relayId} is the peer ID of the relay ${relay}, not of a broker`)
  })
})
