/**
 * Which of a node's addresses it tells other peers (identify, the relays' DHT) and which it keeps
 * for this host. A broker reachable through relays announces only what a peer on another network
 * can dial: a client that learns a LAN or loopback address spends a dial timeout (3 s) on each.
 * The addresses it listens on stay known here (the address book, "Listening on").
 */
import { isPrivate } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Startable } from '@libp2p/interface'
import type { TransportManager } from '@libp2p/interface-internal'

/** `addr` without its trailing `/p2p/<id>` (and certhash), as announce lists give it. */
function bare (addr: Multiaddr): string {
  return addr.getComponents().filter((c) => c.name !== 'p2p' && c.name !== 'certhash').map((c) => c.value == null ? `/${c.name}` : `/${c.name}/${c.value}`).join('')
}

/**
 * libp2p's `announceFilter` for a node reachable through relays: keeps relayed addresses
 * (`/p2p-circuit`, also `/p2p-circuit/webrtc`), the addresses given explicitly (`explicit`, e.g.
 * `-announce`) and public ones; drops loopback and private ones (10/8, 172.16/12, 192.168/16,
 * 100.64/10, link-local, the TEST-NETs: libp2p's list).
 */
export function reachableOnly (explicit: string[] = []): (addrs: Multiaddr[]) => Multiaddr[] {
  const given = new Set(explicit.map((a) => bare(multiaddr(a))))
  return (addrs) => addrs.filter((a) => a.toString().includes('/p2p-circuit') || given.has(bare(a)) || !isPrivate(a))
}

/** The addresses a node listens on, whatever it announces (a service: `listenAddresses()`). */
export class ListenAddresses implements Startable {
  constructor (private readonly components: { transportManager: TransportManager }) {}

  readonly [Symbol.toStringTag] = 'p2pmq/listen-addresses'

  start (): void {}
  stop (): void {}

  /** The node's own listeners' addresses (not those through relays), without `/p2p/<id>`. */
  get (): Multiaddr[] {
    return this.components.transportManager.getAddrs().filter((a) => !a.toString().includes('/p2p-circuit'))
  }
}

export function listenAddresses (): (components: { transportManager: TransportManager }) => ListenAddresses {
  return (components) => new ListenAddresses(components)
}

/**
 * Every address of `node` a peer on this host can use: where it listens, then what it announces
 * (through relays, given explicitly), each ending in /p2p/<id>, without repeats.
 */
export function localAddresses (node: { peerId: { toString: () => string }, getMultiaddrs: () => Multiaddr[], services: object }): Multiaddr[] {
  const listening = (node.services as { listenAddresses?: ListenAddresses }).listenAddresses?.get() ?? []
  const id = node.peerId.toString()
  const all = [...listening.map((a) => a.getComponents().at(-1)?.name === 'p2p' ? a : a.encapsulate(`/p2p/${id}`)), ...node.getMultiaddrs()]
  const byText = new Map(all.map((a) => [a.toString(), a]))
  return [...byText.values()]
}

/**
 * Why another host could not dial `addr` (a valid multiaddr without /p2p/), or undefined: it needs
 * a host, not 0.0.0.0 or ::, and a transport with a port other than 0 (/tcp/<port>, /udp/<port>/…).
 */
export function notDialable (addr: string): string | undefined {
  const [host, port, over] = multiaddr(addr).getComponents()
  if (!/^(ip4|ip6|dns|dns4|dns6)$/.test(host?.name ?? '')) return 'does not start with a host (/ip4|ip6/<address> or /dns/<name>)'
  if (host.value === '0.0.0.0' || host.value === '::') return `names no host (${host.value} means every interface when listening): give the address others dial`
  if (port == null || !(port.name === 'tcp' || (port.name === 'udp' && over != null))) return 'names no transport: give /tcp/<port> (or /udp/<port>/webrtc-direct)'
  if (port.value === '0') return 'has port 0: give the port others dial'
  return undefined
}
