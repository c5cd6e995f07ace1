/** Process lifecycle shared by the long-running commands: stop cleanly on SIGINT/SIGTERM. */
import { closedAfterHandshake } from '../src/client/refusal.js'
import { PermissionDeniedError } from '../src/errors.js'
import { EXIT } from './exit-codes.js'

let stopRequested: Promise<string> | undefined

/**
 * Starts listening for SIGINT/SIGTERM and returns a promise of the first one. Called as the process
 * starts, before anything else, so a signal during startup is not lost: as PID 1 of a container a
 * process has no default action for them, and `docker stop` would wait out its timeout.
 */
export function listenForStop (): Promise<string> {
  stopRequested ??= new Promise((resolve) => {
    const on = (signal: string): void => {
      process.off('SIGINT', on)
      process.off('SIGTERM', on)
      resolve(signal)
    }
    process.on('SIGINT', on)
    process.on('SIGTERM', on)
  })
  return stopRequested
}

/** Resolves when the process is asked to stop (Ctrl+C, SIGTERM), also if that was before this call. */
export async function shutdownSignal (): Promise<string> {
  return await listenForStop()
}

/** One-line text of an error for the terminal: its message, without its class name or a stack trace. */
export function errorText (err: unknown): string {
  const text = err instanceof Error ? (err.message !== '' ? err.message : err.name) : String(err)
  return text.replace(/\s*\n\s*/g, ' ')
}

/**
 * Prints how a failed dial will be retried (on stderr, so stdout stays the command's output). A
 * broker that refuses this peer ID at connection time (PermissionDeniedError) ends the command: one
 * line with the `p2pmq acl allow <peer> <fix>` its operator runs, exit code 5. One that closed the
 * connection in a way libp2p cannot tell apart from that gets a hint naming `peer` when known.
 */
export function reportRetry (err: Error, retryIn: number, peer?: string, fix = '<right>'): void {
  if (err instanceof PermissionDeniedError) {
    if (refusedAtConnection) return
    refusedAtConnection = true
    const self = peer ?? /refuses this peer ID \(([^)]+)\)/.exec(err.message)?.[1] ?? '<peer ID>'
    process.stderr.write(`p2pmq: ${errorText(err)}: p2pmq acl allow ${self} ${fix}\n`, () => process.exit(EXIT.PERMISSION_DENIED))
    return
  }
  const why = closedAfterHandshake(err)
    ? `it closed the connection right after the handshake (does its ACL refuse ${peer ?? 'this peer ID'}?)`
    : errorText(err)
  process.stderr.write(`Cannot reach the broker: ${why} (retrying in ${retryIn} ms)\n`)
}

let refusedAtConnection = false

/** True once reportRetry has told that the broker refuses this peer at connection time (the command is ending with exit code 5). */
export function wasRefusedAtConnection (): boolean {
  return refusedAtConnection
}

export function shortPeer (peer: string): string {
  return peer.length > 12 ? `…${peer.slice(-8)}` : peer
}
