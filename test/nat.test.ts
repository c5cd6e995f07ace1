/**
 * The NAT harness (test/netns.ts) itself, and p2pmq across its NATs: a public segment, two LANs
 * each behind its own MASQUERADE NAT. Needs root, `ip` and `iptables` (as in this project's CI;
 * elsewhere the tests are skipped and say why).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { until } from './helpers.js'
import { connectTcp, createNetwork, listenTcp, namespacesWithPrefix, netnsUnavailable, startStun, stunBinding, sweepStaleNamespaces, type Host, type Network } from './netns.js'

const BIN = fileURLToPath(new URL('../dist/cmd/p2pmq.js', import.meta.url))
const unavailable = netnsUnavailable()
if (unavailable != null) console.warn(`NAT tests skipped: ${unavailable}`)
const noStun = unavailable ?? (() => {
  try {
    execFileSync('turnserver', ['--version'], { stdio: 'ignore' })
    return undefined
  } catch {
    return '`turnserver` is missing (.ci/run installs coturn)'
  }
})()
if (unavailable == null && noStun != null) console.warn(`STUN tests skipped: ${noStun}`)

function vethsInHostNamespace (): string[] {
  return execFileSync('ip', ['-o', 'link', 'show', 'type', 'veth'], { encoding: 'utf8' }).split('\n').filter((l) => l !== '')
}

/** A `p2pmq` process in `host`, its output as lines. */
interface Cli { child: ChildProcess, out: string[], err: string[], exited: Promise<number | null> }

