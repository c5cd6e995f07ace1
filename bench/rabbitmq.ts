/**
 * The RabbitMQ side of the benchmark, for the comparison column: the same scenarios against a
 * RabbitMQ on 127.0.0.1 (guest/guest), with every client in its own process, as for p2pmq.
 *
 * - Work queue: a non-durable queue, one publisher on a ConfirmChannel publishing in batches and
 *   waiting for each batch's confirms, and 1 or 4 consumers (each its own process and connection,
 *   prefetch 500) acking every message; acked/s counted at the consumers after a warm-up.
 * - Request/answer: direct reply-to (`amq.rabbitmq.reply-to`), one request in flight; a responder
 *   process answers each request with its payload and acks it.
 *
 * The parent imports the exported functions; the same file, run with a role argument, is a child.
 */
import { fileURLToPath, pathToFileURL } from 'node:url'
import amqp from 'amqplib'
import {
  CpuMeter, ProcGroup, die, latencyOf, onCommand, payload, report, sleep,
  type LatencyResult, type Msg, type ThroughputResult
} from './common.js'

export const RABBIT_URL = 'amqp://guest:guest@127.0.0.1:5672'
export const RABBIT_PREFETCH = 500
/** Messages published between two waits for confirms. */
export const RABBIT_CONFIRM_BATCH = 5_000

const SELF = fileURLToPath(import.meta.url)

async function connect (timeoutMs = 1_000): Promise<amqp.ChannelModel> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const attempt = amqp.connect(RABBIT_URL, { timeout: timeoutMs, noDelay: true })
  try {
    return await Promise.race([
      attempt,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => { reject(new Error(`no answer within ${timeoutMs} ms`)) }, timeoutMs)
      })
    ])
  } catch (err) {
    // A connection that opens after the timeout must not keep the process alive.
    attempt.then(async (c) => { await c.close() }, () => {})
    throw err
  } finally {
    clearTimeout(timer)
  }
}

/** undefined when RabbitMQ answers on 127.0.0.1:5672; otherwise why not. */
export async function probeRabbit (timeoutMs = 1_000): Promise<string | undefined> {
  try {
    const conn = await connect(timeoutMs)
    await conn.close()
    return undefined
  } catch (err) {
    const e = err as Error & { code?: string }
    return e.code ?? e.message
  }
}

let queueCounter = 0

/** Runs `body` with a fresh queue (durable or not), deleted afterwards. */
async function withQueue<T> (durable: boolean, body: (queue: string, admin: amqp.Channel) => Promise<T>): Promise<T> {
  const conn = await connect(2_000)
  try {
    const ch = await conn.createChannel()
    const queue = `p2pmq-bench-${process.pid}-${++queueCounter}`
    await ch.assertQueue(queue, { durable, autoDelete: false })
    try {
      return await body(queue, ch)
    } finally {
      await ch.deleteQueue(queue).catch(() => {})
    }
  } finally {
    await conn.close().catch(() => {})
  }
}

export interface RabbitRunOptions {
  env: NodeJS.ProcessEnv
  seconds: number
  warmup: number
}

/** `durable`: a durable queue and persistent messages (written to disk before the confirm). */
export async function rabbitThroughput (consumers: number, durable: boolean, o: RabbitRunOptions): Promise<ThroughputResult> {
  return await withQueue(durable, async (queue, admin) => {
    const group = new ProcGroup(o.env)
    try {
      const cons = Array.from({ length: consumers }, (_, i) =>
        group.start(`rabbit consumer ${i + 1}`, SELF, ['consumer', queue, String(RABBIT_PREFETCH)]))
      await Promise.all(cons.map(async (c) => await c.next('ready')))
      const pub = group.start('rabbit publisher', SELF, ['publisher', queue, String(RABBIT_CONFIRM_BATCH), durable ? 'persistent' : 'transient'])
      await pub.next('ready')
      pub.send({ cmd: 'flood' })
      await group.sleep(o.warmup * 1000)
      for (const p of [pub, ...cons]) p.send({ cmd: 'mark' })
      await group.sleep(o.seconds * 1000)
      const [flood, ...counts] = await Promise.all([
        pub.request<Msg & { confirmed: number, failed: number, firstFailure?: string, seconds: number, cpuUs: number, wallMs: number }>({ cmd: 'stop' }, 'flooded'),
        ...cons.map(async (c) => await c.request<Msg & { processed: number, seconds: number, cpuUs: number, wallMs: number }>({ cmd: 'end' }, 'counted'))
      ])
      const backlog = (await admin.checkQueue(queue)).messageCount
      const cpu: Record<string, number> = { publisher: flood.cpuUs / 1000 / flood.wallMs }
      counts.forEach((c, i) => { cpu[`consumer ${i + 1}`] = c.cpuUs / 1000 / c.wallMs })
      return {
        acked: counts.reduce((a, c) => a + c.processed, 0),
        rate: counts.reduce((a, c) => a + c.processed / c.seconds, 0),
        confirmedRate: flood.confirmed / flood.seconds,
        publishFailures: flood.failed,
        firstFailure: flood.firstFailure,
        backlog,
        cpu
      }
    } finally {
      await group.close()
    }
  })
}

