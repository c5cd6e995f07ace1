/**
 * `GET /metrics`, as Prometheus scrapes it: a real `p2pmq broker` process (LevelDB store) with real
 * traffic from libp2p clients, its text parsed as the exposition format (parse-prometheus-text-format)
 * and checked against what the traffic did; a broker in memory has no store metrics; a broker
 * without metrics answers 404; a peer that makes more than 1,000 queues does not make the scrape huge.
 */
import parsePrometheusTextFormat, { type MetricFamily as Family } from 'parse-prometheus-text-format'
import { describe, expect, it } from 'vitest'
import { RejectMessage } from '../src/index.js'
import { serveBroker } from '../src/web-server.js'
import { startBroker as startCliBroker } from './cli-helpers.js'
import { consumer, producer, sleep, startBroker, tempDir } from './helpers.js'

/** A sample value of the exposition format: a float, ±Inf or NaN (Prometheus reads these in any case; prom-client writes "Nan"). */
const NUMBER = /^([-+]?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?|[-+]?inf|nan)$/i

async function scrape (url: string): Promise<{ families: Map<string, Family>, text: string, contentType: string | null }> {
  const res = await fetch(new URL('metrics', url))
  expect(res.status).toBe(200)
  const text = await res.text()
  const families = new Map<string, Family>()
  for (const family of parsePrometheusTextFormat(text)) {
    expect(families.has(family.name), `${family.name} twice`).toBe(false)
    expect(family.name).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/)
    // The parser lets a broken number or a stray field through: every value is checked here.
    for (const sample of family.metrics) {
      expect(Object.keys(sample).every((k) => ['value', 'labels', 'buckets', 'count', 'sum'].includes(k)), JSON.stringify(sample)).toBe(true)
      for (const v of [sample.value, sample.count, sample.sum, ...Object.values(sample.buckets ?? {})]) if (v != null) expect(v).toMatch(NUMBER)
      for (const label of Object.keys(sample.labels ?? {})) expect(label).toMatch(/^[a-zA-Z_][a-zA-Z0-9_]*$/)
    }
    families.set(family.name, family)
  }
  return { families, text, contentType: res.headers.get('content-type') }
}

/** Scrapes every 100 ms until `ready` holds (10 s at most). */
async function scrapeUntil (url: string, ready: (families: Map<string, Family>) => boolean, what: string): Promise<Awaited<ReturnType<typeof scrape>>> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const scraped = await scrape(url)
    if (ready(scraped.families)) return scraped
    if (Date.now() > deadline) throw new Error(`${what} never showed in /metrics:\n${scraped.text}`)
    await sleep(100)
  }
}

/** The value of `name`'s one sample whose labels include `labels`. */
function value (families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const samples = (families.get(name)?.metrics ?? []).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
  expect(samples.length, `${name} ${JSON.stringify(labels)}`).toBeLessThanOrEqual(1)
  return samples[0]?.value != null ? Number(samples[0].value) : samples[0]?.count != null ? Number(samples[0].count) : undefined
}

