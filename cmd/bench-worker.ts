/**
 * One client of `p2pmq bench`, in a worker thread of its own (its own event loop, so N producers
 * and M consumers use the machine's cores as N + M processes would). The main thread (cmd/bench.ts)
 * gives it a `BenchTask`; it connects, says 'ready', and on 'start' produces (publish or send,
 * keeping a window of messages out, at a rate if given) or on its creation consumes, then reports.
 * Times it reports are absolute (timeOrigin + now): each worker has its own performance.now().
 */
import '../src/polyfill.js'
import { parentPort, workerData } from 'node:worker_threads'
import { createConsumer, createProducer, PermissionDeniedError } from '../src/index.js'
import { clientIdentity } from './identity.js'
import { errorText } from './lifecycle.js'

export interface BenchTask {
  role: 'producer' | 'consumer'
  broker: string
  relays: string[]
  stun: string[]
  name: string
  command: string
  group: string
  size: number
  /** Producer: messages to send (0: until `duration` ends). */
  count: number
  /** Producer: ms to send for (0: until `count` is sent). */
  duration: number
  /** Producer: messages a second (0: as fast as the window allows). */
  rate: number
  window: number
  prefetch: number
  /** Send (and answer) instead of publish (and ack). */
  request: boolean
  /** ms from the start in which messages are sent but not counted (V8 still optimizing). */
  warmup: number
}

export type WorkerReport =
  | { type: 'ready' }
  | { type: 'received', count: number }
  | { type: 'produced', sent: number, done: number, failed: number, firstError?: string, measured: number, measuredFrom: number, endAt: number, latencies: Float64Array }
  | { type: 'consumed', count: number, measured: number, firstAt: number, lastAt: number }
  | { type: 'error', message: string, denied: boolean }

/** Latency samples kept per producer, at most: past it, a uniform sample of them all (reservoir). */
const MAX_SAMPLES = 1_000_000
/** ms between a consumer's counts to the main thread. */
const PROGRESS_INTERVAL = 100

const task = workerData as BenchTask
const port = parentPort
const report = (r: WorkerReport, transfer: ArrayBuffer[] = []): void => { port?.postMessage(r, transfer) }
const now = (): number => performance.timeOrigin + performance.now()

async function produce (): Promise<void> {
  const producer = await createProducer({ broker: task.broker, relays: task.relays, stun: task.stun, ...(await clientIdentity(task)), window: task.window })
  const body = new Uint8Array(task.size).fill(0x61)
  const latencies = new Float64Array(Math.min(task.count > 0 ? task.count : MAX_SAMPLES, MAX_SAMPLES))
  let sent = 0
  let done = 0
  /** Settled of those sent after the warm-up: what the rates and latencies count. */
  let measured = 0
  let measuredFrom = 0
  let failed = 0
  let firstError: string | undefined
  let denied = false
  let inFlight = 0
  let startAt = 0
  let endAt = 0
  let scheduled = false
  let finish = (): void => {}
  const finished = new Promise<void>((resolve) => { finish = resolve })

  const record = (ms: number, counted: boolean): void => {
    done++
    if (!counted) return
    if (measured < latencies.length) latencies[measured] = ms
    else {
      const j = Math.floor(Math.random() * (measured + 1))
      if (j < latencies.length) latencies[j] = ms
    }
    measured++
  }
  const more = (): boolean => !denied && (task.count === 0 || sent < task.count) && (task.duration === 0 || now() < startAt + task.duration)
  const settled = (): void => {
    inFlight--
    endAt = now()
    if (inFlight === 0 && !more()) finish()
    else if (!scheduled) {
      scheduled = true
      setImmediate(pump)
    }
  }
  const one = (): void => {
    const t0 = performance.now()
    const counted = now() >= measuredFrom
    inFlight++
    sent++
    const out = task.request ? producer.send(task.command, body) : producer.publish(task.command, body)
    out.then(() => { record(performance.now() - t0, counted); settled() }, (err: Error) => {
      failed++
      firstError ??= errorText(err)
      if (err instanceof PermissionDeniedError) denied = true
      settled()
    })
  }
  /** Sends while the window has room (and the rate allows); settled() or the rate's timer calls it again. */
  function pump (): void {
    scheduled = false
    while (inFlight < task.window && more()) {
      if (task.rate > 0) {
        const due = startAt + (sent * 1000) / task.rate
        if (now() < due) {
          scheduled = true
          setTimeout(pump, Math.max(0, due - now()))
          return
        }
      }
      one()
    }
    if (inFlight === 0 && !more()) finish()
  }

  report({ type: 'ready' })
  await new Promise<void>((resolve) => { port?.once('message', () => { resolve() }) })
  startAt = now()
  measuredFrom = startAt + task.warmup
  pump()
  await finished
  await producer.stop()
  const kept = latencies.slice(0, Math.min(measured, latencies.length))
  if (denied && done === 0) throw new PermissionDeniedError(firstError ?? 'refused')
  report({ type: 'produced', sent, done, failed, firstError, measured, measuredFrom, endAt: endAt === 0 ? now() : endAt, latencies: kept }, [kept.buffer])
}

async function consume (): Promise<void> {
  const consumer = await createConsumer({ broker: task.broker, relays: task.relays, stun: task.stun, ...(await clientIdentity(task)) })
  let count = 0
  /** Taken from `measureFrom` (the producers' start and warm-up, told on 'start'), between `firstAt` and `lastAt`. */
  let measured = 0
  let measureFrom = Infinity
  let firstAt = 0
  let lastAt = 0
  const handler = task.request ? (m: { payload: unknown }) => m.payload : () => undefined
  await consumer.subscribe(task.command, (m) => {
    count++
    const at = now()
    if (at >= measureFrom) {
      lastAt = at
      if (measured++ === 0) firstAt = at
    }
    return handler(m)
  }, { group: task.group, ...(task.prefetch > 0 ? { prefetch: task.prefetch } : {}) })
  port?.on('message', (m: { measureFrom?: number }) => { if (m.measureFrom != null) measureFrom = m.measureFrom })
  const progress = setInterval(() => { report({ type: 'received', count }) }, PROGRESS_INTERVAL)
  report({ type: 'ready' })
  await new Promise<void>((resolve) => { port?.on('message', (m) => { if (m === 'stop') resolve() }) })
  clearInterval(progress)
  await consumer.stop()
  report({ type: 'consumed', count, measured, firstAt, lastAt })
}

(task.role === 'producer' ? produce() : consume()).catch((err: Error) => {
  report({ type: 'error', message: errorText(err), denied: err instanceof PermissionDeniedError })
})
