/**
 * Where the page's broker is, and how to reach it: from the page's URL
 * (`?broker=<peer ID>&relay=<multiaddr>[,…]&stun=stun:<host>:<port>[,…]`, so any static web server
 * can serve the page), else from `/api/broker` of the broker that served it. Everything in the URL
 * is untrusted: a bad value is a `TargetError` whose message the page shows as text. A relay that
 * lies cannot stand in for the broker: the noise handshake checks the broker's peer ID.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { isBrowserDialable, parseRelayAddress } from '../src/relay-address.js'
import { parseStunServer } from '../src/stun.js'

export interface BrokerTarget {
  peerId: string
  /** Relays to reach the broker through, each an address a browser can dial ending in /p2p/<relay>. */
  relays: string[]
  /** STUN servers for the direct WebRTC upgrade through a relay; none: the page stays relayed. */
  stun: string[]
  /** The broker's own WebRTC Direct addresses, current at each dial (only when the broker served the page). */
  lookup?: () => Promise<string[]>
}

/** What `/api/broker` answers (src/web-server.ts). */
interface BrokerInfo { peerId: string, webrtc: string[], relays?: string[], stun?: string[] }

/** A bad `?broker`, `?relay` or `?stun`, or no way to find the broker. */
export class TargetError extends Error {
  name = 'TargetError'
}

/** More than this many relays or STUN servers in a URL is refused (each is dialed). */
const MAX_LISTED = 8

export async function brokerTarget (params: URLSearchParams): Promise<BrokerTarget> {
  if (params.has('broker')) return targetFromUrl(params)
  if (params.has('relay') || params.has('stun')) throw new TargetError('?relay and ?stun need ?broker=<the broker\'s peer ID>')
  const info = await apiBroker()
  return {
    peerId: info.peerId,
    relays: info.relays ?? [],
    stun: info.stun ?? [],
    lookup: async () => (await apiBroker()).webrtc
  }
}

/** The target the URL names; throws TargetError saying what is wrong. */
export function targetFromUrl (params: URLSearchParams): BrokerTarget {
  const peerId = (params.get('broker') ?? '').trim()
  try {
    peerIdFromString(peerId)
  } catch {
    throw new TargetError(`?broker=${JSON.stringify(peerId)} is not a peer ID (the broker prints its own: "Broker peer ID: 12D3KooW…")`)
  }
  const relays = listParam(params, 'relay').map((addr) => {
    let relay: string
    try {
      relay = parseRelayAddress(addr)
    } catch (err) {
      throw new TargetError(`?relay: ${(err as Error).message}`)
    }
    if (!isBrowserDialable(relay)) throw new TargetError(`?relay: a browser cannot dial ${relay}: give the relay's WebRTC Direct address (/udp/<port>/webrtc-direct/certhash/…/p2p/<relay>, which p2pmq relay prints)`)
    return relay
  })
  const relayItself = relays.find((r) => r.endsWith(`/p2p/${peerId}`))
  if (relayItself != null) throw new TargetError(`?broker=${peerId} is the peer ID of the relay ${relayItself}, not of a broker: give the broker's (it prints "Broker peer ID: …")`)
  if (relays.length === 0) throw new TargetError('?broker=<peer ID> needs ?relay=<a relay\'s WebRTC Direct address> to reach the broker through')
  const stun = listParam(params, 'stun').map((url) => {
    try {
      return parseStunServer(url)
    } catch (err) {
      throw new TargetError(`?stun: ${(err as Error).message}`)
    }
  })
  return { peerId, relays, stun }
}

/** A comma-separated (or repeated) parameter, its items trimmed; at most MAX_LISTED. */
function listParam (params: URLSearchParams, name: string): string[] {
  const items = params.getAll(name).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '')
  if (items.length > MAX_LISTED) throw new TargetError(`?${name}: at most ${MAX_LISTED}, not ${items.length}`)
  return items
}

async function apiBroker (): Promise<BrokerInfo> {
  let res: Response
  try {
    res = await fetch('/api/broker')
  } catch (err) {
    throw new TargetError(`Cannot ask this page's server for its broker (${(err as Error).message}); open the page with ?broker=<peer ID>&relay=<relay address>`)
  }
  if (!res.ok) throw new TargetError(`This page's server has no broker (/api/broker: ${res.status}); open the page with ?broker=<peer ID>&relay=<relay address>`)
  return await res.json() as BrokerInfo
}
