/**
 * The exit codes of every p2pmq command, one table (README "Exit codes"). Scripts can tell a typo
 * from a broker that is down from messages that failed.
 */
export const EXIT = {
  /** Done, everything succeeded (also: a long-running command stopped by SIGINT/SIGTERM). */
  OK: 0,
  /** Any other failure: the broker refused the request, an output that cannot be written, an internal error. */
  FAILURE: 1,
  /** Bad command line: unknown command or flag, a flag's value of the wrong kind, a missing required flag. */
  USAGE: 2,
  /** The broker could not be reached or did not answer in time (no address, no connection, timeout). */
  UNREACHABLE: 3,
  /** Some messages failed: a producer got errors or rejections, or a consumer handler could not run. */
  MESSAGES_FAILED: 4,
  /** The identity (its data directory) is held by another running process. */
  IDENTITY_IN_USE: 5,
  /** Nothing to act on: e.g. `schedule remove` of an id the broker does not have. */
  NOT_FOUND: 6,
  /** The reader of stdout went away (`| head -1`), as a shell reports SIGPIPE (128 + 13). */
  CLOSED_PIPE: 141
} as const

export type ExitCode = typeof EXIT[keyof typeof EXIT]
