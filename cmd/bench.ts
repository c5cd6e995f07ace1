/**
 * `p2pmq bench`: a load test against a running broker, as `nats bench` or RabbitMQ's PerfTest:
 * N producers and M consumers, each a client in a worker thread of its own (cmd/bench-worker.ts),
 * publishing (or sending, with -request) messages of -size bytes, -count of them or for
 * -duration, at a -rate or as fast as each producer's window allows. Prints what producers got
 * confirmed (answered) and consumers took per second, and the latency of each message from its
 * send to its confirm (answer); -json prints one object.
 */
import { Worker } from 'node:worker_threads'
import { randomBytes } from 'node:crypto'
import { DEFAULT_PRODUCER_WINDOW } from '../src/constants.js'
import { commandError } from '../src/names.js'
import { parseFlags, usage, UsageError, MAX_TIMER, type FlagSpecs } from './flags.js'
import { nameSpec } from './identity.js'
import { relayList, relaySpec, stunList, stunSpec } from './relay-flag.js'
import { EXIT } from './exit-codes.js'
import type { BenchTask, WorkerReport } from './bench-worker.js'

/**
 * Each worker's young generation, in MB. The p2pmq command caps it at 2 MB a semi-space for the
 * broker's memory (cmd/p2pmq.ts), and a worker inherits that; a client at full speed then spends
 * its time in scavenges.
 */
const YOUNG_GENERATION_MB = 48
/** Workers of one kind at most: each is a libp2p node and an event loop (and one of the peer's connections, 64 by default). */
const MAX_WORKERS = 32

const specs = {
  broker: { type: 'string', value: '<peerId|multiaddr>', help: 'The broker: its peer ID (same host, or with -relay) or a multiaddr ending in /p2p/<peerId>', default: '' },
  relay: relaySpec,
  stun: stunSpec,
  producers: { type: 'number', min: 1, max: MAX_WORKERS, value: '<n>', help: 'Producers, each in a thread of its own', default: 1 },
  consumers: { type: 'number', max: MAX_WORKERS, value: '<n>', help: 'Consumers, each in a thread of its own, sharing the messages (0: none, the messages wait in the broker)', default: 1 },
  count: { type: 'number', max: 1e12, value: '<n>', help: 'Messages to send in all (0: for -duration)', default: 100_000 },
  duration: { type: 'number', max: MAX_TIMER, value: '<ms>', help: 'Send for this long instead of -count', default: 0 },
  size: { type: 'number', min: 0, max: 16 * 1024 * 1024, value: '<bytes>', help: 'Payload size', default: 100 },
  rate: { type: 'number', fraction: true, max: 1e9, value: '<msg/s>', help: 'Messages a second over all producers (0: as fast as their windows allow)', default: 0 },
  request: { type: 'boolean', help: 'Send and wait for answers (the consumers answer with the payload) instead of publishing' },
  window: { type: 'number', min: 1, max: 1_000_000, value: '<n>', help: 'Messages each producer keeps out (unconfirmed or unanswered)', default: DEFAULT_PRODUCER_WINDOW },
  prefetch: { type: 'number', max: 4_294_967_295, value: '<n>', help: 'Each consumer\'s prefetch (0: the consumer\'s default)', default: 0 },
  command: { type: 'string', value: '<cmd>', help: 'The command the messages name (default: bench.<random>, new each run)', default: '' },
  warmup: { type: 'number', max: MAX_TIMER, value: '<ms>', help: 'Messages sent (and taken) in the first ms are left out of the rates and latencies, while V8 optimizes the code (0: all counted)', default: 0 },
  timeout: { type: 'number', min: 1, max: MAX_TIMER, value: '<ms>', help: 'How long to wait for every client to connect, and for the consumers to take what was sent', default: 15_000 },
  json: { type: 'boolean', help: 'Print one JSON object: the settings, msgPerSecond of producers and consumers, and latency percentiles in ms' },
  name: nameSpec
} satisfies FlagSpecs

export const summary = 'Load-test a broker: N producers and M consumers, messages of a size, a count or a duration; prints msg/s and latency percentiles.'

type Produced = Omit<Extract<WorkerReport, { type: 'produced' }>, 'type'>
type Consumed = Omit<Extract<WorkerReport, { type: 'consumed' }>, 'type'>

class BenchFailed extends Error {
  constructor (message: string, readonly exitCode: number) {
    super(message)
  }
}

/** A worker and its reports, in order. */
class BenchWorker {
  readonly worker: Worker
  readonly reports: WorkerReport[] = []
  received = 0
  private wake: () => void = () => {}

