/** `p2pmq producer`: sends messages and prints each answer (or confirm, with -publish). */
import { createProducer, PermissionDeniedError } from '../src/index.js'
import { DEFAULT_COMMAND, DEFAULT_PRODUCER_WINDOW, DEFAULT_SEND_TIMEOUT } from '../src/constants.js'
import { payloadToText } from '../src/payload.js'
import { MAX_TIMER, parseFlags, usage, UsageError, type FlagSpecs } from './flags.js'
import { clientIdentity, nameSpec, refusal } from './identity.js'
import { relayList, relaySpec, stunList, stunSpec } from './relay-flag.js'
import { errorText, reportRetry, shortPeer } from './lifecycle.js'
import { shown } from './output.js'
import { EXIT } from './exit-codes.js'
import { commandError } from '../src/names.js'
import { grantArgs } from '../src/acl-line.js'

const specs = {
  broker: { type: 'string', value: '<peerId|multiaddr>', help: 'The broker: its peer ID (same host, or with -relay) or a multiaddr ending in /p2p/<peerId>', default: '' },
  relay: relaySpec,
  stun: stunSpec,
  command: { type: 'string', value: '<cmd>', help: 'The command each message names', default: DEFAULT_COMMAND },
  count: { type: 'number', value: '<n>', help: 'Messages to send; 0 sends forever', default: 10 },
  interval: { type: 'number', max: MAX_TIMER, value: '<ms>', help: 'Pause between messages; 0 sends as fast as the window allows', default: 1000 },
  payload: { type: 'string', value: '<text>', help: 'The payload; <n> is replaced by the message number', default: 'Hello world #<n>!' },
  timeout: { type: 'number', max: MAX_TIMER, value: '<ms>', help: 'How long to wait for each answer', default: DEFAULT_SEND_TIMEOUT },
  window: { type: 'number', value: '<n>', help: 'Messages out (unconfirmed or unanswered) at once', default: DEFAULT_PRODUCER_WINDOW },
  delay: { type: 'number', value: '<ms>', help: 'Deliver each message no sooner than this after it is sent', default: 0 },
  ttl: { type: 'number', value: '<ms>', help: 'Each message expires (fails, never delivered) after this', default: 0 },
  id: { type: 'string', value: '<text>', help: 'Message ids (<n> is the message number); the broker drops an id it saw within its dedup window', default: '' },
  publish: { type: 'boolean', help: 'Want no answers: wait only for the broker\'s confirms' },
  transient: { type: 'string', value: '<true|false>', help: 'The broker keeps the messages in memory only (lost if it stops); default true for sends, false with -publish', default: '' },
  json: { type: 'boolean', help: 'Print one JSON object per line: {"n","id","answer","consumer","ms"} or {"n","id","error"}' },
  name: nameSpec,
  data: { type: 'string', value: '<dir>', help: 'Keep the identity in this directory', default: '' }
} satisfies FlagSpecs

