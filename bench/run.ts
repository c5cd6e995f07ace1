/**
 * p2pmq benchmark: a real relay over TCP on 127.0.0.1, with the broker, the producer and every
 * consumer each in its own process (forked from this one, talking to it over IPC).
 *
 *   a. work queue, 1 consumer: publish() (confirm only), the default window, 100-byte payloads;
 *      the consumer's handler is synchronous and returns undefined (default prefetch); acked/s counted at
 *      the consumer between the end of a warm-up and the end of the run
 *   b. the same with 4 consumer processes (sum of their acked/s)
 *   c. request/answer latency with one message in flight: send() in a loop, p50 and p99 in µs
 *   d. as a, with the broker's LevelDB store: every publish synced before its confirm (RabbitMQ:
 *      a durable queue and persistent messages)
 *
 *   e. a durable broker with no consumer filled with each of BENCH_BACKLOG (1,000,000 and
 *      10,000,000) messages: the
 *      broker's RSS then (p2pmq only). Then the paged backlogs of BENCH_PAGED: 1,000,000 unrouted
 *      messages (a command no group has subscribed to), 1,000,000 delayed ones (due BENCH_DELAY ms
 *      after their publish) and 1,500 of 1 MiB, each of random bytes (no store compresses them): the
 *      broker's RSS after filling, after a kill -9 and restart, and at and after the first subscribe
 *      (its peak), and whether one consumer got every message once, in order
 *
 *   f. a page in headless Chromium (/usr/bin/chromium) as the consumer over WebRTC Direct: acked/s
 *      of publishes, and the latency of the page's answers, one message in flight
 *
 *   g. startup: wall time of `p2pmq -help`, and of a `p2pmq producer` process from its spawn to
 *      its first answer from a running broker and consumer; median of BENCH_STARTUP_N runs
 *
 *   h. across networks (bench/across.ts: the NAT harness of the tests, root, `ip`, `iptables` and
 *      coturn's `turnserver`; skipped, saying why, without them): the broker behind NAT A, its
 *      consumer and producer behind NAT B, given its peer ID and a relay on the public segment.
 *      a (throughput) and c (latency, BENCH_LATENCY_N up to 2000 after up to 1000) relayed (no
 *      STUN: every byte through the relay) and direct (STUN beside the relay: WebRTC punched
 *      through both NATs, checked before and after timing), beside loopback (a's and c's own runs,
 *      which h runs too); and how long the latency run's producer took from createProducer() to
 *      its first answer (by peer ID through the relay; the DHT is the fallback, not timed), also
 *      from its node up (createProducer() resolved: the lookup, the dial and one round trip) and,
 *      direct, to its stream open on the direct connection. A fresh network per run; the relay's
 *      CPU is in the details.
 *
 *   i. hostile peers: a's run quiet, then with bench/hostile-proc.ts attacking the broker: the
 *      held attacks (idle sockets, partial largest frames, an admin stream that never reads, a
 *      consumer hogging the group, a producer with 60,000 requests in flight: each sends, then
 *      holds what it took), then the floods (watch requests, random frames: the attacker keeps
 *      sending, on the same 2 cores). The pair's acked msg/s and the broker's peak RSS in each.
 *
 *   j. c at a steady pace, as users meet it: one request every 1 ms and every 10 ms (each started
 *      on its tick, at once when the answer came later), to a broker in memory, to a durable one
 *      (durable requests), and to a durable one with transient requests (a send's default);
 *      RabbitMQ with the same pacing. p50, p99 and p99.9 in µs, and CPU per round trip of
 *      each p2pmq process in the details.
 *
 *   k. `p2pmq bench` (the CLI's load test, bench/cli-bench.ts) against a broker in memory, 1 producer
 *      and 1 consumer, BENCH_CLI_COUNT (400000) publishes of 100 bytes, `-warmup` a's warm-up: its
 *      consumers' msg/s, set beside a's (the target: at least 80% of it). RabbitMQ's PerfTest is
 *      not here: no column.
 *
 * a, b, c, f, h, i and k run the broker in memory (`-memory`). Every p2pmq process runs as the CLI's
 * do: with V8's tier-up of cmd/tier-up.ts, and the broker with the node flags of cmd/p2pmq.js's
 * first line.
 * Each scenario runs BENCH_RUNS times (default 3) with fresh processes; the table shows the median
 * and every run. A RabbitMQ column is filled when a RabbitMQ answers on 127.0.0.1:5672, each of its
 * runs right after p2pmq's, and the last column gives p2pmq's figure over RabbitMQ's run by run.
 *
 * Environment: BENCH_RUNS (3), BENCH_SECONDS (5, measured), BENCH_WARMUP (1 s), BENCH_LATENCY_N
 * (5000), BENCH_LATENCY_WARMUP (3000), BENCH_WINDOW (the producer's default), BENCH_PREFETCH (the consumer's default),
 * BENCH_ONLY (a,b,c,d,e,f,g,h,i,j: the scenarios to run; i and j only when named), BENCH_STARTUP_N (5: runs of each command in g), BENCH_BACKLOG (1000000,10000000: the backlogs of e; none to skip),
 * BENCH_PAGED (unrouted,delayed,large: the paged backlogs of e; also queued, for comparison; none to skip), BENCH_PAGED_N (1000000),
 * BENCH_LARGE_N (1500), BENCH_DELAY (60000), BENCH_PROF (comma list of broker,consumer,producer: run those
 * children with --cpu-prof; profiles go to BENCH_PROF_DIR, default <tmp>/p2pmq-bench-prof).
 */
import { existsSync, rmSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  BENCH_COMMAND, ProcGroup, cpuTicks, cpuUsOf, envNumber, killAll, latencyOf, median, memoryOf, P2PMQ_LAUNCH, PAYLOAD_SIZE, stealSince,
  type LatencyResult, type Msg, type Proc, type ThroughputResult
} from './common.js'
import { acrossUnavailable, checkPunched, checkVias, openAcross, type AcrossMode, type Placement } from './across.js'
import { DEFAULT_PREFETCH, DEFAULT_PRODUCER_WINDOW } from '../src/constants.js'
import { p2pmqStartup, type StartupResult } from './startup.js'
import { cliBench, type CliBenchResult } from './cli-bench.js'