  constructor (task: BenchTask) {
    this.worker = new Worker(new URL('./bench-worker.js', import.meta.url), { workerData: task, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } })
    this.worker.on('message', (r: WorkerReport) => {
      if (r.type === 'received') this.received = r.count
      else this.reports.push(r)
      this.wake()
    })
    this.worker.on('error', (err) => { this.reports.push({ type: 'error', message: err.message, denied: false }); this.wake() })
    this.worker.on('exit', () => { this.wake() })
  }

  /** The next report of type `type` (an error report throws); past `deadline`, throws what `late` makes. */
  async next<T extends WorkerReport['type']> (type: T, deadline = Infinity, late?: () => BenchFailed): Promise<Extract<WorkerReport, { type: T }>> {
    for (;;) {
      const error = this.reports.find((r) => r.type === 'error')
      if (error?.type === 'error') throw new BenchFailed(error.message, error.denied ? EXIT.PERMISSION_DENIED : EXIT.UNREACHABLE)
      const i = this.reports.findIndex((r) => r.type === type)
      if (i >= 0) return this.reports.splice(i, 1)[0] as Extract<WorkerReport, { type: T }>
      if (late != null && Date.now() > deadline) throw late()
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(1_000, Math.max(0, deadline - Date.now())))
        this.wake = () => { clearTimeout(timer); resolve() }
      })
    }
  }
}

export async function run (args: string[]): Promise<number> {
  const flags = parseFlags(args, specs)
  if (flags.help) {
    console.log(usage('bench', summary, specs))
    return 0
  }
  if (flags.broker === '') throw new UsageError('-broker=<peerId|multiaddr> is required')
  if (flags.count === 0 && flags.duration === 0) throw new UsageError('Give -count or -duration')
  const command = flags.command !== '' ? flags.command : `bench.${randomBytes(4).toString('hex')}`
  const bad = commandError(command)
  if (bad != null) throw new UsageError(bad)
  const base = {
    broker: flags.broker,
    relays: relayList(flags.relay),
    stun: stunList(flags.stun),
    name: flags.name,
    command,
    group: 'bench',
    size: flags.size,
    duration: flags.duration,
    window: flags.window,
    prefetch: flags.prefetch,
    request: flags.request,
    warmup: flags.warmup
  }
  const producers = flags.producers
  const share = (i: number): number => flags.count === 0 ? 0 : Math.floor(flags.count / producers) + (i < flags.count % producers ? 1 : 0)
  const workers: BenchWorker[] = []
  const stopAll = async (): Promise<void> => { await Promise.all(workers.map(async (w) => await w.worker.terminate())) }
  process.once('SIGINT', () => { void stopAll().then(() => process.exit(EXIT.MESSAGES_FAILED)) })
  try {
    const consumers = Array.from({ length: flags.consumers }, () => new BenchWorker({ ...base, role: 'consumer', count: 0, rate: 0 }))
    workers.push(...consumers)
    const connectBy = Date.now() + flags.timeout
    const unreachable = (who: string) => () => new BenchFailed(`Cannot reach the broker: ${who} within ${flags.timeout} ms (-timeout)`, EXIT.UNREACHABLE)
    for (const c of consumers) await c.next('ready', connectBy, unreachable('a consumer did not connect and subscribe'))
    const senders = Array.from({ length: producers }, (_, i) => new BenchWorker({ ...base, role: 'producer', count: share(i), rate: flags.rate / producers }))
    workers.push(...senders)
    for (const p of senders) await p.next('ready', connectBy, unreachable('a producer did not connect'))
    // Consumers count what they take from the end of the producers' warm-up.
    for (const c of consumers) c.worker.postMessage({ measureFrom: performance.timeOrigin + performance.now() + flags.warmup })
    for (const p of senders) p.worker.postMessage('start')
    // Producers end when their count is sent (or their duration is over) and every message settled.
    const produced: Produced[] = []
    // (Bounded by the producers' own timeouts: a message out longer fails.)
    for (const p of senders) produced.push(await p.next('produced'))
    const done = produced.reduce((n, p) => n + p.done, 0)
    const takeBy = Date.now() + flags.timeout
    while (consumers.length > 0 && consumers.reduce((n, c) => n + c.received, 0) < done && Date.now() < takeBy) await new Promise((resolve) => setTimeout(resolve, 50))
    for (const c of consumers) c.worker.postMessage('stop')
    const consumed: Consumed[] = []
    for (const c of consumers) consumed.push(await c.next('consumed', Date.now() + flags.timeout, () => new BenchFailed(`A consumer did not stop within ${flags.timeout} ms (-timeout)`, EXIT.MESSAGES_FAILED)))
    printResult(flags, command, produced, consumed)
    const failed = produced.reduce((n, p) => n + p.failed, 0)
    if (failed > 0) {
      process.stderr.write(`${failed} of ${produced.reduce((n, p) => n + p.sent, 0)} messages failed: ${produced.find((p) => p.firstError != null)?.firstError ?? ''}\n`)
      return EXIT.MESSAGES_FAILED
    }
    return EXIT.OK
  } catch (err) {
    if (!(err instanceof BenchFailed)) throw err
    process.stderr.write(`p2pmq: ${err.message}\n`)
    return err.exitCode
  } finally {
    await stopAll()
  }
}

