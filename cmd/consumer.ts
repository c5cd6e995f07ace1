/** `p2pmq consumer`: subscribes to commands and answers each message, or runs a shell command for it. */
import { spawn } from 'node:child_process'
import { createConsumer, type Message } from '../src/index.js'
import { DEFAULT_COMMAND, DEFAULT_GROUP, DEFAULT_PREFETCH, DEFAULT_VISIBILITY_TIMEOUT } from '../src/constants.js'
import { payloadToText } from '../src/payload.js'
import { list, parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { errorText, reportRetry, shortPeer, shutdownSignal } from './lifecycle.js'
import { shown } from './output.js'

const specs = {
  broker: { type: 'string', value: '<peerId|multiaddr>', help: 'The broker: its peer ID (same host) or a multiaddr ending in /p2p/<peerId>', default: '' },
  command: { type: 'string', value: '<cmd>[,…]', help: 'Commands or patterns (users.*, users.#) to subscribe to', default: DEFAULT_COMMAND },
  group: { type: 'string', value: '<name>', help: 'Consumer group: consumers of a group share messages, each group gets every message', default: DEFAULT_GROUP },
  expires: { type: 'number', value: '<ms>', help: 'Delete the group (its queues and messages) once it has had no consumer for this long' },
  prefetch: { type: 'number', value: '<n>', help: 'Messages held unacknowledged at once (default: -workers with -exec, else 1000)' },
  exec: { type: 'string', value: '<shell command>', help: 'Run this for each message: payload on stdin, stdout is the answer, non-zero exit is a nack with stderr', default: '' },
  workers: { type: 'number', value: '<n>', help: 'With -exec: how many commands run at once', default: 1 },
  timeout: { type: 'number', value: '<ms>', help: 'A handler running longer is nacked for another attempt', default: DEFAULT_VISIBILITY_TIMEOUT },
  name: { type: 'string', value: '<name>', help: 'Keep this identity under the p2pmq home, so restarts are the same peer', default: '' },
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
  const consumer = await createConsumer({
    broker: flags.broker,
    name: flags.name !== '' ? flags.name : undefined,
    dataDir: flags.data !== '' ? flags.data : undefined,
    onRetry: reportRetry
  })
  console.log(`Consumer peer ID: ${consumer.peerId}`)
  consumer.events.addEventListener('connected', () => { console.log(`Connected to broker ${flags.broker}`) })
  consumer.events.addEventListener('disconnected', () => { console.log('Disconnected from the broker, reconnecting') })
  consumer.events.addEventListener('subscription:ended', (e) => { console.error(errorText(e.detail.error)) })
  consumer.events.addEventListener('handler:error', (e) => { console.error(`Message ${e.detail.message.id} failed: ${errorText(e.detail.error)}`) })

  const exec = flags.exec !== '' ? execHandler(flags.exec, flags.workers) : undefined
  const handler = async (m: Message): Promise<unknown> => {
    if (!flags.quiet) console.log(`${m.command} ${shown(m.id)} from ${shortPeer(m.producer)} (attempt ${m.attempt}): ${shown(payloadToText(m.payload))}`)
    return exec != null ? await exec(m) : `Answer to ${payloadToText(m.payload)}`
  }
  await consumer.subscribe(list(flags.command), handler, {
    group: flags.group,
    prefetch: flags.prefetch ?? (exec != null ? flags.workers : DEFAULT_PREFETCH),
    timeout: flags.timeout,
    expires: flags.expires
  })
  console.log(`Subscribed to ${list(flags.command).join(', ')} in group ${flags.group}`)
  await shutdownSignal()
  await consumer.stop()
  return 0
}

/** Runs `command` in a shell per message, at most `workers` at once. */
function execHandler (command: string, workers: number): (m: Message) => Promise<string> {
  let running = 0
  const waiting: Array<() => void> = []
  return async (m) => {
    if (running >= workers) await new Promise<void>((resolve) => { waiting.push(resolve) })
    running++
    try {
      return await runShell(command, m)
    } finally {
      running--
      waiting.shift()?.()
    }
  }
}

async function runShell (command: string, m: Message): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, P2PMQ_COMMAND: m.command, P2PMQ_ID: m.id, P2PMQ_PRODUCER: m.producer, P2PMQ_ATTEMPT: String(m.attempt) }
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', reject)
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString().replace(/\n$/, ''))
      else reject(new Error(Buffer.concat(err).toString().trim() || `${command} exited with code ${code}`))
    })
    child.stdin.on('error', () => {}) // the command may exit without reading its input
    const payload = m.payload instanceof Uint8Array ? m.payload : payloadToText(m.payload)
    child.stdin.end(payload)
  })
}