export async function rabbitLatency (warmup: number, count: number, o: RabbitRunOptions, interval = 0): Promise<LatencyResult> {
  return await withQueue(false, async (queue) => {
    const group = new ProcGroup(o.env)
    try {
      const responder = group.start('rabbit responder', SELF, ['responder', queue])
      await responder.next('ready')
      const requester = group.start('rabbit requester', SELF, ['requester', queue])
      await requester.next('ready')
      const { samples } = await requester.request<Msg & { samples: number[] }>({ cmd: 'latency', warmup, count, interval }, 'latency', 300_000)
      return latencyOf(samples)
    } finally {
      await group.close()
    }
  })
}

// ---------------------------------------------------------------------------------------------
// Child roles

async function consumerRole (queue: string, prefetch: number, mode: 'ack' | 'reply'): Promise<void> {
  const conn = await connect(2_000)
  const ch = await conn.createChannel()
  await ch.prefetch(prefetch)
  let processed = 0
  let markCount = 0
  let markTime = performance.now()
  const cpu = new CpuMeter()
  onCommand((cmd) => {
    switch (cmd.cmd) {
      case 'mark':
        markCount = processed
        markTime = performance.now()
        cpu.mark()
        break
      case 'end':
        report({ type: 'counted', processed: processed - markCount, seconds: (performance.now() - markTime) / 1000, total: processed, ...cpu.since() })
        break
    }
  }, async () => { await conn.close() })
  await ch.consume(queue, (msg) => {
    if (msg == null) return
    if (mode === 'reply') {
      const { replyTo, correlationId } = msg.properties as { replyTo?: string, correlationId?: string }
      if (replyTo != null) ch.sendToQueue(replyTo, msg.content, { correlationId })
    }
    ch.ack(msg)
    processed++
  }, { noAck: false })
  report({ type: 'ready' })
}

async function publisherRole (queue: string, batch: number, persistent: boolean): Promise<void> {
  const conn = await connect(2_000)
  const ch = await conn.createConfirmChannel()
  const body = Buffer.from(payload())
  const cpu = new CpuMeter()
  let running = false
  let confirmed = 0
  let failed = 0
  let firstFailure: string | undefined
  let started = 0
  const drained = async (): Promise<void> => { await new Promise<void>((resolve) => { ch.once('drain', () => { resolve() }) }) }
  const flood = async (): Promise<void> => {
    while (running) {
      for (let i = 0; i < batch; i++) {
        if (!ch.sendToQueue(queue, body, { persistent })) await drained()
      }
      try {
        await ch.waitForConfirms()
        confirmed += batch
      } catch (err) {
        failed += batch
        firstFailure ??= (err as Error).message
      }
    }
  }
  let loop: Promise<void> = Promise.resolve()
  onCommand((cmd) => {
    switch (cmd.cmd) {
      case 'flood':
        running = true
        started = performance.now()
        loop = flood().catch(die)
        break
      case 'mark':
        cpu.mark()
        break
      case 'stop':
        running = false
        report({ type: 'flooded', confirmed, failed, firstFailure, seconds: (performance.now() - started) / 1000, ...cpu.since() })
        break
    }
  }, async () => {
    running = false
    await Promise.race([loop, sleep(500)])
    await conn.close()
  })
  report({ type: 'ready' })
}

async function requesterRole (queue: string): Promise<void> {
  const conn = await connect(2_000)
  const ch = await conn.createChannel()
  const body = Buffer.from(payload())
  let waiting: { id: string, resolve: () => void } | undefined
  await ch.consume('amq.rabbitmq.reply-to', (msg) => {
    if (msg == null || waiting == null) return
    if (msg.properties.correlationId === waiting.id) {
      const w = waiting
      waiting = undefined
      w.resolve()
    }
  }, { noAck: true })
  onCommand(async (cmd) => {
    if (cmd.cmd !== 'latency') return
    const warmup = Number(cmd.warmup)
    const count = Number(cmd.count)
    const interval = Number(cmd.interval ?? 0)
    const samples: number[] = []
    const start = performance.now()
    for (let i = 0; i < warmup + count; i++) {
      const wait = start + i * interval - performance.now()
      if (wait > 0) await sleep(wait)
      const id = String(i)
      const t0 = performance.now()
      const answered = new Promise<void>((resolve) => { waiting = { id, resolve } })
      ch.sendToQueue(queue, body, { replyTo: 'amq.rabbitmq.reply-to', correlationId: id })
      await answered
      const us = (performance.now() - t0) * 1000
      if (i >= warmup) samples.push(us)
    }
    report({ type: 'latency', samples })
  }, async () => { await conn.close() })
  report({ type: 'ready' })
}

async function child (args: string[]): Promise<void> {
  const [role, queue, n, mode] = args
  if (queue == null) throw new Error(`usage: rabbitmq <role> <queue> [n], got ${args.join(' ')}`)
  switch (role) {
    case 'consumer': await consumerRole(queue, Number(n ?? RABBIT_PREFETCH), 'ack'); break
    case 'responder': await consumerRole(queue, 1, 'reply'); break
    case 'publisher': await publisherRole(queue, Number(n ?? RABBIT_CONFIRM_BATCH), mode === 'persistent'); break
    case 'requester': await requesterRole(queue); break
    default: throw new Error(`Unknown role "${role}"`)
  }
}

if (process.argv[1] != null && import.meta.url === pathToFileURL(process.argv[1]).href) {
  child(process.argv.slice(2)).catch(die)
}