const RUNS = Math.round(envNumber('BENCH_RUNS', 3))
const SECONDS = envNumber('BENCH_SECONDS', 5)
const WARMUP = envNumber('BENCH_WARMUP', 1)
const LATENCY_N = Math.round(envNumber('BENCH_LATENCY_N', 5000))
// Long enough for V8 to optimize the hot path (p50 drops ~20% over the first few thousand trips);
// both systems get the same warm-up.
const LATENCY_WARMUP = Math.round(envNumber('BENCH_LATENCY_WARMUP', 3000))
/** k's publishes: about as long a run as a's warm-up and measured seconds at a's rate here. */
const CLI_COUNT = Math.round(envNumber('BENCH_CLI_COUNT', 400_000))
const WINDOW = Math.round(envNumber('BENCH_WINDOW', DEFAULT_PRODUCER_WINDOW))
const PREFETCH = Math.round(envNumber('BENCH_PREFETCH', DEFAULT_PREFETCH))
/** BENCH_ONLY=a,c runs only those scenarios (for profiling one of them). */
const BACKLOGS = (process.env.BENCH_BACKLOG ?? '1000000,10000000').split(',').filter((s) => s.trim() !== 'none').map((s) => {
  const n = Number(s.trim())
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`BENCH_BACKLOG must be positive integers, got "${s}"`)
  return n
})
const PAGED = new Set((process.env.BENCH_PAGED ?? 'unrouted,delayed,large').split(',').map((s) => s.trim().toLowerCase()))
const PAGED_N = Math.round(envNumber('BENCH_PAGED_N', 1_000_000))
const LARGE_N = Math.round(envNumber('BENCH_LARGE_N', 1_500))
const DELAY = Math.round(envNumber('BENCH_DELAY', 60_000))
const STARTUP_N = Math.round(envNumber('BENCH_STARTUP_N', 5))
const ONLY = new Set((process.env.BENCH_ONLY ?? 'a,b,c,d,f,e,g,h,k').split(',').map((s) => s.trim().toLowerCase()))
/** Scenario i's attacks (bench/hostile-proc.ts): those that send once and hold what they took (or BENCH_HOSTILE's), and those that keep sending. */
const HELD_ATTACKS = process.env.BENCH_HOSTILE ?? 'sockets,partial,admin,hog,flight'
const FLOODS = 'watch,fuzz'
/** h's loopback rows are a's and c's runs. */
const LOOPBACK_ONLY = new Set([...ONLY, ...(ONLY.has('h') ? ['a', 'c'] : [])])
/** j's paces: ms between the starts of two requests. Each run takes about 10 s of trips (at most BENCH_LATENCY_N) after its warm-up. */
const PACES = [1, 10]
const pacedCount = (interval: number): number => Math.min(LATENCY_N, Math.round(10_000 / interval))
/**
 * 1 s of trips, and at least 800: at 10 ms, 1 s is 100 trips, and V8 was still optimizing the
 * message path while it was measured. On Node 24 (Xeon VM, in memory, interleaved runs), after 1 s:
 * p50 1.7-2.0 ms, p99 9-11 ms, about twice RabbitMQ's; after 8 s: p50 1.2-1.3 ms, p99 3.8-4.7 ms
 * against RabbitMQ's 3.1-3.4, warmed up alike.
 */
const PACED_WARMUP_TRIPS = 800
const pacedWarmup = (interval: number): number => Math.max(PACED_WARMUP_TRIPS, Math.round(1_000 / interval))

/** h's latency runs: fewer trips than c (a relayed one takes ~5 times as long). */
const ACROSS_LATENCY_N = Math.min(LATENCY_N, 2000)
const ACROSS_LATENCY_WARMUP = Math.min(LATENCY_WARMUP, 1000)

const HERE = dirname(fileURLToPath(import.meta.url))
const script = (name: string): string => join(HERE, name)

const PROF_ROLES = new Set((process.env.BENCH_PROF ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''))
const PROF_DIR = process.env.BENCH_PROF_DIR ?? join(tmpdir(), 'p2pmq-bench-prof')
// Brokers run as `p2pmq broker` does: with the Node flags of the command's first line.
const execArgv = (role: string): string[] => [...(role === 'broker' ? P2PMQ_LAUNCH.nodeFlags : []), ...(PROF_ROLES.has(role) ? ['--cpu-prof', `--cpu-prof-dir=${PROF_DIR}`] : [])]

interface Ready extends Msg { addr: string }
interface Counted extends Msg { processed: number, seconds: number, cpuUs: number, wallMs: number }
interface Flooded extends Msg { confirmed: number, failed: number, firstFailure?: string, seconds: number, cpuUs: number, wallMs: number }
interface Stats extends Msg { messages: number, rss: number, cpuUs: number, wallMs: number }

interface Env { home: string, env: NodeJS.ProcessEnv }

let runCounter = 0

/** Clients fork here and dial the broker's 127.0.0.1 multiaddr. */
const LOOPBACK: Placement = { broker: { args: [] }, client: (addr) => ({ broker: addr }) }

/** A broker child: in memory (scenarios a, b, c, h) or with its LevelDB store (d). */
async function startBroker (group: ProcGroup, e: Env, durable = false, place = LOOPBACK): Promise<{ broker: ReturnType<ProcGroup['start']>, addr: string }> {
  const dataDir = join(e.home, `broker-${++runCounter}`)
  const broker = group.start('broker', script('broker-proc.js'), [dataDir, e.home, durable ? 'durable' : 'memory', ...place.broker.args], execArgv('broker'), place.broker.where)
  const { addr } = await broker.next<Ready>('ready')
  if (place === LOOPBACK && !addr.startsWith('/ip4/127.0.0.1/tcp/')) throw new Error(`Unexpected broker address ${addr}`)
  return { broker, addr }
}

/** Starts a consumer or producer child as `place` says, given the broker's address. */
function startClient (group: ProcGroup, place: Placement, addr: string, name: string, proc: string, args: string[], options?: { firstAnswer?: boolean }): Proc {
  const { broker, where } = place.client(addr, options)
  return group.start(name, script(`${proc}-proc.js`), [broker, ...args], execArgv(name.split(' ')[0]), where)
}

/** The clients of a run across networks, each as it said it was connected to the broker. */
type Vias = Array<{ name: string, vias: unknown }>

async function p2pmqThroughput (consumers: number, durable: boolean, e: Env, place = LOOPBACK, attacks?: string): Promise<ThroughputResult & { vias: Vias, brokerPeakMB?: number }> {
  const group = new ProcGroup(e.env)
  try {
    const { broker, addr } = await startBroker(group, e, durable, place)
    const cons = Array.from({ length: consumers }, (_, i) =>
      startClient(group, place, addr, `consumer ${i + 1}`, 'consumer', ['ack', String(PREFETCH)]))
    // Across networks the broker is found and (direct) the connection upgraded before ready: up to 20 s.
    await Promise.all(cons.map(async (c) => await c.next('ready', 60_000)))
    const producer = startClient(group, place, addr, 'producer', 'producer', [String(WINDOW)])
    await producer.next('ready', 60_000)
    // Scenario i: the attacks of bench/hostile-proc.ts under way before the flood starts.
    if (attacks != null) await group.start('hostile', script('hostile-proc.js'), [addr, attacks]).next('ready', 60_000)
    memoryOf(broker.child.pid as number, true)

    const otherCpu: Record<string, number> = {}
    producer.send({ cmd: 'flood' })
    await group.sleep(WARMUP * 1000)
    for (const p of [broker, producer, ...cons]) p.send({ cmd: 'mark' })
    const watched = Object.entries(place.watched ?? {}).map(([name, pid]) => ({ name, pid, cpuUs: cpuUsOf(pid), at: performance.now() }))
    await group.sleep(SECONDS * 1000)
    for (const w of watched) {
      const cpuUs = cpuUsOf(w.pid)
      if (cpuUs != null && w.cpuUs != null) otherCpu[w.name] = (cpuUs - w.cpuUs) / 1000 / (performance.now() - w.at)
    }
    const [stats, flood, ...counts] = await Promise.all([
      broker.request<Stats>({ cmd: 'stats' }, 'stats'),
      producer.request<Flooded>({ cmd: 'stop' }, 'flooded'),
      ...cons.map(async (c) => await c.request<Counted>({ cmd: 'end' }, 'counted'))
    ])
    const acked = counts.reduce((a, c) => a + c.processed, 0)
    const cpu: Record<string, number> = {
      broker: stats.cpuUs / 1000 / stats.wallMs,
      producer: flood.cpuUs / 1000 / flood.wallMs,
      ...otherCpu
    }
    counts.forEach((c, i) => { cpu[`consumer ${i + 1}`] = c.cpuUs / 1000 / c.wallMs })
    // Each consumer's count over its own clock; the broker's CPU per message uses the same rate.
    const rate = counts.reduce((a, c) => a + c.processed / c.seconds, 0)
    return {
      vias: [...counts.map((c, i) => ({ name: `consumer ${i + 1}`, vias: c.vias })), { name: 'producer', vias: flood.vias }],
      acked,
      rate,
      confirmedRate: flood.confirmed / flood.seconds,
      publishFailures: flood.failed,
      firstFailure: flood.firstFailure,
      backlog: stats.messages,
      brokerRssMB: stats.rss / 2 ** 20,
      brokerPeakMB: memoryOf(broker.child.pid as number)?.peakMB,
      brokerCpuPerMsg: rate > 0 ? stats.cpuUs / (rate * stats.wallMs / 1000) : undefined,
      cpu
    }
  } finally {
    await group.close()
  }
}

