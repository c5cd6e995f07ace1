/**
 * What libp2p's metrics (@libp2p/prometheus-metrics, on in a broker by default) add to each chunk
 * a broker sends or receives, in ns: the byte counting wrapped around a stream's and a
 * connection's `send` and `dispatchEvent`, and one counter's increment (noise counts its packets).
 * Too small for the bench's scenarios to show through the machine's noise, so timed here alone:
 * `node dist/bench/metrics-cost.js`.
 */
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { defaultLogger } from '@libp2p/logger'
import { Registry } from 'prom-client'

const CALLS = 2_000_000

interface Chunked { send: (b: Uint8Array) => boolean, dispatchEvent: (e: { type: string, data: Uint8Array }) => boolean, protocol: string }
const chunked = (): Chunked => ({ send: (b) => b !== null, dispatchEvent: (e) => e !== null, protocol: '/p2pmq/producer/1.0.0' })

const metrics = prometheusMetrics({ registry: new Registry(), preserveExistingMetrics: true, collectDefaultMetrics: false })({ logger: defaultLogger() })
const bare = chunked()
const stream = chunked()
metrics.trackProtocolStream(stream as any)
const connection = chunked()
metrics.trackMultiaddrConnection(connection as any)
const counter = metrics.registerCounter('bench_packets_total')

const chunk = new Uint8Array(150)
const message = { type: 'message', data: chunk }

/** ns per call of `fn`, after as many calls to warm it up. */
function nsPerCall (fn: () => void): number {
  for (let i = 0; i < CALLS; i++) fn()
  const start = process.hrtime.bigint()
  for (let i = 0; i < CALLS; i++) fn()
  return Number(process.hrtime.bigint() - start) / CALLS
}

const rows: Array<[string, () => void]> = [
  ['send + receive, untracked', () => { bare.send(chunk); bare.dispatchEvent(message) }],
  ['send + receive, tracked stream', () => { stream.send(chunk); stream.dispatchEvent(message) }],
  ['send + receive, tracked connection', () => { connection.send(chunk); connection.dispatchEvent(message) }],
  ['counter increment', () => { counter.increment() }]
]
for (let round = 1; round <= 3; round++) {
  console.log(`round ${round}: ${rows.map(([label, fn]) => `${label} ${nsPerCall(fn).toFixed(0)} ns`).join(', ')}`)
}
