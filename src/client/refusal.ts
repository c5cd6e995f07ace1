/**
 * How a client tells that the broker refused its connection (its connection gater closed it right
 * after the handshake). No imports: the CLI's `-help` path uses it without loading libp2p.
 */

/**
 * libp2p's dial error when the remote ends the connection as soon as it is encrypted: an
 * UnexpectedEOFError from the protocol negotiation's read, or the stream's close event itself when
 * its write was waiting for the stream to drain. (Once in CI under load, a refused client retried
 * until its timeout, each failure taken for this by the CLI's hint but not by `dial`, which then
 * knew only the EOF.)
 */
export function closedAfterHandshake (err: unknown): boolean {
  const e = err as { name?: string, constructor?: { name?: string } } | undefined
  return e?.name === 'UnexpectedEOFError' || e?.constructor?.name === 'StreamCloseEvent'
}