describe('GET /metrics', () => {
  it('a durable CLI broker\'s queues, clients, store and process, after real traffic, in the exposition format', async () => {
    const home = await tempDir()
    const broker = await startCliBroker(home, ['-max-attempts=1'])
    const ref = { address: broker.tcp, home }
    const c = await consumer(ref)
    await c.subscribe('jobs', async (m) => `done ${String(m.payload)}`)
    await c.subscribe('boom', async () => { throw new RejectMessage('no') })
    const p = await producer(ref)
    await Promise.all(Array.from({ length: 20 }, async (_, i) => { await p.publish('jobs', `p${i}`) }))
    for (let i = 0; i < 10; i++) expect(await p.send('jobs', `s${i}`)).toBe(`done s${i}`)
    await expect(p.send('boom', 'x')).rejects.toThrow(/no/)
    // Expires waiting: nobody consumes `late` until its time to live has run out.
    await p.publish('late', 'stale', { ttl: 50 })
    await sleep(100)
    const c2 = await consumer(ref)
    await c2.subscribe('late', async () => 'never')

    const { families, contentType } = await scrapeUntil(broker.url, (f) => value(f, 'p2pmq_queue_expired_total', { command: 'late' }) === 1, 'the expiry')
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/)
    for (const family of families.values()) {
      expect(family.help, family.name).not.toBe('')
      expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(family.type.toLowerCase())
    }

    const jobs = { command: 'jobs', group: 'default' }
    expect(value(families, 'p2pmq_queue_published_total', jobs)).toBe(30)
    expect(value(families, 'p2pmq_queue_delivered_total', jobs)).toBe(30)
    expect(value(families, 'p2pmq_queue_acked_total', jobs)).toBe(30)
    expect(value(families, 'p2pmq_queue_waiting_messages', jobs)).toBe(0)
    expect(value(families, 'p2pmq_queue_in_flight_messages', jobs)).toBe(0)
    expect(value(families, 'p2pmq_queue_consumers', jobs)).toBe(1)
    expect(families.get('p2pmq_queue_published_total')?.type.toLowerCase()).toBe('counter')
    expect(value(families, 'p2pmq_queue_failed_total', { command: 'boom' })).toBe(1)
    expect(value(families, 'p2pmq_dead_letters', { command: 'boom' })).toBe(1)
    expect(value(families, 'p2pmq_queue_expired_total', { command: 'late' })).toBe(1)
    expect(value(families, 'p2pmq_queue_failed_total', { command: 'late' })).toBe(1)
    expect(value(families, 'p2pmq_clients', { role: 'consumer', via: 'tcp' })).toBe(2)
    expect(value(families, 'p2pmq_clients', { role: 'producer', via: 'tcp' })).toBe(1)
    expect(value(families, 'p2pmq_info', { peer_id: broker.peerId })).toBe(1)
    expect(value(families, 'p2pmq_queues')).toBeGreaterThanOrEqual(4)
    // The store: the publishes were synced (the requests were transient), and LevelDB holds files.
    expect(value(families, 'p2pmq_store_write_seconds')).toBeGreaterThan(0)
    expect(families.get('p2pmq_store_write_seconds')?.type.toLowerCase()).toBe('histogram')
    expect(value(families, 'p2pmq_store_bytes')).toBeGreaterThan(0)
    expect(value(families, 'p2pmq_store_failing')).toBe(0)
    // libp2p's own, and the process's.
    expect(value(families, 'libp2p_data_transfer_bytes_total', { protocol: '/p2pmq/producer/1.0.0 received' })).toBeGreaterThan(0)
    expect(value(families, 'libp2p_connection_manager_connections', { libp2p_connection_manager_connections: 'inbound' })).toBe(3)
    expect(value(families, 'process_resident_memory_bytes')).toBeGreaterThan(10_000_000)
    expect(value(families, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0)

    // Counters only grow between scrapes; HEAD answers without a body; other methods are refused.
    await p.publish('jobs', 'one more')
    const after = await scrape(broker.url)
    expect(value(after.families, 'p2pmq_queue_published_total', jobs)).toBe(31)
    const head = await fetch(new URL('metrics', broker.url), { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    expect((await fetch(new URL('metrics', broker.url), { method: 'POST' })).status).toBe(405)
  })

  it('a broker in memory has no store metrics; one built without metrics answers 404', async () => {
    const b = await startBroker({ memory: true })
    const web = await serveBroker(b.node, 0)
    try {
      const p = await producer(b)
      await p.publish('jobs', 'x')
      const { families } = await scrape(web.url)
      expect(value(families, 'p2pmq_queue_published_total', { command: 'jobs' })).toBe(1)
      for (const name of ['p2pmq_store_bytes', 'p2pmq_store_write_seconds', 'p2pmq_store_failing']) expect(families.has(name), name).toBe(false)
    } finally {
      await web.close()
    }
    const without = await startBroker({ memory: true, metrics: false })
    const web2 = await serveBroker(without.node, 0)
    try {
      const res = await fetch(new URL('metrics', web2.url))
      expect(res.status).toBe(404)
      expect(await res.text()).toContain('keeps no metrics')
    } finally {
      await web2.close()
    }
  })

  it('lists at most the 1,000 deepest queues, and counts them all', async () => {
    const b = await startBroker({ memory: true })
    const web = await serveBroker(b.node, 0)
    try {
      const p = await producer(b)
      // Unrouted: no group wants these commands, so each is a queue of its own; the deepest has 3.
      await Promise.all(Array.from({ length: 1_010 }, async (_, i) => { await p.publish(`c${i}`, 'x') }))
      await p.publish('c7', 'x')
      await p.publish('c7', 'x')
      const { families, text } = await scrape(web.url)
      expect(value(families, 'p2pmq_queues')).toBe(1_010)
      expect(families.get('p2pmq_queue_waiting_messages')?.metrics).toHaveLength(1_000)
      expect(value(families, 'p2pmq_queue_waiting_messages', { command: 'c7' })).toBe(3)
      expect(text.length).toBeLessThan(2_000_000)
    } finally {
      await web.close()
    }
  })
})
