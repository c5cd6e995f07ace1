/**
 * Benchmark child: one p2pmq consumer (its own libp2p node) in its own process.
 * argv: <broker multiaddr> <ack|echo> <prefetch>.
 * - ack: the handler is synchronous and returns undefined (a publish is then acked).
 * - echo: the handler returns the payload (the answer to a send).
 * Reports 'ready' once subscribed; 'mark' starts counting, 'end' reports { type: 'counted' }.
 */
import { createConsumer, type Message } from '../src/index.js'
import { BENCH_COMMAND, CpuMeter, die, onCommand, report } from './common.js'

async function main (): Promise<void> {
  const [broker, mode, prefetchText] = process.argv.slice(2)
  if (broker == null || (mode !== 'ack' && mode !== 'echo')) throw new Error('usage: consumer-proc <broker> <ack|echo> <prefetch>')
  const prefetch = Number(prefetchText ?? 1000)
  const consumer = await createConsumer({
    broker,
    onRetry: (err) => { console.error(`[consumer ${process.pid}] dial failed: ${err.message}`) }
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
      case 'end': {
        const processed = consumer.processed - markCount
        const seconds = (performance.now() - markTime) / 1000
        report({ type: 'counted', processed, seconds, total: consumer.processed, ...cpu.since() })
        break
      }
    }
  }, async () => { await consumer.stop() })
  const handler = mode === 'ack'
    ? (): undefined => undefined
    : (m: Message): unknown => m.payload
  await consumer.subscribe(BENCH_COMMAND, handler, { prefetch })
  report({ type: 'ready', peer: consumer.peerId })
}

main().catch(die)