interface BrowserResult { rate: number, latency: LatencyResult }

const CHROMIUM = '/usr/bin/chromium'

/**
 * A page in headless Chromium as the consumer, over WebRTC Direct: acked/s of a producer's
 * publishes (counted by the broker), then the latency of answers from the page, one at a time.
 */
async function browserConsumer (e: Env): Promise<BrowserResult> {
  const { chromium } = await import('playwright-core')
  const group = new ProcGroup(e.env)
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-features=WebRtcHideLocalIpsWithMdns']
  })
  try {
    const dataDir = join(e.home, `broker-${++runCounter}`)
    const broker = group.start('broker', script('broker-proc.js'), [dataDir, e.home, 'webrtc'], execArgv('broker'))
    const { addr, url } = await broker.next<Ready & { url: string }>('ready')
    const page = await browser.newPage()
    await page.goto(`${url}?subscribe=${BENCH_COMMAND}&answer=auto&quiet=1`)
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 30_000 })
    const acked = async (): Promise<{ acked: number, at: number }> => {
      const stats = await broker.request<Stats & { queues: Array<{ command: string, acked: number }> }>({ cmd: 'stats' }, 'stats')
      return { acked: stats.queues.find((q) => q.command === BENCH_COMMAND)?.acked ?? 0, at: performance.now() }
    }
    const flooder = group.start('producer', script('producer-proc.js'), [addr, String(WINDOW)], execArgv('producer'))
    await flooder.next('ready')
    flooder.send({ cmd: 'flood' })
    await group.sleep(WARMUP * 1000)
    const from = await acked()
    await group.sleep(SECONDS * 1000)
    const to = await acked()
    await flooder.request({ cmd: 'stop' }, 'flooded')
    const sender = group.start('producer 2', script('producer-proc.js'), [addr, String(WINDOW)], execArgv('producer'))
    await sender.next('ready')
    const lat = await sender.request<Msg & { samples: number[] }>({ cmd: 'latency', warmup: Math.min(LATENCY_WARMUP, 1000), count: Math.min(LATENCY_N, 2000) }, 'latency', 300_000)
    return { rate: (to.acked - from.acked) / ((to.at - from.at) / 1000), latency: latencyOf(lat.samples) }
  } finally {
    await browser.close()
    await group.close()
  }
}

interface BacklogResult { messages: number, seconds: number, rssMB: number }

/** A durable broker with no consumer, filled with `count` messages: how long, and its memory then. */
async function p2pmqBacklog (count: number, e: Env): Promise<BacklogResult> {
  const group = new ProcGroup(e.env)
  try {
    const { broker, addr } = await startBroker(group, e, true)
    // A consumer subscribes and goes, so the messages wait in its group's queue (which pages).
    const consumer = group.start('consumer', script('consumer-proc.js'), [addr, 'ack', '1'], execArgv('consumer'))
    await consumer.next('ready')
    consumer.send({ cmd: 'exit' })
    await consumer.exited
    const producer = group.start('producer', script('producer-proc.js'), [addr, String(WINDOW)], execArgv('producer'))
    await producer.next('ready')
    const filled = await producer.request<Msg & { seconds: number, failures: number }>({ cmd: 'fill', count }, 'filled', 3_600_000)
    if (filled.failures > 0) throw new Error(`${filled.failures} of ${count} publishes failed`)
    const stats = await broker.request<Stats>({ cmd: 'stats' }, 'stats')
    return { messages: stats.messages, seconds: filled.seconds, rssMB: stats.rss / 1024 / 1024 }
  } finally {
    await group.close()
  }
}

interface PagedSpec { kind: 'unrouted' | 'delayed' | 'large' | 'queued', label: string, count: number, size: number, delay?: number, window?: number, prefetch?: number }
type Memory = { rssMB: number, peakMB: number } | undefined
interface Progress extends Msg { received: number, distinct: number, duplicates: number, outOfOrder: number, early: number, inversionMs: number }
interface PagedResult {
  spec: PagedSpec
  fillSeconds: number
  afterFill: Memory
  restartSeconds: number
  /** Held after the restart, and of those still waiting for their due time. */
  held: number
  delayed: number
  afterRestart: Memory
  drainSeconds: number
  /** Sampled every second while the consumer drains, and the peak (VmHWM) since the restart's end. */
  drainPeak: Memory
  afterDrain: Memory
  progress: Progress
}

/**
 * A durable broker filled with a backlog no consumer takes (unrouted, delayed, or large messages in a
 * bound group), killed with SIGKILL, started again, then drained by one consumer that checks every
 * message came once and in order. The broker's memory at each step.
 */
