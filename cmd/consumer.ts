/** `p2pmq consumer`: subscribes to commands and answers each message, or runs a shell command for it. */
import { spawn, type ChildProcess } from 'node:child_process'
import { createConsumer, PermissionDeniedError, RejectMessage, type Message } from '../src/index.js'
import { EXIT } from './exit-codes.js'
import { DEFAULT_CLOSE_GRACE } from '../src/client/consumer.js'
import { DEFAULT_COMMAND, DEFAULT_GROUP, DEFAULT_PREFETCH, DEFAULT_VISIBILITY_TIMEOUT, MAX_PAYLOAD_LIMIT } from '../src/constants.js'
import { payloadToText } from '../src/payload.js'
import { list, MAX_TIMER, parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { clientIdentity, nameSpec, refusal } from './identity.js'
import { relayList, relaySpec, stunList, stunSpec } from './relay-flag.js'
import { errorText, reportRetry, shortPeer, shutdownSignal } from './lifecycle.js'
import { shown } from './output.js'
import { grantArgs, shellQuote } from '../src/acl-line.js'

/**
 * The exit code of an -exec command that rejects its message: failed at once (to the dead letters
 * if the broker keeps them), never retried, as a handler's RejectMessage. 65 is EX_DATAERR of
 * sysexits.h, "the input data was incorrect": a message a retry cannot fix (BullMQ's
 * UnrecoverableError). Any other non-zero exit (1, 126/127 for a command not found, a signal) may
 * be passing trouble and is retried.
 */
export const EXIT_REJECT = 65
/** The most of a command's stderr kept as the error of its message. */
const MAX_ERROR_TEXT = 64 * 1024

/** SIGTERM first; what is still alive of a killed command's process group this long after gets SIGKILL. */
const KILL_AFTER = 1_000

const specs = {
  broker: { type: 'string', value: '<peerId|multiaddr>', help: 'The broker: its peer ID (same host, or with -relay) or a multiaddr ending in /p2p/<peerId>', default: '' },
  relay: relaySpec,
  stun: stunSpec,
  command: { type: 'string', value: '<cmd>[,…]', help: 'Commands or patterns (users.*, users.#) to subscribe to', default: DEFAULT_COMMAND },
  group: { type: 'string', value: '<name>', help: 'Consumer group: consumers of a group share messages, each group gets every message', default: DEFAULT_GROUP },
  expires: { type: 'number', value: '<ms>', help: 'Delete the group (its queues and messages) once it has had no consumer for this long' },
  prefetch: { type: 'number', value: '<n>', help: 'Messages held unacknowledged at once (default: -workers with -exec, else 1000)' },
  exec: { type: 'string', value: '<shell command>', help: `Run this for each message: payload on stdin, stdout is the answer; exit ${EXIT_REJECT} rejects the message (no retry), another non-zero exit is a nack with stderr`, default: '' },
  workers: { type: 'number', value: '<n>', help: 'With -exec: how many commands run at once', default: 1 },
  timeout: { type: 'number', max: MAX_TIMER - KILL_AFTER, value: '<ms>', help: 'A handler running longer is nacked for another attempt (an -exec command\'s process group is killed)', default: DEFAULT_VISIBILITY_TIMEOUT },
  grace: { type: 'number', max: MAX_TIMER, value: '<ms>', help: 'On SIGINT/SIGTERM, how long messages being handled may take to finish; the rest go back to the broker', default: DEFAULT_CLOSE_GRACE },
  name: nameSpec,
  data: { type: 'string', value: '<dir>', help: 'Keep the identity in this directory', default: '' },
  quiet: { type: 'boolean', help: 'Do not print each message' }
} satisfies FlagSpecs

export const summary = 'Run a consumer. By default it prints each message and answers "Answer to <payload>".'

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('consumer', summary, specs))
    return 0
  }
  if (flags.broker === '') throw new UsageError('-broker=<peerId|multiaddr> is required')
  if (flags.workers < 1) throw new UsageError('-workers must be at least 1')
  let peer: string | undefined
  const consumer = await createConsumer({
    broker: flags.broker,
    relays: relayList(flags.relay),
    stun: stunList(flags.stun),
    ...(await clientIdentity(flags)),
    onRetry: (err, wait) => { reportRetry(err, wait, peer, consumeFix(list(flags.command), flags.group)) }
  })
  peer = consumer.peerId
  console.log(`Consumer peer ID: ${consumer.peerId}`)
  consumer.events.addEventListener('connected', () => { console.log(`Connected to broker ${flags.broker}`) })
  consumer.events.addEventListener('disconnected', () => { console.log('Disconnected from the broker, reconnecting') })
  // A subscription the broker's ACL no longer allows ends the consumer (its messages go back to the queue).
  let withdrawn = (): void => {}
  const permissionWithdrawn = new Promise<string>((resolve) => { withdrawn = () => { resolve('withdrawn') } })
  const fix = consumeFix(list(flags.command), flags.group)
  consumer.events.addEventListener('subscription:ended', (e) => {
    const err = e.detail.error
    console.error(errorText(err instanceof PermissionDeniedError ? refusal(err, consumer.peerId, fix) : err))
    if (err instanceof PermissionDeniedError) withdrawn()
  })
  consumer.events.addEventListener('handler:error', (e) => { console.error(`Message ${e.detail.message.id} failed: ${errorText(e.detail.error)}`) })

  const children = new Set<ChildProcess>()
  // However the process ends, the commands it started (each in its own process group) end with it.
  process.on('exit', () => { for (const child of children) killGroup(child, 'SIGKILL') })
  const exec = flags.exec !== '' ? execHandler(flags.exec, flags.workers, flags.timeout, children) : undefined
  const handler = async (m: Message): Promise<unknown> => {
    if (!flags.quiet) console.log(`${m.command} ${shown(m.id)} from ${shortPeer(m.producer)} (attempt ${m.attempt}): ${shown(payloadToText(m.payload))}`)
    return exec != null ? await exec.handle(m) : `Answer to ${payloadToText(m.payload)}`
  }
  const subscribed = consumer.subscribe(list(flags.command), handler, {
    group: flags.group,
    prefetch: flags.prefetch ?? (exec != null ? flags.workers : DEFAULT_PREFETCH),
    // The -exec command's own timer kills its group and nacks first; this one is a backstop.
    timeout: exec != null ? flags.timeout + KILL_AFTER : flags.timeout,
    expires: flags.expires
  })
  // The subscription waits for the broker as long as it takes (it retries): a signal meanwhile,
  // say a broker that is not up, stops the consumer as one after it subscribed.
  const stopped = Promise.race([shutdownSignal(), permissionWithdrawn])
  let early: string | undefined
  try {
    early = await Promise.race([subscribed.then(() => undefined), stopped])
  } catch (err) {
    await consumer.stop()
    throw err instanceof PermissionDeniedError ? refusal(err, consumer.peerId, fix) : err
  }
  if (early != null) subscribed.catch(() => {}) // it fails with the close below
  else console.log(`Subscribed to ${list(flags.command).join(', ')} in group ${flags.group}`)
  const signal = await stopped
  // A second signal leaves at once: the commands' groups are killed on exit, the broker takes back
  // what was unsettled when the stream ends.
  const now = (again: string): void => {
    process.stderr.write(`${again} again: quitting now\n`)
    process.exit(128 + (again === 'SIGINT' ? 2 : 15))
  }
  process.once('SIGINT', now)
  process.once('SIGTERM', now)
  exec?.stop()
  await new Promise((resolve) => setImmediate(resolve)) // commands waiting for a worker are given back first
  if (consumer.active > 0) {
    process.stderr.write(`${signal}: finishing ${consumer.active} message${consumer.active === 1 ? '' : 's'} (up to ${flags.grace} ms), then the rest go back to the broker; Ctrl+C again to quit\n`)
  }
  await consumer.close({ grace: flags.grace })
  for (const child of children) killGroup(child, 'SIGKILL')
  return signal === 'withdrawn' ? EXIT.PERMISSION_DENIED : EXIT.OK
}

