#!/usr/bin/env -S MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 node --max-semi-space-size=2
/**
 * The p2pmq command: `p2pmq broker|relay|consumer|producer|demo|messages|stats|dlq|purge|queue|group|schedule|id|acl|token [flags]`.
 *
 * The first line sets two glibc malloc settings before Node starts (they cannot be set later).
 * Payload buffers of a megabyte come and go; once one is freed, glibc raises its mmap threshold and
 * serves the next ones from its arenas, which keep what is freed. A broker that took 1,500 messages
 * of 1 MiB then held 306 MB RSS with 21 MB of V8 heap in use; with a fixed threshold and two arenas,
 * 190 MB (bench e). Other C libraries ignore them.
 *
 * It also caps V8's young generation at 2 MB a semi-space (16 by default). A broker's live heap is
 * ~30 MB, but its traffic leaves garbage, and the young generation grew to hold tens of MB of it
 * and of the buffers it points to: a broker draining 1,000,000 paged messages peaked at 264 MB RSS
 * with the default, 234 MB with this, at the same throughput (a, b and d within the machine's noise).
 */
import '../src/polyfill.js'
import { packageVersion } from '../src/package-version.js'
import { UsageError } from './flags.js'
import { errorText, listenForStop, wasRefusedAtConnection } from './lifecycle.js'
import { exitWhenOutputFails, flushed, loseUnwritableLines } from './output.js'
import { EXIT } from './exit-codes.js'
import { tierUpSooner } from './tier-up.js'

/** Commands that run until stopped: they take SIGINT/SIGTERM from the very start. */
const LONG_RUNNING = new Set(['broker', 'relay', 'consumer'])
const command = process.argv[2]
if (LONG_RUNNING.has(command)) void listenForStop() // (its promise, which never rejects, is awaited later)
if (command === 'broker' || command === 'producer' || command === 'consumer' || command === 'bench') tierUpSooner()
if (command === 'broker') loseUnwritableLines()
else exitWhenOutputFails()

const commands: Record<string, () => Promise<{ run: (args: string[]) => Promise<number>, summary: string }>> = {
  broker: async () => await import('./broker.js'),
  relay: async () => await import('./relay.js'),
  consumer: async () => await import('./consumer.js'),
  producer: async () => await import('./producer.js'),
  bench: async () => await import('./bench.js'),
  demo: async () => await import('./demo.js'),
  'demo-users-servers': async () => await import('./demo-users-servers.js'),
  'demo-fanout': async () => await import('./demo-fanout.js'),
  messages: async () => await import('./messages.js'),
  stats: async () => await import('./stats.js'),
  dlq: async () => await import('./dlq.js'),
  purge: async () => await import('./purge.js'),
  queue: async () => await import('./queue.js'),
  group: async () => await import('./group.js'),
  schedule: async () => await import('./schedule.js'),
  id: async () => await import('./id.js'),
  acl: async () => await import('./acl.js'),
  token: async () => await import('./token.js')
}

/**
 * What each command does, for `-help` (each module exports the same as `summary`; a test keeps them
 * equal): listing them must not load the commands, which load libp2p.
 */
const SUMMARIES: Record<keyof typeof commands, string> = {
  broker: 'Run a broker. Prints its peer ID and listen addresses; clients on this host can use -broker=<peerId>.',
  relay: 'Run a relay: brokers behind NAT reserve on it, clients reach them through it and find them by peer ID.',
  consumer: 'Run a consumer. By default it prints each message and answers "Answer to <payload>".',
  producer: 'Run a producer. Sends -count messages naming -command and prints each answer; exits 0 when all arrived.',
  bench: 'Load-test a broker: N producers and M consumers, messages of a size, a count or a duration; prints msg/s and latency percentiles.',
  demo: 'Start a broker, two consumers and a producer on 127.0.0.1 and show answers arriving from both consumers.',
  'demo-users-servers': 'Dashboard demo: two producers send num_users and num_servers every second; a consumer answers both.',
  'demo-fanout': 'Fan-out demo: two groups each get every num_users message; consumers inside a group share them.',
  messages: 'List a broker\'s messages: pending, in process, completed (kept for a while) and failed.',
  stats: 'Show a broker\'s queues (depth, in flight, consumers, rates) and clients.',
  dlq: 'List dead letters (dlq list) or put them back in their queues (dlq replay).',
  purge: 'Remove the waiting (and delayed) messages of a command; messages being processed stay.',
  queue: 'Delete one group\'s queue of a command, with its messages (queue delete).',
  group: 'Delete a group: its bindings, queues and messages (group delete).',
  schedule: 'Periodic messages: schedule add (-every or -cron), schedule list, schedule remove -id.',
  id: 'Print the peer ID this user\'s commands run as (or -name\'s); with -broker, what that broker lets it do.',
  acl: 'Who may do what on a broker, by peer ID: acl list, acl allow <peer|*> <right>, acl deny <peer|*> [<right>].',
  token: 'Tokens of the broker\'s HTTP gateway (-gateway): token add <name>, token list, token remove <name>.'
}