async function p2pmqPagedBacklog (spec: PagedSpec, e: Env): Promise<PagedResult> {
  const group = new ProcGroup(e.env)
  try {
    const dataDir = join(e.home, `broker-${++runCounter}`)
    const args = [dataDir, e.home, 'durable']
    let broker = group.start('broker', script('broker-proc.js'), args, execArgv('broker'))
    let { addr } = await broker.next<Ready>('ready')
    const command = spec.kind === 'unrouted' ? `${BENCH_COMMAND}.unrouted` : BENCH_COMMAND
    if (spec.kind !== 'unrouted') {
      // Bound, then gone: the messages wait in its group's queue.
      const early = group.start('consumer 0', script('consumer-proc.js'), [addr, 'ack', '1', command], execArgv('consumer'))
      await early.next('ready')
      await group.stop(early)
    }
    const producer = group.start('producer', script('producer-proc.js'), [addr, String(spec.window ?? WINDOW)], execArgv('producer'))
    await producer.next('ready')
    const filled = await producer.request<Msg & { seconds: number, failures: number }>(
      { cmd: 'fill', count: spec.count, command, size: spec.size, delay: spec.delay ?? 0, numbered: true, random: true }, 'filled', 3_600_000)
    if (filled.failures > 0) throw new Error(`${filled.failures} of ${spec.count} publishes failed`)
    const afterFill = memoryOf(broker.child.pid as number)
    if (process.env.BENCH_TRACE != null) {
      const s = await broker.request<Stats & { memory: unknown }>({ cmd: 'stats' }, 'stats')
      const gc = await broker.request<Msg & { memory: unknown }>({ cmd: 'gc' }, 'gc')
      process.stderr.write(`  ${spec.label} filled: ${JSON.stringify(s.memory)}; after a full GC ${JSON.stringify(gc.memory)}, RSS ${JSON.stringify(memoryOf(broker.child.pid as number))}\n`)
    }
    await group.stop(producer)
    await group.kill(broker)

    const t0 = performance.now()
    broker = group.start('broker (restarted)', script('broker-proc.js'), args, execArgv('broker'))
    addr = (await broker.next<Ready>('ready', 600_000)).addr
    const restartSeconds = (performance.now() - t0) / 1000
    const stats = await broker.request<Stats & { queues: Array<{ delayed: number }> }>({ cmd: 'stats' }, 'stats')
    const pid = broker.child.pid as number
    const afterRestart = memoryOf(pid, true)

    const consumer = group.start('consumer', script('consumer-proc.js'), [addr, 'check', String(spec.prefetch ?? PREFETCH), command], execArgv('consumer'))
    await consumer.next('ready')
    const t1 = performance.now()
    const deadline = t1 + (spec.delay ?? 0) + 600_000
    let progress: Progress
    let sampledMB = 0
    for (;;) {
      await group.sleep(1_000)
      sampledMB = Math.max(sampledMB, memoryOf(pid)?.rssMB ?? 0)
      progress = await consumer.request<Progress>({ cmd: 'progress' }, 'progress')
      if (progress.distinct >= spec.count || performance.now() > deadline) break
      if (process.env.BENCH_TRACE != null) {
        const s = await broker.request<Stats & { queues: unknown[], memory: Record<string, number> }>({ cmd: 'stats' }, 'stats')
        const m = Object.fromEntries(Object.entries(s.memory).map(([k, v]) => [k, Math.round(v / 2 ** 20)]))
        process.stderr.write(`  ${spec.label}: ${progress.distinct} received; memory MB ${JSON.stringify(m)} RSS ${JSON.stringify(memoryOf(pid))}\n`)
      }
    }
    const drainSeconds = (performance.now() - t1) / 1000
    await group.sleep(500)
    progress = await consumer.request<Progress>({ cmd: 'progress' }, 'progress')
    const afterDrain = memoryOf(pid)
    return {
      spec,
      fillSeconds: filled.seconds,
      afterFill,
      restartSeconds,
      held: stats.messages,
      delayed: stats.queues.reduce((a, q) => a + q.delayed, 0),
      afterRestart,
      drainSeconds,
      drainPeak: afterDrain == null ? undefined : { rssMB: sampledMB, peakMB: afterDrain.peakMB },
      afterDrain,
      progress
    }
  } finally {
    await group.close()
  }
}

/** How long the producer of a latency run took to reach the broker (across networks: by peer ID, through the relay). */
interface Found { createdMs?: number, connectMs?: number, firstAnswerMs?: number, directMs?: number }

/** `durable`: a broker with a store; `transient`: the sends' own (their default, true), which only a durable broker heeds. */
async function p2pmqLatency (e: Env, place = LOOPBACK, warmup = LATENCY_WARMUP, count = LATENCY_N, paced: { interval?: number, durable?: boolean, transient?: boolean } = {}): Promise<LatencyResult & { found: Found, vias: Vias }> {
  const group = new ProcGroup(e.env)
  try {
    const { broker, addr } = await startBroker(group, e, paced.durable === true, place)
    const consumer = startClient(group, place, addr, 'consumer', 'consumer', ['echo', '100'])
    await consumer.next('ready', 60_000)
    const producer = startClient(group, place, addr, 'producer', 'producer', [String(WINDOW)], { firstAnswer: true })
    const found = await producer.next<Ready & Found>('ready', 60_000)
    for (const p of [broker, consumer, producer]) p.send({ cmd: 'mark' })
    const lat = await producer.request<Msg & { samples: number[], cpuUs: number }>(
      { cmd: 'latency', warmup, count, interval: paced.interval ?? 0, transient: paced.transient ?? true }, 'latency', 300_000)
    const [stats, counted] = await Promise.all([
      broker.request<Stats>({ cmd: 'stats' }, 'stats'),
      consumer.request<Counted>({ cmd: 'end' }, 'counted')
    ])
    const trips = warmup + count
    return {
      ...latencyOf(lat.samples),
      cpuPerTrip: { broker: stats.cpuUs / trips, consumer: counted.cpuUs / trips, producer: lat.cpuUs / trips },
      found: { createdMs: found.createdMs, connectMs: found.connectMs, firstAnswerMs: found.firstAnswerMs, directMs: found.directMs },
      vias: [{ name: 'consumer', vias: counted.vias }, { name: 'producer', vias: lat.vias }]
    }
  } finally {
    await group.close()
  }
}

// ---------------------------------------------------------------------------------------------
// h. across networks

type AcrossLatency = LatencyResult & { found: Found }
type AcrossResults = Record<AcrossMode, { tp: ThroughputResult[], lat: AcrossLatency[], errors?: string[] }>

/**
 * One round of h: a fresh network (relay, STUN, two NATs), then in each mode a throughput run (as
 * a) and a latency run (as c, fewer trips), each with fresh processes, each checked to have run
 * relayed or direct as its mode says. A failed run is recorded and the round goes on.
 */
async function acrossRound (run: number, e: Env, results: AcrossResults, progress: (text: string) => void): Promise<void> {
  const across = await openAcross(e.home, e.env)
  try {
    for (const mode of ['relayed', 'direct'] as const) {
      const r = results[mode]
      try {
        const tp = await p2pmqThroughput(1, false, e, across.placement(mode))
        checkVias(mode, tp.vias)
        if (mode === 'direct') checkPunched(across.net)
        const lat = await p2pmqLatency(e, across.placement(mode), ACROSS_LATENCY_WARMUP, ACROSS_LATENCY_N)
        checkVias(mode, lat.vias)
        r.tp.push(tp)
        r.lat.push(lat)
        const direct = lat.found.directMs != null ? `, direct at ${int(lat.found.directMs)} ms` : ''
        progress(`p2pmq run ${run}/${RUNS}: ${mode} ${int(tp.rate)} acked/s, latency p50 ${int(lat.p50)} µs, p99 ${int(lat.p99)} µs; ` +
          `by peer ID: first answer ${int(lat.found.firstAnswerMs)} ms${direct}`)
      } catch (err) {
        (r.errors ??= []).push(`run ${run}: ${(err as Error).message}`)
        progress(`p2pmq run ${run}/${RUNS}: ${mode} failed: ${(err as Error).message}`)
      }
    }
  } finally {
    await across.close()
  }
}