export const summary = 'Run a producer. Sends -count messages naming -command and prints each answer; exits 0 when all arrived.'

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('producer', summary, specs))
    return 0
  }
  if (flags.broker === '') throw new UsageError('-broker=<peerId|multiaddr> is required')
  if (!['', 'true', 'false'].includes(flags.transient)) throw new UsageError(`-transient=${JSON.stringify(flags.transient)}: give true or false`)
  const transient = flags.transient === '' ? undefined : flags.transient === 'true'
  const badCommand = commandError(flags.command)
  if (badCommand != null) throw new UsageError(badCommand)
  // The first SIGINT/SIGTERM stops sending; while connected it waits for the messages out, saying
  // so, and a second signal stops waiting. Messages out then are reported as not confirmed (or not
  // answered), and the producer exits.
  let stoppedBy: string | undefined
  let stopSending = (): void => {}
  const sendingStopped = new Promise<void>((resolve) => { stopSending = resolve })
  let quitNow = (): void => {}
  const stopped = new Promise<void>((resolve) => { quitNow = resolve })
  const inFlight = new Set<Promise<void>>()
  /** Set once created: the first signal waits only while it is connected. */
  let client: { connected: boolean, peerId: string } | undefined
  const stop = (signal: string): void => {
    if (stoppedBy == null) {
      stoppedBy = signal
      stopSending()
      if (inFlight.size > 0 && client?.connected === true) {
        const what = flags.publish ? 'confirm' : 'answer'
        process.stderr.write(`${signal}: waiting for ${inFlight.size} ${what}${inFlight.size === 1 ? '' : 's'}; Ctrl+C again to quit\n`)
        return
      }
    }
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    quitNow()
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  const producer = await createProducer({
    broker: flags.broker,
    relays: relayList(flags.relay),
    stun: stunList(flags.stun),
    ...(await clientIdentity(flags)),
    window: flags.window,
    timeout: flags.timeout,
    onRetry: (err, wait) => { reportRetry(err, wait, client?.peerId, grantArgs({ produce: flags.command })) }
  })
  client = producer
  let reached = false
  producer.events.addEventListener('connected', () => { reached = true })
  const print = (line: Record<string, unknown>, text: string): void => {
    console.log(flags.json ? JSON.stringify(line) : text)
  }
  producer.events.addEventListener('result', (e) => {
    const r = e.detail
    print({ n: null, id: r.id, answer: r.payload, consumer: r.consumer }, `Kept answer to ${shown(r.id)}: ${shown(payloadToText(r.payload))}`)
  })
  producer.events.addEventListener('failed', (e) => {
    const f = e.detail
    print({ n: null, id: f.id, error: f.error }, `Message ${shown(f.id)} failed after ${f.attempts} attempts: ${shown(f.error)}`)
  })

  let ok = 0
  let failed = 0
  /** Messages still out when a signal stopped the producer. */
  let unsettled = 0
  let closing = false
  /** The broker's ACL refused a message: the producer stops sending. */
  let denied: PermissionDeniedError | undefined
  const one = async (n: number): Promise<void> => {
    const payload = flags.payload.replaceAll('<n>', String(n))
    const id = flags.id !== '' ? flags.id.replaceAll('<n>', String(n)) : producer.newId()
    const options = { id, delay: flags.delay > 0 ? flags.delay : undefined, ttl: flags.ttl > 0 ? flags.ttl : undefined, transient }
    const t0 = performance.now()
    const ms = (): number => Math.round((performance.now() - t0) * 1000) / 1000
    try {
      if (flags.publish) {
        await producer.publish(flags.command, payload, options)
        ok++
        print({ n, id, ms: ms() }, `Confirmed #${n} ${id} (${ms()} ms)`)
      } else {
        const r = await producer.request(flags.command, payload, options)
        ok++
        print({ n, id: r.id, answer: r.payload, consumer: r.consumer, ms: ms() },
          `Answer #${n} from ${shortPeer(r.consumer)} in ${ms()} ms: ${shown(payloadToText(r.payload))}`)
      }
    } catch (err) {
      if (closing) {
        unsettled++
        return
      }
      failed++
      if (err instanceof PermissionDeniedError) {
        // One line says it, and nothing more is sent: every message would be refused the same.
        if (denied == null) {
          denied = refusal(err, producer.peerId, grantArgs({ produce: flags.command }))
          process.stderr.write(`p2pmq: ${errorText(denied)}\n`)
          stopSending()
        }
        if (flags.json) print({ n, id, error: errorText(err) }, '')
        return
      }
      print({ n, id, error: errorText(err) }, `Message #${n} failed: ${shown(errorText(err))}`)
    }
  }
  /** Resolves the wait for a free slot in the window (racing the whole set for every message cost more than the message). */
  let slotFreed: (() => void) | undefined
  for (let n = 1; stoppedBy == null && denied == null && (flags.count === 0 || n <= flags.count); n++) {
    const p = one(n)
    inFlight.add(p)
    void p.finally(() => {
      inFlight.delete(p)
      slotFreed?.()
      slotFreed = undefined
    })
    // The producer's window holds publishes back; keep at most a window of calls pending here too.
    if (inFlight.size >= flags.window) await Promise.race([new Promise<void>((resolve) => { slotFreed = resolve }), sendingStopped])
    if (flags.interval > 0 && stoppedBy == null && denied == null) await Promise.race([new Promise((resolve) => setTimeout(resolve, flags.interval)), sendingStopped])
  }
  await Promise.race([Promise.all(inFlight), stopped])
  closing = true
  await producer.stop() // fails what is still out
  await Promise.all(inFlight)
  const done = flags.publish ? 'confirmed' : 'answered'
  if (stoppedBy != null) {
    const sent = ok + failed + unsettled
    process.stderr.write(`Stopped by ${stoppedBy}: ${ok} of ${sent} sent ${done}${failed > 0 ? `, ${failed} failed` : ''}` +
      `${unsettled > 0 ? `, ${unsettled} not ${done} (the broker may or may not have them)` : ''}\n`)
  }
  const expected = flags.count === 0 ? ok + failed + unsettled : flags.count
  if (!flags.json && stoppedBy == null) console.error(`${ok} of ${expected} ${done}${failed > 0 ? `, ${failed} failed` : ''}`)
  if (denied != null) return EXIT.PERMISSION_DENIED
  if (ok === expected && failed === 0 && unsettled === 0) return EXIT.OK
  // Nothing could be sent: the broker was never reached (a signal's stop keeps its own report).
  return !reached && stoppedBy == null ? EXIT.UNREACHABLE : EXIT.MESSAGES_FAILED
}
