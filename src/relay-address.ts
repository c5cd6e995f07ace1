/**
 * Relay addresses: checked where they are given (the CLI's flags, the API, the web page), and read
 * back from a connection (whether it goes through a relay). The page uses it too, which is why
 * this module loads nothing of libp2p but multiaddr parsing.
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

/**
 * How a connection with this remote address reaches its peer. Only the part after the last
 * /p2p-circuit counts, since a relay may itself be reached over WebRTC Direct (a browser's relay):
 * `<relay>/p2p-circuit/p2p/<peer>` is `relay`; `<relay>/p2p-circuit/webrtc/p2p/<peer>` (signalled
 * through the relay, then direct) and WebRTC Direct are `webrtc`; anything else is `tcp`.
 */
export function connectionVia (remoteAddr: string): 'webrtc' | 'relay' | 'tcp' {
  const path = remoteAddr.split('/p2p-circuit')
  if ((path.at(-1) ?? '').includes('/webrtc')) return 'webrtc'
  return path.length > 1 ? 'relay' : 'tcp'
}