function acrossRows (ours: Results, theirs: Results | undefined, across: AcrossResults): Row[] {
  const ms = (n: number): string => `${int(n)} ms`
  const noRelay = 'n/a (no relay)'
  const found = (mode: AcrossMode, key: keyof Found): number[] => across[mode].lat.map((l) => l.found[key]).filter((n): n is number => n != null)
  /** From the producer's node up (createProducer() resolved) to its first answer: the lookup, the dial, one round trip. */
  const afterNode = (mode: AcrossMode): number[] => across[mode].lat.flatMap((l) => l.found.firstAnswerMs != null && l.found.createdMs != null ? [l.found.firstAnswerMs - l.found.createdMs] : [])
  return [
    { scenario: 'h. loopback (127.0.0.1, as a): acked msg/s', p2pmq: ours.tp1.map((r) => r.rate), rabbit: theirs?.tp1.map((r) => r.rate), unit: int },
    { scenario: 'h. relayed (NAT A, relay, NAT B): acked msg/s', p2pmq: across.relayed.tp.map((r) => r.rate), rabbitText: noRelay, unit: int },
    { scenario: 'h. direct (WebRTC through both NATs): acked msg/s', p2pmq: across.direct.tp.map((r) => r.rate), rabbitText: noRelay, unit: int },
    { scenario: 'h. loopback (as c): request/answer p50 µs', p2pmq: ours.lat.map((r) => r.p50), rabbit: theirs?.lat.map((r) => r.p50), unit: int },
    { scenario: 'h. loopback (as c): request/answer p99 µs', p2pmq: ours.lat.map((r) => r.p99), rabbit: theirs?.lat.map((r) => r.p99), unit: int },
    { scenario: 'h. relayed: request/answer p50 µs', p2pmq: across.relayed.lat.map((r) => r.p50), rabbitText: noRelay, unit: int },
    { scenario: 'h. relayed: request/answer p99 µs', p2pmq: across.relayed.lat.map((r) => r.p99), rabbitText: noRelay, unit: int },
    { scenario: 'h. direct: request/answer p50 µs', p2pmq: across.direct.lat.map((r) => r.p50), rabbitText: noRelay, unit: int },
    { scenario: 'h. direct: request/answer p99 µs', p2pmq: across.direct.lat.map((r) => r.p99), rabbitText: noRelay, unit: int },
    { scenario: 'h. by peer ID, relayed: createProducer() → first answer', p2pmq: found('relayed', 'firstAnswerMs'), rabbitText: 'n/a', unit: ms },
    { scenario: 'h. by peer ID, relayed: node up → first answer', p2pmq: afterNode('relayed'), rabbitText: 'n/a', unit: ms },
    { scenario: 'h. by peer ID, direct: createProducer() → first answer', p2pmq: found('direct', 'firstAnswerMs'), rabbitText: 'n/a', unit: ms },
    { scenario: 'h. by peer ID, direct: node up → first answer', p2pmq: afterNode('direct'), rabbitText: 'n/a', unit: ms },
    { scenario: 'h. by peer ID, direct: createProducer() → direct connection', p2pmq: found('direct', 'directMs'), rabbitText: 'n/a', unit: ms }
  ]
}