/** The grant a consumer of `patterns` in `group` asks the broker's operator for. */
function consumeFix (patterns: string[], group: string): string {
  return patterns.length === 1 ? grantArgs({ consume: patterns[0], group }) : `consume '<pattern>' -group=${shellQuote(group)}, for each of ${patterns.map(shellQuote).join(', ')}`
}

/**
 * Runs `command` in a shell per message, at most `workers` at once, each within `timeout` ms of
 * the message's arrival (also while it waits for a worker): past it, the command's process group
 * is killed, so what it started (a `sleep`, a pipeline) does not hold a worker.
 */
function execHandler (command: string, workers: number, timeout: number, children: Set<ChildProcess>): { handle: (m: Message) => Promise<string>, stop: () => void } {
  let running = 0
  let stopping = false
  const waiting: Array<() => void> = []
  const handle = async (m: Message): Promise<string> => {
    const deadline = Date.now() + timeout
    if (running >= workers) await new Promise<void>((resolve) => { waiting.push(resolve) })
    // A stopping consumer finishes what runs, and starts nothing new: this goes back for another consumer.
    if (stopping) throw new Error('not run: the consumer is stopping')
    running++
    try {
      return await runShell(command, m, deadline - Date.now(), timeout, children)
    } finally {
      running--
      waiting.shift()?.()
    }
  }
  const stop = (): void => {
    stopping = true
    for (const next of waiting.splice(0)) next()
  }
  return { handle, stop }
}

