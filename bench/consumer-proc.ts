/**
 * Benchmark child: one p2pmq consumer (its own libp2p node) in its own process.
 * argv: <broker multiaddr> <ack|echo|check> <prefetch> [command].
 * - ack: the handler is synchronous and returns undefined (a publish is then acked).
 * - echo: the handler returns the payload (the answer to a send).
 * - check: as ack, and checks the index in the first 4 bytes of each payload (a numbered fill) and
 *   the due time in the next 8: 'progress' reports { type: 'progress', received, distinct,
 *   duplicates, outOfOrder, early, inversionMs }. Out of order: after a higher index (messages
 *   without a due time), or after one due more than 250 ms later (delayed ones: their due times
 *   are the producer's; the broker's are later by the time the publish took to reach it, which
 *   varies); inversionMs: the largest such gap seen; early: before its due time.
 * Reports 'ready' once subscribed; 'mark' starts counting, 'end' reports { type: 'counted' }.
 * Across the NAT harness (env BENCH_NET_CLIENT, see NetClient), the broker is a peer ID found
 * through the relays, and with `direct` 'ready' waits for the direct connection; 'ready' and
 * 'counted' say how the consumer is connected (`vias`).
 */
import { tierUpSooner } from '../cmd/tier-up.js'
import { createConsumer, type Message } from '../src/index.js'
import { BENCH_COMMAND, CpuMeter, brokerPeerOf, die, netClient, onCommand, report, untilDirect, viasTo } from './common.js'

// As the CLI's consumer runs (cmd/tier-up.ts).
tierUpSooner()

async function main (): Promise<void> {
  const [broker, mode, prefetchText, command] = process.argv.slice(2)
  if (broker == null || (mode !== 'ack' && mode !== 'echo' && mode !== 'check')) throw new Error('usage: consumer-proc <broker> <ack|echo|check> <prefetch> [command]')
  const prefetch = Number(prefetchText ?? 1000)
  const net = netClient()
  const consumer = await createConsumer({
    broker,
    relays: net?.relays,
    stun: net?.stun,
    onRetry: (err) => { console.error(`[consumer ${process.pid}] dial failed: ${err instanceof Error && err.message !== undefined ? err.message : String(err)}`) }
  })
  const cpu = new CpuMeter()
  let markCount = 0
  let markTime = performance.now()
  onCommand((cmd) => {
    switch (cmd.cmd) {
      case 'mark':
        markCount = consumer.processed
        markTime = performance.now()
        cpu.mark()
        break
      case 'progress':
        report({ type: 'progress', ...check })
        break
      case 'end': {
        const processed = consumer.processed - markCount
        const seconds = (performance.now() - markTime) / 1000
        report({ type: 'counted', processed, seconds, total: consumer.processed, vias: viasTo(consumer.node, brokerPeerOf(broker)), ...cpu.since() })
        break
      }
    }
  }, async () => { await consumer.stop() })
  // Indices seen (a bit each), and how many came after a higher one.
  const check = { received: 0, distinct: 0, duplicates: 0, outOfOrder: 0, early: 0, inversionMs: 0 }
  let seen = new Uint8Array(1 << 17)
  let highest = -1
  let latestDue = 0
  const checkIndex = (m: Message): undefined => {
    const p = m.payload as Uint8Array
    const view = new DataView(p.buffer, p.byteOffset, p.byteLength)
    const i = view.getUint32(0)
    const due = view.getFloat64(4)
    check.received++
    if (i >> 3 >= seen.length) {
      const grown = new Uint8Array(Math.max(seen.length * 2, (i >> 3) + 1))
      grown.set(seen)
      seen = grown
    }
    if ((seen[i >> 3] & (1 << (i & 7))) !== 0) {
      check.duplicates++
      return undefined
    }
    seen[i >> 3] |= 1 << (i & 7)
    check.distinct++
    if (due > 0) {
      if (Date.now() < due) check.early++
      if (due < latestDue - 250) check.outOfOrder++
      check.inversionMs = Math.max(check.inversionMs, latestDue - due)
      latestDue = Math.max(latestDue, due)
    } else if (i < highest) {
      check.outOfOrder++
    } else {
      highest = i
    }
    return undefined
  }
  const handler = mode === 'ack'
    ? (): undefined => undefined
    : mode === 'check' ? checkIndex : (m: Message): unknown => m.payload
  await consumer.subscribe(command ?? BENCH_COMMAND, handler, { prefetch })
  if (net?.direct === true) await untilDirect(consumer, brokerPeerOf(broker))
  report({ type: 'ready', peer: consumer.peerId, vias: viasTo(consumer.node, brokerPeerOf(broker)) })
}

main().catch(die)