function printAcrossDetails (across: AcrossResults): void {
  for (const mode of ['relayed', 'direct'] as const) {
    const r = across[mode]
    if (r.tp.length === 0 && r.errors == null) continue
    console.log(`Details (h, ${mode}):`)
    for (const line of details('h', r.tp)) console.log(line)
    r.lat.forEach((c, i) => {
      const f = c.found
      console.log(`  h run ${i + 1}: ${c.count} round trips, p50 ${int(c.p50)} µs, p99 ${int(c.p99)} µs, mean ${int(c.mean)} µs, max ${int(c.max)} µs; ` +
        `producer by peer ID: node started ${int(f.createdMs)} ms, stream open ${int(f.connectMs)} ms, first answer ${int(f.firstAnswerMs)} ms${f.directMs != null ? `, direct ${int(f.directMs)} ms` : ''} after createProducer()`)
    })
    for (const err of r.errors ?? []) console.log(`  h failed, ${err}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Output

function pagedLine (r: PagedResult): string {
  const mb = (m: Memory): string => m == null ? '– (no /proc)' : `${int(m.rssMB)} (${int(m.peakMB)})`
  const p = r.progress
  const ok = p.distinct === r.spec.count && p.duplicates === 0 && p.outOfOrder === 0 && p.early === 0
  return `filled in ${r.fillSeconds.toFixed(1)} s, RSS ${mb(r.afterFill)}; ` +
    `restarted in ${r.restartSeconds.toFixed(1)} s holding ${int(r.held)} (${int(r.delayed)} delayed), RSS ${mb(r.afterRestart)}; ` +
    `drained in ${r.drainSeconds.toFixed(1)} s, RSS sampled max ${int(r.drainPeak?.rssMB)} (peak ${int(r.drainPeak?.peakMB)}), after ${int(r.afterDrain?.rssMB)}; ` +
    (ok ? 'every message once, in order' : `got ${int(p.distinct)} of ${int(r.spec.count)}, ${int(p.duplicates)} twice, ${int(p.outOfOrder)} out of order, ${int(p.early)} early`) +
    (r.spec.delay != null ? ` (due order: none early, largest inversion of the producer's due times ${int(p.inversionMs)} ms)` : '')
}

const int = (n: number | undefined): string => n == null || !Number.isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US')
const pct = (f: number): string => `${Math.round(f * 100)}%`

interface Row {
  scenario: string
  p2pmq: number[]
  rabbit?: number[]
  /** What the RabbitMQ column says for a step RabbitMQ has no counterpart of. */
  rabbitText?: string
  unit: (n: number) => string
}

/**
 * p2pmq's figure over RabbitMQ's, run by run, and their median. Each run measures both back to
 * back, so a noisy spell of the machine (CPU steal on a VM) shifts both figures of one run: the
 * run's ratio keeps what the medians of each column, taken apart, mix up.
 */
function ratioOf (r: Row): string {
  const theirs = r.rabbit
  if (theirs?.length !== r.p2pmq.length) return ''
  const ratios = r.p2pmq.map((ours, i) => ours / theirs[i])
  return `${median(ratios).toFixed(2)} (${ratios.map((x) => x.toFixed(2)).join(' / ')})`
}

function table (rows: Row[], rabbitNote: string | undefined): string {
  const header = ['scenario', `p2pmq (median of ${RUNS})`, 'runs', rabbitNote == null ? `RabbitMQ (median of ${RUNS})` : 'RabbitMQ', 'p2pmq ÷ RabbitMQ, run by run (median)']
  const lines = rows.map((r) => [
    r.scenario,
    r.unit(median(r.p2pmq)),
    r.p2pmq.map(r.unit).join(' / '),
    r.rabbitText ?? rabbitNote ?? (r.rabbit != null ? `${r.unit(median(r.rabbit))} (${r.rabbit.map(r.unit).join(' / ')})` : '–'),
    rabbitNote == null && r.rabbitText == null ? ratioOf(r) : ''
  ])
  const all = [header, ...lines]
  const widths = header.map((_, i) => Math.max(...all.map((l) => l[i].length)))
  const fmt = (l: string[]): string => `| ${l.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`
  return [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n')
}

function details (name: string, runs: ThroughputResult[]): string[] {
  return runs.map((r, i) => {
    const cpu = Object.entries(r.cpu).map(([k, v]) => `${k} ${pct(v)}`).join(', ')
    const failures = r.publishFailures > 0 ? `, ${int(r.publishFailures)} publishes failed (${r.firstFailure ?? '?'})` : ''
    const perMsg = r.brokerCpuPerMsg != null ? `, broker ${r.brokerCpuPerMsg.toFixed(2)} µs CPU/msg` : ''
    const rss = r.brokerRssMB != null ? `, broker RSS ${int(r.brokerRssMB)} MB` : ''
    return `  ${name} run ${i + 1}: ${int(r.rate)} acked/s (${int(r.acked)} in the window), producer ${int(r.confirmedRate)} confirmed/s, ` +
      `held by the broker at end ${int(r.backlog)}${rss}${failures}${perMsg}; CPU (of one core): ${cpu}`
  })
}

// ---------------------------------------------------------------------------------------------

/** How one message queue runs the scenarios, so p2pmq and RabbitMQ go through the same loop. */
interface System {
  throughput: (consumers: number, durable: boolean) => Promise<ThroughputResult>
  latency: () => Promise<LatencyResult>
}

interface Results {
  tp1: ThroughputResult[]
  tp4: ThroughputResult[]
  lat: LatencyResult[]
  durable: ThroughputResult[]
}

/**
 * Runs the selected scenarios RUNS times, interleaved (a, b, c, a, b, c, …) so slow drift on the
 * machine spreads over all, each system in turn within a run (p2pmq's, then RabbitMQ's) so that a
 * run's two columns were measured minutes apart at most.
 */
async function runScenarios (systems: Array<{ name: string, system: System }>, progress: (text: string) => void): Promise<Results[]> {
  const results = systems.map((): Results => ({ tp1: [], tp4: [], lat: [], durable: [] }))
  for (let run = 1; run <= RUNS; run++) {
    for (const [i, { name, system }] of systems.entries()) await runOnce(name, system, run, results[i], progress)
  }
  return results
}

async function runOnce (name: string, system: System, run: number, r: Results, progress: (text: string) => void): Promise<void> {
  if (LOOPBACK_ONLY.has('a')) {
    const a = await system.throughput(1, false)
    r.tp1.push(a)
    progress(`${name} run ${run}/${RUNS}: 1 consumer  ${int(a.rate)} acked/s`)
  }
  if (ONLY.has('b')) {
    const b = await system.throughput(4, false)
    r.tp4.push(b)
    progress(`${name} run ${run}/${RUNS}: 4 consumers ${int(b.rate)} acked/s`)
  }
  if (LOOPBACK_ONLY.has('c')) {
    const c = await system.latency()
    r.lat.push(c)
    progress(`${name} run ${run}/${RUNS}: latency p50 ${int(c.p50)} µs, p99 ${int(c.p99)} µs`)
  }
  if (ONLY.has('d')) {
    const d = await system.throughput(1, true)
    r.durable.push(d)
    progress(`${name} run ${run}/${RUNS}: durable, 1 consumer ${int(d.rate)} acked/s`)
  }
}

function printDetails (title: string, r: Results): void {
  console.log(`Details (${title}):`)
  for (const line of [...details('a', r.tp1), ...details('b', r.tp4), ...details('d', r.durable)]) console.log(line)
  r.lat.forEach((c, i) => {
    const cpu = c.cpuPerTrip == null ? '' : '; CPU per round trip: ' + Object.entries(c.cpuPerTrip).map(([role, us]) => `${role} ${int(us)} µs`).join(', ')
    console.log(`  c run ${i + 1}: ${c.count} round trips, p50 ${int(c.p50)} µs, p99 ${int(c.p99)} µs, mean ${int(c.mean)} µs, max ${int(c.max)} µs${cpu}`)
  })
}

async function main (): Promise<void> {
  const cpu = cpus()
  console.log('# p2pmq benchmark')
  console.log(`node ${process.version}, ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${process.platform}/${process.arch}`)
  console.log(`TCP + noise + yamux on 127.0.0.1; broker, producer and each consumer in their own process; ${PAYLOAD_SIZE}-byte payloads`)
  console.log(`throughput: ${WARMUP} s warm-up + ${SECONDS} s measured, producer window ${WINDOW.toLocaleString('en-US')}, prefetch ${PREFETCH.toLocaleString('en-US')}; ` +
    `latency: ${LATENCY_N} sequential send() after ${LATENCY_WARMUP} warm-up; ${RUNS} run(s) each, fresh processes per run`)
  if (PROF_ROLES.size > 0) {
    await mkdir(PROF_DIR, { recursive: true })
    console.log(`CPU profiles of ${[...PROF_ROLES].join(', ')} go to ${PROF_DIR}`)
  }
  console.log('')

  const home = await mkdtemp(join(tmpdir(), 'p2pmq-bench-'))
  // Also on Ctrl+C (the signal handler exits without unwinding to the finally below).
  const removeHome = (): void => {
    killAll()
    try { rmSync(home, { recursive: true, force: true }) } catch {}
  }
  process.on('exit', removeHome)
  // The children run with the environment the p2pmq command starts with (its first line).
  const e: Env = { home, env: { ...process.env, ...P2PMQ_LAUNCH.env, P2PMQ_HOME: home } }
  const progress = (text: string): void => { process.stderr.write(`${text}\n`) }
  let ours: Results = { tp1: [], tp4: [], lat: [], durable: [] }
  const hostile: Array<Record<'quiet' | 'held' | 'floods', Awaited<ReturnType<typeof p2pmqThroughput>>>> = []
  const paced: Array<{ interval: number, memory: LatencyResult, durable: LatencyResult, transient: LatencyResult, rabbit?: LatencyResult, steal?: number }> = []
  const benchStart = cpuTicks()
  let theirs: Results | undefined
  let rabbitNote: string | undefined
  let rabbitDetails = ''
  const backlogs: BacklogResult[] = []
  const paged: PagedResult[] = []
  const browserRuns: BrowserResult[] = []
  let startup: StartupResult | undefined
  const cliRuns: CliBenchResult[] = []
  const across: AcrossResults = { relayed: { tp: [], lat: [] }, direct: { tp: [], lat: [] } }
  let acrossSkipped: string | undefined
  try {
    if (ONLY.has('g')) {
      startup = await p2pmqStartup(STARTUP_N, e, script)
      progress(`p2pmq startup: -help ${int(median(startup.help))} ms, producer's first answer ${int(median(startup.firstAnswer))} ms`)
    }
    // Loaded only here, so a missing amqplib (a devDependency) costs only the RabbitMQ column.
    const rabbit = await import('./rabbitmq.js').catch((err: Error) => err)
    const unreachable = rabbit instanceof Error ? undefined : await rabbit.probeRabbit(1_000)
    const o = { env: e.env, seconds: SECONDS, warmup: WARMUP }
    const systems: Array<{ name: string, system: System }> = [{ name: 'p2pmq', system: { throughput: async (n: number, durable: boolean) => await p2pmqThroughput(n, durable, e), latency: async () => await p2pmqLatency(e) } }]
    if (rabbit instanceof Error) {
      rabbitNote = 'n/a (amqplib not installed)'
      progress(`RabbitMQ: skipped, amqplib could not be loaded (${rabbit.message})`)
    } else if (unreachable != null) {
      rabbitNote = 'n/a (no RabbitMQ on 127.0.0.1)'
      progress(`RabbitMQ: not reachable on 127.0.0.1:5672 (${unreachable}); skipped`)
    } else {
      const { rabbitLatency, rabbitThroughput, RABBIT_CONFIRM_BATCH, RABBIT_PREFETCH } = rabbit
      rabbitDetails = `prefetch ${RABBIT_PREFETCH}, confirms waited for every ${RABBIT_CONFIRM_BATCH} publishes`
      systems.push({
        name: 'RabbitMQ',
        system: {
          throughput: async (n, durable) => await rabbitThroughput(n, durable, o),
          latency: async () => await rabbitLatency(LATENCY_WARMUP, LATENCY_N, o)
        }
      })
    }
    [ours, theirs] = await runScenarios(systems, progress)
    if (ONLY.has('k')) {
      for (let run = 1; run <= RUNS; run++) {
        const group = new ProcGroup(e.env)
        try {
          const { addr } = await startBroker(group, e)
          const k = await cliBench(addr, CLI_COUNT, WARMUP * 1000, e.env)
          cliRuns.push(k)
          progress(`p2pmq bench (CLI) run ${run}/${RUNS}: ${int(k.consumedPerSecond)} msg/s taken, ${int(k.producedPerSecond)} confirmed/s`)
        } finally {
          await group.close()
        }
      }
    }
    if (ONLY.has('j')) {
      const rabbitLatency = rabbit instanceof Error || unreachable != null ? undefined : rabbit.rabbitLatency
      for (let run = 1; run <= RUNS; run++) {
        for (const interval of PACES) {
          const [warmup, count] = [pacedWarmup(interval), pacedCount(interval)]
          const start = cpuTicks()
          const memory = await p2pmqLatency(e, LOOPBACK, warmup, count, { interval })
          const durable = await p2pmqLatency(e, LOOPBACK, warmup, count, { interval, durable: true, transient: false })
          const transient = await p2pmqLatency(e, LOOPBACK, warmup, count, { interval, durable: true, transient: true })
          const theirs = await rabbitLatency?.(warmup, count, o, interval)
          const steal = stealSince(start)
          paced.push({ interval, memory, durable, transient, rabbit: theirs, steal })
          const p = (r: LatencyResult): string => `p50 ${int(r.p50)} µs, p99 ${int(r.p99)} µs, p99.9 ${int(r.p999)} µs`
          progress(`run ${run}/${RUNS}: one request every ${interval} ms: p2pmq in memory ${p(memory)}; durable ${p(durable)}; durable, transient requests ${p(transient)}` +
            (theirs != null ? `; RabbitMQ ${p(theirs)}` : '') + stealNote(steal))
        }
      }
    }
    if (ONLY.has('i')) {
      for (let run = 1; run <= RUNS; run++) {
        const quiet = await p2pmqThroughput(1, false, e)
        const held = await p2pmqThroughput(1, false, e, LOOPBACK, HELD_ATTACKS)
        const floods = await p2pmqThroughput(1, false, e, LOOPBACK, FLOODS)
        hostile.push({ quiet, held, floods })
        progress(`p2pmq run ${run}/${RUNS}: hostile peers: ${int(quiet.rate)} acked/s quiet (broker peak ${int(quiet.brokerPeakMB ?? NaN)} MB), ` +
          `${int(held.rate)} under held attacks (peak ${int(held.brokerPeakMB ?? NaN)} MB), ${int(floods.rate)} under floods (peak ${int(floods.brokerPeakMB ?? NaN)} MB)`)
      }
    }
    if (ONLY.has('h')) {
      const why = acrossUnavailable()
      if (why != null) {
        acrossSkipped = why
        progress(`h. across networks: skipped, ${why}`)
      } else {
        for (let run = 1; run <= RUNS; run++) await acrossRound(run, e, across, progress)
      }
    }
    if (ONLY.has('f')) {
      if (!existsSync(CHROMIUM)) {
        progress(`browser consumer: skipped, no ${CHROMIUM}`)
      } else {
        for (let run = 1; run <= RUNS; run++) {
          const r = await browserConsumer(e)
          browserRuns.push(r)
          progress(`p2pmq run ${run}/${RUNS}: browser consumer ${int(r.rate)} acked/s, answer p50 ${int(r.latency.p50)} µs`)
        }
      }
    }
    if (ONLY.has('e')) {
      for (const count of BACKLOGS) {
        const backlog = await p2pmqBacklog(count, e)
        backlogs.push(backlog)
        progress(`p2pmq backlog: ${int(backlog.messages)} messages, broker RSS ${int(backlog.rssMB)} MB`)
      }
      const specs: PagedSpec[] = [
        { kind: 'queued', label: `${int(PAGED_N)} queued`, count: PAGED_N, size: PAYLOAD_SIZE },
        { kind: 'unrouted', label: `${int(PAGED_N)} unrouted`, count: PAGED_N, size: PAYLOAD_SIZE },
        { kind: 'delayed', label: `${int(PAGED_N)} delayed ${int(DELAY / 1000)} s`, count: PAGED_N, size: PAYLOAD_SIZE, delay: DELAY },
        // A small window and prefetch: in flight, 1 MiB messages are in memory whatever the paging.
        { kind: 'large', label: `${int(LARGE_N)} of 1 MiB`, count: LARGE_N, size: 1024 * 1024, window: 16, prefetch: 10 }
      ]
      for (const spec of specs.filter((s) => PAGED.has(s.kind))) {
        const r = await p2pmqPagedBacklog(spec, e)
        paged.push(r)
        progress(`p2pmq paged backlog, ${spec.label}: ${pagedLine(r)}`)
      }
    }
  } finally {
    killAll()
    await rm(home, { recursive: true, force: true })
  }

  const rows: Row[] = [
    { scenario: 'a. work queue, 1 consumer: acked msg/s', p2pmq: ours.tp1.map((r) => r.rate), rabbit: theirs?.tp1.map((r) => r.rate), unit: int },
    { scenario: 'b. work queue, 4 consumers: acked msg/s', p2pmq: ours.tp4.map((r) => r.rate), rabbit: theirs?.tp4.map((r) => r.rate), unit: int },
    { scenario: 'c. request/answer, 1 in flight: p50 µs', p2pmq: ours.lat.map((r) => r.p50), rabbit: theirs?.lat.map((r) => r.p50), unit: int },
    { scenario: 'c. request/answer, 1 in flight: p99 µs', p2pmq: ours.lat.map((r) => r.p99), rabbit: theirs?.lat.map((r) => r.p99), unit: int },
    { scenario: 'd. durable work queue, 1 consumer: acked msg/s', p2pmq: ours.durable.map((r) => r.rate), rabbit: theirs?.durable.map((r) => r.rate), unit: int }
  ]
  if (cliRuns.length > 0) {
    rows.push(
      { scenario: 'k. p2pmq bench (CLI), 1 producer, 1 consumer: msg/s taken', p2pmq: cliRuns.map((k) => k.consumedPerSecond), rabbitText: 'n/a (no PerfTest here)', unit: int },
      { scenario: 'k. p2pmq bench (CLI): msg/s taken, over a\'s median', p2pmq: ours.tp1.length > 0 ? cliRuns.map((k) => k.consumedPerSecond / median(ours.tp1.map((r) => r.rate))) : [], rabbitText: 'n/a', unit: (n) => n.toFixed(2) }
    )
  }
  if (startup != null) {
    const ms = (n: number): string => `${int(n)} ms`
    rows.push(
      { scenario: `g. startup: p2pmq -help, wall ms (${startup.help.length} runs)`, p2pmq: startup.help, rabbitText: 'n/a', unit: ms },
      { scenario: `g. startup: producer's first answer, wall ms (${startup.firstAnswer.length} runs)`, p2pmq: startup.firstAnswer, rabbitText: 'n/a', unit: ms }
    )
  }
  if (ONLY.has('h')) rows.push(...acrossRows(ours, theirs, across))
  if (hostile.length > 0) {
    const mb = (n: number): string => `${int(n)} MB`
    rows.push(
      { scenario: 'i. hostile peers: quiet, acked msg/s (as a)', p2pmq: hostile.map((h) => h.quiet.rate), rabbitText: 'n/a', unit: int },
      { scenario: 'i. hostile peers: held attacks, acked msg/s', p2pmq: hostile.map((h) => h.held.rate), rabbitText: 'n/a', unit: int },
      { scenario: 'i. hostile peers: floods, acked msg/s', p2pmq: hostile.map((h) => h.floods.rate), rabbitText: 'n/a', unit: int },
      { scenario: 'i. hostile peers: quiet, broker peak RSS', p2pmq: hostile.map((h) => h.quiet.brokerPeakMB ?? NaN), rabbitText: 'n/a', unit: mb },
      { scenario: 'i. hostile peers: held attacks, broker peak RSS', p2pmq: hostile.map((h) => h.held.brokerPeakMB ?? NaN), rabbitText: 'n/a', unit: mb },
      { scenario: 'i. hostile peers: floods, broker peak RSS', p2pmq: hostile.map((h) => h.floods.brokerPeakMB ?? NaN), rabbitText: 'n/a', unit: mb }
    )
  }
  for (const interval of PACES) {
    const runs = paced.filter((r) => r.interval === interval)
    const rabbitRuns = runs.some((r) => r.rabbit == null) ? undefined : runs.map((r) => r.rabbit as LatencyResult)
    for (const [name, pick] of [['p50', (r: LatencyResult) => r.p50], ['p99', (r: LatencyResult) => r.p99], ['p99.9', (r: LatencyResult) => r.p999]] as const) {
      rows.push(
        { scenario: `j. 1 request every ${interval} ms, in memory: ${name} µs`, p2pmq: runs.map((r) => pick(r.memory)), rabbit: rabbitRuns?.map(pick), unit: int },
        { scenario: `j. 1 request every ${interval} ms, durable: ${name} µs`, p2pmq: runs.map((r) => pick(r.durable)), rabbitText: 'n/a (its reply queues are not persistent)', unit: int },
        { scenario: `j. 1 request every ${interval} ms, durable broker, transient requests: ${name} µs`, p2pmq: runs.map((r) => pick(r.transient)), rabbit: rabbitRuns?.map(pick), unit: int }
      )
    }
  }
  // a's and c's runs also feed h's loopback rows: their own rows only when asked for.
  console.log(table(rows.filter((r) => r.p2pmq.length > 0 && (ONLY.has(r.scenario[0]) || r.scenario.startsWith('h.'))), rabbitNote))
  if (acrossSkipped != null) console.log(`h. across networks: skipped, ${acrossSkipped}`)
  console.log('')
  if (browserRuns.length > 0) {
    console.log(`f. browser consumer (Chromium, WebRTC Direct): ${int(median(browserRuns.map((r) => r.rate)))} acked/s ` +
      `(${browserRuns.map((r) => int(r.rate)).join(' / ')}); answer latency p50 ${int(median(browserRuns.map((r) => r.latency.p50)))} µs ` +
      `(${browserRuns.map((r) => int(r.latency.p50)).join(' / ')}), p99 ${int(median(browserRuns.map((r) => r.latency.p99)))} µs`)
  }
  for (const backlog of backlogs) {
    console.log(`e. durable backlog, no consumer: ${int(backlog.messages)} messages held, broker RSS ${int(backlog.rssMB)} MB ` +
      `(filled in ${backlog.seconds.toFixed(1)} s, ${int(backlog.messages / backlog.seconds)} confirmed/s)`)
  }
  if (backlogs.length > 0) console.log('')
  if (paged.length > 0) {
    console.log('e. paged backlogs, durable broker killed with -9 and restarted, then one consumer (broker RSS, peak in brackets, MB):')
    for (const r of paged) console.log(`  ${r.spec.label}: ${pagedLine(r)}`)
    console.log('')
  }
  printDetails('p2pmq', ours)
  for (const r of paced) {
    for (const [mode, lat] of [['in memory', r.memory], ['durable', r.durable], ['durable broker, transient requests', r.transient]] as const) {
      const cpu = Object.entries(lat.cpuPerTrip ?? {}).map(([role, us]) => `${role} ${int(us)} µs`).join(', ')
      console.log(`  j every ${r.interval} ms, ${mode}: ${lat.count} round trips, p50 ${int(lat.p50)} µs, p99 ${int(lat.p99)} µs, p99.9 ${int(lat.p999)} µs, max ${int(lat.max)} µs; CPU per round trip: ${cpu}`)
    }
    if (r.steal != null) console.log(`    CPU steal during these runs and RabbitMQ's beside them: ${r.steal.toFixed(1)}%`)
  }
  printAcrossDetails(across)
  if (theirs != null) printDetails(`RabbitMQ, ${rabbitDetails}`, theirs)
  const steal = stealSince(benchStart)
  if (steal != null) console.log(`\nCPU steal during the bench: ${steal.toFixed(1)}% of the cores' time went to other guests of the hypervisor (/proc/stat); a run with more is noisier.`)
}

/** A run's CPU steal, when there was any worth noting. */
function stealNote (steal: number | undefined): string {
  return steal != null && steal >= 0.5 ? ` (CPU steal ${steal.toFixed(1)}%)` : ''
}

main().then(() => {
  process.exit(0)
}, (err: unknown) => {
  killAll()
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  process.exit(1)
})
