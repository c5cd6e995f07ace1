/** `p2pmq relay`: runs a relay (circuit relay v2 and p2pmq's DHT) until Ctrl+C. */
import { existsSync, statSync } from 'node:fs'
import { isLoopback } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { DEFAULT_RELAY_LISTEN, DEFAULT_RELAY_MAX_RESERVATIONS } from '../src/constants.js'
import { defaultRelayDataDir, homeConfigPath } from '../src/home.js'
import { createRelay } from '../src/relay.js'
import { list, parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { listenError } from './broker.js'
import { notDialable } from '../src/reachable-addresses.js'
import { shutdownSignal } from './lifecycle.js'

const specs = {
  data: { type: 'string', value: '<dir>', help: 'Data directory: the relay\'s identity (peer ID) lives here (default <home>/relay)', default: '' },
  listen: { type: 'string', value: '<multiaddr>[,…]', help: 'Addresses to listen on: TCP for Node peers, UDP WebRTC Direct for browsers', default: DEFAULT_RELAY_LISTEN },
  announce: { type: 'string', value: '<multiaddr>[,…]', help: 'Addresses to announce instead (e.g. the host\'s public address; TCP ones are also announced over WebRTC Direct at the -listen UDP port)', default: '' },
  'max-reservations': { type: 'number', integer: true, min: 1, max: 1_000_000, value: '<n>', help: 'Brokers (peers) holding a reservation at once', default: DEFAULT_RELAY_MAX_RESERVATIONS }
} satisfies FlagSpecs

export const summary = 'Run a relay: brokers behind NAT reserve on it, clients reach them through it and find them by peer ID.'

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('relay', summary, specs))
    return 0
  }
  const listen = relayAddrs('listen', flags.listen)
  const announce = flags.announce !== '' ? relayAddrs('announce', flags.announce) : undefined
  const dataDir = flags.data !== '' ? flags.data : defaultRelayDataDir()
  if (existsSync(dataDir) && !statSync(dataDir).isDirectory()) throw new UsageError(`-data=${dataDir} is not a directory`)
  const node = await createRelay({ dataDir, listen, announce, maxReservations: flags['max-reservations'] })
    .catch((err) => { throw listenError(err, listen) ?? err })
  console.log(`Relay peer ID: ${node.peerId.toString()}`)
  for (const addr of node.getMultiaddrs()) console.log(`Listening on ${addr.toString()}`)
  // Where the address goes on the other hosts (the home there, not necessarily this one's path): a
  // TCP one (Node peers dial TCP), not loopback unless the relay listens on nothing else.
  const tcp = node.getMultiaddrs().filter((a) => a.getComponents().some((c) => c.name === 'tcp'))
  const forOthers = (tcp.find((a) => !isLoopback(a)) ?? tcp[0])?.toString()
  if (forOthers != null) console.log(`Brokers and clients: -relay=${forOthers}, or P2PMQ_RELAY, or { "relay": ["${forOthers}"] } in ${homeConfigPath()}`)
  await shutdownSignal()
  console.log('Stopping relay')
  await node.stop()
  return 0
}

/**
 * -listen, -announce: TCP multiaddrs (`/ip4|ip6|dns…/<host>/tcp/<port>`) and WebRTC Direct ones
 * (`/ip4|ip6/<address>/udp/<port>/webrtc-direct`, without a certhash: the relay has its own).
 */
function relayAddrs (flag: string, value: string): string[] {
  const addrs = list(value)
  if (addrs.length === 0) throw new UsageError(`-${flag} needs at least one address`)
  for (const addr of addrs) {
    let names: string[]
    try {
      names = multiaddr(addr).getComponents().map((c) => c.name)
    } catch (err) {
      throw new UsageError(`-${flag}: "${addr}" is not a multiaddr (${(err as Error).message})`)
    }
    const ip = /^(ip4|ip6)$/.test(names[0])
    const tcp = names.length === 2 && names[1] === 'tcp' && (ip || (flag === 'announce' && /^(dns|dns4|dns6)$/.test(names[0])))
    const webrtc = names.length === 3 && ip && names[1] === 'udp' && names[2] === 'webrtc-direct'
    if (!tcp && !webrtc) {
      throw new UsageError(`-${flag}: "${addr}" is neither a TCP address (/ip4|ip6/<address>/tcp/<port>${flag === 'announce' ? ', or /dns/<name>/tcp/<port>' : ''}) nor a WebRTC Direct one (/ip4|ip6/<address>/udp/<port>/webrtc-direct)`)
    }
    const why = flag === 'announce' ? notDialable(addr) : undefined
    if (why != null) throw new UsageError(`-announce: "${addr}" ${why}`)
  }
  return addrs
}