/** Runs `command` for `m`; `left` ms of its -timeout=`timeout` remain. */
async function runShell (command: string, m: Message, left: number, timeout: number, children: Set<ChildProcess>): Promise<string> {
  if (left <= 0) throw new Error(`waited past -timeout=${timeout} ms for a worker; not run`)
  return await new Promise((resolve, reject) => {
    // Its own process group (detached), so a timeout or a stop kills all it started.
    const child = spawn('sh', ['-c', command], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, P2PMQ_COMMAND: m.command, P2PMQ_ID: m.id, P2PMQ_PRODUCER: m.producer, P2PMQ_ATTEMPT: String(m.attempt) }
    })
    children.add(child)
    const timer = setTimeout(() => {
      killGroup(child, 'SIGTERM')
      setTimeout(() => { killGroup(child, 'SIGKILL') }, KILL_AFTER).unref()
      reject(new Error(`${command} ran past -timeout=${timeout} ms; its process group was killed`))
    }, left)
    // What is printed is kept up to the largest answer a broker takes (stdout) or a readable error (stderr).
    const out: Buffer[] = []
    const err: Buffer[] = []
    let outBytes = 0
    let errBytes = 0
    child.stdout.on('data', (b: Buffer) => {
      outBytes += b.byteLength
      if (outBytes <= MAX_PAYLOAD_LIMIT) out.push(b)
      else killGroup(child, 'SIGKILL')
    })
    child.stderr.on('data', (b: Buffer) => {
      if (errBytes < MAX_ERROR_TEXT) err.push(b)
      errBytes += b.byteLength
    })
    child.on('error', (e) => {
      clearTimeout(timer)
      children.delete(child)
      reject(e)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      const stderr = Buffer.concat(err).subarray(0, MAX_ERROR_TEXT).toString().trim()
      if (outBytes > MAX_PAYLOAD_LIMIT) reject(new RejectMessage(`${command} printed more than ${MAX_PAYLOAD_LIMIT} bytes, more than any broker takes as an answer; its process group was killed`))
      else if (code === 0) resolve(Buffer.concat(out).toString().replace(/\n$/, ''))
      else if (code === EXIT_REJECT) reject(new RejectMessage(stderr !== '' ? stderr : `${command} rejected the message (exit code ${EXIT_REJECT})`))
      else reject(new Error(stderr !== '' ? stderr : code != null ? `${command} exited with code ${code}` : `${command} was killed by ${signal}`))
    })
    child.stdin.on('error', () => {}) // the command may exit without reading its input
    const payload = m.payload instanceof Uint8Array ? m.payload : payloadToText(m.payload)
    child.stdin.end(payload)
  })
}

/** Signals the process group a command leads; nothing if it is gone already. */
function killGroup (child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid == null) return
  try { process.kill(-child.pid, signal) } catch {}
}