async function main (argv: string[]): Promise<number> {
  const [name, ...args] = argv
  if (name === '--version' || name === '-version' || name === 'version') {
    console.log(packageVersion())
    return EXIT.OK
  }
  if (name == null || name === '-help' || name === '--help' || name === '-h' || name === 'help') {
    const lines = ['Usage: p2pmq <command> [flags]', '', 'Commands:']
    for (const [cmd, summary] of Object.entries(SUMMARIES)) lines.push(`  ${cmd.padEnd(10)} ${summary}`)
    lines.push('', 'Run p2pmq <command> -help for its flags; p2pmq --version prints the version.')
    console.log(lines.join('\n'))
    return name == null ? EXIT.USAGE : EXIT.OK
  }
  const load = commands[name]
  if (load == null) throw new UsageError(`Unknown command "${name}"`)
  return await (await load()).run(args)
}

/** The flags that choose an identity, per command (the library's message names both kinds). */
const IDENTITY_FLAGS: Record<string, string> = { broker: '-data', relay: '-data', consumer: '-name or -data', producer: '-name or -data', bench: '-name', id: '-name', acl: '-name', stats: '-name', messages: '-name', dlq: '-name', purge: '-name', queue: '-name', group: '-name', schedule: '-name' }

function identityFlags (err: unknown, text: string): string {
  const flags = IDENTITY_FLAGS[command]
  return flags != null && err instanceof Error && err.name === 'IdentityInUseError' ? text.replace(/another -name or -data$/, `another ${flags}`) : text
}

/**
 * Errors whose fix is another flag value: bad flags, a -broker that is no address, an invalid name
 * (the library's TypeError), a data directory a file is in the way of, an identity, port or listen
 * address in use.
 */
const USAGE_ERRORS = new Set(['UsageError', 'BrokerAddressError', 'TypeError', 'IdentityInUseError', 'DataDirError', 'WebPortError', 'ListenError', 'HomeConfigError', 'AclFileError', 'TokenFileError'])

/** The exit code of a command that threw `err` (README "Exit codes"). */
function exitCodeOf (err: unknown): number {
  const name = err instanceof Error ? err.name : ''
  if (USAGE_ERRORS.has(name)) return EXIT.USAGE
  if (name === 'PermissionDeniedError') return EXIT.PERMISSION_DENIED
  if (name === 'TimeoutError' || name === 'AnswerTimeoutError') return EXIT.UNREACHABLE // dials kept failing (libp2p's), or the broker did not answer (ours)
  return EXIT.FAILURE
}

/** With P2PMQ_DEBUG set, an error shows its stack too (for bug reports); otherwise one line. */
const DEBUG = process.env.P2PMQ_DEBUG != null && process.env.P2PMQ_DEBUG !== '' && process.env.P2PMQ_DEBUG !== '0'

/** How long a broker's exit waits for a reader that takes nothing (a stuck pipe must not keep a stopped broker alive). */
const BROKER_FLUSH_LIMIT = 5_000

/**
 * Exits once stdout and stderr are written: process.exit() would cut what a slow reader has not
 * taken yet. A client waits as long as its reader takes, as `cat` does (Ctrl+C ends it).
 */
async function exit (code: number): Promise<void> {
  process.exitCode = code
  const written = Promise.all([flushed(process.stdout), flushed(process.stderr)])
  await (command === 'broker' ? Promise.race([written, new Promise((resolve) => { setTimeout(resolve, BROKER_FLUSH_LIMIT).unref() })]) : written)
  // Open handles (sockets closing, timers) must not keep a finished command alive.
  setTimeout(() => process.exit(code), 200).unref()
}

/** A command that failed: one line on stderr (the stack too with P2PMQ_DEBUG), then its exit code. */
async function fail (err: unknown): Promise<void> {
  // Told already, in one line, by the retry report that is ending the command.
  if (err instanceof Error && err.name === 'PermissionDeniedError' && wasRefusedAtConnection()) return await exit(EXIT.PERMISSION_DENIED)
  const hint = err instanceof UsageError ? ` (p2pmq ${LONG_RUNNING.has(command) || command in commands ? `${command} ` : ''}-help for usage)` : ''
  console.error(`p2pmq: ${identityFlags(err, errorText(err))}${hint}`)
  if (DEBUG && err instanceof Error && err.stack != null) console.error(err.stack)
  await exit(exitCodeOf(err))
}

// A client's stray error (a rejected promise nobody awaited) is one line too; a broker keeps Node's
// report with its stack, which an operator needs.
if (command !== 'broker') {
  process.on('uncaughtException', (err) => { void fail(err) })
  process.on('unhandledRejection', (err) => { void fail(err) })
}

main(process.argv.slice(2)).then(exit, fail)