describe.skipIf(unavailable != null)('the NAT harness', () => {
  let net: Network
  const homes: string[] = []
  const vethsBefore = unavailable == null ? vethsInHostNamespace() : []

  beforeAll(async () => {
    net = await createNetwork({ publicHosts: ['relay', 'stun', 'peer'], lans: { a: ['a1', 'a2'], b: ['b1'] } })
    console.log(`network of ${net.namespaces.length} namespaces built in ${net.setupMs.toFixed(0)} ms (${net.prefix})`)
  })
  afterAll(async () => {
    await net?.teardown()
    for (const home of homes) rmSync(home, { recursive: true, force: true })
  })

  function home (): string {
    const dir = mkdtempSync(join(tmpdir(), 'p2pmq-nat-'))
    homes.push(dir)
    return dir
  }

  function p2pmq (host: Host, args: string[]): Cli {
    const child = net.run(host, process.execPath, [BIN, ...args], { env: { ...process.env, P2PMQ_HOME: home() }, stdio: ['ignore', 'pipe', 'pipe'] })
    const out: string[] = []
    const err: string[] = []
    const lines = (into: string[]) => {
      let rest = ''
      return (b: Buffer): void => {
        const parts = (rest + b.toString()).split('\n')
        rest = parts.pop() ?? ''
        into.push(...parts)
      }
    }
    child.stdout?.on('data', lines(out))
    child.stderr?.on('data', lines(err))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
    return { child, out, err, exited }
  }

  it('builds in bounded time, with no route out of the public segment', () => {
    expect(net.setupMs).toBeLessThan(10_000)
    for (const name of ['relay', 'stun', 'peer']) {
      const routes = execFileSync('ip', ['-n', net.hosts[name].ns, '-4', 'route'], { encoding: 'utf8' })
      expect(routes).not.toMatch(/default/)
    }
    for (const nat of Object.values(net.nats)) {
      expect(execFileSync('ip', ['-n', nat.ns, '-4', 'route'], { encoding: 'utf8' })).not.toMatch(/default/)
    }
    expect(execFileSync('ip', ['-n', net.hosts.a1.ns, '-4', 'route'], { encoding: 'utf8' })).toMatch(`default via ${net.nats.a.lanIp}`)
  })

  it('a host in LAN A reaches a server on the public segment, seen as NAT A\'s public address', async () => {
    await listenTcp(net, net.hosts.relay, 7001)
    expect(await connectTcp(net, net.hosts.a1, net.hosts.relay.ip, 7001)).toEqual({ connected: true, seenAs: net.nats.a.publicIp })
    expect(await connectTcp(net, net.hosts.b1, net.hosts.relay.ip, 7001)).toEqual({ connected: true, seenAs: net.nats.b.publicIp })
    // Inside the LAN, no NAT: a2 sees a1 as itself.
    await listenTcp(net, net.hosts.a2, 7002)
    expect(await connectTcp(net, net.hosts.a1, net.hosts.a2.ip, 7002)).toEqual({ connected: true, seenAs: net.hosts.a1.ip })
  })

  it('a server in LAN A is reachable neither from the public segment nor from LAN B', async () => {
    await listenTcp(net, net.hosts.a1, 7003, '0.0.0.0')
    const { a } = net.nats
    // At NAT A's public address nothing listens, and nothing is forwarded in.
    expect(await connectTcp(net, net.hosts.peer, a.publicIp, 7003)).toEqual({ connected: false, code: 'ECONNREFUSED' })
    expect(await connectTcp(net, net.hosts.b1, a.publicIp, 7003)).toEqual({ connected: false, code: 'ECONNREFUSED' })
    // The LAN's own address: no route to it from outside.
    expect(await connectTcp(net, net.hosts.peer, net.hosts.a1.ip, 7003)).toEqual({ connected: false, code: 'ENETUNREACH' })
    expect(await connectTcp(net, net.hosts.b1, net.hosts.a1.ip, 7003)).toMatchObject({ connected: false })
    // Even a public host that routes LAN A through NAT A gets nothing back: the NAT forwards only replies in.
    execFileSync('ip', ['-n', net.hosts.peer.ns, 'route', 'add', a.subnet, 'via', a.publicIp])
    try {
      expect(await connectTcp(net, net.hosts.peer, net.hosts.a1.ip, 7003, 500)).toEqual({ connected: false, code: 'ETIMEDOUT' })
    } finally {
      execFileSync('ip', ['-n', net.hosts.peer.ns, 'route', 'del', a.subnet])
    }
  })

  it('the public segment cannot reach the host', async () => {
    const hostIps = Object.values(networkInterfaces()).flat()
      .filter((i) => i?.family === 'IPv4' && !i.internal).map((i) => (i as { address: string }).address)
    const server: Server = createServer((s) => s.end('host'))
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve))
    try {
      const { port } = server.address() as AddressInfo
      expect(hostIps.length).toBeGreaterThan(0)
      for (const ip of hostIps) {
        // Refused before any packet leaves: no route.
        expect(await connectTcp(net, net.hosts.relay, ip, port)).toEqual({ connected: false, code: 'ENETUNREACH' })
        // Nor from the NATs, so a LAN host's packet for the host stops at its NAT (asked of the
        // routing table: no packet is sent to an address outside the namespaces).
        for (const ns of [...Object.values(net.nats).map((n) => n.ns), net.switchNs, ...['relay', 'stun', 'peer'].map((h) => net.hosts[h].ns)]) {
          expect(() => execFileSync('ip', ['-n', ns, 'route', 'get', ip], { stdio: 'pipe' }), ns).toThrow(/unreachable/)
        }
        expect(execFileSync('ip', ['-n', net.hosts.a1.ns, 'route', 'get', ip], { encoding: 'utf8' })).toContain(`via ${net.nats.a.lanIp}`)
      }
      // 127.0.0.1 in a namespace is that namespace's own loopback, not the host's.
      expect(await connectTcp(net, net.hosts.relay, '127.0.0.1', port)).toEqual({ connected: false, code: 'ECONNREFUSED' })
    } finally {
      server.close()
    }
  })

  it('p2pmq today across both NATs: broker on the public segment, consumer behind NAT A, producer behind NAT B; every answer arrives', async () => {
    const broker = p2pmq(net.hosts.relay, ['broker', `-listen=/ip4/${net.hosts.relay.ip}/tcp/4001`, '-http=0'])
    await until(() => broker.out.some((l) => l.startsWith('Web: ')), 20_000, `the broker to listen (${broker.err.join(' ')})`)
    const listen = broker.out.find((l) => l.startsWith('Listening on ')) as string
    const address = listen.slice('Listening on '.length)
    expect(address).toMatch(new RegExp(`^/ip4/${net.hosts.relay.ip.replaceAll('.', '\\.')}/tcp/4001/p2p/12D3KooW`))

    const consumer = p2pmq(net.hosts.a1, ['consumer', `-broker=${address}`, '-command=nat'])
    await until(() => consumer.out.some((l) => l.startsWith('Subscribed to')), 20_000, `the consumer to subscribe (${consumer.err.join(' ')})`)
    // The broker sees the consumer's connection as coming from NAT A.
    const flows = execFileSync('ip', ['netns', 'exec', net.hosts.relay.ns, 'ss', '-Htn', 'state', 'established', 'sport', '= :4001'], { encoding: 'utf8' })
    expect(flows).toContain(`${net.nats.a.publicIp}:`)
    expect(flows).not.toContain(net.hosts.a1.ip)

    const producer = p2pmq(net.hosts.b1, ['producer', `-broker=${address}`, '-command=nat', '-count=10', '-interval=0', '-timeout=15000', '-json'])
    expect(await producer.exited).toBe(0)
    const answers = producer.out.filter((l) => l !== '').map((l) => JSON.parse(l) as { n: number, answer?: string })
    expect(answers.map((a) => a.n).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    for (const a of answers) expect(a.answer).toBe(`Answer to Hello world #${a.n}!`)
  })

  it.skipIf(noStun != null)('a STUN server on the public segment sees a host behind NAT A as NAT A\'s public address, on one port for every destination', async () => {
    const started = performance.now()
    const stun = await startStun(net, net.hosts.stun, home())
    console.log(`STUN server answering ${(performance.now() - started).toFixed(0)} ms after start`)
    const second = await startStun(net, net.hosts.peer, home())
    const [mapped, again] = await stunBinding(net, net.hosts.a1, [stun, second])
    expect(mapped?.ip).toBe(net.nats.a.publicIp)
    // Endpoint-independent mapping: what lets a peer punch a hole to the port STUN told it.
    expect(again).toEqual(mapped)
    expect((await stunBinding(net, net.hosts.b1, [stun]))[0]?.ip).toBe(net.nats.b.publicIp)
  })

  it('teardown removes every namespace, veth and process it made', async () => {
    const sleeper = net.run(net.hosts.b1, 'sleep', ['600'])
    const pids = [sleeper.pid as number]
    // A process in a namespace that the harness did not start itself goes too.
    const stray = spawn('ip', ['netns', 'exec', net.hosts.a1.ns, 'sleep', '600'], { stdio: 'ignore' })
    await until(() => execFileSync('ip', ['netns', 'pids', net.hosts.a1.ns], { encoding: 'utf8' }).includes(String(stray.pid)), 5_000, 'the stray process')
    pids.push(stray.pid as number)
    await net.teardown()
    // The stray is this process's child: once killed, it is gone when reaped.
    await until(() => stray.exitCode != null || stray.signalCode != null, 5_000, 'the stray process to be killed')
    expect(namespacesWithPrefix(net.prefix)).toEqual([])
    expect(vethsInHostNamespace()).toEqual(vethsBefore)
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow()
    expect(() => net.run(net.hosts.a1, 'true')).toThrow(/torn down/)
  })
})