/** The `p`-th percentile (0-100) of sorted `values`, nearest rank. */
function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

function printResult (flags: { producers: number, consumers: number, size: number, request: boolean, json: boolean, warmup: number }, command: string, produced: Produced[], consumed: Consumed[]): void {
  const done = produced.reduce((n, p) => n + p.done, 0)
  const measured = produced.reduce((n, p) => n + p.measured, 0)
  const sendSeconds = Math.max(0, Math.max(...produced.map((p) => p.endAt)) - Math.min(...produced.map((p) => p.measuredFrom))) / 1000
  const taken = consumed.reduce((n, c) => n + c.count, 0)
  const takers = consumed.filter((c) => c.measured > 0)
  const takenMeasured = takers.reduce((n, c) => n + c.measured, 0)
  const takeSeconds = takers.length === 0 ? 0 : (Math.max(...takers.map((c) => c.lastAt)) - Math.min(...takers.map((c) => c.firstAt))) / 1000
  const all = new Float64Array(produced.reduce((n, p) => n + p.latencies.length, 0))
  let at = 0
  for (const p of produced) { all.set(p.latencies, at); at += p.latencies.length }
  all.sort()
  const round = (ms: number): number => Math.round(ms * 1000) / 1000
  const latency = { p50: round(percentile(all, 50)), p90: round(percentile(all, 90)), p99: round(percentile(all, 99)), p999: round(percentile(all, 99.9)), max: round(all[all.length - 1] ?? 0) }
  const producedRate = sendSeconds > 0 ? measured / sendSeconds : 0
  const consumedRate = takeSeconds > 0 ? takenMeasured / takeSeconds : 0
  const mode = flags.request ? 'request' : 'publish'
  if (flags.json) {
    console.log(JSON.stringify({ command, mode, producers: flags.producers, consumers: flags.consumers, size: flags.size, warmupMs: flags.warmup, sent: produced.reduce((n, p) => n + p.sent, 0), confirmed: done, consumed: taken, seconds: round(sendSeconds), producedPerSecond: Math.round(producedRate), consumedPerSecond: Math.round(consumedRate), latencyMs: latency }))
    return
  }
  const int = (n: number): string => Math.round(n).toLocaleString('en-US')
  const mb = (rate: number): string => (rate * flags.size / 1e6).toFixed(1)
  const settled = flags.request ? 'answered' : 'confirmed'
  const afterWarmup = (n: number): string => flags.warmup > 0 ? `; ${int(n)} after the warm-up` : ''
  console.log(`p2pmq bench: ${flags.producers} producer${flags.producers === 1 ? '' : 's'}, ${flags.consumers} consumer${flags.consumers === 1 ? '' : 's'}, ${flags.size}-byte messages to "${command}", ${mode}`)
  console.log(`Producers: ${int(done)} ${settled}${afterWarmup(measured)} in ${sendSeconds.toFixed(2)} s: ${int(producedRate)} msg/s (${mb(producedRate)} MB/s)`)
  if (flags.consumers > 0) console.log(`Consumers: ${int(taken)} taken${afterWarmup(takenMeasured)} in ${takeSeconds.toFixed(2)} s: ${int(consumedRate)} msg/s (${mb(consumedRate)} MB/s)`)
  console.log(`Latency, send to ${flags.request ? 'answer' : 'confirm'}: p50 ${latency.p50} ms, p90 ${latency.p90} ms, p99 ${latency.p99} ms, p99.9 ${latency.p999} ms, max ${latency.max} ms`)
  if (flags.warmup > 0 && measured === 0) console.log(`Every message was sent in the ${int(flags.warmup)} ms warm-up: give a larger -count or -duration, or a shorter -warmup`)
}
