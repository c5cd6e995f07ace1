/**
 * `p2pmq bench` as a user types it: real processes (a `p2pmq broker`, then `p2pmq bench` with its
 * producers and consumers in worker threads), publish and request, -count and -duration, -json;
 * what the broker counted agrees with what the bench says; bad flags and an unreachable broker exit
 * with their codes.
 */
import { describe, expect, it } from 'vitest'
import { createAdmin } from '../src/index.js'
import { run, startBroker } from './cli-helpers.js'
import { onCleanup, tempDir } from './helpers.js'

interface BenchJson {
  command: string
  mode: string
  producers: number
  consumers: number
  size: number
  sent: number
  confirmed: number
  consumed: number
  warmupMs: number
  seconds: number
  producedPerSecond: number
  consumedPerSecond: number
  latencyMs: { p50: number, p90: number, p99: number, p999: number, max: number }
}

async function bench (home: string, args: string[]): Promise<{ code: number | null, out: string[], err: string[] }> {
  const proc = run(['bench', ...args], home)
  const code = await proc.exited
  return { code, out: proc.out.filter((l) => l !== ''), err: proc.err.filter((l) => l !== '') }
}

describe('p2pmq bench', () => {
  it('publishes with 2 producers to 2 consumers, and sends requests, printing rates and latencies the broker agrees with', async () => {
    const home = await tempDir()
    const broker = await startBroker(home, ['-memory'])
    const admin = await createAdmin({ broker: broker.tcp, home })
    onCleanup(async () => { await admin.stop() })

    const published = await bench(home, [`-broker=${broker.peerId}`, '-producers=2', '-consumers=2', '-count=4001', '-size=64', '-json'])
    expect(published.code, published.err.join('\n')).toBe(0)
    expect(published.out).toHaveLength(1)
    const p = JSON.parse(published.out[0]) as BenchJson
    expect(p).toMatchObject({ mode: 'publish', producers: 2, consumers: 2, size: 64, warmupMs: 0, sent: 4001, confirmed: 4001, consumed: 4001 })
    expect(p.command).toMatch(/^bench\.[0-9a-f]{8}$/)
    expect(p.producedPerSecond).toBeGreaterThan(0)
    expect(p.consumedPerSecond).toBeGreaterThan(0)
    expect(p.latencyMs.p50).toBeGreaterThan(0)
    expect(p.latencyMs.p50).toBeLessThanOrEqual(p.latencyMs.p99)
    expect(p.latencyMs.p99).toBeLessThanOrEqual(p.latencyMs.max)
    // The broker saw the same: every message published to the bench's group, and acked there.
    const queue = (await admin.stats()).queues.find((q) => q.command === p.command)
    expect(queue).toMatchObject({ group: 'bench', published: 4001, acked: 4001, depth: 0, inFlight: 0 })

    const requested = await bench(home, [`-broker=${broker.tcp}`, '-request', '-count=500', '-window=10'])
    expect(requested.code, requested.err.join('\n')).toBe(0)
    expect(requested.out[0]).toMatch(/^p2pmq bench: 1 producer, 1 consumer, 100-byte messages to "bench\.[0-9a-f]{8}", request$/)
    expect(requested.out[1]).toMatch(/^Producers: 500 answered in \d+\.\d\d s: [\d,]+ msg\/s \(\d+\.\d MB\/s\)$/)
    expect(requested.out[2]).toMatch(/^Consumers: 500 taken in \d+\.\d\d s: [\d,]+ msg\/s/)
    expect(requested.out[3]).toMatch(/^Latency, send to answer: p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms, p99\.9 [\d.]+ ms, max [\d.]+ ms$/)
  }, 120_000)

  it('sends for -duration at a -rate, counted after its -warmup; with no consumer the messages wait in the broker', async () => {
    const home = await tempDir()
    const broker = await startBroker(home, ['-memory'])
    const r = await bench(home, [`-broker=${broker.peerId}`, '-consumers=0', '-count=0', '-duration=1000', '-rate=200', '-warmup=300', '-command=paced', '-json'])
    expect(r.code, r.err.join('\n')).toBe(0)
    const p = JSON.parse(r.out[0]) as BenchJson
    // 200 a second for a second: the first at once, then one every 5 ms.
    expect(p.sent).toBeGreaterThanOrEqual(190)
    expect(p.sent).toBeLessThanOrEqual(202)
    expect(p.confirmed).toBe(p.sent)
    expect(p.consumed).toBe(0)
    // The rate is what was confirmed after the warm-up over the time since it: the pace's 200 a second.
    expect(p.producedPerSecond).toBeGreaterThan(170)
    expect(p.producedPerSecond).toBeLessThan(230)
    expect(p.seconds).toBeGreaterThan(0.6)
    expect(p.seconds).toBeLessThan(0.9)
    const admin = await createAdmin({ broker: broker.tcp, home })
    onCleanup(async () => { await admin.stop() })
    expect((await admin.stats()).queues.find((q) => q.command === 'paced')?.depth).toBe(p.sent)
  }, 60_000)

  it('refuses bad flags (exit 2) and says when the broker cannot be reached (exit 3)', async () => {
    const home = await tempDir()
    for (const [args, message] of [
      [[], /-broker=<peerId\|multiaddr> is required/],
      [['-broker=12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz', '-count=0'], /Give -count or -duration/],
      [['-broker=12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz', '-producers=0'], /-producers must be at least 1/],
      [['-broker=12D3KooWFewg42MEWgr5KNQQCwrjvVHKCHrG1x8CffZH8jVZ7Mcz', '-command=a..b'], /a\.\.b/]
    ] as Array<[string[], RegExp]>) {
      const r = await bench(home, args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.err.join('\n'), args.join(' ')).toMatch(message)
    }
    // A broker that is not there: its port closed (a broker stopped).
    const gone = await startBroker(home, ['-memory'])
    gone.proc.child.kill('SIGTERM')
    await gone.proc.exited
    const r = await bench(home, [`-broker=${gone.tcp}`, '-timeout=3000', '-count=10'])
    expect(r.code).toBe(3)
    expect(r.err.at(-1)).toBe('p2pmq: Cannot reach the broker: a consumer did not connect and subscribe within 3000 ms (-timeout)')
  }, 60_000)
})
