/**
 * Relay addresses, checked where they are given: by the CLI's flags, the API, and the web page
 * (which is why this module loads nothing of libp2p but multiaddr parsing).
 */
import { multiaddr } from '@multiformats/multiaddr'

/** Checks that `addr` names a relay: a multiaddr ending in /p2p/<peerId>, without /p2p-circuit. Throws TypeError. */
export function parseRelayAddress (addr: string): string {
  const text = addr.trim()
  let names: string[]
  try {
    names = multiaddr(text).getComponents().map((c) => c.name)
  } catch (err) {
    throw new TypeError(`The relay address "${text}" is not a multiaddr (${(err as Error).message})`)
  }
  if (names.includes('p2p-circuit')) throw new TypeError(`The relay address ${text} must be the relay's own address, not one through it (/p2p-circuit)`)
  if (names.at(-1) !== 'p2p') throw new TypeError(`The relay address ${text} must end in /p2p/<relay peer ID> (p2pmq relay prints it)`)
  return text
}

/**
 * Whether the page can dial this address: WebRTC Direct with its certhash (not through a relay).
 * A browser cannot dial TCP; the page carries no WebSockets transport (relays do not listen on it).
 */
export function isBrowserDialable (addr: string): boolean {
  const names = multiaddr(addr).getComponents().map((c) => c.name)
  return names.includes('webrtc-direct') && names.includes('certhash') && !names.includes('p2p-circuit')
}
