/**
 * The exit codes of every p2pmq command, one table (README "Exit codes"). Scripts can tell a typo
 * from a broker that is down from messages that failed.
 */
export const EXIT = {
  /** Done, everything succeeded (also: a long-running command stopped by SIGINT/SIGTERM). */
  OK: 0,
  /** Any other failure: the broker refused the request or has nothing to act on, an unwritable output, a corrupt file, a bug. */
  FAILURE: 1,
  /**
   * What the command line says cannot be done: an unknown command or flag, a bad or missing value, an
   * invalid name, an address or port in use, an identity in use (the fix is another flag value).
   */
  USAGE: 2,
  /** The broker could not be reached or did not answer in time (no address, no connection, timeout). */
  UNREACHABLE: 3,
  /** Some messages failed: a producer got errors or rejections, or stopped before all were confirmed (answered). */
  MESSAGES_FAILED: 4,
  /** The broker's access control list does not let this peer ID do it (p2pmq id prints the peer ID to have allowed). */
  PERMISSION_DENIED: 5,
  /** The reader of stdout went away (`| head -1`), as a shell reports SIGPIPE (128 + 13). */
  CLOSED_PIPE: 141
} as const

export type ExitCode = typeof EXIT[keyof typeof EXIT]
