/**
 * The broker's Prometheus metrics (prom-client), in the registry its web server answers
 * `GET /metrics` with. Everything but the store's write times is read from the broker when it is
 * scraped, so a message costs nothing more. Counters are the queues' own counts: a queue removed
 * when idle takes its series with it, and comes back from 0 (Prometheus reads that as a reset).
 */
import { Counter, Gauge, Histogram, type Metric, type Registry } from 'prom-client'
import type { BrokerStats } from './api.js'
import type { QueueStats } from './engine-types.js'
import type { BrokerService } from './service.js'

/** Seconds: from a batch on a fast SSD (~0.1 ms) to a disk that stalls. */
const STORE_WRITE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

const QUEUE_LABELS = ['command', 'group'] as const

type QueueCount = 'published' | 'delivered' | 'acked' | 'nacked' | 'failed' | 'expired'
const QUEUE_COUNTERS: Array<[QueueCount, string]> = [
  ['published', 'Messages published to the queue (retries and replays included)'],
  ['delivered', 'Deliveries to consumers (a redelivery counts again)'],
  ['acked', 'Messages its consumers completed (acked or answered)'],
  ['nacked', 'Deliveries its consumers nacked'],
  ['failed', 'Messages that failed: out of attempts, rejected or expired'],
  ['expired', 'Messages whose time to live ran out before a delivery (counted in failed too)']
]

type QueueLevel = 'depth' | 'inFlight' | 'delayed' | 'consumers'
const QUEUE_GAUGES: Array<[string, QueueLevel, string]> = [
  ['p2pmq_queue_waiting_messages', 'depth', 'Messages waiting for a consumer, in memory and on disk'],
  ['p2pmq_queue_in_flight_messages', 'inFlight', 'Messages delivered and not yet settled'],
  ['p2pmq_queue_delayed_messages', 'delayed', 'Messages waiting for their due time (delayed, or backing off before a retry)'],
  ['p2pmq_queue_consumers', 'consumers', 'Subscriptions consuming the queue']
]

export interface MetricsInfo {
  version: string
  peerId: string
}

/**
 * Registers the broker's metrics in `registry` (the store's only with a store). Per queue, at most the 1,000 deepest are listed
 * (as in `stats`), so a peer that makes many queues cannot make a scrape huge; `p2pmq_queues` counts them all.
 */
export function registerBrokerMetrics (registry: Registry, broker: BrokerService, info: MetricsInfo): void {
  // One snapshot per scrape: every metric's collect runs in the same turn, which this outlives by one.
  let snapshot: BrokerStats | undefined
  const stats = (): BrokerStats => {
    if (snapshot == null) {
      snapshot = broker.stats()
      setImmediate(() => { snapshot = undefined })
    }
    return snapshot
  }
  // Each metric is made without a registry (prom-client's default is its global one) and put in this one.
  const registers: Registry[] = []
  const add = (metric: Metric): void => { registry.registerMetric(metric) }
  const perQueue = (set: (q: QueueStats, labels: { command: string, group: string }) => void): void => {
    for (const q of stats().queues) set(q, { command: q.command, group: q.group })
  }

  const about = new Gauge({ name: 'p2pmq_info', help: 'The broker: its version and peer ID (always 1)', labelNames: ['version', 'peer_id'], registers })
  about.set({ version: info.version, peer_id: info.peerId }, 1)
  add(about)
  for (const [name, level, help] of QUEUE_GAUGES) {
    add(new Gauge({
      name,
      help,
      labelNames: QUEUE_LABELS,
      registers,
      collect () {
        this.reset()
        perQueue((q, labels) => { this.set(labels, q[level]) })
      }
    }))
  }
  for (const [count, help] of QUEUE_COUNTERS) {
    add(new Counter({
      name: `p2pmq_queue_${count}_total`,
      help,
      labelNames: QUEUE_LABELS,
      registers,
      collect () {
        this.reset()
        perQueue((q, labels) => { this.inc(labels, q[count]) })
      }
    }))
  }
  add(new Gauge({
    name: 'p2pmq_dead_letters',
    help: 'Messages waiting in a command\'s dead-letter queue',
    labelNames: ['command'],
    registers,
    collect () {
      this.reset()
      for (const q of stats().queues) this.set({ command: q.command }, q.deadLetters)
    }
  }))
  add(new Gauge({ name: 'p2pmq_queues', help: 'Queues the broker holds (those listed per queue are the 1,000 deepest)', registers, collect () { const s = stats(); this.set(s.queues.length + s.moreQueues) } }))
  add(new Gauge({ name: 'p2pmq_messages', help: 'Messages the broker holds: waiting, unrouted, delayed and in flight', registers, collect () { this.set(stats().messages) } }))
  add(new Gauge({ name: 'p2pmq_kept_answers', help: 'Answers kept for producers that are away', registers, collect () { this.set(stats().keptAnswers) } }))
  add(new Gauge({
    name: 'p2pmq_clients',
    help: 'Client streams by role, and by how their peer is connected (tcp, webrtc, relay)',
    labelNames: ['role', 'via'],
    registers,
    collect () {
      this.reset()
      for (const c of stats().clients) this.inc({ role: c.role, via: c.via })
    }
  }))
  if (!broker.hasStore) return
  const storeBytes = broker.storeBytes
  if (storeBytes != null) {
    add(new Gauge({
      name: 'p2pmq_store_bytes',
      help: 'Bytes the message store takes on disk',
      registers,
      async collect () {
        // A read that fails (the directory is gone) leaves the last figure.
        const bytes = await storeBytes().catch(() => undefined)
        if (bytes != null) this.set(bytes)
      }
    }))
  }
  add(new Gauge({ name: 'p2pmq_store_failing', help: '1 while the message store cannot write (a full disk): publishes are refused', registers, collect () { this.set(broker.storeFailure != null ? 1 : 0) } }))
  const writes = new Histogram({ name: 'p2pmq_store_write_seconds', help: 'Time to write and sync one batch of the message store (a group commit)', buckets: STORE_WRITE_BUCKETS, registers })
  add(writes)
  broker.observeStoreWrites((seconds) => { writes.observe(seconds) })
}