describe.skipIf(noStun != null)('a NAT with --random-fully', () => {
  let net: Network | undefined
  const dirs: string[] = []
  afterAll(async () => {
    await net?.teardown()
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })

  it('maps each destination to another port (only on the NAT given it), so the port STUN reports is useless to a peer', async () => {
    net = await createNetwork({ publicHosts: ['stun', 'peer'], lans: { a: ['a1'], b: ['b1'] }, randomFully: ['a'] })
    const rules = (nat: string): string => execFileSync('ip', ['netns', 'exec', nat, 'iptables', '-t', 'nat', '-S', 'POSTROUTING'], { encoding: 'utf8' })
    expect(rules(net.nats.a.ns)).toMatch(/MASQUERADE --random-fully/)
    expect(rules(net.nats.b.ns)).not.toMatch(/random-fully/)
    for (let i = 0; i < 2; i++) dirs.push(mkdtempSync(join(tmpdir(), 'p2pmq-nat-')))
    const stun = await startStun(net, net.hosts.stun, dirs[0])
    const second = await startStun(net, net.hosts.peer, dirs[1])
    const [mapped, again] = await stunBinding(net, net.hosts.a1, [stun, second])
    expect(mapped?.ip).toBe(net.nats.a.publicIp)
    expect(again?.ip).toBe(net.nats.a.publicIp)
    expect(again?.port).not.toBe(mapped?.port)
    // NAT B, without it, keeps one port.
    const [b, bAgain] = await stunBinding(net, net.hosts.b1, [stun, second])
    expect(b?.ip).toBe(net.nats.b.publicIp)
    expect(bAgain).toEqual(b)
  })
})

describe.skipIf(unavailable != null)('a run that died', () => {
  it('leaves namespaces that the next run sweeps (a dead PID in their prefix)', async () => {
    const dead = spawn('true')
    await new Promise((resolve) => dead.once('exit', resolve))
    const stale = `p2pmq-net-${dead.pid as number}-abcdef-relay`
    execFileSync('ip', ['netns', 'add', stale])
    try {
      // A live run's namespace (ours) is left alone.
      const live = `p2pmq-net-${process.pid}-abcdef-relay`
      execFileSync('ip', ['netns', 'add', live])
      try {
        expect(sweepStaleNamespaces()).toContain(stale)
        expect(namespacesWithPrefix(stale)).toEqual([])
        expect(namespacesWithPrefix(live)).toEqual([live])
      } finally {
        execFileSync('ip', ['netns', 'del', live])
      }
    } finally {
      try { execFileSync('ip', ['netns', 'del', stale], { stdio: 'ignore' }) } catch {}
    }
  })
})
