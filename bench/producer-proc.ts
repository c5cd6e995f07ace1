/**
 * Benchmark child: one p2pmq producer (its own libp2p node) in its own process.
 * argv: <broker multiaddr> <window>.
 * Commands:
 * - flood: publish() 100-byte messages, keeping `window` unconfirmed, until 'stop'
 *   (answers { type: 'flooded' }).
 * - fill { count, command?, size?, delay?, numbered?, random? }: publish() `count` messages (of `size`
 *   bytes, each `delay` ms late; `random`: of random bytes, which no store compresses, as encrypted
 *   or already compressed payloads are; `numbered`: the index in the first 4 bytes, the due time or 0
 *   in the next 8 as an f64) and wait for their confirms
 *   (answers { type: 'filled' }).
 * - latency { warmup, count, interval }: send() one message at a time and time each answer; with
 *   `interval` (ms), the sends start that far apart (at once when the answer comes later)
 *   (answers { type: 'latency', samples } in µs, and `vias`: how it is connected to the broker).
 * Across the NAT harness (env BENCH_NET_CLIENT, see NetClient), the broker is a peer ID found
 * through the relays; 'ready' then also reports `createdMs` (createProducer() resolved: its node
 * built and started), `connectMs` (from createProducer() to the open stream), with `firstAnswer` `firstAnswerMs` (to the answer of one send(), made at once), and
 * with `direct` `directMs` (to the stream open again on a direct connection: 'ready' waits for it).
 */
import { tierUpSooner } from '../cmd/tier-up.js'
import { createProducer } from '../src/index.js'
import { DEFAULT_PRODUCER_WINDOW } from '../src/constants.js'
import { BENCH_COMMAND, CpuMeter, brokerPeerOf, die, netClient, onCommand, payload, report, sleep, untilDirect, viasTo } from './common.js'

// As the CLI's producer runs (cmd/tier-up.ts).
tierUpSooner()

/** getRandomValues fills at most 64 KiB per call. */
function randomBytes (size: number): Uint8Array {
  const bytes = new Uint8Array(size)
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536))
  return bytes
}

async function main (): Promise<void> {
  const [broker, windowText] = process.argv.slice(2)
  if (broker == null) throw new Error('usage: producer-proc <broker> <window>')
  const window = Number(windowText ?? DEFAULT_PRODUCER_WINDOW)
  const net = netClient()
  const started = performance.now()
  const producer = await createProducer({
    broker,
    relays: net?.relays,
    stun: net?.stun,
    window,
    onRetry: (err) => { console.error(`[producer ${process.pid}] dial failed: ${err instanceof Error && err.message !== undefined ? err.message : String(err)}`) }
  })
  const createdMs = performance.now() - started
  const body = payload()
  const cpu = new CpuMeter()

  let running = false
  let inFlight = 0
  let confirmed = 0
  let failed = 0
  let firstFailure: string | undefined
  let floodStarted = 0
  let scheduled = false
  const refill = (): void => {
    if (!scheduled && running) {
      scheduled = true
      setImmediate(pump)
    }
  }
  const ok = (): void => { inFlight--; confirmed++; refill() }
  const fail = (err: Error): void => { inFlight--; failed++; firstFailure ??= err.message; refill() }
  function pump (): void {
    scheduled = false
    while (running && inFlight < window) {
      inFlight++
      producer.publish(BENCH_COMMAND, body).then(ok, fail)
    }
  }

  onCommand(async (cmd) => {
    switch (cmd.cmd) {
      case 'flood':
        running = true
        floodStarted = performance.now()
        pump()
        break
      case 'mark':
        cpu.mark()
        break
      case 'stop': {
        running = false
        const seconds = (performance.now() - floodStarted) / 1000
        report({ type: 'flooded', confirmed, failed, firstFailure, seconds, inFlight, vias: viasTo(producer.node, brokerPeerOf(broker)), ...cpu.since() })
        break
      }
      case 'fill': {
        // Publishes `count` messages as fast as the window allows and waits for every confirm.
        const count = Number(cmd.count)
        const command = typeof cmd.command === 'string' ? cmd.command : BENCH_COMMAND
        const base = cmd.size != null ? payload(Number(cmd.size)) : body
        const delay = Number(cmd.delay ?? 0)
        const t0 = performance.now()
        let sent = 0
        const pending = new Set<Promise<unknown>>()
        while (sent < count) {
          let data = base
          const at = delay > 0 ? Date.now() + delay : 0
          if (cmd.random === true) data = randomBytes(base.byteLength)
          if (cmd.numbered === true) {
            if (data === base) data = base.slice()
            new DataView(data.buffer).setUint32(0, sent)
            new DataView(data.buffer).setFloat64(4, at)
          }
          const p = producer.publish(command, data, at > 0 ? { at } : undefined)
          sent++
          pending.add(p)
          void p.finally(() => pending.delete(p)).catch(() => {})
          if (pending.size >= window) await Promise.race(pending).catch(() => {})
        }
        const results = await Promise.allSettled(pending)
        const failures = results.filter((r) => r.status === 'rejected').length
        report({ type: 'filled', seconds: (performance.now() - t0) / 1000, failures })
        break
      }
      case 'latency': {
        const warmup = Number(cmd.warmup)
        const count = Number(cmd.count)
        const interval = Number(cmd.interval ?? 0)
        const options = { transient: cmd.transient !== false }
        const samples: number[] = []
        const start = performance.now()
        for (let i = 0; i < warmup + count; i++) {
          const wait = start + i * interval - performance.now()
          if (wait > 0) await sleep(wait)
          const t0 = performance.now()
          await producer.send(BENCH_COMMAND, body, options)
          const us = (performance.now() - t0) * 1000
          if (i >= warmup) samples.push(us)
        }
        report({ type: 'latency', samples, vias: viasTo(producer.node, brokerPeerOf(broker)), ...cpu.since() })
        break
      }
    }
  }, async () => { await producer.stop() })

  // Ready once the stream to the broker is open, so the measurement does not include the dial.
  const deadline = Date.now() + 15_000
  while (!producer.connected) {
    if (Date.now() > deadline) throw new Error('The producer did not connect to the broker within 15 s')
    await sleep(10)
  }
  const connectMs = performance.now() - started
  let firstAnswerMs: number | undefined
  if (net?.firstAnswer === true) {
    await producer.send(BENCH_COMMAND, body)
    firstAnswerMs = performance.now() - started
  }
  let directMs: number | undefined
  if (net?.direct === true) {
    await untilDirect(producer, brokerPeerOf(broker))
    directMs = performance.now() - started
  }
  report({ type: 'ready', peer: producer.peerId, createdMs, connectMs, firstAnswerMs, directMs, vias: viasTo(producer.node, brokerPeerOf(broker)) })
}

main().catch(die)
