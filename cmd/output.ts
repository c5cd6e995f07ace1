/**
 * What the CLI does when its output cannot be written: a reader that went away (`| head -1`: EPIPE)
 * or a full disk (ENOSPC). Node reports these as 'error' events on process.stdout/stderr, which
 * would otherwise end the process with a stack trace.
 */

import { EXIT } from './exit-codes.js'

/** A broker loses log lines it cannot write and keeps serving. */
export function loseUnwritableLines (): void {
  process.stdout.on('error', () => {})
  process.stderr.on('error', () => {})
}

/**
 * A client whose reader went away exits at once and quietly, as a Unix tool on SIGPIPE does; other
 * write errors (a full disk) end it with one line on stderr and exit code 1.
 */
export function exitWhenOutputFails (): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.CLOSED_PIPE) // Node ignores SIGPIPE itself
    process.stderr.write(`p2pmq: cannot write the output: ${err.message}\n`)
    process.exitCode = EXIT.FAILURE
    void flushed(process.stderr).then(() => process.exit(EXIT.FAILURE))
  })
  process.stderr.on('error', () => process.exit(process.exitCode === 0 || process.exitCode == null ? EXIT.FAILURE : process.exitCode))
}

/**
 * Resolves once what was written to `stream` has reached the OS (or it can never: closed, failed).
 * An empty write's callback runs after every earlier write; 'drain' would not come for a buffer
 * smaller than the high-water mark.
 */
export async function flushed (stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0 || stream.destroyed || stream.writableEnded) return
  await new Promise<void>((resolve) => {
    const done = (): void => {
      stream.off('close', done)
      stream.off('error', done)
      resolve()
    }
    stream.on('close', done)
    stream.on('error', done)
    stream.write('', done)
  })
}

/** Control characters (C0, DEL, C1) and the Unicode bidi controls, which reorder what a terminal shows. */
const UNSAFE_FOR_TERMINAL = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu

/**
 * Text from peers (payloads, answers, errors) as stdout should show it: on a terminal, control
 * characters are escaped (`\x1b`, `\u202e`), so a peer cannot move the cursor or write the clipboard
 * (OSC 52) of whoever watches; piped, the bytes stay as they are for the next program.
 */
export function shown (text: string): string {
  if (process.stdout.isTTY !== true) return text
  return text.replace(UNSAFE_FOR_TERMINAL, (c) => {
    const code = c.charCodeAt(0)
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`
  })
}
