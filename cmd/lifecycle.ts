/** Process lifecycle shared by the long-running commands: stop cleanly on SIGINT/SIGTERM. */

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

/** Prints how a failed dial will be retried (on stderr, so stdout stays the command's output). */
export function reportRetry (err: Error, retryIn: number): void {
  process.stderr.write(`Cannot reach the broker: ${errorText(err)} (retrying in ${retryIn} ms)\n`)
}

export function shortPeer (peer: string): string {
  return peer.length > 12 ? `…${peer.slice(-8)}` : peer
}
