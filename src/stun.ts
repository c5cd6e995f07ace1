/** STUN server URLs, checked where they are given (no libp2p loaded: the CLI's flag parsing uses it). */

/** A STUN server URL, `stun:<host>:<port>`; anything else is refused with a clear error. */
export function parseStunServer (url: string): string {
  if (!/^stuns?:[^\s:/?#]+(:\d{1,5})?$/.test(url)) throw new Error(`not a STUN server URL (stun:<host>:<port>): ${url}`)
  return url
}
