/**
 * The broker's stats: its queues with their rates (sampled once a second) and dead letters, its
 * clients and totals, as the admin `stats` and `watch` methods return them.
 */
import type { BrokerOverview, BrokerStats, ClientInfo, QueueRates } from './api.js'
import type { QueueEngine, QueueStats } from './engine.js'
import type { Queue } from './queue.js'

/** Queues listed in `stats` at most: each takes up to about 1 KiB of JSON (two 255-byte names), so the reply stays far below the admin client's frame limit. */
export const MAX_STATS_QUEUES = 1_000
/** ms between samples of the queues' counters, for their rates. */
export const RATE_INTERVAL = 1_000

const NO_RATES: QueueRates = { published: 0, delivered: 0, acked: 0 }

/** Per queue: counters at the last sample, and the rates since the one before (keyed by the queue, not its name: no string work per queue per second). */
export class RateSampler {
  private readonly counters = new WeakMap<Queue, { at: number, published: number, delivered: number, acked: number }>()
  private readonly rates = new WeakMap<Queue, QueueRates>()

  constructor (private readonly engine: QueueEngine<any>) {}

  sample (): void {
    const now = Date.now()
    for (const q of this.engine.queues()) {
      const before = this.counters.get(q)
      if (before != null && now > before.at) {
        const s = (now - before.at) / 1000
        this.rates.set(q, { published: (q.published - before.published) / s, delivered: (q.delivered - before.delivered) / s, acked: (q.acked - before.acked) / s })
      }
      this.counters.set(q, { at: now, published: q.published, delivered: q.delivered, acked: q.acked })
    }
  }

  of (q: QueueStats): QueueRates {
    const queue = this.engine.queue(q.command, q.group)
    return (queue != null ? this.rates.get(queue) : undefined) ?? { ...NO_RATES }
  }
}

/** The stats of the queues (the deepest `MAX_STATS_QUEUES`), with the clients and totals given. */
export function brokerStats (
  engine: QueueEngine<any>,
  rates: RateSampler,
  deadLetters: (queues: QueueStats[]) => Map<string, number>,
  clients: ClientInfo[],
  keptAnswers: number,
  broker: Omit<BrokerOverview, 'totals'>
): BrokerStats {
  const all = engine.stats()
  const dead = deadLetters(all)
  const queues = all.length <= MAX_STATS_QUEUES ? all : all.sort((a, b) => b.depth !== a.depth ? b.depth - a.depth : b.inFlight - a.inFlight).slice(0, MAX_STATS_QUEUES)
  return {
    moreQueues: all.length - queues.length,
    queues: queues.map((q) => ({ ...q, rates: rates.of(q), deadLetters: dead.get(q.command) ?? 0 })),
    clients,
    messages: engine.size,
    keptAnswers,
    broker: { ...broker, totals: totals(all) }
  }
}

function totals (queues: QueueStats[]): BrokerOverview['totals'] {
  const sum = { published: 0, delivered: 0, acked: 0, failed: 0 }
  for (const q of queues) {
    sum.published += q.published
    sum.delivered += q.delivered
    sum.acked += q.acked
    sum.failed += q.failed
  }
  return sum
}
