/**
 * Scenario h's networks: the NAT harness of the tests (test/netns.ts, compiled beside the bench,
 * never shipped) with a relay (`p2pmq relay`) and a STUN server (coturn) on the public segment,
 * the broker behind NAT A and its clients behind NAT B, each child started in its namespace with
 * `Network.run`. Both NATs drop what comes in unasked, as home routers do.
 *
 * - relayed: neither side has a STUN server, so every byte goes through the relay;
 * - direct: both have one, the clients' relayed connections upgrade to WebRTC (ICE punches both
 *   NATs), and a client is ready only once its connection to the broker is direct.
 *
 * Clients are given the broker's peer ID and the relay only (each its own p2pmq home, so no
 * address book knows the broker).
 */
import { type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createNetwork, netnsUnavailable, punchedFlows, startStun, turnserverUnavailable, type Host, type Network } from '../test/netns.js'
import { NET_CLIENT_ENV, brokerPeerOf, type NetClient, type StartIn } from './common.js'

export type AcrossMode = 'relayed' | 'direct'

const BIN = fileURLToPath(new URL('../cmd/p2pmq.js', import.meta.url))
const RELAY_PORT = 4001
/** How long the relay may take to listen. */
const RELAY_TIMEOUT_MS = 20_000

/** Why scenario h cannot run here, or undefined when it can. */
export function acrossUnavailable (): string | undefined {
  return netnsUnavailable() ?? turnserverUnavailable()
}

/** Where a throughput or latency run starts its broker and its clients (default: forked here, on 127.0.0.1). */
export interface Placement {
  /** The broker child's argv after <dataDir> <home> <mode>, and how to start it. */
  broker: { args: string[], where?: StartIn }
  /** What clients are given as the broker (its multiaddr, or its peer ID across networks), and how to start one. */
  client: (brokerAddr: string, options?: { firstAnswer?: boolean }) => { broker: string, where?: StartIn }
  /** Processes outside the run whose CPU use it reports too (the relay), by name. */
  watched?: Record<string, number>
}

/** One network with its relay and STUN server, for the runs of one round; `close()` removes it all. */
export interface Across {
  net: Network
  placement: (mode: AcrossMode) => Placement
  close: () => Promise<void>
}

/** `p2pmq relay` on the relay host; resolves with its address once it listens. */
async function startRelay (net: Network, host: Host, home: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess, addr: string }> {
  const child = net.run(host, process.execPath, [BIN, 'relay', `-listen=/ip4/${host.ip}/tcp/${RELAY_PORT}`], {
    env: { ...env, P2PMQ_HOME: home }, stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stderr?.on('data', (b: Buffer) => { err += b.toString() })
  const addr = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`The relay did not listen within ${RELAY_TIMEOUT_MS} ms: ${err}`)) }, RELAY_TIMEOUT_MS)
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString()
      const line = out.split('\n').find((l) => l.startsWith('Listening on ') && l.includes(`/ip4/${host.ip}/`))
      if (line != null) { clearTimeout(timer); resolve(line.slice('Listening on '.length).trim()) }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`The relay exited (${String(code)}): ${err}`)) })
  })
  child.stdout?.resume()
  return { child, addr }
}

/** Builds the network, the STUN server and the relay; `env` is the children's environment. */
export async function openAcross (tmp: string, env: NodeJS.ProcessEnv): Promise<Across> {
  const dir = await mkdtemp(join(tmp, 'across-'))
  let net: Network | undefined
  try {
    net = await createNetwork({ publicHosts: ['relay', 'stun'], lans: { a: ['a1'], b: ['b1'] }, dropUnsolicited: true })
    const { hosts } = net
    const stun = await startStun(net, hosts.stun, dir)
    const stunUrl = `stun:${stun.ip}:${stun.port}`
    const relay = await startRelay(net, hosts.relay, join(dir, 'relay'), env)
    let homes = 0
    const home = (): string => join(dir, `home-${++homes}`)
    const run = (host: Host, extra: NodeJS.ProcessEnv = {}): StartIn => {
      const env = { P2PMQ_HOME: home(), P2PMQ_RELAY: '', P2PMQ_STUN: '', ...extra }
      return { spawn: (cmd, args, options) => (net as Network).run(host, cmd, args, options), env }
    }
    const placement = (mode: AcrossMode): Placement => {
      const stunList = mode === 'direct' ? [stunUrl] : undefined
      return {
        broker: {
          args: [JSON.stringify({ listen: `/ip4/${hosts.a1.ip}/tcp/0`, relays: [relay.addr], stun: stunList })],
          where: run(hosts.a1)
        },
        watched: { relay: relay.child.pid as number },
        client: (brokerAddr, options = {}) => {
          const client: NetClient = { relays: [relay.addr], stun: stunList, direct: mode === 'direct', firstAnswer: options.firstAnswer }
          return { broker: brokerPeerOf(brokerAddr), where: run(hosts.b1, { [NET_CLIENT_ENV]: JSON.stringify(client) }) }
        }
      }
    }
    const opened = net
    return {
      net,
      placement,
      close: async () => {
        await opened.teardown()
        await rm(dir, { recursive: true, force: true })
      }
    }
  } catch (err) {
    await net?.teardown()
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

/**
 * Checks a direct run's bytes went around the relay: NAT B has a UDP flow to NAT A's public
 * address that saw replies (a punched hole), as the NAT tests check.
 */
export function checkPunched (net: Network): void {
  if (punchedFlows(net).length === 0) throw new Error(`NAT B has no replied UDP flow to NAT A (${net.nats.a.publicIp}): the connection was not punched`)
}

/** Checks every client of a run was connected to the broker as `mode` says (all relayed, or all WebRTC). */
export function checkVias (mode: AcrossMode, clients: Array<{ name: string, vias: unknown }>): void {
  const want = mode === 'direct' ? 'webrtc' : 'relay'
  for (const c of clients) {
    const vias = c.vias as string[] | undefined
    if (vias == null || vias.length === 0 || vias.some((v) => v !== want)) {
      throw new Error(`${c.name} was connected to the broker by ${vias?.join(', ') ?? 'nothing'}, not only ${want}`)
    }
  }
}
